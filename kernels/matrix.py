"""Matrix products: ``gemv`` and ``gemm`` dispatch to the BLAS NumPy links; ``gemm_tiled`` is numba, for benchmarks.

BLAS already reaches this machine's FLOP ceiling, so ``gemv``/``gemm`` only check their arguments and call
``numpy.matmul`` (with ``out=``). ``parallel=False`` limits the BLAS to one thread for the call (through
threadpoolctl: this affects the whole process while it runs; there is no per-thread isolation). ``gemm_tiled``
is a cache-blocked numba kernel kept as a benchmark entry, to show how far a plain LLVM-vectorized loop gets.
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
    if parallel is False:
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


def gemv(a, x, *, out=None, parallel=None):
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


def gemm(a, b, *, out=None, parallel=None):
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


_TM = 64
_TK = 256


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _gemm_block(a, b, out, i0, i1):  # pragma: no cover - compiled by numba
    k = a.shape[1]
    n = b.shape[1]
    for k0 in range(0, k, _TK):
        k1 = min(k, k0 + _TK)
        for i in range(i0, i1):
            for p in range(k0, k1):
                aip = a[i, p]
                for j in range(n):  # contiguous in b and out: vectorized FMA
                    out[i, j] += aip * b[p, j]


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _gemm_tiled_parallel(a, b, out):  # pragma: no cover - compiled by numba
    m = a.shape[0]
    out[:, :] = 0.0
    for t in _prange((m + _TM - 1) // _TM):
        _gemm_block(a, b, out, t * _TM, min(m, (t + 1) * _TM))


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _gemm_tiled_serial(a, b, out):  # pragma: no cover - compiled by numba
    out[:, :] = 0.0
    _gemm_block(a, b, out, 0, a.shape[0])


def gemm_tiled(a, b, *, out=None, parallel=None):
    """Return ``a @ b`` computed by a cache-blocked numba loop (a benchmark entry; use :func:`gemm`).

    Example:
        >>> import numpy as np; from hpc.kernels import matrix
        >>> matrix.gemm_tiled(np.eye(2), np.ones((2, 2))).tolist()
        [[1.0, 1.0], [1.0, 1.0]]
    """
    a, b, out = _gemm_operands(a, b, out)
    par = _checks.use_parallel(parallel, a.shape[0] * a.shape[1] * b.shape[1], 1 << 15)
    (_gemm_tiled_parallel if par else _gemm_tiled_serial)(a, b, out)
    return out
