"""Pairwise squared Euclidean distances (``scipy.spatial.distance.cdist(..., 'sqeuclidean')``) and k-means assignment.

Distances are computed directly, ``sum((x_i - y_j)**2)`` over the features (vectorized along them), not through
``|x|^2 + |y|^2 - 2 x.y``, so they are never negative and exact for identical points. The parallel variants
give each thread a block of rows of ``x``.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._flags import REDUCE

__all__ = ["kmeans_assign", "sqdist"]


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _d2(x, i, y, j):  # pragma: no cover - compiled by numba
    acc = 0.0
    for f in range(x.shape[1]):
        d = _np.float64(x[i, f]) - _np.float64(y[j, f])
        acc += d * d
    return acc


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sqdist_serial(x, y, out):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _d2(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _sqdist_parallel(x, y, out):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _d2(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _assign_row(x, i, c):  # pragma: no cover - compiled by numba
    best = 0
    bd = _d2(x, i, c, 0)
    for j in range(1, c.shape[0]):
        d = _d2(x, i, c, j)
        if d < bd or (bd != bd and d == d):  # a number beats NaN; ties keep the first
            bd = d
            best = j
    return best, bd


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _assign_serial(x, c, labels, dist):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        labels[i], dist[i] = _assign_row(x, i, c)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _assign_parallel(x, c, labels, dist):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        labels[i], dist[i] = _assign_row(x, i, c)


def _points(x, y, yname):
    x = _checks.matrix("x", x)
    y = _checks.matrix(yname, y)
    _checks.check_same_dtype(x=x, **{yname: y})
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{yname} must have {x.shape[1]} columns (features) like x; got shape {y.shape}")
    return x, y


def sqdist(x, y, *, out=None, parallel=None):
    """Return the ``(m, n)`` matrix of squared Euclidean distances between the rows of ``x`` and of ``y``.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64, any strides.
        y (numpy.ndarray): 2-D ``(n, d)`` of ``x``'s dtype.
        out (numpy.ndarray or None): ``(m, n)`` of ``x``'s dtype.
        parallel (bool or None): rows of ``x`` shared among threads; ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.sqdist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]])).tolist()
        [[25.0, 1.0]]
    """
    x, y = _points(x, y, "y")
    out = _checks.out_array(out, (x.shape[0], y.shape[0]), x.dtype)
    work = x.shape[0] * y.shape[0] * max(1, x.shape[1])
    (_sqdist_parallel if _checks.use_parallel(parallel, work) else _sqdist_serial)(x, y, out)
    return out


def kmeans_assign(x, centroids, *, parallel=None):
    """Return ``(labels, sqdists)``: each row's nearest centroid (first one on ties) and its squared distance.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64, any strides.
        centroids (numpy.ndarray): 2-D ``(k, d)`` of ``x``'s dtype, ``k >= 1``.
        parallel (bool or None): rows of ``x`` shared among threads; ``None`` decides by size.

    Returns:
        ``labels`` (int64, ``(m,)``) equal to ``sqdist(x, centroids).argmin(axis=1)`` for finite input, and
        ``sqdists`` (``x``'s dtype). A NaN distance never wins over a number; a row whose distances are all NaN
        gets label 0 and distance NaN.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.kmeans_assign(np.array([[0.0], [9.0]]), np.array([[1.0], [8.0]]))[0].tolist()
        [0, 1]
    """
    x, c = _points(x, centroids, "centroids")
    if c.shape[0] == 0:
        raise ValueError(f"centroids must have at least one row; got shape {c.shape}")
    labels = _np.empty(x.shape[0], _np.int64)
    dist = _np.empty(x.shape[0], x.dtype)
    work = x.shape[0] * c.shape[0] * max(1, x.shape[1])
    (_assign_parallel if _checks.use_parallel(parallel, work) else _assign_serial)(x, c, labels, dist)
    return labels, dist
