"""hpc.kernels.column_moments: NumPy's bits for the sums and the deviations, any float dtype and shape."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels


def _numpy(x):
    x64 = x.astype(np.float64)
    sums = x64.sum(axis=0)
    with np.errstate(invalid="ignore"):  # inf - inf where a column holds an infinity
        centred = x64 - sums / max(x.shape[0], 1)
        return sums, (centred**2).sum(axis=0), centred.sum(axis=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(4096, 10), (7, 3), (1, 1), (3000, 101), (0, 4), (5, 0)])
def test_the_bits_of_numpy_row_order_sums(dtype, shape):
    """sums, m2 and devs equal NumPy's x.sum(axis=0), ((x - mean)**2).sum(axis=0) and (x - mean).sum(axis=0) to the
    bit (row order, no FMA): the GPU twin's fallback computes those, so host and device blocks agree."""
    x = (1e4 + np.random.default_rng(shape[0]).normal(size=shape)).astype(dtype)
    got = kernels.column_moments(x, deviations=True)
    want = _numpy(x)
    for g, w in zip(got, want):
        assert g.dtype == np.float64 and g.shape == (shape[1],)
        assert np.array_equal(g, w)
    sums, m2 = kernels.column_moments(x)
    assert np.array_equal(sums, want[0]) and np.array_equal(m2, want[1])


def test_devs_correct_the_rounded_mean():
    """At an offset of 1e16 the plain mean is off by units; sums/m + devs/m and m2 - devs**2/m give the exact mean and
    squared deviations (within a unit of the result)."""
    from fractions import Fraction

    x = (1e16 + np.random.default_rng(3).normal(size=(500, 1)) * 150.0)
    sums, m2, devs = kernels.column_moments(x, deviations=True)
    exact = [Fraction(v) for v in x[:, 0].tolist()]
    mean = sum(exact) / len(exact)
    exact_m2 = float(sum((v - mean) ** 2 for v in exact))
    assert (m2[0] - devs[0] ** 2 / 500) == pytest.approx(exact_m2, rel=1e-12)


def test_non_finite_and_strided_input():
    """A NaN or an infinity gives what NumPy's formula gives; a strided view is read as it is."""
    x = np.random.default_rng(0).normal(size=(20, 4))
    x[3, 1], x[5, 2] = np.nan, np.inf
    got, want = kernels.column_moments(x, deviations=True), _numpy(x)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)  # NaN where NumPy has NaN
    view = np.random.default_rng(1).normal(size=(30, 8))[::2, ::3]
    for g, w in zip(kernels.column_moments(view, deviations=True), _numpy(np.ascontiguousarray(view))):
        assert np.array_equal(g, w)


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        kernels.column_moments(np.ones(3))
    with pytest.raises(TypeError, match="x"):
        kernels.column_moments(np.ones((3, 2), dtype=np.int64))
