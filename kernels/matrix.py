"""Matrix products: ``gemv`` and ``gemm`` dispatch to the BLAS NumPy links; ``gemm_tiled`` is numba, for benchmarks.

BLAS already reaches this machine's FLOP ceiling, so ``gemv``/``gemm`` only check their arguments and call
``numpy.matmul`` (with ``out=``). ``parallel=False`` limits the BLAS to one thread for the call (through
threadpoolctl: this affects the whole process while it runs; there is no per-thread isolation). ``gemm_tiled``
is a cache-blocked numba kernel (4x4 tiles of dot products over a transposed copy of ``b`` where numba compiles
for AVX-512, 4x2 tiles elsewhere) kept as a benchmark entry, to show how far an LLVM-vectorized loop gets against
BLAS.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._flags import REDUCE

__all__ = ["gemm", "gemm_tiled", "gemv"]

_controller = None


def _blas_limit(parallel):
    global _controller
    if _checks.check_parallel(parallel) is False:
        if _controller is None:
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        return _controller.limit(limits=1, user_api="blas")
    return None


def _matmul(a, b, out, parallel):
    limit = _blas_limit(parallel)
    if limit is None:
        return _np.matmul(a, b, out=out)
    with limit:
        return _np.matmul(a, b, out=out)


def gemv(
    a: _np.ndarray, x: _np.ndarray, *, out: _np.ndarray | None = None, parallel: bool | None = None,
) -> _np.ndarray:
    """Return the matrix-vector product ``a @ x`` (BLAS ``dgemv``).

    Args:
        a (numpy.ndarray): 2-D ``(m, n)``, float32 or float64.
        x (numpy.ndarray): 1-D ``(n,)`` of ``a``'s dtype.
        out (numpy.ndarray or None): 1-D ``(m,)`` of ``a``'s dtype.
        parallel (bool or None): ``False`` runs the BLAS on one thread; otherwise its own threads.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.gemv(np.eye(2), np.array([1.0, 2.0])).tolist()
        [1.0, 2.0]
    """
    a = _checks.matrix("a", a)
    x = _checks.check_float("x", x)
    _checks.check_same_dtype(a=a, x=x)
    if x.ndim != 1 or x.shape[0] != a.shape[1]:
        raise ValueError(f"x must have shape ({a.shape[1]},) to match a's columns; got {x.shape}")
    out = _checks.out_array(out, (a.shape[0],), a.dtype)
    return _matmul(a, x, out, parallel)


def gemm(
    a: _np.ndarray, b: _np.ndarray, *, out: _np.ndarray | None = None, parallel: bool | None = None,
) -> _np.ndarray:
    """Return the matrix product ``a @ b`` (BLAS ``dgemm``).

    Args:
        a (numpy.ndarray): 2-D ``(m, k)``, float32 or float64.
        b (numpy.ndarray): 2-D ``(k, n)`` of ``a``'s dtype.
        out (numpy.ndarray or None): 2-D ``(m, n)`` of ``a``'s dtype.
        parallel (bool or None): ``False`` runs the BLAS on one thread; otherwise its own threads.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.gemm(np.eye(2), np.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
        [[1.0, 2.0], [3.0, 4.0]]
    """
    a, b, out = _gemm_operands(a, b, out)
    return _matmul(a, b, out, parallel)


def _gemm_operands(a, b, out):
    """Check ``a @ b`` operands (2-D, same float dtype, matching inner sizes) and ``out``; return them."""
    a = _checks.matrix("a", a)
    b = _checks.matrix("b", b)
    _checks.check_same_dtype(a=a, b=b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"b must have {a.shape[1]} rows to match a's columns; got shape {b.shape}")
    return a, b, _checks.out_array(out, (a.shape[0], b.shape[1]), a.dtype)


#: columns of ``out`` per task: a task transposes its columns of ``b`` itself, so they are in its own core's cache
_TN = 32
#: inner-dimension length per cache block: the four rows of ``a`` and of ``b``'s transpose that one 4x4 tile reads
#: are 32 KiB of float64, in L1
_TK = 512


# gemm_tiled is a loop of 4x4 tiles of dot products: out[i:i+4, j:j+4] += a[i:i+4, k0:k1] @ bt[j:j+4, k0:k1].T.
# LLVM vectorizes each tile's loop over the inner dimension as 16 reductions held in vector registers: 8 loads for
# 16 FMAs (4x2 tiles, 6 loads for 8 FMAs, where there are 16 vector registers: see _wide_tiles). The plain form
# (out[i, :] += a[i, p] * b[p, :]) loads and stores a row of out for every FMA, and numba cannot hold a register
# tile of out any other way (LLVM's SLP vectorizer is off in numba). Hence b is transposed first, by a loop into a
# new C array (np.ascontiguousarray(b.T) types as any-layout in numba, whose run-time strides turn the loads into
# gathers), and the tile is inlined into its caller: as a call, passing eight array slices cost more than its loop
# at n = 64. Parallel tasks split the columns of out, not its rows: each task then transposes only its own columns
# of b, in its own core's cache (with one transpose shared by all tasks, the other core read it from the first's
# cache; docs/performance.md, "hpc bench kernels").
@_njit(cache=True, nogil=True, fastmath=REDUCE, inline="always")
def _dot_4x4(a, i, bt, j, k0, k1):  # pragma: no cover - compiled by numba
    a0, a1, a2, a3 = a[i, k0:k1], a[i + 1, k0:k1], a[i + 2, k0:k1], a[i + 3, k0:k1]
    b0, b1, b2, b3 = bt[j, k0:k1], bt[j + 1, k0:k1], bt[j + 2, k0:k1], bt[j + 3, k0:k1]
    c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = 0.0
    for p in range(a0.shape[0]):  # slices from 0: numba then needs no negative-index fix-up, and LLVM vectorizes
        x0, x1, x2, x3 = a0[p], a1[p], a2[p], a3[p]
        y0, y1, y2, y3 = b0[p], b1[p], b2[p], b3[p]
        c00 += x0 * y0
        c01 += x0 * y1
        c02 += x0 * y2
        c03 += x0 * y3
        c10 += x1 * y0
        c11 += x1 * y1
        c12 += x1 * y2
        c13 += x1 * y3
        c20 += x2 * y0
        c21 += x2 * y1
        c22 += x2 * y2
        c23 += x2 * y3
        c30 += x3 * y0
        c31 += x3 * y1
        c32 += x3 * y2
        c33 += x3 * y3
    return (c00, c01, c02, c03), (c10, c11, c12, c13), (c20, c21, c22, c23), (c30, c31, c32, c33)


@_njit(cache=True, nogil=True, fastmath=REDUCE, inline="always")
def _dot_4x2(a, i, bt, j, k0, k1):  # pragma: no cover - compiled by numba
    a0, a1, a2, a3 = a[i, k0:k1], a[i + 1, k0:k1], a[i + 2, k0:k1], a[i + 3, k0:k1]
    b0, b1 = bt[j, k0:k1], bt[j + 1, k0:k1]
    c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = 0.0
    for p in range(a0.shape[0]):
        x0, x1, x2, x3 = a0[p], a1[p], a2[p], a3[p]
        y0, y1 = b0[p], b1[p]
        c00 += x0 * y0
        c01 += x0 * y1
        c10 += x1 * y0
        c11 += x1 * y1
        c20 += x2 * y0
        c21 += x2 * y1
        c30 += x3 * y0
        c31 += x3 * y1
    return (c00, c01), (c10, c11), (c20, c21), (c30, c31)


def _wide_tiles() -> bool:
    """Whether numba compiles for 32 vector registers (AVX-512): a 4x4 tile's 16 accumulators and 8 loaded vectors
    fit there. With 16 registers (AVX2) they spill, and a 4x2 tile (8 + 6) ran 1.4x faster at n = 1024 and n = 64 on
    a znver3 CPU, where 4x4 fell to 0.53x np.matmul (docs/performance.md). A NUMBA_CPU_NAME override takes the
    narrow tile, which suits any target."""
    import os

    if os.environ.get("NUMBA_CPU_NAME"):
        return False
    from llvmlite import binding

    return bool(binding.get_host_cpu_features().get("avx512f"))


_WIDE = _wide_tiles()


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _dot(x, y):  # pragma: no cover - compiled by numba
    s = 0.0
    for p in range(x.shape[0]):
        s += x[p] * y[p]
    return s


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _gemm_tile(a, bt, out, i0, i1, j0, j1, k0, k1, wide):  # pragma: no cover - compiled by numba
    im = i0 + (i1 - i0) // 4 * 4
    width = 4 if wide else 2
    jm = j0 + (j1 - j0) // width * width
    if wide:  # one branch per call, outside the loops: each loop nest stays branch-free
        for i in range(i0, im, 4):
            for j in range(j0, jm, 4):
                rows4 = _dot_4x4(a, i, bt, j, k0, k1)
                for r in range(4):
                    for c in range(4):
                        out[i + r, j + c] += rows4[r][c]
    else:
        for i in range(i0, im, 4):
            for j in range(j0, jm, 2):
                rows2 = _dot_4x2(a, i, bt, j, k0, k1)
                for r in range(4):
                    for c in range(2):
                        out[i + r, j + c] += rows2[r][c]
    for i in range(i0, i1):  # the edges: rows below the last full tile, columns right of it
        for j in range(jm if i < im else j0, j1):
            out[i, j] += _dot(a[i, k0:k1], bt[j, k0:k1])


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _gemm_columns(a, b, out, j0, j1, wide):  # pragma: no cover - compiled by numba
    m, k = a.shape
    bt = _np.empty((j1 - j0, k), a.dtype)
    for j in range(j0, j1):
        for p in range(k):
            bt[j - j0, p] = b[p, j]
    block = out[:, j0:j1]
    block[:, :] = 0.0
    for k0 in range(0, k, _TK):
        _gemm_tile(a, bt, block, 0, m, 0, j1 - j0, k0, min(k, k0 + _TK), wide)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _gemm_tiled_parallel(a, b, out, wide):  # pragma: no cover - compiled by numba
    n = b.shape[1]
    for t in _prange((n + _TN - 1) // _TN):
        _gemm_columns(a, b, out, t * _TN, min(n, (t + 1) * _TN), wide)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _gemm_tiled_serial(a, b, out, wide):  # pragma: no cover - compiled by numba
    n = b.shape[1]
    for j0 in range(0, n, _TN):
        _gemm_columns(a, b, out, j0, min(n, j0 + _TN), wide)


def gemm_tiled(
    a: _np.ndarray, b: _np.ndarray, *, out: _np.ndarray | None = None, parallel: bool | None = None,
) -> _np.ndarray:
    """Return ``a @ b`` computed by a cache-blocked numba loop (a benchmark entry; use :func:`gemm`).

    Example:
        >>> import numpy as np; from hpc.kernels import matrix
        >>> matrix.gemm_tiled(np.eye(2), np.ones((2, 2))).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    a, b, out = _gemm_operands(a, b, out)
    # the tiles read rows of a as unit-stride slices; a and b are read after parts of out are zeroed
    if not a.flags.c_contiguous or _np.may_share_memory(out, a):
        a = a.copy()
    if _np.may_share_memory(out, b):
        b = b.copy()
    par = _checks.use_parallel(parallel, a.shape[0] * a.shape[1] * b.shape[1], 1 << 15)
    (_gemm_tiled_parallel if par else _gemm_tiled_serial)(a, b, out, _WIDE)
    return out
