"""hpc.ml._moments: the compiled centring of a block gives NumPy's bits, and the moments it feeds stay exact."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.ml import _moments


def _numpy_centre(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The three NumPy steps the compiled call replaces (and the shift between them)."""
    total = Z.sum(axis=0, dtype=np.float64)
    shift = (total / Z.shape[0]).astype(Z.dtype)
    shifted = Z - shift
    return total, shift, shifted, shifted.sum(axis=0, dtype=np.float64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (4096, 11), (300, 100), (5, 257), (4096, 2), (4096, 1)])
def test_centre_gives_numpys_bits(dtype: type, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    Z = (rng.standard_normal(shape) * 3 + 1e4).astype(dtype)
    got, want = _moments._centre(Z), _numpy_centre(Z)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_column_block_keeps_numpys_pairwise_sums(dtype: type) -> None:
    """A block of one column takes NumPy's own steps (NumPy sums a single column pairwise, not row by row): the
    block's sums, centre and deviations are NumPy's bits (a PCA of one float64 feature kept its bits)."""
    Z = (np.random.default_rng(4).standard_normal((4096, 1)) * 3 + 1e4).astype(dtype)
    _, total, a, s, _ = _moments._block_moments(Z, diagonal=False, centred=True)
    want_total, _, _, want_s = _numpy_centre(Z)
    np.testing.assert_array_equal(total, want_total)
    np.testing.assert_array_equal(s, want_s)
    np.testing.assert_array_equal(a, (want_total / 4096).astype(dtype).astype(np.float64))


def test_centre_passes_nan_and_inf_through_as_numpy_does() -> None:
    Z = np.arange(12.0).reshape(4, 3)
    Z[1, 0], Z[2, 1], Z[0, 2], Z[3, 2] = np.nan, np.inf, np.inf, -np.inf
    with np.errstate(invalid="ignore"):
        want = _numpy_centre(Z)
    for g, w in zip(_moments._centre(Z), want):
        np.testing.assert_array_equal(g, w)  # NaN where NumPy has NaN, inf where it has inf


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_moments_about_the_mean(dtype: type) -> None:
    """A block's products are its rows' products about its rounded mean, as a float64 reference gives them."""
    rng = np.random.default_rng(3)
    Z = (rng.standard_normal((500, 6)) + 1e3).astype(dtype)
    n, total, a, s, products = _moments._block_moments(Z, diagonal=False, centred=True)
    assert n == 500
    np.testing.assert_array_equal(total, Z.sum(axis=0, dtype=np.float64))
    shifted = Z.astype(np.float64) - a
    assert np.abs(s - shifted.sum(axis=0)).max() < 1e-9 * 500
    want = shifted.T @ shifted
    scale = np.finfo(dtype).eps * 100 * want.diagonal().max()  # float32 blocks accumulate their products in float32
    np.testing.assert_allclose(products, want, rtol=0, atol=scale)
