"""BLAS level-1 kernels: ``axpy``, ``scal``, ``dot``, ``nrm2`` (overflow-safe), ``asum``.

As in BLAS, ``axpy`` and ``scal`` update their vector in place unless ``out=`` is given; a large ``out=`` apart
from the inputs is written with streaming stores (``hpc.kernels._checks.use_streaming``). Reductions accumulate in
float64 (float32 input too) and return a scalar of the input dtype; the parallel variants cut the input into
fixed ``CHUNK``-element chunks combined in chunk order (see ``hpc.kernels.reductions``).
"""

from __future__ import annotations

import math as _math

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._dispatch import gpu_twin
from ._flags import ELEMENTWISE, REDUCE
from ._types import Array, Real, Scalar
from .intrinsics import STREAM_BYTES as _STREAM_BYTES
from .intrinsics import store_fence as _store_fence
from .intrinsics import stream_axpy as _stream_axpy
from .intrinsics import stream_scal as _stream_scal
from .intrinsics import stream_start as _stream_start
from .reductions import CHUNK, _sum_range

__all__ = ["asum", "axpy", "dot", "nrm2", "scal"]


# Parallel variants hand each chunk to the range kernel as a slice view starting at 0: with offsets into the
# whole array numba did not vectorize the inner loop inside prange (10 GB/s instead of 35 here).


# ------------------------------------------------------------------------------------------ axpy, scal
@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpy_serial(a, x, y, out):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        out[i] = a * x[i] + y[i]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _axpy_parallel(a, x, y, out):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        out[i] = a * x[i] + y[i]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _scal_serial(a, x, out):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        out[i] = a * x[i]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _scal_parallel(a, x, out):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        out[i] = a * x[i]


# In place (out is y, or x for scal): LLVM's runtime overlap check sees out overlap its input and takes the scalar
# loop, 2.5-4x slower than these two-array forms; the same element read and written is safe, and they vectorize.
@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpy_into_y_serial(a, x, y):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        y[i] += a * x[i]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _axpy_into_y_parallel(a, x, y):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        y[i] += a * x[i]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _scal_in_place_serial(a, x):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        x[i] *= a


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _scal_in_place_parallel(a, x):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        x[i] *= a


# Streaming variants (large out= apart from the inputs, see _checks.use_streaming): ordinary stores up to out's
# first 64-byte boundary and after its last, non-temporal vector stores between.
@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpy_stream_view(a, x, y, out):  # pragma: no cover - compiled by numba
    n = out.shape[0]
    lanes = _STREAM_BYTES // out.itemsize
    i = _stream_start(out)
    for j in range(i):
        out[j] = a * x[j] + y[j]
    while i + lanes <= n:
        _stream_axpy(a, x, y, out, i)
        i += lanes
    for j in range(i, n):
        out[j] = a * x[j] + y[j]
    _store_fence()


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpy_stream_serial(a, x, y, out):  # pragma: no cover - compiled by numba
    _axpy_stream_view(a, x, y, out)


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _axpy_stream_parallel(a, x, y, out):  # pragma: no cover - compiled by numba
    n = out.shape[0]
    for c in _prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _axpy_stream_view(a, x[lo:hi], y[lo:hi], out[lo:hi])


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _scal_stream_view(a, x, out):  # pragma: no cover - compiled by numba
    n = out.shape[0]
    lanes = _STREAM_BYTES // out.itemsize
    i = _stream_start(out)
    for j in range(i):
        out[j] = a * x[j]
    while i + lanes <= n:
        _stream_scal(a, x, out, i)
        i += lanes
    for j in range(i, n):
        out[j] = a * x[j]
    _store_fence()


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _scal_stream_serial(a, x, out):  # pragma: no cover - compiled by numba
    _scal_stream_view(a, x, out)


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _scal_stream_parallel(a, x, out):  # pragma: no cover - compiled by numba
    n = out.shape[0]
    for c in _prange((n + CHUNK - 1) // CHUNK):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _scal_stream_view(a, x[lo:hi], out[lo:hi])


def _pair(x, y):
    if _checks.plain_vectors(x, y):  # the common case in one test
        return x, y
    xv = _checks.as_vector("x", x)
    yv = _checks.as_vector("y", y)
    _checks.check_same_dtype(x=xv, y=yv)
    if _np.shape(x) != _np.shape(y):  # the arrays' own shapes: (2, 3) and (3, 2) flatten alike
        raise ValueError(f"y must have the shape of x, {_np.shape(x)}; got {_np.shape(y)}")
    return xv, yv


def _out_vector(out, like, shape):
    out = _checks.out_array(out, shape, like.dtype)
    return _checks.as_vector("out", out)


@gpu_twin
def axpy(a: Real, x: Array, y: Array, *, out: Array | None = None, parallel: bool | None = None) -> Array:
    """Compute ``a*x + y`` into ``out``, or into ``y`` itself when ``out`` is ``None`` (BLAS ``daxpy``).

    Args:
        a (float): the scalar.
        x, y (numpy.ndarray): float32 or float64 of one shape and dtype; 1-D of any stride or N-D C-contiguous.
        out (numpy.ndarray or None): where to write; ``None`` updates ``y`` in place. An ``out`` (or ``y``)
            overlapping an input other than element for element reads a copy of that input.
        parallel (bool or None): use the ``prange`` variant; ``None`` decides by size.

    Returns:
        ``out`` (or ``y``).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> y = np.ones(3); _ = kernels.axpy(2.0, np.arange(3.0), y); y.tolist()
        [1.0, 3.0, 5.0]
    """
    # the common case, with nothing to check or copy, in two tests
    if out is not None and _checks.plain_vectors(out, x, y) and _checks.owned_apart(out, x, y):
        target = ov = out
        xv, yv = x, y
    else:
        xv, yv = _pair(x, y)
        target = _checks.writeable("y", y, "axpy updates it when out is None") if out is None else _checks.out_array(
            out, y.shape, y.dtype
        )
        ov = yv if out is None else _checks.as_vector("out", target)
        xv, yv = _checks.apart(ov, xv), _checks.apart(ov, yv)
    a = _checks.real_scalar("a", a, xv.dtype)
    par = _checks.use_parallel(parallel, xv.shape[0])
    if _checks.same_elements(ov, yv):
        (_axpy_into_y_parallel if par else _axpy_into_y_serial)(a, xv, yv)
    elif _checks.use_streaming(ov, xv, yv):
        (_axpy_stream_parallel if par else _axpy_stream_serial)(a, xv, yv, ov)
    else:
        (_axpy_parallel if par else _axpy_serial)(a, xv, yv, ov)
    return target


def scal(a: Real, x: _np.ndarray, *, out: _np.ndarray | None = None, parallel: bool | None = None) -> _np.ndarray:
    """Compute ``a*x`` into ``out``, or into ``x`` itself when ``out`` is ``None`` (BLAS ``dscal``).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.scal(3.0, np.arange(3.0)).tolist()
        [0.0, 3.0, 6.0]
    """
    xv = _checks.as_vector("x", x)
    target = _checks.writeable("x", x, "scal updates it when out is None") if out is None else _checks.out_array(
        out, x.shape, x.dtype
    )
    ov = xv if out is None else _checks.as_vector("out", target)
    xv = _checks.apart(ov, xv)
    a = _checks.real_scalar("a", a, xv.dtype)
    par = _checks.use_parallel(parallel, xv.shape[0])
    if _checks.same_elements(ov, xv):
        (_scal_in_place_parallel if par else _scal_in_place_serial)(a, xv)
    elif _checks.use_streaming(ov, xv):
        (_scal_stream_parallel if par else _scal_stream_serial)(a, xv, ov)
    else:
        (_scal_parallel if par else _scal_serial)(a, xv, ov)
    return target


# ----------------------------------------------------------------------------------------------- dot, asum
@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _dot_range(x, y, lo, hi):  # pragma: no cover - compiled by numba
    acc = 0.0
    for i in range(lo, hi):
        acc += _np.float64(x[i]) * _np.float64(y[i])
    return acc


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _dot_serial(x, y):  # pragma: no cover - compiled by numba
    return _dot_range(x, y, 0, x.shape[0])


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _dot_parallel(x, y):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    parts = _np.empty(nchunks, _np.float64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        parts[c] = _dot_range(x[lo:hi], y[lo:hi], 0, hi - lo)
    return _sum_range(parts, 0, nchunks)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _asum_range(x, lo, hi):  # pragma: no cover - compiled by numba
    acc = 0.0
    for i in range(lo, hi):
        acc += abs(_np.float64(x[i]))
    return acc


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _asum_serial(x):  # pragma: no cover - compiled by numba
    return _asum_range(x, 0, x.shape[0])


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _asum_parallel(x):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    parts = _np.empty(nchunks, _np.float64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        parts[c] = _asum_range(x[lo:hi], 0, hi - lo)
    return _sum_range(parts, 0, nchunks)


@gpu_twin
def dot(x: Array, y: Array, *, parallel: bool | None = None) -> Scalar:
    """Return the inner product ``sum(x * y)`` (BLAS ``ddot``), accumulated in float64.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.dot(np.arange(4.0), np.ones(4)))
        6.0
    """
    xv, yv = _pair(x, y)
    par = _checks.use_parallel(parallel, xv.shape[0])
    return xv.dtype.type(_dot_parallel(xv, yv) if par else _dot_serial(xv, yv))


def asum(x: _np.ndarray, *, parallel: bool | None = None) -> Scalar:
    """Return ``sum(abs(x))`` (BLAS ``dasum``), accumulated in float64.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.asum(np.array([-1.0, 2.0, -3.0])))
        6.0
    """
    xv = _checks.as_vector("x", x)
    par = _checks.use_parallel(parallel, xv.shape[0])
    return xv.dtype.type(_asum_parallel(xv) if par else _asum_serial(xv))


# ------------------------------------------------------------------------------------------------------ nrm2
# First the plain sum of squares (one vectorized pass, as fast as dot): when it is finite and at least _SAFE_SUMSQ,
# no square overflowed, and the squares that underflowed (values below 2**-537) each lost less than 2**-1074,
# nothing beside a total of 2**-600 or more (relative error n * 2**-474), so its square root is the norm. Otherwise
# (an overflow, all-tiny data, a zero vector, inf or NaN) a second pass with Blue's three accumulators, as LAPACK
# 3.10's dnrm2 (Anderson 2017): squares of values below TSML are summed scaled up by SSML, above TBIG scaled down by
# SBIG, the rest unscaled; no division, no overflow.
_SAFE_SUMSQ = 2.0**-600
_TSML = 2.0**-511
_TBIG = 2.0**486
_SSML = 2.0**537
_SBIG = 2.0**-538


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _nrm2_range(x, lo, hi):  # pragma: no cover - compiled by numba
    asml = 0.0
    amed = 0.0
    abig = 0.0
    for i in range(lo, hi):
        ax = abs(_np.float64(x[i]))
        big = ax > _TBIG
        sml = ax < _TSML
        # select, then multiply: each accumulator squares only its own values (0 for the others). Squaring every
        # value three ways and discarding two made (|x| 2**-538)**2 for ordinary values, a subnormal, and each
        # subnormal result costs a microcode assist on Intel cores (nrm2 ran at 0.03x NumPy there)
        t = (ax if big else 0.0) * _SBIG
        s = (ax if sml else 0.0) * _SSML
        m = 0.0 if (big or sml) else ax  # a NaN lands here and propagates
        abig += t * t
        asml += s * s
        amed += m * m
    return asml, amed, abig


@_njit(cache=True, nogil=True)
def _nrm2_combine(asml, amed, abig):  # pragma: no cover - compiled by numba
    if abig > 0.0:
        if amed > 0.0 or amed != amed:
            abig += (amed * _SBIG) * _SBIG
        return _math.sqrt(abig) / _SBIG
    if asml > 0.0:
        if amed > 0.0 or amed != amed:
            amed = _math.sqrt(amed)
            asml = _math.sqrt(asml) / _SSML
            ymin, ymax = (amed, asml) if asml > amed else (asml, amed)
            return ymax * _math.sqrt(1.0 + (ymin / ymax) ** 2)
        return _math.sqrt(asml) / _SSML
    return _math.sqrt(amed)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _nrm2_serial(x):  # pragma: no cover - compiled by numba
    plain = _dot_range(x, x, 0, x.shape[0])  # the plain sum of squares
    if _SAFE_SUMSQ <= plain < _np.inf:
        return _math.sqrt(plain)
    asml, amed, abig = _nrm2_range(x, 0, x.shape[0])
    return _nrm2_combine(asml, amed, abig)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _nrm2_parallel(x):  # pragma: no cover - compiled by numba
    # both passes' prange loops in this one function: a parallel function calling another nests parallel regions,
    # which cost milliseconds per call
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    plain_parts = _np.empty(nchunks, _np.float64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        plain_parts[c] = _dot_range(x[lo:hi], x[lo:hi], 0, hi - lo)
    plain = _sum_range(plain_parts, 0, nchunks)
    if _SAFE_SUMSQ <= plain < _np.inf:
        return _math.sqrt(plain)
    parts = _np.empty((3, nchunks), _np.float64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        asml, amed, abig = _nrm2_range(x[lo:hi], 0, hi - lo)
        parts[0, c] = asml
        parts[1, c] = amed
        parts[2, c] = abig
    return _nrm2_combine(
        _sum_range(parts[0], 0, nchunks), _sum_range(parts[1], 0, nchunks), _sum_range(parts[2], 0, nchunks)
    )


@gpu_twin
def nrm2(x: Array, *, parallel: bool | None = None) -> Scalar:
    """Return the Euclidean norm ``sqrt(sum(x**2))`` without overflow or underflow (BLAS ``dnrm2``).

    One vectorized pass of plain squares when their sum is safely in range (the common case: as fast as ``dot``),
    else a second with Blue's three scaled accumulators (as LAPACK 3.10): values up to the float64 maximum and
    down to the subnormals give the correctly scaled result; a NaN gives NaN, an infinity (without NaN) inf.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.nrm2(np.array([3e300, 4e300])))
        5e+300
    """
    xv = _checks.as_vector("x", x)
    par = _checks.use_parallel(parallel, xv.shape[0])
    return xv.dtype.type(_nrm2_parallel(xv) if par else _nrm2_serial(xv))
