"""hpc.kernels fused elementwise kernels: axpbyc and fuse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpc import kernels as k

from .conftest import tol


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_axpbyc_matches_numpy(rng, dtype, parallel):
    """a*x + b*y + c equals NumPy's expression within the dtype's tolerance, into a new array or out=."""
    x = rng.standard_normal(150_001).astype(dtype)
    y = rng.standard_normal(150_001).astype(dtype)
    want = 2.0 * x.astype(np.float64) - 3.0 * y.astype(np.float64) + 0.5
    np.testing.assert_allclose(k.axpbyc(2.0, x, -3.0, y, 0.5, parallel=parallel), want, **tol(dtype))
    out = np.empty_like(x)
    assert k.axpbyc(2.0, x, -3.0, y, 0.5, out=out, parallel=parallel) is out
    np.testing.assert_allclose(out, want, **tol(dtype))


def test_axpbyc_strided_nd_and_edges():
    """Strided, 2-D, empty and NaN inputs behave as NumPy's expression."""
    x = np.arange(20.0)
    np.testing.assert_array_equal(k.axpbyc(1.0, x[::2], 1.0, x[1::2], 1.0), x[::2] + x[1::2] + 1.0)
    m = x.reshape(4, 5)
    np.testing.assert_array_equal(k.axpbyc(2.0, m, 1.0, m), 3.0 * m)
    assert k.axpbyc(1.0, np.empty(0), 1.0, np.empty(0)).shape == (0,)
    assert math.isnan(k.axpbyc(1.0, np.array([np.nan]), 1.0, np.array([1.0]))[0])
    with pytest.raises(ValueError, match="y must have the shape of x"):
        k.axpbyc(1.0, np.ones(3), 1.0, np.ones(4))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_axpbyc_streaming_stores_at_any_alignment(rng, monkeypatch, dtype, parallel):
    """The streaming-store path (large contiguous outputs) gives bit for bit the ordinary path's result, for
    outputs starting at any offset from a 64-byte boundary, lengths that leave a tail, several chunks, in place."""
    ew = k.elementwise
    monkeypatch.setattr(k._checks, "STREAM_MIN_BYTES", 0)  # take the streaming path at test sizes
    n = 2 * ew._CHUNK + 37
    for offset in range(9):
        x = rng.standard_normal(n + offset).astype(dtype)[offset:]
        y = rng.standard_normal(n + 2).astype(dtype)[2:]
        want = np.empty_like(x)
        ew._axpbyc_serial(dtype(2.0), x, dtype(-3.0), y, dtype(0.5), want)
        out = np.empty(n + offset, dtype)[offset:]
        assert k.axpbyc(2.0, x, -3.0, y, 0.5, out=out, parallel=parallel) is out
        np.testing.assert_array_equal(out, want)
        np.testing.assert_allclose(out, 2.0 * x.astype(np.float64) - 3.0 * y + 0.5, **tol(dtype))
        np.testing.assert_array_equal(k.axpbyc(2.0, x, -3.0, y, 0.5, parallel=parallel), want)
        assert k.axpbyc(2.0, x, -3.0, y, 0.5, out=x, parallel=parallel) is x  # in place
        np.testing.assert_array_equal(x, want)
    short = np.array([1.0, np.nan, 3.0], dtype)
    assert np.isnan(k.axpbyc(1.0, short, 1.0, short, parallel=parallel)).tolist() == [False, True, False]
    strided = rng.standard_normal(2 * n).astype(dtype)[::2]  # not contiguous: the ordinary path
    np.testing.assert_allclose(k.axpbyc(1.0, strided, 1.0, strided, parallel=parallel), 2.0 * strided, **tol(dtype))


def test_streaming_only_for_large_separate_contiguous_outputs(monkeypatch):
    """Streaming stores are chosen for a large contiguous output apart from the inputs, not in place, not for a
    view overlapping an input, not for strided operands, not below STREAM_MIN_BYTES."""
    use = k._checks.use_streaming
    n = k._checks.STREAM_MIN_BYTES // 8
    x, y, out = np.ones(n), np.ones(n), np.empty(n)
    assert use(out, x, y) and use(out, x)
    assert not use(x, x, y) and not use(y, x, y) and not use(x, x)
    both = np.ones(2 * n)
    assert not use(both[n // 2 : n // 2 + n], both[:n], y)
    assert not use(out, np.ones(2 * n)[::2], y)
    assert not use(out[1:], x[1:], y[1:])  # one element short of the threshold
    monkeypatch.setattr(k._checks, "STREAM_MIN_BYTES", 0)
    assert use(out[:8], x[:8], y[:8])


@pytest.mark.parametrize("parallel", [False, True])
def test_fuse_arrays_and_scalars(rng, parallel):
    """A fused lambda takes arrays and scalars in any position and equals the NumPy expression."""
    f = k.fuse(lambda x, y, z: x * y + math.exp(-z))
    x, y = rng.standard_normal(150_000), rng.standard_normal(150_000)
    np.testing.assert_allclose(f(x, y, 0.5, parallel=parallel), x * y + np.exp(-0.5), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(f(2.0, y, x, parallel=parallel), 2.0 * y + np.exp(-x), rtol=1e-14, atol=1e-15)
    out = np.empty_like(x)
    assert f(x, y, x, out=out, parallel=parallel) is out


def test_fuse_float32_strided_and_repr():
    """A fused kernel keeps float32, reads strided views, and shows what it compiled."""
    f = k.fuse(lambda a, b: a - b)
    x = np.arange(10, dtype=np.float32)
    got = f(x[::2], x[1::2])
    assert got.dtype == np.float32 and got.tolist() == [-1.0] * 5
    assert "compiled=1" in repr(f)


def test_fuse_errors():
    """Wrong argument counts, no array, mismatched shapes and non-functions are refused."""
    f = k.fuse(lambda a, b: a + b)
    with pytest.raises(TypeError, match="args must be 2 arrays or scalars"):
        f(np.ones(3))
    with pytest.raises(TypeError, match="args must include at least one numpy.ndarray"):
        f(1.0, 2.0)
    with pytest.raises(ValueError, match=r"args\[1\] must have the shape of args\[0\]"):
        f(np.ones(3), np.ones(4))
    with pytest.raises(TypeError, match="fn must be a Python function"):
        k.fuse(3)
    for varying in (lambda *a: a[0], lambda x, *, y=1.0: x, lambda x, **kw: x):  # accepted, then every call failed
        with pytest.raises(TypeError, match="fixed number of positional parameters"):
            k.fuse(varying)
    for scalar in (np.complex128(2 + 3j), 2 + 3j, None, True, np.bool_(True), "2"):  # complex lost its imaginary part
        with pytest.raises(TypeError, match=r"args\[1\] must be a real number"):
            f(np.ones(3), scalar)
    np.testing.assert_array_equal(f(np.ones(3), np.int8(2)), 3.0)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("shift", [1, -1, 8, -8])
def test_out_partially_overlapping_an_input(rng, shift, parallel):
    """out= a shifted or reversed view of an input's memory gives NumPy's result, as if from a copy of the input,
    for axpbyc and for fused kernels."""
    n = 3001
    base = rng.standard_normal(n + 16)
    x0 = base[8 : 8 + n].copy()
    y = rng.standard_normal(n)
    buf = base.copy()
    out = buf[8 + shift : 8 + shift + n]
    assert k.axpbyc(2.0, buf[8 : 8 + n], -3.0, y, 0.5, out=out, parallel=parallel) is out
    np.testing.assert_array_equal(out, k.axpbyc(2.0, x0, -3.0, y, 0.5, parallel=parallel))
    buf = base.copy()
    out = buf[8 + shift : 8 + shift + n]
    k.axpbyc(2.0, y, -3.0, buf[8 : 8 + n], 0.5, out=out, parallel=parallel)
    np.testing.assert_array_equal(out, k.axpbyc(2.0, y, -3.0, x0, 0.5, parallel=parallel))
    buf = base.copy()
    k.axpbyc(2.0, buf, 0.0, y[:1].repeat(n + 16), 1.0, out=buf[::-1], parallel=parallel)
    np.testing.assert_allclose(buf[::-1], 2.0 * base + 1.0, rtol=1e-15)
    f = k.fuse(lambda a, b: a * b + 1.0)
    buf = base.copy()
    out = buf[8 + shift : 8 + shift + n]
    f(buf[8 : 8 + n], 2.0, out=out, parallel=parallel)
    np.testing.assert_allclose(out, 2.0 * x0 + 1.0, rtol=1e-15)


@pytest.mark.parametrize("parallel", [False, True])
def test_fuse_divides_as_ieee_and_raises_the_functions_own_exception(parallel):
    """x / 0 is inf and 0 / 0 NaN, as NumPy's divide (the parallel loop left the results past a zero divisor
    unwritten, silently); an exception raised by the function reaches the caller as itself on both loops (numba's
    parallel loop reports it as a SystemError)."""
    x, y = np.full(200_000, 3.0), np.ones(200_000)
    y[100_000] = 0.0
    x[5] = y[5] = 0.0
    got = k.fuse(lambda u, v: u / v)(x, y, parallel=parallel)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.testing.assert_array_equal(got, np.divide(x, y))

    def capped(u):
        if u > 5.0:
            raise ValueError("too big")
        return u * 2.0

    with pytest.raises(ValueError, match="too big"):
        k.fuse(capped)(np.arange(200_000.0), parallel=parallel)


@pytest.mark.parametrize("fn", [lambda a: str(a), lambda a: {}.get(a, 1.0)])
def test_fuse_of_a_function_numba_cannot_compile_is_one_type_error(fn):
    """numba's typing failure came through as its own page (635 to 2664 characters); now a TypeError naming the
    function and the call numba could not type."""
    with pytest.raises(TypeError, match=r"could not be compiled by numba for float64 scalars \(failed: ") as caught:
        k.fuse(fn)(np.ones(4))
    assert len(str(caught.value)) < 300


def test_fuse_takes_a_0d_array_as_a_scalar_and_names_an_int_too_large():
    """A 0-d array beside arrays is a scalar, as in axpy (fuse had refused its shape); an int beyond float64 raises
    OverflowError naming the argument (NumPy's message names none)."""
    f = k.fuse(lambda x, y: x * y + 1.0)
    np.testing.assert_array_equal(f(np.arange(3.0), np.asarray(2.0)), [1.0, 3.0, 5.0])
    assert float(f(np.asarray(3.0), np.asarray(2.0))) == 7.0
    with pytest.raises(OverflowError, match=r"args\[1\] is too large for float64"):
        f(np.arange(3.0), 10**400)
    with pytest.raises(OverflowError, match=r"^a is too large for float64"):
        k.axpbyc(10**400, np.ones(2), 1.0, np.ones(2))
