"""Pairwise squared Euclidean distances (``scipy.spatial.distance.cdist(..., 'sqeuclidean')``) and k-means assignment.

Both run at BLAS speed on the GEMM form ``|x|^2 + |y|^2 - 2 x.y``, a cache-sized tile of rows at a time (the
products ``x @ y.T`` from BLAS, in float64 for either input dtype), with the accuracy of the direct form
``sum((x_i - y_j)**2)``: one compiled pass over each tile recomputes directly every distance the GEMM form could
have cancelled (below 1/8 of ``|x|^2 + |y|^2``, NaN or infinite), so distances are never negative, exact for
identical points and otherwise within a few units of rounding of the direct form (not its bits);
``kmeans_assign`` takes the argmin of direct distances among the centroids whose GEMM-form value lies within twice
the form's rounding bound of the best (the factor 2 covers the rounding of the direct distances compared), so its
labels are the direct form's. The parallel variants share each tile's rows among threads. Small inputs (at most 4096
row x point x feature products) and thin ones (at most 256 point x feature products per row) skip the GEMM form:
every distance is computed directly (rows shared among threads in the parallel variant).
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._dispatch import gpu_twin
from ._flags import REDUCE

__all__ = ["kmeans_assign", "sqdist"]

#: products per tile of the parallel variants: 2 M float64 are 16 MiB, enough work per BLAS call to keep the
#: hand-over between BLAS's threads and numba's a small part of it
_PARALLEL_TILE_PRODUCTS = 1 << 21
#: the parallel variants start from this many products (rows x points): below it one BLAS call and a parallel pass
#: cost more in thread wake-ups (BLAS's spinning threads meeting numba's) than they save: 64 x 256 points took 8 ms
#: that way and 0.2 ms serially
_PARALLEL_MIN_PRODUCTS = 1 << 17
#: The direct form instead of the GEMM form, for both kernels: at most _DIRECT_MAX_WORK in all (rows x points x
#: features: the BLAS call, norms and tiles are then most of a call's cost), or at most _DIRECT_MAX_ROW_WORK per row
#: (points x features: BLAS is inefficient on such thin products, and the direct pass is as fast or faster at any
#: row count; its parallel variant shares rows among threads with no BLAS threads to hand over to). kmeans_assign's
#: labels and distances are the same bits either way (the GEMM form only chooses which direct distances to compare);
#: sqdist's values are the direct form's own bits there (the GEMM form's are within a few units of rounding of them)
_DIRECT_MAX_WORK = 1 << 12
_DIRECT_MAX_ROW_WORK = 256
#: GEMM-form distances below this fraction of |x|^2 + |y|^2 have lost digits to cancellation: recomputed directly
_CANCEL = 0.125


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _d2(x, i, y, j):  # pragma: no cover - compiled by numba
    acc = 0.0
    for f in range(x.shape[1]):
        d = _np.float64(x[i, f]) - _np.float64(y[j, f])
        acc += d * d
    return acc


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
def _sqdist_direct_serial(x, y, out):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _d2(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _sqdist_direct_parallel(x, y, out):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _d2(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _assign_direct_serial(x, c, labels, dist):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        labels[i], dist[i] = _assign_row(x, i, c)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _assign_direct_parallel(x, c, labels, dist):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        labels[i], dist[i] = _assign_row(x, i, c)


def _direct(x, y):
    """Whether the distances of ``x``'s rows to ``y``'s take the direct form (see _DIRECT_MAX_WORK)."""
    per_row = y.shape[0] * x.shape[1]
    return per_row <= _DIRECT_MAX_ROW_WORK or x.shape[0] * per_row <= _DIRECT_MAX_WORK


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sqdist_finish_row(x, y, xn, yn, products, out, i, r):  # pragma: no cover - compiled by numba
    for j in range(y.shape[0]):
        v = xn[r] + yn[j] - 2.0 * products[r, j]
        if v >= _CANCEL * (xn[r] + yn[j]):  # NaN and cancelled values fail this test
            out[i, j] = v
        else:
            out[i, j] = _d2(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sqdist_finish_serial(x, y, xn, yn, products, out, lo):  # pragma: no cover - compiled by numba
    for r in range(products.shape[0]):
        _sqdist_finish_row(x, y, xn, yn, products, out, lo + r, r)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _sqdist_finish_parallel(x, y, xn, yn, products, out, lo):  # pragma: no cover - compiled by numba
    for r in _prange(products.shape[0]):
        _sqdist_finish_row(x, y, xn, yn, products, out, lo + r, r)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _assign_finish_row(x, c, xn, cn, cmax, products, i, r, scale):  # pragma: no cover - compiled by numba
    k = c.shape[0]
    best_value = _np.inf
    for j in range(k):
        value = cn[j] - 2.0 * products[r, j]
        if value < best_value:
            best_value = value
    if not (best_value < _np.inf and xn[r] < _np.inf):  # NaN or infinity about: the direct pass decides
        return _assign_row(x, i, c)
    # |error| of each GEMM-form value <= scale * (|x|^2 + |c_j|^2): a centroid farther than twice that bound from
    # the best cannot be nearest; the rest are compared on direct distances, first on ties
    limit = best_value + 2.0 * scale * (xn[r] + cmax)
    best = -1
    bd = 0.0
    for j in range(k):
        if cn[j] - 2.0 * products[r, j] <= limit:
            d = _d2(x, i, c, j)
            if best < 0 or d < bd:
                best = j
                bd = d
    if best < 0:  # NaN bounds (a centroid of NaN): the direct pass decides
        return _assign_row(x, i, c)
    return best, bd


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _assign_finish_serial(x, c, xn, cn, cmax, products, lo, scale, labels, dist):  # pragma: no cover - numba
    for r in range(products.shape[0]):
        labels[lo + r], dist[lo + r] = _assign_finish_row(x, c, xn, cn, cmax, products, lo + r, r, scale)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _assign_finish_parallel(x, c, xn, cn, cmax, products, lo, scale, labels, dist):  # pragma: no cover - numba
    for r in _prange(products.shape[0]):
        labels[lo + r], dist[lo + r] = _assign_finish_row(x, c, xn, cn, cmax, products, lo + r, r, scale)


def _tiles(x, y, parallel):
    """Yield ``(lo, hi, products)``: float64 ``x[lo:hi] @ y.T`` for cache-sized tiles of rows (BLAS).

    The parallel variants take big tiles (16 MiB of products): one multithreaded BLAS call, then one parallel pass
    each. Small tiles alternating BLAS's threads with numba's run 20-100x slower on a busy machine, each set
    spinning while the other works; one tile of every row would need memory in proportion to the whole output.
    """
    y64 = _np.asarray(y, dtype=_np.float64)
    products = _PARALLEL_TILE_PRODUCTS if parallel else _checks.TILE_PRODUCTS
    tile = max(16, products // max(1, y.shape[0]))
    scratch = _np.empty((min(tile, x.shape[0]), y.shape[0]))
    for lo in range(0, x.shape[0], tile):
        hi = min(x.shape[0], lo + tile)
        products = scratch[: hi - lo]
        _np.matmul(_np.asarray(x[lo:hi], dtype=_np.float64), y64.T, out=products)
        yield lo, hi, products


def _sqnorms(a):
    a64 = _np.asarray(a, dtype=_np.float64)
    return _np.einsum("ij,ij->i", a64, a64)


def _points(x, y, yname):
    x = _checks.matrix("x", x)
    y = _checks.matrix(yname, y)
    _checks.check_same_dtype(x=x, **{yname: y})
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{yname} must have {x.shape[1]} columns (features) like x; got shape {y.shape}")
    return x, y


@gpu_twin
def sqdist(x, y, *, out=None, parallel=None):
    """Return the ``(m, n)`` matrix of squared Euclidean distances between the rows of ``x`` and of ``y``.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64, any strides.
        y (numpy.ndarray): 2-D ``(n, d)`` of ``x``'s dtype.
        out (numpy.ndarray or None): ``(m, n)`` of ``x``'s dtype.
        parallel (bool or None): rows of ``x`` shared among threads (from 2**17 distances; fewer run serially);
            ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.sqdist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]])).tolist()
        [[25.0, 1.0]]
    """
    x, y = _points(x, y, "y")
    out = _checks.out_array(out, (x.shape[0], y.shape[0]), x.dtype)
    # an out over an input's memory (even the very same array): the kernel reads whole rows of the inputs while it
    # writes rows of out, so the inputs are copied first
    x = x.copy() if _np.may_share_memory(out, x) else x
    y = y.copy() if _np.may_share_memory(out, y) else y
    if x.shape[0] == 0 or y.shape[0] == 0:
        return out
    if x.shape[1] == 0:
        out[...] = 0.0
        return out
    work = x.shape[0] * y.shape[0] * x.shape[1]
    if _direct(x, y):
        direct = _sqdist_direct_parallel if _checks.use_parallel(parallel, work) else _sqdist_direct_serial
        direct(x, y, out)
        return out
    xn, yn = _sqnorms(x), _sqnorms(y)
    parallel = _checks.use_parallel(parallel, work) and x.shape[0] * y.shape[0] >= _PARALLEL_MIN_PRODUCTS
    finish = _sqdist_finish_parallel if parallel else _sqdist_finish_serial
    for lo, hi, products in _tiles(x, y, parallel):
        finish(x, y, xn[lo:hi], yn, products, out, lo)
    return out


@gpu_twin
def kmeans_assign(x, centroids, *, parallel=None):
    """Return ``(labels, sqdists)``: each row's nearest centroid (first one on ties) and its squared distance.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64, any strides.
        centroids (numpy.ndarray): 2-D ``(k, d)`` of ``x``'s dtype, ``k >= 1``.
        parallel (bool or None): rows of ``x`` shared among threads (from 2**17 distances; fewer run serially);
            ``None`` decides by size.

    Returns:
        ``labels`` (int64, ``(m,)``): the argmin of the direct-form distances ``sum((x_i - c_j)**2)`` for finite
        input (first on ties; on near-ties this may differ from ``sqdist(x, centroids).argmin(axis=1)``, whose
        values keep the GEMM form's rounding where nothing cancelled), and ``sqdists`` (``x``'s dtype), the direct
        distances. A NaN distance never wins over a number; a row whose distances are all NaN
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
    if x.shape[0] == 0:
        return labels, dist
    if x.shape[1] == 0:
        labels[:] = 0
        dist[:] = 0.0
        return labels, dist
    out_dist = dist if dist.dtype == _np.float64 else _np.empty(x.shape[0])
    if _direct(x, c):
        direct = _assign_direct_parallel if _checks.use_parallel(parallel, work) else _assign_direct_serial
        direct(x, c, labels, out_dist)
    else:
        parallel = _checks.use_parallel(parallel, work) and x.shape[0] * c.shape[0] >= _PARALLEL_MIN_PRODUCTS
        _assign_gemm(x, c, parallel, labels, out_dist)
    if out_dist is not dist:
        dist[:] = out_dist
    return labels, dist


def _assign_gemm(x, c, parallel, labels, dist):
    """kmeans_assign's labels and float64 distances into ``labels`` and ``dist``, filtered by the GEMM form."""
    xn, cn = _sqnorms(x), _sqnorms(c)
    finite = cn[_np.isfinite(cn)]
    cmax = float(finite.max()) if finite.size else _np.inf  # NaN centroids never win; they must not poison the bound
    # the rounding bound of a GEMM-form value, over |x|^2 + |c|^2: a dot product of d terms and the norms' sums
    scale = 2.0 * (x.shape[1] + 2) * float(_np.finfo(_np.float64).eps)
    finish = _assign_finish_parallel if parallel else _assign_finish_serial
    for lo, hi, products in _tiles(x, c, parallel):
        finish(x, c, xn[lo:hi], cn, cmax, products, lo, scale, labels, dist)
