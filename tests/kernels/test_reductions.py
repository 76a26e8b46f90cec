"""hpc.kernels reductions against NumPy: sum, min/max/argmin/argmax, mean/var."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from hpc import kernels as k

from .conftest import tol

PAR = [False, True]


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sum_matches_numpy(rng, dtype, parallel):
    """sum of random data equals NumPy's within the dtype's tolerance, serial and parallel, and keeps the dtype."""
    x = rng.standard_normal(200_003).astype(dtype)
    got = k.sum(x, parallel=parallel)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, np.sum(x.astype(np.float64)), rtol=tol(dtype)["rtol"], atol=1e-9 * x.size)


@pytest.mark.parametrize("parallel", PAR)
def test_sum_accurate_is_compensated(parallel):
    """sum(accurate=True) recovers what cancellation destroys in a plain sum, like math.fsum."""
    x = np.tile(np.array([1e16, 1.0, -1e16, 3.0]), 50_000)
    assert float(k.sum(x, accurate=True, parallel=parallel)) == math.fsum(x) == 200_000.0


@pytest.mark.parametrize("parallel", PAR)
def test_sum_accurate_within_a_rounding_of_fsum_at_every_length(rng, parallel):
    """Lengths around the lane count and the parallel chunk, wide dynamic range, float32 and strided views: the
    compensated sum lands within two units in the last place of math.fsum's correctly rounded one."""
    lanes, chunk = k.reductions.LANES, k.reductions.CHUNK
    for n in (1, lanes - 1, lanes, lanes + 1, 3 * lanes + 5, chunk - 1, chunk + lanes + 3, 2 * chunk + 7):
        x = rng.standard_normal(n) * 10.0 ** rng.integers(-12, 12, n)
        for v in (x, x.astype(np.float32), x[::3]):
            exact = math.fsum(v.astype(np.float64))
            got = float(k.sum(v, accurate=True, parallel=parallel))
            if v.dtype == np.float32:
                assert got == float(np.float32(exact)) or abs(got - exact) <= 2 * np.spacing(np.float32(abs(exact)))
            else:
                assert abs(got - exact) <= 2 * np.spacing(abs(exact)), (n, got, exact)


def test_sum_accurate_keeps_each_chunks_compensation():
    """What one chunk's compensation holds survives the merge of the chunks, and serial and parallel runs give the
    same bits (the parallel variant used to add each chunk's compensation to its sum before merging: 0.0 here)."""
    chunk = k.reductions.CHUNK
    x = np.zeros(2 * chunk)
    x[0], x[1], x[chunk] = 1e16, 1.0, -1e16
    assert float(k.sum(x, accurate=True, parallel=True)) == float(k.sum(x, accurate=True, parallel=False)) == 1.0
    rng = np.random.default_rng(11)
    y = rng.standard_normal(3 * chunk + 7) * 10.0 ** rng.integers(-12, 12, 3 * chunk + 7)
    assert k.sum(y, accurate=True, parallel=True).tobytes() == k.sum(y, accurate=True, parallel=False).tobytes()


@pytest.mark.parametrize("parallel", PAR)
def test_sum_accurate_of_finite_data_whose_partial_sums_overflow(parallel):
    """Finite data whose running sum overflows get their finite true sum (NumPy: inf or NaN), whatever the order and
    length; a true sum beyond the range is still inf."""
    chunk = k.reductions.CHUNK
    cases = [
        (np.array([1e308, 1e308, -1e308]), 1e308),
        (np.array([1e308] * 128 + [-1e308] * 128), 0.0),
        (np.concatenate([np.full(chunk + 5, 1e308), np.full(chunk + 5, -1e308), [2.5]]), 2.5),
        (np.array([1e308, 1e308]), np.inf),
        (np.array([3e38, 3e38, -3e38], np.float32), np.float32(3e38)),
        # the compensated sum overflows in its merge while the plain sum's order stays finite, and wrong (it
        # returned -9999999999999988.0 here)
        (np.array([1e308, 1e308, -1e308, -1e308, 1e16] + [1.0] * 1000 + [-1e16]), 1000.0),
    ]
    for x, want in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            got = k.sum(x, accurate=True, parallel=parallel)
        assert got == want and got.dtype == x.dtype, (x[:3], got, want)


def test_sum_edge_cases():
    """sum of empty is 0, of one element that element; NaN and inf propagate as in NumPy."""
    assert k.sum(np.empty(0)) == 0.0
    assert k.sum(np.array([2.5])) == 2.5
    assert math.isnan(k.sum(np.array([1.0, np.nan, 2.0])))
    assert k.sum(np.array([1.0, np.inf])) == np.inf
    assert math.isnan(k.sum(np.array([np.inf, -np.inf])))
    assert k.sum(np.array([1.0, np.nan]), accurate=True) != k.sum(np.array([1.0, 2.0]), accurate=True)


def test_sum_strided_and_nd(rng):
    """A strided 1-D view and a C-contiguous 2-D array are summed over every element they hold."""
    x = rng.standard_normal(10_001)
    np.testing.assert_allclose(k.sum(x[::3]), np.sum(x[::3]), rtol=1e-12)
    np.testing.assert_allclose(k.sum(x[1:].reshape(100, 100)), np.sum(x[1:]), rtol=1e-12)


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("name", ["min", "max", "argmin", "argmax"])
def test_extremes_match_numpy(rng, name, parallel):
    """min/max/argmin/argmax equal NumPy's on random data, a strided view, and with ties (first index wins)."""
    x = rng.standard_normal(150_001)
    x[[7, 90_000]] = x.min() - 1.0
    x[[11, 140_000]] = x.max() + 1.0
    ours, ref = getattr(k, name), getattr(np, name)
    assert ours(x, parallel=parallel) == ref(x)
    assert ours(x[::-3], parallel=parallel) == ref(x[::-3])


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("name", ["min", "max", "argmin", "argmax"])
def test_extremes_nan_semantics(rng, name, parallel):
    """A NaN makes min/max NaN and argmin/argmax the index of the first NaN, wherever it is (NumPy semantics)."""
    ours, ref = getattr(k, name), getattr(np, name)
    for where in ([0], [5], [149_999], [70_000, 100_000], [149_998, 3]):
        x = rng.standard_normal(150_000)
        x[where] = np.nan
        got, want = ours(x, parallel=parallel), ref(x)
        if name.startswith("arg"):
            assert got == want, where
        else:
            assert math.isnan(got), where


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extremes_inf_float32_and_single(dtype):
    """Infinities compare as numbers, float32 keeps its dtype, and one element is its own min and argmin."""
    x = np.array([1.0, -np.inf, np.inf, 0.0], dtype)
    assert k.min(x) == -np.inf and k.max(x) == np.inf
    assert k.argmin(x) == 1 and k.argmax(x) == 2
    assert k.min(x).dtype == dtype
    assert k.min(np.array([4.0], dtype)) == 4.0 and k.argmax(np.array([4.0], dtype)) == 0


@pytest.mark.parametrize("name", ["min", "max", "argmin", "argmax"])
def test_extremes_of_empty_raise(name):
    """An empty array has no extreme: ValueError naming x, as NumPy."""
    with pytest.raises(ValueError, match="x must be non-empty"):
        getattr(k, name)(np.empty(0))


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_var_match_numpy(rng, dtype, parallel):
    """mean and var (ddof 0 and 1) of shifted random data equal NumPy's float64 results."""
    x = (1e4 + rng.standard_normal(200_001)).astype(dtype)
    ref = x.astype(np.float64)
    mu, v = k.mean_var(x, parallel=parallel)
    assert mu.dtype == dtype
    np.testing.assert_allclose(mu, ref.mean(), **tol(dtype))
    np.testing.assert_allclose(v, ref.var(), rtol=1e-3 if dtype == np.float32 else 1e-9)
    vtol = 1e-3 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(k.var(x, ddof=1, parallel=parallel), ref.var(ddof=1), rtol=vtol)
    np.testing.assert_allclose(k.mean(x[::2]), ref[::2].mean(), **tol(dtype))


def test_mean_var_edges():
    """Empty gives NaN, one element gives var 0 (NaN with ddof=1), NaN propagates, a bad ddof is refused."""
    assert all(math.isnan(v) for v in k.mean_var(np.empty(0)))
    assert k.mean_var(np.array([3.0])) == (3.0, 0.0)
    assert math.isnan(k.var(np.array([3.0]), ddof=1))
    assert math.isnan(k.var(np.array([1.0, np.nan, 3.0])))
    with pytest.raises(ValueError, match="ddof must be a non-negative int; got -1"):
        k.var(np.ones(3), ddof=-1)


def test_errors_name_dtype_and_layout():
    """Integer input, lists and non-contiguous N-D arrays are refused with the argument's name."""
    with pytest.raises(TypeError, match="x must be a float32 or float64 array; got dtype int64"):
        k.sum(np.arange(3))
    with pytest.raises(TypeError, match="x must be a numpy.ndarray"):
        k.min([1.0, 2.0])
    with pytest.raises(ValueError, match="x must be 1-D .* or C-contiguous"):
        k.sum(np.ones((4, 4))[:, ::2])
    with pytest.raises(TypeError, match="parallel must be True, False or None; got 'yes'"):
        k.sum(np.ones(3), parallel="yes")
    for call in (lambda p: k.gemm(np.ones((2, 2)), np.ones((2, 2)), parallel=p),
                 lambda p: k.gemv(np.ones((2, 2)), np.ones(2), parallel=p)):  # accepted silently before
        for wrong in (0, "x", np.False_):
            with pytest.raises(TypeError, match="parallel must be True, False or None"):
                call(wrong)


ARG_BLOCK = k.reductions.ARG_BLOCK
CHUNK = k.reductions.CHUNK


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "where",
    [0, 1, ARG_BLOCK - 1, ARG_BLOCK, ARG_BLOCK + 1, 5 * ARG_BLOCK + 7, CHUNK - 1, CHUNK, CHUNK + ARG_BLOCK, -1],
)
def test_argmin_finds_the_extreme_in_any_block(rng, dtype, parallel, where):
    """The extreme is found at block and chunk edges, in the first and the last block, float32 and float64."""
    x = rng.standard_normal(2 * CHUNK + 3 * ARG_BLOCK + 5).astype(dtype)
    x[where] = -10.0
    y = -x
    assert k.argmin(x, parallel=parallel) == np.argmin(x)
    assert k.argmax(y, parallel=parallel) == np.argmax(y)
    assert k.min(x, parallel=parallel) == np.min(x) == dtype(-10.0)
    assert k.max(y, parallel=parallel) == np.max(y) == dtype(10.0)


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("name", ["argmin", "argmax"])
def test_argmin_ties_across_blocks_and_chunks_take_the_first(rng, name, parallel):
    """Equal extremes in later blocks or chunks (or later in the same block) never replace the first one."""
    x = rng.standard_normal(2 * CHUNK + 11)
    value = -10.0 if name == "argmin" else 10.0
    for first in (ARG_BLOCK - 1, ARG_BLOCK + 3, CHUNK - 1):
        y = x.copy()
        y[[first, first + 1, first + ARG_BLOCK, CHUNK + 5, 2 * CHUNK + 10]] = value
        assert getattr(k, name)(y, parallel=parallel) == getattr(np, name)(y) == first


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("name", ["argmin", "argmax"])
def test_argmin_nan_anywhere_gives_the_first_nan(rng, name, parallel):
    """A NaN before, after or in the block of the extreme, or past a new record, gives the index of the first NaN."""
    n = 2 * CHUNK + 3 * ARG_BLOCK
    cases = [
        ([ARG_BLOCK + 100], [ARG_BLOCK + 50]),  # the extreme earlier in the NaN's block
        ([ARG_BLOCK + 100], [ARG_BLOCK + 150]),  # the extreme later in the NaN's block
        ([5 * ARG_BLOCK + 1], [2]),  # a record first, the NaN blocks later
        ([3, CHUNK + 1], [n - 1]),  # two NaNs: the first wins
        ([n - 1], [0]),  # the NaN last
    ]
    for nans, extremes in cases:
        x = rng.standard_normal(n)
        x[extremes] = -10.0 if name == "argmin" else 10.0
        x[nans] = np.nan
        assert getattr(k, name)(x, parallel=parallel) == getattr(np, name)(x) == nans[0], (nans, extremes)
        assert math.isnan(getattr(k, name[3:])(x, parallel=parallel))


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extremes_on_monotone_strided_and_special_data(dtype, parallel):
    """Falling data (a new record in every block), strided views, signed zeros, infinities and all-NaN input."""
    down = np.arange(3 * CHUNK + 17, 0, -1).astype(dtype)
    assert k.argmin(down, parallel=parallel) == np.argmin(down) == down.size - 1
    assert k.argmax(down, parallel=parallel) == 0
    assert k.argmax(down[::-1], parallel=parallel) == down.size - 1
    assert k.argmin(down[::3], parallel=parallel) == np.argmin(down[::3])
    assert k.argmax(down[1::7], parallel=parallel) == np.argmax(down[1::7])
    assert k.min(down[::-5], parallel=parallel) == np.min(down[::-5])
    zeros = np.zeros(ARG_BLOCK * 3, dtype)
    zeros[ARG_BLOCK + 1] = -0.0
    assert k.argmin(zeros, parallel=parallel) == np.argmin(zeros) == 0
    assert k.argmax(zeros, parallel=parallel) == np.argmax(zeros) == 0
    assert k.min(zeros, parallel=parallel) == 0.0
    inf = np.full(ARG_BLOCK + 3, np.inf, dtype)
    assert k.argmin(inf, parallel=parallel) == 0 and k.min(inf, parallel=parallel) == np.inf
    inf[ARG_BLOCK + 2] = -np.inf
    assert k.argmin(inf, parallel=parallel) == ARG_BLOCK + 2 and k.max(inf, parallel=parallel) == np.inf
    nan = np.full(ARG_BLOCK + 3, np.nan, dtype)
    assert k.argmin(nan, parallel=parallel) == k.argmax(nan, parallel=parallel) == 0
    assert math.isnan(k.max(nan, parallel=parallel))


NONFINITE = {
    "inf": [1.0, np.inf, 2.0],
    "-inf": [1.0, -np.inf, 2.0],
    "inf and -inf": [np.inf, 3.0, -np.inf],
    "nan": [1.0, np.nan, 2.0],
    "overflow": [1e308, 1e308, -1.0],
}


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("case", list(NONFINITE))
def test_every_reduction_gives_numpys_answer_on_nonfinite_input(case, parallel):
    """sum (plain and accurate), mean, var, mean_var, min, max, argmin, argmax give NumPy's answer on inf/NaN input
    (and on a sum that overflows); the accurate sum no longer turns an infinity into NaN."""
    x = np.array(NONFINITE[case] * 50000)  # large enough for the parallel variants' chunks
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = {
            "sum": np.sum(x), "accurate": np.sum(x), "mean": np.mean(x), "var": np.var(x),
            "min": np.min(x), "max": np.max(x), "argmin": np.argmin(x), "argmax": np.argmax(x),
        }  # fmt: skip
        got = {
            "sum": k.sum(x, parallel=parallel), "accurate": k.sum(x, accurate=True, parallel=parallel),
            "mean": k.mean(x, parallel=parallel), "var": k.var(x, parallel=parallel),
            "min": k.min(x, parallel=parallel), "max": k.max(x, parallel=parallel),
            "argmin": k.argmin(x, parallel=parallel), "argmax": k.argmax(x, parallel=parallel),
        }  # fmt: skip
        mean, var = k.mean_var(x, parallel=parallel)
    np.testing.assert_equal(got, expected)
    np.testing.assert_equal((mean, var), (expected["mean"], expected["var"]))


def test_var_with_ddof_at_least_n_is_numpys():
    """ddof >= n warns and gives inf (NaN for equal elements), as numpy.var does."""
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        assert k.var(np.array([1.0, 2.0]), ddof=2) == np.inf
    with pytest.warns(RuntimeWarning, match="Degrees of freedom"):
        assert np.isnan(k.var(np.array([3.0, 3.0]), ddof=5))


def test_var_takes_a_numpy_integer_ddof_as_numpy_does():
    x = np.arange(5.0)
    assert k.var(x, ddof=np.int64(1)) == np.var(x, ddof=np.int64(1))


# Data with a large mean and a small spread, drawn in this order from default_rng(0) (the probe of the bug): NumPy's
# two-pass relative errors are 2e-9, 6e-7, 2e-6, 1e-6; the blocked one-pass var's were 2e-7, 3e-4, 8e-5, 1e-4, each
# block's mean rounded to a unit of the mean's magnitude and carried into Chan's merge term at first order.
LARGE_MEAN = [(1e9, 1e-3), (1e12, 1e-2), (1e6, 1e-8), (1e8, 1e-6)]


def _large_mean_data(case):
    rng = np.random.default_rng(0)
    for off, scale in LARGE_MEAN[: case + 1]:
        x = off + rng.standard_normal(1_000_000) * scale
    return off, x


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("case", range(len(LARGE_MEAN)), ids=[f"{o:g}+{s:g}z" for o, s in LARGE_MEAN])
def test_var_of_a_large_mean_and_small_spread_is_as_accurate_as_two_pass(case, parallel):
    """float64 var (ddof 0 and 1) of off + scale * normal is within 4x NumPy's two-pass error of the exact-shift
    reference, or within 1e-12 (a few hundred roundings of the blocked sums of squares) where NumPy's is smaller;
    the mean is within a unit in the last place of the offset."""
    off, x = _large_mean_data(case)
    shifted = x - off  # exact (Sterbenz): the reference is a two-pass variance of numbers of the spread's size
    for ddof in (0, 1):
        ref = np.var(shifted, ddof=ddof)
        numpy_err = abs(np.var(x, ddof=ddof) - ref) / ref
        got = k.var(x, ddof=ddof, parallel=parallel)
        assert abs(got - ref) / ref <= max(4 * numpy_err, 1e-12), (ddof, abs(got - ref) / ref, numpy_err)
    mu, v = k.mean_var(x, parallel=parallel)
    assert v == k.var(x, parallel=parallel)
    assert abs(mu - (off + np.mean(shifted))) <= np.spacing(off)


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("off,scale", [(1e4, 0.1), (1e5, 0.1), (1e6, 10.0), (3e7, 300.0)])
def test_var_of_a_large_mean_and_small_spread_float32(off, scale, parallel):
    """float32 data of a large mean and a small spread: the variance, accumulated in float64, is within one float32
    rounding (2**-23 relative, with room) of the float64 two-pass variance of the exactly shifted data, and within
    4x NumPy's own (float32) two-pass error."""
    rng = np.random.default_rng(1)
    x = (off + rng.standard_normal(300_001) * scale).astype(np.float32)
    x64 = x.astype(np.float64)
    ref = np.var(x64 - x64[0])  # float32 differences are exact in float64
    got = k.var(x, parallel=parallel)
    assert got.dtype == np.float32
    err = abs(float(got) - ref) / ref
    assert err <= 2.0**-23, err
    assert err <= 4 * abs(float(np.var(x)) - ref) / ref or err <= 2.0**-24


@pytest.mark.parametrize("parallel", PAR)
def test_mean_var_pilot_edges(parallel):
    """The variance is taken of x - x[0]: a NaN or an infinity first, or a first element whose difference to the
    others overflows, still gives NumPy's answer; finite data whose plain sum overflows but whose spread does not
    get the true mean and variance (NumPy: inf, inf)."""
    n = 3 * CHUNK + 5  # several chunks for the parallel variant
    rest = np.linspace(1.0, 2.0, n - 1)
    cases = [
        np.concatenate([[np.nan], rest]),
        np.concatenate([[np.inf], rest]),
        np.concatenate([[-np.inf], rest, [np.inf]]),
        np.concatenate([[-1.5e308], np.full(n - 1, 1.5e308)]),  # x - x[0] overflows
    ]
    for x in cases:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            want = (np.mean(x), np.var(x))
            got = k.mean_var(x, parallel=parallel)
        np.testing.assert_equal(got, want)
    huge = np.full(n, 1.7e308)
    assert k.mean_var(huge, parallel=parallel) == (1.7e308, 0.0)
    outlier = np.concatenate([[1e15], rest])  # a pilot far from the rest: the variance is the outlier's
    np.testing.assert_allclose(k.var(outlier, parallel=parallel), np.var(outlier), rtol=1e-12)
