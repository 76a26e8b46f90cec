"""Distributed statistics against NumPy on the gathered data."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hpc import mpi

from .conftest import gathered

pytestmark = pytest.mark.mpi


def test_moments_stable_for_large_offsets(comm):
    """moments matches numpy's mean/var on data with mean 1e9 and small noise, with uneven parts per rank."""
    rng = np.random.default_rng(comm.rank)
    x = 1e9 + rng.standard_normal((50 + 17 * comm.rank, 3)) * 1e-3
    count, mean, var = mpi.moments(comm, x)
    whole = np.concatenate(gathered(comm, x))
    assert (count == len(whole)).all()
    exact_mean, exact_var = _exact_moments(whole)
    np.testing.assert_allclose(mean, exact_mean, rtol=1e-15)
    np.testing.assert_allclose(var, exact_var, rtol=1e-12)  # numpy's own var is off by ~1e-8 here
    assert np.all(np.abs(var - exact_var) <= np.abs(whole.var(axis=0) - exact_var))
    _, _, sample = mpi.moments(comm, x[:, 0], ddof=1)
    np.testing.assert_allclose(sample, exact_var[0] * len(whole) / (len(whole) - 1), rtol=1e-12)


def test_moments_of_many_blocks_keep_their_accuracy_and_a_few_blocks_of_memory(comm):
    """A rank's part is taken in blocks of rows (each cast to float64, shifted and squared while in cache, merged
    by Chan's formula): the answers of the whole-part passes, on parts of several blocks with a large offset, and a
    float32 part of 16 MiB takes a few MiB beside it, not six float64 copies (96 MiB)."""
    import tracemalloc

    rng = np.random.default_rng(7 + comm.rank)
    x = 1e6 + rng.standard_normal((100_003 + 1000 * comm.rank, 3)) * 1e-2  # 43690 rows a block: 3 blocks
    count, mean, var = mpi.moments(comm, x)
    whole = np.concatenate(gathered(comm, x))
    shifted = whole - whole[0]
    np.testing.assert_allclose(mean, whole[0] + shifted.mean(axis=0), rtol=1e-15)
    np.testing.assert_allclose(var, shifted.var(axis=0), rtol=1e-9)
    part = rng.standard_normal(1 << 22).astype(np.float32)
    tracemalloc.start()
    try:
        _, mean32, var32 = mpi.moments(comm, part)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < part.nbytes // 2, peak
    everything = np.concatenate(gathered(comm, part)).astype(np.float64)
    assert mean32.dtype == np.float32 and var32.dtype == np.float32
    np.testing.assert_allclose([mean32, var32], [everything.mean(), everything.var()], rtol=1e-5, atol=1e-6)


def _exact_moments(whole):
    means, variances = [], []
    for column in whole.T:
        values = [Fraction(float(v)) for v in column]
        mean = sum(values) / len(values)
        means.append(float(mean))
        variances.append(float(sum((v - mean) ** 2 for v in values) / len(values)))
    return np.array(means), np.array(variances)


def test_moments_with_an_empty_rank(comm):
    """A rank with no data contributes nothing and breaks nothing."""
    x = np.arange(5.0) if comm.rank == 0 else np.empty(0)
    count, mean, var = mpi.moments(comm, x)
    assert count == 5 and mean == 2.0 and var == 2.0


@pytest.mark.parametrize("column", [
    [1e308, -1e308],                      # NumPy: mean 0, var inf; shifted by its first value: -inf and NaN
    [1e308, 1e308, -1e308, 1e307],        # the true mean 2.75e307 (NumPy's sum overflows: inf)
    [3.0, 1e300, -5e299, 7.0],
])
def test_moments_of_finite_data_near_the_float64_limit(comm, column):
    """Finite data whose differences overflow: the exact mean (to rounding) and the variance, +inf where the
    true one is beyond float64, on every rank and for every split of the rows (it gave -inf or NaN by split)."""
    whole = np.array(column)
    exact = [Fraction(v) for v in column]
    exact_mean = sum(exact) / len(exact)
    exact_var = sum((v - exact_mean) ** 2 for v in exact) / len(exact)
    for split in range(len(whole) + 1):
        part = whole if comm.size == 1 else (whole[:split] if comm.rank == 0 else whole[split:] if comm.rank == 1
                                             else whole[:0])
        count, mean, var = mpi.moments(comm, part)
        assert count == len(whole)
        assert mean == pytest.approx(float(exact_mean), rel=1e-15, abs=1e-15 * max(map(abs, column)))
        assert var == (np.inf if exact_var > Fraction(np.finfo(np.float64).max) else pytest.approx(float(exact_var)))
    with np.errstate(over="ignore"):
        big = np.full((1000, 2), 1e152) * np.where(np.arange(1000) % 2, 1.0, -1.0)[:, None]
    _, _, var = mpi.moments(comm, big if comm.rank == 0 else big[:0])
    np.testing.assert_allclose(var, 1e304, rtol=1e-12)  # the squares' sum overflows; the variance does not


def test_histogram_dot_norm(comm):
    """histogram, dot and norm equal numpy on the whole distributed array."""
    rng = np.random.default_rng(10 + comm.rank)
    x = rng.standard_normal(100 + comm.rank)
    y = rng.standard_normal(100 + comm.rank)
    whole_x = np.concatenate(gathered(comm, x))
    whole_y = np.concatenate(gathered(comm, y))
    counts, edges = mpi.histogram(comm, x, bins=7)
    want_counts, want_edges = np.histogram(whole_x, bins=7)
    np.testing.assert_array_equal(counts, want_counts)
    np.testing.assert_allclose(edges, want_edges)
    assert mpi.dot(comm, x, y) == pytest.approx(float(whole_x @ whole_y), rel=1e-12)
    assert mpi.dot(comm, x, y, reproducible=True) == pytest.approx(float(whole_x @ whole_y), rel=1e-12)
    assert mpi.norm(comm, x) == pytest.approx(float(np.linalg.norm(whole_x)), rel=1e-12)
    assert mpi.norm(comm, np.array([3e300, 4e300]) / np.sqrt(comm.size)) == pytest.approx(5e300, rel=1e-12)


def test_norm_of_complex_and_non_finite_data_matches_numpy_on_every_rank(comm):
    """norm takes the modulus of complex entries; a NaN anywhere gives NaN on every rank, whatever the rank order."""
    z = np.array([3j, 4.0 + 0j]) * (comm.rank + 1)
    assert mpi.norm(comm, z) == pytest.approx(float(np.linalg.norm(np.concatenate(gathered(comm, z)))), rel=1e-12)
    # inf on rank 0, NaN on the last rank (and the reverse): numpy's norm of the whole is NaN
    for nan_rank in (0, comm.size - 1):
        x = np.array([np.nan]) if comm.rank == nan_rank else np.array([np.inf, 1.0])
        got = comm.mpi.allgather(mpi.norm(comm, x))
        assert all(np.isnan(g) for g in got), got


def test_histogram_without_range_refuses_non_finite_data_on_every_rank(comm):
    """Like numpy.histogram, an autodetected range with inf or NaN raises ValueError, on every rank, for any split."""
    for bad in (-np.inf, np.inf, np.nan):
        x = np.array([1.0, bad]) if comm.rank == comm.size - 1 else np.array([2.0, 3.0])
        with pytest.raises(ValueError, match="not finite"):
            np.histogram(np.concatenate(gathered(comm, x)))
        with pytest.raises(ValueError, match="not finite"):
            mpi.histogram(comm, x, bins=2)
    counts, edges = mpi.histogram(comm, np.empty(0), bins=2)  # no data anywhere: numpy's (0, 1)
    assert counts.tolist() == [0, 0] and edges.tolist() == [0.0, 0.5, 1.0]


def _part(comm, x):
    return np.array_split(np.asarray(x), comm.size)[comm.rank]


def test_statistics_give_numpys_answers_on_edge_data(comm):
    """Found by a probe, each against NumPy on the whole data, for any split: a mean with an inf (Chan's merge met
    inf - inf and gave NaN), a variance with ddof at least the count (it went negative), the norm of the most negative
    integer (abs wrapped), a boolean dot (a count of the ranks), a reproducible uint64 sum (wrapped in int64),
    histogram edges with NaN data (an autodetected range was still checked)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for data in ([1.0, np.inf, 2.0, 3.0], [np.inf, 1.0], [np.inf, -np.inf, 1.0], [1e9 + 1, 1e9 + 2, 1e9 + 3]):
            _, mean, var = mpi.moments(comm, _part(comm, data))
            np.testing.assert_equal((float(mean), float(var)), (np.mean(data), np.var(data)))
        for data, ddof in (([1.0, 2.0, 3.0], 5), ([], 1)):
            _, _, var = mpi.moments(comm, _part(comm, np.array(data)), ddof=ddof)
            np.testing.assert_equal(float(var), np.var(np.array(data), ddof=ddof))
    assert mpi.norm(comm, _part(comm, np.array([-128, 3], np.int8))) == np.linalg.norm([-128.0, 3.0])
    flags = np.ones(2 * comm.size, bool)
    for reproducible in (False, True):
        assert mpi.dot(comm, flags[:2], flags[:2], reproducible=reproducible) == np.dot(flags, flags)
    big = np.array([2**63], np.uint64) if comm.rank == 0 else np.zeros(0, np.uint64)
    total = mpi.sum(comm, big, reproducible=True)
    assert total.dtype == np.uint64 and int(total) == 2**63
    values = np.array([0.5, 1.5, np.nan])
    edges = np.array([0.0, 1.0, 2.0])
    assert mpi.histogram(comm, _part(comm, values), bins=edges)[0].tolist() == np.histogram(values, edges)[0].tolist()
    with pytest.raises(ValueError, match="bins must be an int or a sequence of edges"):
        mpi.histogram(comm, _part(comm, np.arange(10.0)), bins="auto")


def test_bcast_sends_numpy_strings_and_datetimes_pickled(comm):
    sent = (np.str_("abc"), np.datetime64("2020-01-01")) if comm.rank == 0 else (None, None)
    assert [comm.bcast(x) for x in sent] == [np.str_("abc"), np.datetime64("2020-01-01")]


def test_moments_of_complex_data_are_numpys(comm):
    """A complex mean and the variance of the real part plus the imaginary part's, as NumPy (the imaginary part was
    dropped with a ComplexWarning)."""
    data = np.array([1 + 2j, 3 - 1j, -2 + 0.5j, 4 + 4j])
    n, mean, var = mpi.moments(comm, _part(comm, data))
    assert n == 4 and mean == np.mean(data)
    np.testing.assert_allclose(var, np.var(data), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int32, np.complex64])
def test_moments_come_back_in_numpys_dtype(comm, dtype):
    """The mean and variance have the dtype of numpy's mean and var on the gathered array (float32 data gave
    float64), and their values are the float64 computation's, rounded to that dtype."""
    data = (np.arange(12, dtype=np.float64).reshape(6, 2) * 1.1).astype(dtype)
    if np.dtype(dtype).kind == "c":
        data = data + 1j * data[::-1]
    n, mean, var = mpi.moments(comm, _part(comm, data))
    assert n.tolist() == [6, 6]
    assert mean.dtype == np.mean(data, axis=0).dtype and var.dtype == np.var(data, axis=0).dtype
    wide = data.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64)
    rtol = 8 * np.finfo(var.dtype).eps
    np.testing.assert_allclose(mean, np.mean(wide, axis=0).astype(mean.dtype), rtol=rtol)
    np.testing.assert_allclose(var, np.var(wide, axis=0).astype(var.dtype), rtol=rtol)


def test_moments_agree_on_the_gathered_dtype_when_parts_differ(comm):
    """An empty real part on one rank beside complex rows elsewhere: the complex moments of the gathered data on
    every rank (that rank had returned real moments and left the others waiting in a second collective), and an
    empty float64 part beside float32 rows gives float64 everywhere, as numpy.concatenate would."""
    rows = np.array([[1 + 1j, 2 + 3j], [5 + 0j, 8 + 1j]]) + comm.rank
    local = np.empty((0, 2)) if comm.rank == 0 and comm.size > 1 else rows
    count, mean, var = mpi.moments(comm, local)
    whole = np.concatenate(gathered(comm, local))
    np.testing.assert_allclose(mean, whole.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(var, whole.var(axis=0), rtol=1e-14)
    assert mean.dtype == whole.mean(axis=0).dtype and var.dtype == whole.var(axis=0).dtype
    assert (count == len(whole)).all()
    local = np.empty(0) if comm.rank == 0 and comm.size > 1 else np.array([1.5, 2.5], np.float32)
    _, mean, var = mpi.moments(comm, local)
    whole = np.concatenate(gathered(comm, local))
    assert mean.dtype == whole.dtype and var.dtype == whole.dtype
    assert comm.allreduce(1.0) == float(comm.size)  # no rank left behind in a collective


def test_histogram_of_float32_data_makes_numpys_float32_edges(comm):
    """NumPy bins float32 data on float32 edges; the float64 edges hpc used put a value in the neighbouring bin."""
    local = np.float32([51 / 7, 30 / 7, 8, 0, 100 / 7]) + np.float32(comm.rank)
    counts, edges = mpi.histogram(comm, local, bins=10)
    want_counts, want_edges = np.histogram(np.concatenate(gathered(comm, local)), bins=10)
    np.testing.assert_array_equal(counts, want_counts)
    assert edges.dtype == want_edges.dtype == np.float32
    np.testing.assert_array_equal(edges, want_edges)


def test_sum_of_a_scalar_is_one_row_reproducible_or_not(comm):
    """mpi.sum of a scalar: the sum over ranks, also with reproducible=True (which raised IndexError)."""
    assert float(mpi.sum(comm, 3.0)) == float(mpi.sum(comm, 3.0, reproducible=True)) == 3.0 * comm.size


def test_reproducible_dot_of_integers_is_numpys(comm):
    """Reproducible integer dots had widened to int64/uint64 (264 where numpy.dot of uint8 wraps to 8): integer
    sums are exact in any order, and take the plain route with NumPy's dtype."""
    a = np.array([16, 16, 1], np.uint8) if comm.rank == 0 else np.zeros(3, np.uint8)
    b = np.array([8, 8, 8], np.uint8) if comm.rank == 0 else np.zeros(3, np.uint8)
    whole = np.dot(np.array([16, 16, 1], np.uint8), np.array([8, 8, 8], np.uint8))  # 264 wraps to 8
    for reproducible in (False, True):
        got = mpi.dot(comm, a, b, reproducible=reproducible)
        assert got.dtype == np.uint8 and got == whole == 8
    small = np.array([5, 5], np.int8)
    got = mpi.dot(comm, small, np.ones(2, np.int8), reproducible=True)
    assert got.dtype == np.int8 and got == np.dot(np.tile(small, comm.size), np.ones(2 * comm.size, np.int8))


def test_moments_of_long_doubles_come_back_as_long_doubles(comm):
    """float64 or complex128 had come back for longdouble and clongdouble data (NumPy keeps the dtype)."""
    for dtype in (np.longdouble, np.clongdouble):
        _, mean, var = mpi.moments(comm, np.arange(4, dtype=dtype).reshape(2, 2))
        assert mean.dtype == np.dtype(dtype) and var.dtype == np.empty(0, dtype).real.dtype
        assert mean.tolist() == [1.0, 2.0] and var.tolist() == [1.0, 1.0]


def test_histogram_edges_take_the_gathered_dtype_of_integers_beside_floats(comm):
    """Integer data counted as float64 wide: int16 on one rank beside float32 on another gave float64 edges, where
    the gathered array (and NumPy's edges) are float32."""
    parts = [np.array([1, 100], np.int16), np.array([1.1, 50.5], np.float32)]
    mine = parts[comm.rank % 2] if comm.size > 1 else np.concatenate(parts)
    whole = np.concatenate([parts[r % 2] for r in range(comm.size)]) if comm.size > 1 else mine
    counts, edges = mpi.histogram(comm, mine, bins=3)
    want_counts, want_edges = np.histogram(whole, bins=3)
    assert edges.dtype == want_edges.dtype and np.array_equal(edges, want_edges)
    assert counts.tolist() == want_counts.tolist()
