"""GPU twins of the memory-bound ``hpc.kernels``: the same functions on :class:`~hpc.cuda.DeviceArray` arguments.

On a GPU each runs CUDA C from ``kernels/cuda/`` (loaded by :mod:`hpc.cuda.module`); on the host fallback each
computes the same result with NumPy on the array's host memory, so code written against these functions runs
everywhere. Arrays must be float32 or float64 and C-contiguous; N-d arrays are taken in C order where the CPU
kernel flattens. Reductions accumulate in float64 and return a Python ``float`` (which waits for the result);
array results are :class:`~hpc.cuda.DeviceArray` and are queued on ``stream`` without waiting.

========================  ==========================  =====================================
twin                      CUDA source                 CPU counterpart
========================  ==========================  =====================================
``axpy``                  ``blas1.cu``                ``hpc.kernels.axpy``
``dot``, ``nrm2``         ``blas1.cu``                ``hpc.kernels.dot``, ``nrm2``
``sum``, ``min``, ``max`` ``reductions.cu``           ``hpc.kernels.sum``, ``min``, ``max``
``softmax``               ``rows.cu``                 ``hpc.kernels.softmax``
``inclusive_scan``,       ``scan.cu``                 ``hpc.kernels.inclusive_scan``, ...
``exclusive_scan``
``sqdist``                ``distances.cu``            ``hpc.kernels.sqdist``
``kmeans_assign``         ``distances.cu``            ``hpc.kernels.kmeans_assign``
``kmeans_step``           ``kmeans.cu``               ``hpc.kernels.kmeans_step``
``logistic_loss_grad``,   ``logistic.cu``             ``hpc.kernels.logistic_loss_grad``,
``softmax_loss_grad``                                 ``softmax_loss_grad``
``column_moments``        ``columns.cu``              ``hpc.kernels.column_moments``
``gram``,                 ``columns.cu``              hpc.ml's Gram matrices and centring
``subtract_row``
========================  ==========================  =====================================

The twins hpc.ml's fits run on row blocks (``kmeans_step``, the losses, ``column_moments``) add every sum in an
order fixed by the block's shape (no atomics): a block's results are the same bits on every run, so a fit on the
GPU is the same model on any number of ranks. They are not the CPU kernels' bits (another order, and direct
distances where the CPU uses the GEMM form); on the host fallback they compute with NumPy.
"""

from __future__ import annotations

import builtins as _builtins
import functools as _functools
from collections.abc import Callable as _Callable
from typing import Any as _Any
from typing import TypeVar as _TypeVar

import numpy as _np

from hpc.cuda import _backend, module
from hpc.cuda.array import DeviceArray, to_device
from hpc.cuda.stream import Stream, handle_of

__all__ = [
    "axpy",
    "dot",
    "exclusive_scan",
    "gram",
    "inclusive_scan",
    "column_moments",
    "kmeans_assign",
    "kmeans_step",
    "logistic_loss_grad",
    "max",
    "min",
    "nrm2",
    "softmax",
    "softmax_loss_grad",
    "sqdist",
    "subtract_row",
    "sum",
]

BLOCK = 256
_SUFFIX = {_np.dtype(_np.float32): "f32", _np.dtype(_np.float64): "f64"}
_SCALAR = {_np.dtype(_np.float32): "f", _np.dtype(_np.float64): "d"}
_TILE = 2048  # scan.cu: BLOCK * ITEMS
_F = _TypeVar("_F", bound=_Callable[..., _Any])


def _on_stream(twin: _F) -> _F:
    """Check a twin's ``stream=`` before it runs, and mark its array results as written on that stream.

    The GPU path needs both (its launches take the stream's handle; later readers wait for the last writer); the
    host fallback, which runs at once, does both too, so a wrong ``stream=`` fails on a laptop as on a GPU.
    """

    @_functools.wraps(twin)
    def run(*args: _Any, stream: Stream | None = None, **kwargs: _Any) -> _Any:
        handle_of(stream)  # TypeError for anything but a Stream or None
        result = twin(*args, stream=stream, **kwargs)
        for value in result if isinstance(result, tuple) else (result,):
            if isinstance(value, DeviceArray):
                value.stream = stream
        return result

    return run  # type: ignore[return-value]  # the twin's own signature, which has the stream= keyword


def _check(name: str, a: _Any, ndim: tuple[int, ...] | None = None) -> DeviceArray:
    if not isinstance(a, DeviceArray):
        raise TypeError(f"{name} must be an hpc.cuda.DeviceArray; got {type(a).__name__}")
    if a.dtype not in _SUFFIX:
        raise TypeError(f"{name} must be float32 or float64; got {a.dtype}")
    if not a.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous; got strides {a.strides} for shape {a.shape}")
    if ndim is not None and a.ndim not in ndim:
        raise ValueError(f"{name} must have {' or '.join(map(str, ndim))} dimensions; got shape {a.shape}")
    a._check_live()
    return a


def _same(name: str, a: DeviceArray, like: DeviceArray, shape: tuple[int, ...] | None = None) -> None:
    # as the host kernels (hpc.kernels._checks): another dtype is a TypeError, another shape a ValueError
    want = like.shape if shape is None else shape
    if a.dtype != like.dtype:
        raise TypeError(f"{name} must be a {like.dtype} array of shape {want}; got {a.dtype} {a.shape}")
    if a.shape != want:
        raise ValueError(f"{name} must be a {like.dtype} array of shape {want}; got {a.dtype} {a.shape}")


def _out(out: DeviceArray | None, like: DeviceArray, shape: tuple[int, ...], dtype: _Any = None) -> DeviceArray:
    if out is None:
        return DeviceArray(shape, like.dtype if dtype is None else dtype, device_index=like.device_index)
    _check("out", out)
    want = _np.dtype(like.dtype if dtype is None else dtype)
    if out.dtype != want:
        raise TypeError(f"out must be a {want} array of shape {shape}; got {out.dtype} {out.shape}")
    if out.shape != shape:
        raise ValueError(f"out must be a {want} array of shape {shape}; got {out.dtype} {out.shape}")
    return out


def _host(a: DeviceArray) -> _np.ndarray:
    """Return a NumPy view of ``a``'s memory (host fallback only)."""
    lo, hi = a._extent()
    raw = _backend.get().host_view(a.ptr + lo, hi - lo)
    return _np.ndarray(a.shape, a.dtype, buffer=raw, offset=-lo, strides=a.strides)


def _gpu() -> bool:
    return _backend.on_gpu()


def _ready(stream: Stream | None, *arrays: DeviceArray) -> None:
    for a in arrays:
        a._sync_for(stream)


def _blocks(n: int, per_thread: int = 8, cap: int = 1024) -> int:
    return _builtins.max(1, _builtins.min(cap, -(-n // (BLOCK * per_thread))))


def _sum_of_partials(source: str, kernel: str, fmt: str, arrays: tuple, n: int, stream: Stream | None) -> float:
    """Launch ``kernel(*arrays, n, partials)`` (one float64 partial per block), then add the partials up."""
    blocks = _blocks(n)
    device_index = arrays[0].device_index
    partials = DeviceArray((blocks,), _np.float64, device_index=device_index)
    module.load(source, device_index).kernel(kernel, fmt)((blocks,), (BLOCK,), *arrays, n, partials, stream=stream)
    return _finish(partials, blocks, stream)


def _finish(partials: DeviceArray, count: int, stream: Stream | None) -> float:
    out = DeviceArray((1,), _np.float64, device_index=partials.device_index)
    module.load("blas1", partials.device_index).kernel("finish_sum", "PiP")(
        (1,), (BLOCK,), partials, count, out, stream=stream
    )
    if stream is not None:
        stream.synchronize()
    return float(out.get()[0])


def _fused_axpy(a: _Any, x: _np.ndarray, y: _np.ndarray, out: _np.ndarray) -> None:
    """Write ``a*x + y`` into ``out`` as one fused multiply-add would, in NumPy (the host fallback of :func:`axpy`).

    float32: the product of two float32 values is exact in float64, so the sum is rounded once in float64 and once
    more to float32. float64: the product's rounding error ``e`` (Dekker's exact product, by Veltkamp's splits of
    the factors scaled below ``2**900``) is added back after an exact ``p + y`` (Knuth's two-sum), so ``p + y + e``
    is rounded about once. Where that cannot hold (a non-finite value, or a product near the subnormals, whose
    error is not representable) the element is computed in
    ``numpy.longdouble`` (x87's 64-bit significand and wider exponent on x86), whose product does not overflow.
    """
    with _np.errstate(all="ignore"):
        if x.dtype == _np.float32:
            out[...] = _np.float64(a) * x.astype(_np.float64) + y
            return
        p = a * x
        # the error of the product of a and x scaled by powers of two below 2**900, so that the splits stay finite
        sa = 2.0**-64 if abs(a) > 2.0**900 else 1.0
        sx = _np.where(_np.abs(x) > 2.0**900, 2.0**-64, 1.0)
        a1, x1 = a * sa, x * sx
        p1 = a1 * x1
        split = 134217729.0  # 2**27 + 1
        ta = split * a1
        ah = ta - (ta - a1)
        al = a1 - ah
        tx = split * x1
        xh = tx - (tx - x1)
        xl = x1 - xh
        e = (((ah * xh - p1) + ah * xl + al * xh) + al * xl) / (sa * sx)
        s = p + y
        z = s - p
        t = (p - (s - z)) + (y - z)
        result = _np.asarray(s + (t + e))  # an array for 0-d inputs too (their arithmetic gives NumPy scalars)
        bad = ~(_np.isfinite(result) & _np.isfinite(e)) | (_np.abs(p) < 2.0**-900)
        if bad.any():
            xb = x[bad] if x.shape == bad.shape else x
            yb = y[bad] if y.shape == bad.shape else y
            wide = _np.longdouble(a) * xb.astype(_np.longdouble) + yb.astype(_np.longdouble)
            result[bad] = wide.astype(_np.float64)
        out[...] = result


@_on_stream
def axpy(
    a: float, x: DeviceArray, y: DeviceArray, *, out: DeviceArray | None = None, stream: Stream | None = None,
) -> DeviceArray:
    """Compute ``a*x + y`` into ``out``, or into ``y`` itself when ``out`` is ``None``; return it (BLAS ``axpy``).

    On a GPU ``a*x[i] + y[i]`` is one fused multiply-add (nvcc contracts it), as in the host kernel: the same bits.
    The host fallback emulates the fused multiply-add with NumPy (:func:`_fused_axpy`): ``a*x`` is not rounded
    before the add, so a product beyond the dtype's range still meets an infinite ``y`` as the kernel's does, and
    a near cancellation keeps its digits; a result may differ from the host kernel's in the last bit.

    .. versionadded:: 0.1.0
    """
    _check("x", x)
    _check("y", y)
    _same("y", y, x)
    out = y if out is None else _out(out, x, x.shape)
    if not _gpu():
        _fused_axpy(x.dtype.type(a), _host(x), _host(y), _host(out))
        return out
    _ready(stream, x, y, out)
    n = x.size
    if n:
        k = module.load("blas1", x.device_index).kernel(f"axpy_{_SUFFIX[x.dtype]}", _SCALAR[x.dtype] + "PPPq")
        k((_blocks(n, 4, 1 << 20),), (BLOCK,), x.dtype.type(a), x, y, out, n, stream=stream)
    return out


@_on_stream
def dot(x: DeviceArray, y: DeviceArray, *, stream: Stream | None = None) -> float:
    """Return ``sum(x * y)``, accumulated in float64 (BLAS ``dot``).

    .. versionadded:: 0.1.0
    """
    _check("x", x)
    _check("y", y)
    _same("y", y, x)
    if not _gpu():
        return float(_np.dot(_host(x).reshape(-1).astype(_np.float64), _host(y).reshape(-1).astype(_np.float64)))
    _ready(stream, x, y)
    n = x.size
    if n == 0:
        return 0.0
    return _sum_of_partials("blas1", f"dot_partial_{_SUFFIX[x.dtype]}", "PPqP", (x, y), n, stream)


@_on_stream
def sum(x: DeviceArray, *, accurate: bool = False, stream: Stream | None = None) -> float:  # noqa: A001
    """Return the sum of all elements, accumulated in float64.

    ``accurate=True`` returns the correctly rounded sum (:func:`math.fsum`) of a host copy: exact where
    :func:`hpc.kernels.sum`'s compensated sum is nearly so, at the price of the copy.

    .. versionadded:: 0.1.0
    """
    _check("x", x)
    if accurate:
        import math

        values = x.get().reshape(-1).astype(_np.float64)
        if not _np.isfinite(values).all():  # an infinity or NaN: NumPy's answer (inf, -inf or NaN), as the host's
            with _np.errstate(invalid="ignore", over="ignore"):
                return float(values.sum())
        try:
            return math.fsum(values.tolist())
        except OverflowError:  # finite data whose partial sums overflow: summed scaled by 2**-64, as the host does
            return math.fsum((values * 2.0**-64).tolist()) * 2.0**64  # inf when the true sum overflows
    if not _gpu():
        return float(_np.sum(_host(x), dtype=_np.float64))
    _ready(stream, x)
    n = x.size
    if n == 0:
        return 0.0
    return _sum_of_partials("reductions", f"sum_partial_{_SUFFIX[x.dtype]}", "PqP", (x,), n, stream)


@_on_stream
def nrm2(x: DeviceArray, *, stream: Stream | None = None) -> float:
    """Return ``sqrt(sum(x**2))`` without overflow or underflow (BLAS ``nrm2``); NaN if ``x`` holds a NaN.

    .. versionadded:: 0.1.0
    """
    _check("x", x)
    if not _gpu():
        h = _np.abs(_host(x).reshape(-1).astype(_np.float64))
        if h.size == 0:
            return 0.0
        scale = h.max()
        if not 0.0 < scale < _np.inf:
            return float(scale)  # 0.0, NaN, or inf (inf / inf would make a NaN below)
        return float(scale * _np.sqrt(_np.sum((h / scale) ** 2)))
    _ready(stream, x)
    n = x.size
    if n == 0:
        return 0.0
    blocks = _blocks(n)
    mod = module.load("blas1", x.device_index)
    partials = DeviceArray((2 * blocks,), _np.float64, device_index=x.device_index)
    out = DeviceArray((1,), _np.float64, device_index=x.device_index)
    mod.kernel(f"nrm2_partial_{_SUFFIX[x.dtype]}", "PqP")((blocks,), (BLOCK,), x, n, partials, stream=stream)
    mod.kernel("finish_nrm2", "PiP")((1,), (BLOCK,), partials, blocks, out, stream=stream)
    if stream is not None:
        stream.synchronize()
    return float(out.get()[0])


def _extreme(x: DeviceArray, sign: int, stream: Stream | None) -> float:
    _check("x", x)
    if x.size == 0:
        raise ValueError("x must not be empty (min/max of nothing is undefined)")
    if not _gpu():
        h = _host(x)
        return float(_np.min(h) if sign > 0 else _np.max(h))
    _ready(stream, x)
    blocks = _blocks(x.size)
    partials = DeviceArray((blocks,), x.dtype, device_index=x.device_index)
    out = DeviceArray((1,), x.dtype, device_index=x.device_index)
    k = module.load("reductions", x.device_index).kernel(f"extreme_{_SUFFIX[x.dtype]}", "PqiP")
    k((blocks,), (BLOCK,), x, x.size, sign, partials, stream=stream)
    k((1,), (BLOCK,), partials, blocks, sign, out, stream=stream)
    if stream is not None:
        stream.synchronize()
    return float(out.get()[0])


@_on_stream
def min(x: DeviceArray, *, stream: Stream | None = None) -> float:  # noqa: A001 - NumPy's name on purpose
    """Return the smallest element; NaN if ``x`` holds a NaN (as :func:`numpy.min`).

    Raises:
        ValueError: ``x`` is empty.

    .. versionadded:: 0.1.0
    """
    return _extreme(x, 1, stream)


@_on_stream
def max(x: DeviceArray, *, stream: Stream | None = None) -> float:  # noqa: A001 - NumPy's name on purpose
    """Return the largest element; NaN if ``x`` holds a NaN (as :func:`numpy.max`).

    Raises:
        ValueError: ``x`` is empty.

    .. versionadded:: 0.1.0
    """
    return _extreme(x, -1, stream)


@_on_stream
def softmax(x: DeviceArray, *, out: DeviceArray | None = None, stream: Stream | None = None) -> DeviceArray:
    """Return ``exp(x - max) / sum(exp(x - max))`` over each row of a 1-D (one row) or 2-D ``x``.

    A row holding a NaN is all NaN. ``out`` may be ``x`` itself.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (1, 2))
    out = _out(out, x, x.shape)
    rows, cols = (1, x.shape[0]) if x.ndim == 1 else x.shape
    if not _gpu():
        if not (rows and cols):
            return out  # nothing to compute (a row max of zero columns has no value)
        h = _host(x).reshape(rows, cols)
        with _np.errstate(invalid="ignore", over="ignore"):
            e = _np.exp(h - h.max(axis=1, keepdims=True))
            _host(out).reshape(rows, cols)[...] = e / e.sum(axis=1, keepdims=True)
        return out
    _ready(stream, x, out)
    if rows and cols:
        k = module.load("rows", x.device_index).kernel(f"softmax_{_SUFFIX[x.dtype]}", "PPqq")
        k((_builtins.min(rows, 1 << 16),), (BLOCK,), x, out, rows, cols, stream=stream)
    return out


def _scan(x: DeviceArray, out: DeviceArray | None, exclusive: bool, stream: Stream | None) -> DeviceArray:
    _check("x", x)
    out = _out(out, x, x.shape)
    if not _gpu():
        h = _host(x).reshape(-1)
        o = _host(out).reshape(-1)
        c = _np.cumsum(h, dtype=_np.float64)  # as hpc.kernels: partial sums carried in float64, also for float32
        if exclusive and c.size:
            o[1:] = c[:-1]
            o[0] = 0
        else:
            o[...] = c
        return out
    _ready(stream, x, out)
    _scan_gpu(x.reshape(-1), out.reshape(-1), exclusive, stream)
    return out


def _scan_gpu(x: DeviceArray, out: DeviceArray, exclusive: bool, stream: Stream | None) -> None:
    # partial sums in float64 for both dtypes (as hpc.kernels): tile totals, their exclusive scan (this function
    # again, on float64), then each tile scanned in double from its offset and rounded once
    n = x.size
    if n == 0:
        return
    suffix = _SUFFIX[x.dtype]
    mod = module.load("scan", x.device_index)
    scan_k = mod.kernel(f"scan_tiles_{suffix}", "PPPqi")
    tiles = -(-n // _TILE)
    if tiles == 1:
        scan_k((1,), (BLOCK,), x, out, 0, n, int(exclusive), stream=stream)
        return
    totals = DeviceArray((tiles,), _np.float64, device_index=x.device_index)
    offsets = DeviceArray((tiles,), _np.float64, device_index=x.device_index)
    mod.kernel(f"tile_sums_{suffix}", "PPq")((tiles,), (BLOCK,), x, totals, n, stream=stream)
    _scan_gpu(totals, offsets, True, stream)
    scan_k((tiles,), (BLOCK,), x, out, offsets, n, int(exclusive), stream=stream)
    if stream is not None:  # the pool may hand the temporaries out again before the queued kernels ran
        stream._keep_until_done((totals, offsets))


@_on_stream
def inclusive_scan(x: DeviceArray, *, out: DeviceArray | None = None, stream: Stream | None = None) -> DeviceArray:
    """Return the running sums ``out[i] = x[0] + ... + x[i]`` in C order (:func:`numpy.cumsum`), in ``x``'s dtype.

    .. versionadded:: 0.1.0
    """
    return _scan(x, out, False, stream)


@_on_stream
def exclusive_scan(x: DeviceArray, *, out: DeviceArray | None = None, stream: Stream | None = None) -> DeviceArray:
    """Return ``out[i] = x[0] + ... + x[i-1]`` (``out[0] = 0``) in C order, in ``x``'s dtype.

    .. versionadded:: 0.1.0
    """
    return _scan(x, out, True, stream)


def _check_block_rows(value: _Any) -> None:
    """Refuse a ``block_rows`` that is not an int >= 1, as the host kernels do."""
    if isinstance(value, bool) or not isinstance(value, (int, _np.integer)) or value < 1:
        raise ValueError(f"block_rows must be an int >= 1 or None; got {value!r}")


def _sqdist_host(xh: _np.ndarray, yh: _np.ndarray, oh: _np.ndarray) -> None:
    y64 = yh.astype(_np.float64)
    step = _builtins.max(1, (1 << 22) // _builtins.max(1, yh.shape[0] * _builtins.max(1, yh.shape[1])))
    for lo in range(0, xh.shape[0], step):  # bounded temporaries: rows of x a block at a time
        d = xh[lo : lo + step, None, :].astype(_np.float64) - y64[None, :, :]
        oh[lo : lo + step] = _np.einsum("ijk,ijk->ij", d, d)


def _nearest(block: _np.ndarray) -> _np.ndarray:
    """Return each row's column of least distance as the host kernels choose it: a NaN never wins over a number
    (NumPy's ``argmin`` takes the first NaN), the first of equal ones wins, and a row all NaN gets 0."""
    nan = _np.isnan(block)
    key = _np.where(nan, _np.inf, block)
    best = key.argmin(axis=1)
    all_nan = nan.all(axis=1)
    rows = _np.arange(block.shape[0])
    fix = nan[rows, best] & ~all_nan  # a NaN first among +inf ties: the first number wins instead
    best[fix] = (~nan & (key == key.min(axis=1, keepdims=True)))[fix].argmax(axis=1)
    best[all_nan] = 0
    return best


@_on_stream
def sqdist(
    x: DeviceArray, y: DeviceArray, *, out: DeviceArray | None = None, block_rows: int | None = None,
    stream: Stream | None = None,
) -> DeviceArray:
    """Return the ``(m, n)`` squared Euclidean distances between the rows of ``x`` ``(m, d)`` and ``y`` ``(n, d)``.

    Computed as ``sum((x_i - y_j)**2)`` in float64, so never negative and exact for identical points. Each distance
    is computed alone, so every block of ``block_rows`` rows already has the bits of a call on its rows alone
    (``block_rows`` is checked as the host kernel checks it, and changes nothing else).

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    _check("y", y, (2,))
    if y.dtype != x.dtype:
        raise TypeError(f"y must be a {x.dtype} array with {x.shape[1]} columns; got {y.dtype} {y.shape}")
    if y.shape[1] != x.shape[1]:
        raise ValueError(f"y must be a {x.dtype} array with {x.shape[1]} columns; got {y.dtype} {y.shape}")
    if block_rows is not None:
        _check_block_rows(block_rows)
    m, d = x.shape
    n = y.shape[0]
    out = _out(out, x, (m, n))
    if not _gpu():
        _sqdist_host(_host(x), _host(y), _host(out))
        return out
    if -(-m // 16) > 65535:
        raise ValueError(f"x must have at most {65535 * 16} rows on a GPU; got {m}")
    _ready(stream, x, y, out)
    if m and n:
        k = module.load("distances", x.device_index).kernel(f"sqdist_{_SUFFIX[x.dtype]}", "PPPiii")
        k((-(-n // 16), -(-m // 16)), (16, 16), x, y, out, m, n, d, stream=stream)
    return out


@_on_stream
def kmeans_assign(
    x: DeviceArray, centroids: DeviceArray, *, stream: Stream | None = None,
) -> tuple[DeviceArray, DeviceArray]:
    """Return ``(labels, sqdists)``: each row's nearest centroid (first on ties) and its squared distance.

    ``labels`` is an int64 :class:`~hpc.cuda.DeviceArray` of shape ``(m,)``, ``sqdists`` one of ``x``'s dtype. A
    NaN distance never wins over a number; a row whose distances are all NaN gets label 0 and distance NaN.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    _check("centroids", centroids, (2,))
    if centroids.dtype != x.dtype:  # as the host kernel: another dtype is a TypeError, another shape a ValueError
        raise TypeError(f"x, centroids must have the same dtype; got x: {x.dtype}, centroids: {centroids.dtype}")
    if centroids.shape[1] != x.shape[1] or centroids.shape[0] < 1:
        raise ValueError(
            f"centroids must be a {x.dtype} array of k >= 1 rows with {x.shape[1]} columns; "
            f"got {centroids.dtype} {centroids.shape}"
        )
    m, d = x.shape
    k = centroids.shape[0]
    labels = DeviceArray((m,), _np.int64, device_index=x.device_index)
    dist = DeviceArray((m,), x.dtype, device_index=x.device_index)
    if not _gpu():
        xh, ch = _host(x), _host(centroids)
        lh, dh = _host(labels), _host(dist)
        step = _builtins.max(1, (1 << 20) // _builtins.max(1, k))
        for lo in range(0, m, step):
            block = _np.empty((_builtins.min(step, m - lo), k), _np.float64)
            _sqdist_host(xh[lo : lo + step], ch, block)
            best = _nearest(block)
            lh[lo : lo + step] = best
            dh[lo : lo + step] = block[_np.arange(block.shape[0]), best]
        return labels, dist
    _ready(stream, x, centroids)
    if m:
        kern = module.load("distances", x.device_index).kernel(f"kmeans_assign_{_SUFFIX[x.dtype]}", "PPPPiii")
        kern((_builtins.min(-(-m // BLOCK), 65535),), (BLOCK,), x, centroids, labels, dist, m, k, d, stream=stream)
    return labels, dist


_SEGMENTS = 32  # kmeans.cu: the per-cluster sums of a block are taken in this many runs of rows, then merged


def _rows_fit_int(name: str, x: DeviceArray) -> None:
    if x.shape[0] >= 2**31 or x.size >= 2**62:
        raise ValueError(f"{name} has too many rows for one launch ({x.shape[0]}); pass blocks of rows")


@_on_stream
def kmeans_step(
    x: DeviceArray,
    centroids: _Any,
    *,
    sums: _np.ndarray | None = None,
    counts: _np.ndarray | None = None,
    block_rows: int | None = None,
    distances: bool = True,
    stream: Stream | None = None,
) -> tuple[DeviceArray, DeviceArray | None]:
    """Return ``(labels, sqdists)`` of each row's nearest centroid; add the rows to ``sums``/``counts`` if given.

    The twin of :func:`hpc.kernels.kmeans_step` for a block of rows on the device. The nearest centroid is the
    smallest ``sum((x - c)^2)`` computed directly in float64 (first on ties), which is also ``sqdists``. With
    ``block_rows``, ``sums`` ``(blocks, k, d)`` and ``counts`` ``(blocks, k)`` take each block's own sums, the bits of
    a call on the block's rows alone (here: one such call per block after the labels of all rows). With
    ``distances=False`` the second result is None (the device computes the distances anyway: they decide the label).

    Args:
        x (DeviceArray): ``(m, d)``, float32 or float64, C-contiguous; ``m < 2**31``.
        centroids (array_like or DeviceArray): ``(k, d)``, taken as float64.
        sums (numpy.ndarray or None): float64 ``(k, d)`` host array; row ``j`` gets the sum of the rows labelled
            ``j`` added (in float64, in an order fixed by ``m``).
        counts (numpy.ndarray or None): float64 ``(k,)`` host array; gets the rows per label added.
        block_rows (int or None): per-block sums: ``sums`` ``(blocks, k, d)``, ``counts`` ``(blocks, k)``.
        distances (bool): False returns None in place of ``sqdists``.

    Returns:
        ``labels`` (int32 DeviceArray ``(m,)``) and ``sqdists`` (float64 DeviceArray ``(m,)``, or None). With
        ``sums`` the call waits for the device (the sums come back to the host); without, the results are queued on
        ``stream``.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    if not distances:
        return kmeans_step(x, centroids, sums=sums, counts=counts, block_rows=block_rows, stream=stream)[0], None
    if block_rows is not None:
        return _kmeans_step_blocks(x, centroids, sums, counts, block_rows, stream)
    _rows_fit_int("x", x)
    m, d = x.shape
    if isinstance(centroids, DeviceArray) and centroids.dtype == _np.float64 and centroids.c_contiguous:
        centroids._check_live()
        c_host, shape = None, centroids.shape  # used where it is
    else:  # host data, or device data of another dtype or layout: float64 on the host (copied over on a GPU)
        raw = centroids.get() if isinstance(centroids, DeviceArray) else centroids
        c_host = _np.ascontiguousarray(raw, dtype=_np.float64)
        shape = c_host.shape
    if len(shape) != 2 or shape[1] != d or shape[0] == 0:
        raise ValueError(f"centroids must be (k >= 1, {d}); got shape {shape}")
    k = int(shape[0])
    accumulate = sums is not None
    if accumulate != (counts is not None):
        raise ValueError("sums and counts go together: pass both or neither")
    if accumulate:
        if not (isinstance(sums, _np.ndarray) and isinstance(counts, _np.ndarray)) or sums.shape != (k, d) or (
            sums.dtype != _np.float64 or counts.shape != (k,) or counts.dtype != _np.float64
        ):
            raise ValueError(f"sums must be a float64 NumPy array of shape {(k, d)} and counts one of shape ({k},)")
    labels = DeviceArray((m,), _np.int32, device_index=x.device_index)
    dist = DeviceArray((m,), _np.float64, device_index=x.device_index)
    if not _gpu():
        c = _host(centroids) if c_host is None else c_host
        lh, dh = _host(labels), _host(dist)
        xh = _host(x)
        step = _builtins.max(1, (1 << 20) // k)
        for lo in range(0, m, step):
            block = _np.empty((_builtins.min(step, m - lo), k), _np.float64)
            _sqdist_host(xh[lo : lo + step], c, block)
            lh[lo : lo + step] = _nearest(block)
            dh[lo : lo + step] = block[_np.arange(block.shape[0]), lh[lo : lo + step]]
        if accumulate and m:
            _np.add.at(sums, lh, xh.astype(_np.float64))
            counts += _np.bincount(lh, minlength=k)
        return labels, dist
    c_dev = centroids if c_host is None else to_device(c_host, stream, device=x.device_index)
    _ready(stream, x, c_dev)
    if m == 0:
        return labels, dist
    mod = module.load("kmeans", x.device_index)
    suffix = _SUFFIX[x.dtype]
    mod.kernel(f"kmeans_label_{suffix}", "PPPPiii")(
        (_builtins.min(-(-m // BLOCK), 65535),), (BLOCK,), x, c_dev, labels, dist, m, k, d, stream=stream
    )
    if accumulate:
        width = d + 1
        parts = DeviceArray((_SEGMENTS, k, width), _np.float64, device_index=x.device_index).fill_zero(stream)
        merged = DeviceArray((k, width), _np.float64, device_index=x.device_index)
        mod.kernel(f"kmeans_segment_sums_{suffix}", "PPPiii")(
            (-(-_SEGMENTS * width // BLOCK),), (BLOCK,), x, labels, parts, m, k, d, stream=stream
        )
        mod.kernel("kmeans_merge_segments", "PPq")(
            (_builtins.min(-(-k * width // BLOCK), 65535),), (BLOCK,), parts, merged, k * width, stream=stream
        )
        merged.stream = stream
        host = merged.get()  # waits for the stream's work
        sums += host[:, :d]
        counts += host[:, d]
    elif stream is not None and c_host is not None:
        stream._keep_until_done(c_dev)  # the pool may hand the centroids' memory out before the kernel ran
    return labels, dist


def _kmeans_step_blocks(
    x: DeviceArray, centroids: _Any, sums: _np.ndarray | None, counts: _np.ndarray | None, block_rows: _Any,
    stream: Stream | None,
) -> tuple[DeviceArray, DeviceArray]:
    """:func:`kmeans_step` with ``block_rows``: the labels of every row, then each block's sums from its own call."""
    _check_block_rows(block_rows)
    if (sums is None) != (counts is None):
        raise ValueError("sums and counts go together: pass both or neither")
    m, d = x.shape
    k = _np.shape(centroids)[0] if len(_np.shape(centroids)) == 2 else 0
    blocks = -(-m // int(block_rows))
    if sums is not None and (
        not (isinstance(sums, _np.ndarray) and isinstance(counts, _np.ndarray)) or sums.shape != (blocks, k, d)
        or sums.dtype != _np.float64 or counts.shape != (blocks, k) or counts.dtype != _np.float64
    ):
        raise ValueError(f"sums must be float64 {(blocks, k, d)} and counts float64 {(blocks, k)}")
    labels, dist = kmeans_step(x, centroids, stream=stream)
    if sums is None:
        return labels, dist
    for b in range(blocks):
        lo = b * int(block_rows)
        kmeans_step(x[lo : lo + int(block_rows)], centroids, sums=sums[b], counts=counts[b], stream=stream)
    return labels, dist


@_on_stream
def column_moments(
    x: DeviceArray, *, deviations: bool = False, stream: Stream | None = None
) -> tuple[_np.ndarray, ...]:
    """Return ``(sums, m2)``: each column's sum and its squared deviations about the column mean (float64 host).

    ``m2[f] = sum_i (x[i, f] - sums[f] / m)^2``, both accumulated in float64 over the rows in order (one thread per
    column on a GPU): the block moments hpc.ml merges. With ``deviations=True``, ``(sums, m2, devs)``: also
    ``devs[f] = sum_i (x[i, f] - sums[f] / m)``, what the rounding of the mean left out of it (data with a large
    offset lose units in ``sums``), for the corrected two-pass formula. Waits for the result.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    _rows_fit_int("x", x)
    m, d = x.shape
    if m == 0:
        result = (_np.zeros(d), _np.zeros(d), _np.zeros(d))
    elif not _gpu():
        x64 = _host(x).astype(_np.float64)
        sums = x64.sum(axis=0)
        centred = x64 - sums / m
        result = (sums, (centred**2).sum(axis=0), centred.sum(axis=0))
    else:
        _ready(stream, x)
        out = DeviceArray((3, d), _np.float64, device_index=x.device_index)
        if d:
            k = module.load("columns", x.device_index).kernel(f"column_moments_{_SUFFIX[x.dtype]}", "PPPPii")
            k((_builtins.min(-(-d // BLOCK), 65535),), (BLOCK,), x, out[0], out[1], out[2], m, d, stream=stream)
        out.stream = stream
        host = out.get()
        result = (host[0].copy(), host[1].copy(), host[2].copy())
    return result if deviations else result[:2]


@_on_stream
def subtract_row(
    x: DeviceArray, shift: _Any, *, out: DeviceArray | None = None, stream: Stream | None = None
) -> DeviceArray:
    """Return ``x - shift`` for a 2-D ``x`` and a row ``shift`` of ``d`` values, computed in ``x``'s dtype.

    The same bits as NumPy's ``x - shift.astype(x.dtype)``; ``out`` (default: a new array) may be ``x`` itself.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    m, d = x.shape
    out = _out(out, x, x.shape)
    row = _np.ascontiguousarray(shift.get() if isinstance(shift, DeviceArray) else shift, dtype=x.dtype)
    if row.shape != (d,):
        raise ValueError(f"shift must have shape ({d},); got {row.shape}")
    if not _gpu():
        _np.subtract(_host(x), row, out=_host(out))
        return out
    shift_dev = to_device(row, stream, device=x.device_index)
    _ready(stream, x, out)
    if m and d:
        k = module.load("columns", x.device_index).kernel(f"subtract_row_{_SUFFIX[x.dtype]}", "PPPqi")
        k((_blocks(m * d, 4, 1 << 20),), (BLOCK,), x, shift_dev, out, m, d, stream=stream)
    if stream is not None:
        stream._keep_until_done(shift_dev)
    return out


def _row_vector(name: str, a: _Any, m: int, dtype: _Any, like: DeviceArray) -> DeviceArray:
    """Return the per-row values ``a`` as an ``(m,)`` DeviceArray of ``dtype`` on ``like``'s device."""
    if isinstance(a, DeviceArray):
        if a.shape != (m,):
            raise ValueError(f"{name} must have shape ({m},); got {a.shape}")
        a._check_live()
        if a.dtype == _np.dtype(dtype) and a.c_contiguous:
            return a
        # another dtype (float32 targets, int32 labels), as the host kernel and the fallback take them: converted
        # through the host once
        return to_device(_np.ascontiguousarray(a.get(), dtype=dtype), device=like.device_index)
    host = _np.ascontiguousarray(a, dtype=dtype)
    if host.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},); got {host.shape}")
    return to_device(host, device=like.device_index)


def _host_vector(name: str, a: _Any, m: int) -> _np.ndarray:
    """Return per-row values (host or device) as an ``(m,)`` float64 host array (host fallback only)."""
    host = _np.asarray(a.get() if isinstance(a, DeviceArray) else a, dtype=_np.float64)
    if host.shape != (m,):
        raise ValueError(f"{name} must have shape ({m},); got {host.shape}")
    return host


def _class_labels(y: _Any, m: int, k: int) -> _np.ndarray:
    """Return host labels ``y`` as int64 ``(m,)`` class indices in ``[0, k)``, checked as the host kernel checks
    them: a float that is not a whole number (0.9) or a string is no class index."""
    given = _np.asarray(y)
    try:
        labels = _np.ascontiguousarray(given, dtype=_np.int64)
    except (TypeError, ValueError):
        labels = None
    if (labels is None or labels.shape != (m,) or (m and (labels.min() < 0 or labels.max() >= k))
            or (given.dtype.kind not in "iub" and not _np.array_equal(labels, given))):
        raise ValueError(f"y must be ({m},) class indices in [0, {k})")
    return labels


def _class_intercepts(intercept: _Any, k: int) -> _np.ndarray:
    """Return ``intercept`` as float64 ``(k,)`` (zeros for None); any other shape is refused, as on the host."""
    if intercept is None:
        return _np.zeros(k)
    # asarray first: ascontiguousarray makes a 0-d value (1,), which the host refuses for k == 1
    b = _np.asarray(intercept.get() if isinstance(intercept, DeviceArray) else intercept, dtype=_np.float64)
    if b.shape != (k,):
        raise ValueError(f"intercept must be ({k},), one per class; got shape {b.shape}")
    return _np.ascontiguousarray(b)


def _loss_grad_gpu(x: DeviceArray, rows_kernel: str, rows_format: str, rows_args: tuple, tail: tuple, width_r: int,
                   stream: Stream | None) -> _np.ndarray:
    """Run logistic.cu's three steps over ``x``; return the host ``(width_r, d + 1)`` sums (see logistic.cu).

    The rows kernel takes ``(x, *rows_args, r, m, d, *tail)``.
    """
    m, d = x.shape
    mod = module.load("logistic", x.device_index)
    suffix = _SUFFIX[x.dtype]
    r = DeviceArray((m, width_r), _np.float64, device_index=x.device_index)
    parts = DeviceArray((_SEGMENTS, width_r, d + 1), _np.float64, device_index=x.device_index)
    out = DeviceArray((width_r, d + 1), _np.float64, device_index=x.device_index)
    _ready(stream, x, *(a for a in rows_args if isinstance(a, DeviceArray)))
    mod.kernel(f"{rows_kernel}_{suffix}", rows_format)(
        (_builtins.min(-(-m // BLOCK), 65535),), (BLOCK,), x, *rows_args, r, m, d, *tail, stream=stream
    )
    cells = _SEGMENTS * width_r * (d + 1)
    mod.kernel(f"weighted_column_sums_{suffix}", "PPPiii")(
        (_builtins.min(-(-cells // BLOCK), 65535),), (BLOCK,), x, r, parts, m, d, width_r, stream=stream
    )
    mod.kernel("logistic_merge_segments", "PPq")(
        (_builtins.min(-(-width_r * (d + 1) // BLOCK), 65535),), (BLOCK,), parts, out, width_r * (d + 1),
        stream=stream,
    )
    out.stream = stream
    return out.get()  # waits for the stream's work, so the temporaries above may go


@_on_stream
def logistic_loss_grad(
    x: DeviceArray,
    y: _Any,
    coef: _Any,
    intercept: float = 0.0,
    sample_weight: _Any = None,
    *,
    stream: Stream | None = None,
) -> tuple[float, _np.ndarray]:
    """Return ``(loss, grad)`` of the binary half-binomial loss summed over the rows of ``x`` (waits for it).

    The twin of :func:`hpc.kernels.logistic_loss_grad`: ``y`` (targets in {0, 1}) and ``sample_weight`` may be
    host arrays or float64 DeviceArrays; ``grad`` is a float64 host array ``(d + 1,)``, the intercept's last.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    _rows_fit_int("x", x)
    m, d = x.shape
    w = _np.ascontiguousarray(coef, dtype=_np.float64)
    if w.shape != (d,):
        raise ValueError(f"coef must have shape ({d},); got {w.shape}")
    if not _gpu():
        xh = _host(x).astype(_np.float64, copy=False)
        t = _host_vector("y", y, m)
        weight = _np.ones(m) if sample_weight is None else _host_vector("sample_weight", sample_weight, m)
        z = xh @ w + float(intercept)
        r = weight * (0.5 * (1.0 + _np.tanh(0.5 * z)) - t)  # the sigmoid, without overflow
        loss = float(_np.sum(weight * (_np.logaddexp(0.0, z) - t * z)))
        return loss, _np.concatenate([xh.T @ r, [r.sum()]])
    targets = _row_vector("y", y, m, _np.float64, x)
    weight = _row_vector("sample_weight", _np.ones(m) if sample_weight is None else sample_weight, m, _np.float64, x)
    if m == 0:
        return 0.0, _np.zeros(d + 1)
    coef_dev = to_device(w, device=x.device_index)
    sums = _loss_grad_gpu(x, "binary_rows", "PPPPdPii", (targets, weight, coef_dev, float(intercept)), (), 2,
                          stream)
    return float(sums[1, d]), sums[0].copy()


@_on_stream
def softmax_loss_grad(
    x: DeviceArray,
    y: _Any,
    coef: _Any,
    intercept: _Any = None,
    sample_weight: _Any = None,
    *,
    stream: Stream | None = None,
) -> tuple[float, _np.ndarray]:
    """Return ``(loss, grad)`` of the multinomial half loss summed over the rows of ``x`` (waits for it).

    The twin of :func:`hpc.kernels.softmax_loss_grad`: ``y`` (class indices, int64) and ``sample_weight`` may be
    host arrays or DeviceArrays; ``grad`` is a float64 host array ``(k, d + 1)``, the intercepts last.

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    _rows_fit_int("x", x)
    m, d = x.shape
    w = _np.ascontiguousarray(coef, dtype=_np.float64)
    if w.ndim != 2 or w.shape[1] != d or w.shape[0] < 1:
        raise ValueError(f"coef must be (k, {d}); got {w.shape}")
    k = w.shape[0]
    if not _gpu():
        xh = _host(x).astype(_np.float64, copy=False)
        labels = _class_labels(y.get() if isinstance(y, DeviceArray) else y, m, k)
        weight = _np.ones(m) if sample_weight is None else _host_vector("sample_weight", sample_weight, m)
        z = xh @ w.T + _class_intercepts(intercept, k)
        top = z.max(axis=1, keepdims=True)
        e = _np.exp(z - top)
        total = e.sum(axis=1, keepdims=True)
        rows = _np.arange(m)
        loss = float(_np.sum(weight * (top[:, 0] + _np.log(total[:, 0]) - z[rows, labels])))
        r = e * (weight[:, None] / total)
        r[rows, labels] -= weight
        return loss, _np.hstack([r.T @ xh, r.sum(axis=0)[:, None]])
    if isinstance(y, DeviceArray) and y.dtype.kind in "iu":
        labels_dev = _row_vector("y", y, m, _np.int64, x)  # integer device labels are trusted to lie in [0, k)
    else:
        labels_dev = to_device(_class_labels(y.get() if isinstance(y, DeviceArray) else y, m, k),
                               device=x.device_index)
    weight = _row_vector("sample_weight", _np.ones(m) if sample_weight is None else sample_weight, m, _np.float64, x)
    b = _class_intercepts(intercept, k)
    if m == 0:
        return 0.0, _np.zeros((k, d + 1))
    coef_dev = to_device(w, device=x.device_index)
    b_dev = to_device(b, device=x.device_index)
    sums = _loss_grad_gpu(x, "softmax_rows", "PPPPPPiii", (labels_dev, weight, coef_dev, b_dev), (k,),
                          k + 1, stream)
    return float(sums[k, d]), sums[:k].copy()


@_on_stream
def gram(x: DeviceArray, y: DeviceArray | None = None, *, centred: bool = True, deviations: bool = False,
         stream: Stream | None = None) -> tuple[_np.ndarray, ...]:
    """Return ``(sums, m2)`` of the columns ``z = [x | y]``: their sums and their Gram matrix (float64 host arrays).

    ``m2 = (z - mean)^T (z - mean)`` about the block's column means with ``centred=True``, else ``z^T z``; exactly
    symmetric. On a GPU each entry is one thread's sum over the rows in order, in float64. With ``deviations=True``,
    ``(sums, m2, devs)``: also each column's ``sum_i (z[i] - mean)`` (zeros with ``centred=False``), as
    :func:`column_moments` gives it. Waits for the result.

    Args:
        x (DeviceArray): ``(m, d)``, float32 or float64.
        y (DeviceArray or None): ``(m, t)`` float64 columns to the right of ``x`` (the targets of a linear model).

    .. versionadded:: 0.1.0
    """
    _check("x", x, (2,))
    _rows_fit_int("x", x)
    m, d = x.shape
    if y is not None:
        _check("y", y, (2,))
        if y.dtype != _np.float64 or y.shape[0] != m:
            raise ValueError(f"y must be a float64 array of {m} rows; got {y.dtype} {y.shape}")
    t = 0 if y is None else y.shape[1]
    w = d + t
    if not _gpu():
        z = _host(x).astype(_np.float64, copy=False)
        if y is not None:
            z = _np.hstack([z, _host(y)])
        sums = z.sum(axis=0)
        devs = _np.zeros(w)
        if centred and m:
            z = z - sums / m
            devs = z.sum(axis=0)
        result = (sums, z.T @ z, devs)
        return result if deviations else result[:2]
    # rows of out: 0 the sums; 1..w the Gram matrix; w + 1 the deviations
    out = DeviceArray((w + 2, w), _np.float64, device_index=x.device_index)
    if m == 0 or w == 0:
        result = (_np.zeros(w), _np.zeros((w, w)), _np.zeros(w))
        return result if deviations else result[:2]
    _ready(stream, x, *(() if y is None else (y,)))
    mod = module.load("columns", x.device_index)
    suffix = _SUFFIX[x.dtype]
    other = x if y is None else y  # never read when t == 0
    mod.kernel(f"pair_sums_{suffix}", "PPPiii")(
        (_builtins.min(-(-w // BLOCK), 65535),), (BLOCK,), x, other, out[0], m, d, t, stream=stream
    )
    out.stream = stream
    sums = out[0].get()
    shift = to_device(sums / m if centred else _np.zeros(w), device=x.device_index)
    mod.kernel(f"gram_{suffix}", "PPPPPiii")(
        (_builtins.min(-(-w * w // BLOCK), 65535),), (BLOCK,), x, other, shift, out[1 : w + 1], out[w + 1], m, d, t,
        stream=stream,
    )
    host = out.get()
    result = (host[0].copy(), host[1 : w + 1].copy(), host[w + 1].copy())
    return result if deviations else result[:2]
