"""One Jacobi step of the 2-D 5-point Laplace stencil: each interior point becomes the mean of its 4 neighbours.

``out[i, j] = 0.25 * (u[i-1, j] + u[i+1, j] + u[i, j-1] + u[i, j+1])`` for interior points; the boundary rows
and columns are copied unchanged (Dirichlet). The parallel variant gives each thread a block of rows; the inner
loop over a row is contiguous and vectorized.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._flags import ELEMENTWISE

__all__ = ["jacobi_step"]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _row(u, out, i):  # pragma: no cover - compiled by numba
    m = u.shape[1]
    out[i, 0] = u[i, 0]
    for j in range(1, m - 1):
        out[i, j] = 0.25 * (((u[i - 1, j] + u[i + 1, j]) + u[i, j - 1]) + u[i, j + 1])  # NumPy's order
    out[i, m - 1] = u[i, m - 1]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _edges(u, out):  # pragma: no cover - compiled by numba
    n = u.shape[0]
    for j in range(u.shape[1]):
        out[0, j] = u[0, j]
        out[n - 1, j] = u[n - 1, j]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _jacobi_serial(u, out):  # pragma: no cover - compiled by numba
    _edges(u, out)
    for i in range(1, u.shape[0] - 1):
        _row(u, out, i)


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _jacobi_parallel(u, out):  # pragma: no cover - compiled by numba
    _edges(u, out)
    for i in _prange(1, u.shape[0] - 1):
        _row(u, out, i)


def jacobi_step(u: _np.ndarray, *, out: _np.ndarray | None = None, parallel: bool | None = None) -> _np.ndarray:
    """Return one Jacobi sweep of the 5-point stencil over 2-D grid ``u`` (boundary kept).

    Args:
        u (numpy.ndarray): 2-D, float32 or float64, any strides; at least 1 x 1.
        out (numpy.ndarray or None): ``u``'s shape and dtype; must not overlap ``u`` (a Jacobi step reads the
            old grid while writing the new one).
        parallel (bool or None): blocks of rows per thread under ``prange``; ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> u = np.zeros((3, 3)); u[0, 1] = 4.0
        >>> kernels.jacobi_step(u)[1, 1]
        np.float64(1.0)
    """
    u = _checks.matrix("u", u)
    out = _checks.out_array(out, u.shape, u.dtype)
    if u.size and _np.shares_memory(u, out):
        raise ValueError("out must not overlap u (a Jacobi step reads the old grid); got an overlapping array")
    if u.shape[0] < 2 or u.shape[1] < 2:
        out[...] = u
        return out
    (_jacobi_parallel if _checks.use_parallel(parallel, u.size) else _jacobi_serial)(u, out)
    return out
