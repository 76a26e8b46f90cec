"""hpc.kernels BLAS-1 against NumPy: axpy, scal, dot, nrm2, asum."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpc import kernels as k

from .conftest import tol

PAR = [False, True]


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_axpy_in_place_and_out(rng, dtype, parallel):
    """axpy updates y in place by default and writes to out= when given, leaving y alone."""
    x = rng.standard_normal(150_001).astype(dtype)
    y = rng.standard_normal(150_001).astype(dtype)
    want = (np.float64(2.5) * x + y).astype(dtype)
    out = np.empty_like(y)
    y0 = y.copy()
    assert k.axpy(2.5, x, y, out=out, parallel=parallel) is out
    np.testing.assert_allclose(out, want, **tol(dtype))
    np.testing.assert_array_equal(y, y0)
    assert k.axpy(2.5, x, y, parallel=parallel) is y
    np.testing.assert_allclose(y, want, **tol(dtype))


@pytest.mark.parametrize("parallel", PAR)
def test_in_place_calls_take_the_two_array_kernels(rng, monkeypatch, parallel):
    """axpy into y and scal into x (by default, or with out= the same array or view) run the in-place kernels, which
    vectorize (the three-array ones saw out overlap an input and ran scalar, 2.5-4x slower), with the same values."""
    from hpc.kernels import blas1

    x = rng.standard_normal(4001)
    base = rng.standard_normal(8002)
    ys = [base[:4001].copy(), base[::2]]
    apart = []  # the same steps through the three-array kernels (the same FMA contraction): the bits to match
    for y in ys:
        first = k.axpy(2.5, x, y, out=np.empty_like(y), parallel=parallel)
        second = k.axpy(-1.0, x, first, out=np.empty_like(y), parallel=parallel)
        apart.append((first, second, k.scal(0.5, second, out=np.empty_like(y), parallel=parallel)))
    for name in ("_axpy_serial", "_axpy_parallel", "_scal_serial", "_scal_parallel"):
        monkeypatch.setattr(blas1, name, None)  # calling one fails
    for y, (first, second, third) in zip(ys, apart):
        assert k.axpy(2.5, x, y, parallel=parallel) is y
        np.testing.assert_array_equal(y, first)
        assert k.axpy(-1.0, x, y, out=y, parallel=parallel) is y
        np.testing.assert_array_equal(y, second)
        assert k.scal(0.5, y, parallel=parallel) is y
        np.testing.assert_array_equal(y, third)


def test_axpy_scal_strided(rng):
    """Strided views are read and written element by element, the gaps untouched."""
    y = np.zeros(20)
    k.axpy(2.0, np.arange(20.0)[::2], y[::2])
    assert y.tolist() == [v if i % 2 == 0 else 0.0 for i, v in enumerate(2.0 * np.arange(20.0))]
    x = np.arange(12.0)
    k.scal(-1.0, x[1::3])
    assert x.tolist() == [0, -1, 2, 3, -4, 5, 6, -7, 8, 9, -10, 11]


@pytest.mark.parametrize("parallel", PAR)
def test_scal_out(rng, parallel):
    """scal writes a*x into out= and returns it; without out= it scales x in place."""
    x = rng.standard_normal(150_000)
    out = k.scal(3.0, x, out=np.empty_like(x), parallel=parallel)
    np.testing.assert_allclose(out, 3.0 * x, rtol=1e-15)


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_axpy_scal_streaming_stores_at_any_alignment(rng, monkeypatch, dtype, parallel):
    """With out= apart from the inputs and streaming on (any size here), axpy and scal give bit for bit the
    ordinary kernels' results for outputs at any offset from a 64-byte boundary, over several chunks with a tail;
    in place they take the ordinary path and are right too."""
    b1 = k.blas1
    monkeypatch.setattr(k._checks, "STREAM_MIN_BYTES", 0)
    n = 2 * k.reductions.CHUNK + 29
    for offset in range(9):
        x = rng.standard_normal(n + 3).astype(dtype)[3:]
        y = rng.standard_normal(n).astype(dtype)
        want_axpy, want_scal = np.empty_like(y), np.empty_like(y)
        b1._axpy_serial(dtype(1.5), x, y, want_axpy)
        b1._scal_serial(dtype(-2.5), x, want_scal)
        out = np.empty(n + offset, dtype)[offset:]
        assert k.axpy(1.5, x, y, out=out, parallel=parallel) is out
        np.testing.assert_array_equal(out, want_axpy)
        np.testing.assert_allclose(out, 1.5 * x.astype(np.float64) + y, **tol(dtype))
        assert k.scal(-2.5, x, out=out, parallel=parallel) is out
        np.testing.assert_array_equal(out, want_scal)
    k.axpy(1.5, x, y, parallel=parallel)  # in place: y
    np.testing.assert_array_equal(y, want_axpy)
    k.scal(-2.5, x, parallel=parallel)
    np.testing.assert_array_equal(x, want_scal)


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dot_asum_match_numpy(rng, dtype, parallel):
    """dot and asum equal NumPy's within the dtype's tolerance, and keep the dtype."""
    x = rng.standard_normal(150_001).astype(dtype)
    y = rng.standard_normal(150_001).astype(dtype)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    got = k.dot(x, y, parallel=parallel)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, x64 @ y64, rtol=tol(dtype)["rtol"], atol=1e-9 * x.size)
    np.testing.assert_allclose(k.asum(x, parallel=parallel), np.abs(x64).sum(), **tol(dtype))


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nrm2_matches_numpy(rng, dtype, parallel):
    """nrm2 of random data equals numpy.linalg.norm within the dtype's tolerance."""
    x = rng.standard_normal(150_001).astype(dtype)
    np.testing.assert_allclose(k.nrm2(x, parallel=parallel), np.linalg.norm(x.astype(np.float64)), **tol(dtype))
    np.testing.assert_allclose(k.nrm2(x[::7]), np.linalg.norm(x[::7].astype(np.float64)), **tol(dtype))


@pytest.mark.parametrize("parallel", PAR)
def test_nrm2_never_overflows_or_underflows(parallel):
    """Huge (1e300) and tiny (1e-300) values give the correctly scaled norm where a naive sqrt(sum(x*x)) fails."""
    big = np.full(1000, 1e300)
    with np.errstate(over="ignore"):
        assert np.isinf(np.sqrt(np.sum(big * big)))
    np.testing.assert_allclose(k.nrm2(big, parallel=parallel), 1e300 * math.sqrt(1000), rtol=1e-14)
    np.testing.assert_allclose(k.nrm2(np.full(1000, 1e-300), parallel=parallel), 1e-300 * math.sqrt(1000), rtol=1e-14)
    np.testing.assert_allclose(k.nrm2(np.array([3e300, 4e300])), 5e300, rtol=1e-15)
    np.testing.assert_allclose(k.nrm2(np.array([1e300, 1e-300, 1.0])), 1e300, rtol=1e-15)
    np.testing.assert_allclose(k.nrm2(np.array([3e-310, 4e-310])), 5e-310, rtol=1e-6)
    mixed = np.array([1e-200, 3.0, 4.0, 1e-200])
    np.testing.assert_allclose(k.nrm2(mixed), 5.0, rtol=1e-15)
    np.testing.assert_allclose(k.nrm2(np.float32([3e30, 4e30])), 5e30, rtol=1e-6)


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("top", [1e-85, 1e-95, 1e-160, 1e150, 1e155])
def test_nrm2_both_passes_agree_with_a_scaled_reference(parallel, top):
    """Around the fast pass's bounds (a sum of squares near 2**-600, or near overflow) the norm stays right: the
    plain pass where it is safe, Blue's accumulators where it is not (tiny data beside one larger value)."""
    x = np.full(100_001, 1e-170)
    x[5] = top
    x[7] = -top / 3
    scale = 2.0**600 if top < 1 else 2.0**-600
    want = np.linalg.norm(x * scale) / scale  # exact scaling by a power of two: no under- or overflow there
    np.testing.assert_allclose(k.nrm2(x, parallel=parallel), want, rtol=1e-14)


def test_nrm2_edges():
    """Empty gives 0, one element its absolute value, NaN gives NaN, inf gives inf."""
    assert k.nrm2(np.empty(0)) == 0.0
    assert k.nrm2(np.array([-2.0])) == 2.0
    assert math.isnan(k.nrm2(np.array([1.0, np.nan, 1e300])))
    assert k.nrm2(np.array([1.0, -np.inf])) == np.inf


def test_blas1_errors():
    """Mismatched shapes or dtypes, and out= of the wrong shape, are refused naming the argument."""
    with pytest.raises(ValueError, match=r"y must have the shape of x, \(3,\); got \(4,\)"):
        k.dot(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="x, y must have the same dtype"):
        k.axpy(1.0, np.ones(3), np.ones(3, np.float32))
    with pytest.raises(ValueError, match=r"out must have shape \(3,\); got \(2,\)"):
        k.axpy(1.0, np.ones(3), np.ones(3), out=np.empty(2))
    with pytest.raises(TypeError, match="out must have dtype float64; got dtype float32"):
        k.scal(1.0, np.ones(3), out=np.empty(3, np.float32))


@pytest.mark.parametrize("parallel", PAR)
@pytest.mark.parametrize("shift", [1, -1, 8, -8])
def test_axpy_scal_out_partially_overlapping_an_input(rng, shift, parallel):
    """out= a shifted view of x's (or y's) memory gives NumPy's result, as if the input had been copied first;
    in place (out is y, or x for scal) stays in place."""
    n = 3001
    base = rng.standard_normal(n + 16)
    x0 = base[8 : 8 + n].copy()
    y = rng.standard_normal(n)
    buf = base.copy()
    out = buf[8 + shift : 8 + shift + n]
    assert k.axpy(2.0, buf[8 : 8 + n], y, out=out, parallel=parallel) is out
    np.testing.assert_array_equal(out, k.axpy(2.0, x0, y, out=np.empty(n), parallel=parallel))
    buf = base.copy()
    out = buf[8 + shift : 8 + shift + n]
    k.scal(-3.0, buf[8 : 8 + n], out=out, parallel=parallel)
    np.testing.assert_array_equal(out, -3.0 * x0)
    buf = base.copy()  # in place, x a shifted view of y's memory
    yv = buf[8 + shift : 8 + shift + n]
    want = k.axpy(2.0, x0, yv.copy(), parallel=parallel)
    k.axpy(2.0, buf[8 : 8 + n], yv, parallel=parallel)
    np.testing.assert_array_equal(yv, want)


@pytest.mark.parametrize("call, name", [
    (lambda a: k.scal(2.0, a), "x"),
    (lambda a: k.axpy(2.0, np.ones(4), a), "y"),
])  # fmt: skip
def test_in_place_update_of_a_read_only_array_is_refused(call, name):
    """scal/axpy writing into a read-only array raise a ValueError naming it (not numba's typing error)."""
    a = np.ones(4)
    a.flags.writeable = False
    with pytest.raises(ValueError, match=f"{name} must be writeable"):
        call(a)
    np.testing.assert_array_equal(k.scal(2.0, a, out=np.empty(4)), np.full(4, 2.0))


def test_operands_of_different_shapes_are_refused_even_with_equal_sizes():
    """(2, 3) and (3, 2) flatten alike; axpy and dot still refuse them, as axpbyc does (they were summed elementwise
    over the flattened arrays)."""
    x, y = np.arange(6.0).reshape(2, 3), np.ones((3, 2))
    for call in (lambda: k.axpy(1.0, x, y), lambda: k.axpy(1.0, x, np.ones(6)), lambda: k.dot(x, y)):
        with pytest.raises(ValueError, match=r"y must have the shape of x, \(2, 3\)"):
            call()
    assert k.dot(x, np.ones((2, 3))) == 15.0
