"""Pairwise squared Euclidean distances (``scipy.spatial.distance.cdist(..., 'sqeuclidean')``) and k-means assignment.

Both run at BLAS speed on the GEMM form ``|x|^2 + |y|^2 - 2 x.y``, a cache-sized tile of rows at a time (the
products ``x @ y.T`` from BLAS, in float64 for either input dtype), with the accuracy of the direct form
``sum((x_i - y_j)**2)``: one compiled pass over each tile recomputes directly every distance the GEMM form could
have cancelled (below 1/8 of ``|x|^2 + |y|^2``, NaN or infinite, or where norms or products overflow or go
subnormal), so distances are never negative, exact for identical points and otherwise close to the direct form
(not its bits: a kept value is within about ``8 (d + 2)`` units of rounding of the direct form, the bound the 1/8
threshold leaves; near that threshold a probe measured 5 to 14 at the median and up to 68 at 16 to 1024 features);
``kmeans_assign`` takes the argmin of direct distances among the centroids whose GEMM-form value lies within twice
the form's rounding bound of the best (the factor 2 covers the rounding of the direct distances compared), so its
labels are the direct form's. The parallel variants share the rows among numba's threads, each thread making its own
chunk's products with BLAS on that thread alone (SciPy's bindings, from compiled code): BLAS's threads and numba's
never hand over to each other, which on a busy machine ran many times slower than serial. Without SciPy, and for
very wide products, the serial variant runs (NumPy's BLAS still makes its products on its own threads). Small
inputs (at most 4096 row x point x feature products) and thin ones (at most 256 point x feature products per row)
skip the GEMM form: every distance is computed directly (rows shared among threads in the parallel variant).
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._dispatch import gpu_twin
from ._flags import EXACT, REDUCE
from ._types import Array, Int

__all__ = ["kmeans_assign", "sqdist"]

#: The direct form instead of the GEMM form, for both kernels: at most _DIRECT_MAX_WORK in all (rows x points x
#: features: the BLAS call, norms and tiles are then most of a call's cost), or at most _DIRECT_MAX_ROW_WORK per row
#: (points x features: BLAS is inefficient on such thin products, and the direct pass is as fast or faster at any
#: row count; its parallel variant shares rows among threads with no BLAS threads to hand over to). kmeans_assign's
#: labels and distances are the same bits either way (the GEMM form only chooses which direct distances to compare);
#: sqdist's values are the direct form's own bits there (the GEMM form's are close to them, not the same)
_DIRECT_MAX_WORK = 1 << 12
_DIRECT_MAX_ROW_WORK = 256
#: the parallel variants' products per BLAS call (rows x points x features) when each thread makes its own: at most
#: this much, OpenBLAS runs a call on the calling thread alone; above it, it wakes its own threads too, on the cores
#: numba's threads are using
_CHUNK_WORK = 1 << 18
#: GEMM-form distances below this fraction of |x|^2 + |y|^2 have lost digits to cancellation: recomputed directly
_CANCEL = 0.125
#: GEMM-form values count only where |x|^2 + |y|^2 is at least this: below, the products' terms may be subnormal,
#: whose rounding (up to 2**-1074 each, absolute) the relative bounds above do not cover: recomputed directly
_NORMAL_SUMS = 2.0**-960


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _d2(x, i, y, j):  # pragma: no cover - compiled by numba
    """The direct distance, summed over the features in order: the same bits as the blocked passes below."""
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


#: rows per block of kmeans_assign's direct pass: each block is transposed so that one centroid's distances to all
#: of its rows are computed lane by lane, each still summed over the features in order (2.3-3x the speed of one
#: distance at a time, whose short sum over the features hardly vectorizes in order)
_BLOCK = 64
#: rows per parallel iteration of kmeans_assign's direct pass (its scratch is allocated once per iteration)
_CHUNK_ROWS = 4096


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _block_distances(x, lo, hi, y64, j, xt, acc):  # pragma: no cover - compiled by numba
    """acc[:hi-lo] = the direct distances of rows lo:hi of x to row j of y64, with xt holding those rows transposed."""
    n = hi - lo
    for r in range(n):
        acc[r] = 0.0
    for f in range(x.shape[1]):
        yf = y64[j, f]
        for r in range(n):
            t = xt[f, r] - yf
            acc[r] += t * t


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _transpose_block(x, lo, hi, xt):  # pragma: no cover - compiled by numba
    for r in range(hi - lo):
        for f in range(x.shape[1]):
            xt[f, r] = _np.float64(x[lo + r, f])


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _assign_direct_rows(x, c64, labels, dist, lo, hi):  # pragma: no cover - compiled by numba
    xt = _np.empty((x.shape[1], _BLOCK))
    acc = _np.empty(_BLOCK)
    best = _np.empty(_BLOCK)
    label = _np.empty(_BLOCK, _np.int64)
    for b in range(lo, hi, _BLOCK):
        e = min(hi, b + _BLOCK)
        n = e - b
        _transpose_block(x, b, e, xt)
        _block_distances(x, b, e, c64, 0, xt, best)
        for r in range(n):
            label[r] = 0
        for j in range(1, c64.shape[0]):
            _block_distances(x, b, e, c64, j, xt, acc)
            for r in range(n):
                v = acc[r]
                take = v < best[r] or (best[r] != best[r] and v == v)  # a number beats NaN; ties keep the first
                best[r] = v if take else best[r]
                label[r] = j if take else label[r]
        for r in range(n):
            labels[b + r] = label[r]
            dist[b + r] = best[r]


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _d2_any_order(x, i, y, j):  # pragma: no cover - compiled by numba
    """_d2's sum under fastmath (whatever order vectorizes): sqdist's direct form, which has no bits to agree with.
    Written twice on purpose: one Python function compiled under two sets of flags would share numba's cache entry,
    and a row at a time (one function, no pair helper) ran up to 1.5x slower."""
    acc = 0.0
    for f in range(x.shape[1]):
        d = _np.float64(x[i, f]) - _np.float64(y[j, f])
        acc += d * d
    return acc


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sqdist_direct_serial(x, y, out):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _d2_any_order(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _sqdist_direct_parallel(x, y, out):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        for j in range(y.shape[0]):
            out[i, j] = _d2_any_order(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _assign_direct_serial(x, c64, labels, dist):  # pragma: no cover - compiled by numba
    _assign_direct_rows(x, c64, labels, dist, 0, x.shape[0])


@_njit(cache=True, nogil=True, fastmath=EXACT, parallel=True)
def _assign_direct_parallel(x, c64, labels, dist):  # pragma: no cover - compiled by numba
    m = x.shape[0]
    for chunk in _prange((m + _CHUNK_ROWS - 1) // _CHUNK_ROWS):
        lo = chunk * _CHUNK_ROWS
        _assign_direct_rows(x, c64, labels, dist, lo, min(m, lo + _CHUNK_ROWS))


def _direct(x, y):
    """Whether the distances of ``x``'s rows to ``y``'s take the direct form (see _DIRECT_MAX_WORK)."""
    per_row = y.shape[0] * x.shape[1]
    return per_row <= _DIRECT_MAX_ROW_WORK or x.shape[0] * per_row <= _DIRECT_MAX_WORK


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sqdist_finish_row(x, y, xn, yn, products, out, i, r):  # pragma: no cover - compiled by numba
    for j in range(y.shape[0]):
        norms = xn[r] + yn[j]
        v = norms - 2.0 * products[r, j]
        # NaN, inf (the norms' sum overflowed), cancelled values and sums near the subnormal range fail this test
        if v >= _CANCEL * norms and v < _np.inf and norms >= _NORMAL_SUMS:
            out[i, j] = v
        else:
            out[i, j] = _d2(x, i, y, j)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sqdist_finish_serial(x, y, xn, yn, products, out, lo):  # pragma: no cover - compiled by numba
    for r in range(products.shape[0]):
        _sqdist_finish_row(x, y, xn, yn, products, out, lo + r, r)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _assign_finish_row(x, c, xn, cn, cmax, products, i, r, scale):  # pragma: no cover - compiled by numba
    k = c.shape[0]
    best_value = _np.inf
    for j in range(k):
        value = cn[j] - 2.0 * products[r, j]
        if value < best_value:
            best_value = value
    # NaN or infinity about (-inf: a product overflowed), or values near the subnormal range: the direct pass decides
    if not (-_np.inf < best_value < _np.inf and xn[r] < _np.inf and xn[r] + cmax >= _NORMAL_SUMS):
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


@_njit(cache=True, nogil=True)
def _chunk64(x, lo, hi):  # pragma: no cover - compiled by numba
    """Rows lo:hi of x as a new C-contiguous float64 array (x of either dtype, any strides)."""
    chunk = _np.empty((hi - lo, x.shape[1]))
    for i in range(hi - lo):
        for t in range(x.shape[1]):
            chunk[i, t] = x[lo + i, t]
    return chunk


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _sqdist_threads(x, y, yt, xn, yn, out, rows):  # pragma: no cover - compiled by numba
    m = x.shape[0]
    for chunk in _prange((m + rows - 1) // rows):
        lo = chunk * rows
        hi = min(m, lo + rows)
        products = _np.dot(_chunk64(x, lo, hi), yt)  # BLAS (SciPy's bindings) on this thread alone
        for r in range(hi - lo):
            _sqdist_finish_row(x, y, xn[lo:hi], yn, products, out, lo + r, r)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _assign_threads(x, c, ct, xn, cn, cmax, scale, labels, dist, rows):  # pragma: no cover - compiled by numba
    m = x.shape[0]
    for chunk in _prange((m + rows - 1) // rows):
        lo = chunk * rows
        hi = min(m, lo + rows)
        products = _np.dot(_chunk64(x, lo, hi), ct)
        for r in range(hi - lo):
            labels[lo + r], dist[lo + r] = _assign_finish_row(x, c, xn[lo:hi], cn, cmax, products, lo + r, r, scale)


def _thread_rows(x, y):
    """Rows per chunk of the parallel variant (each thread making its own chunk's products), or 0 where the serial
    variant runs instead, its products made by NumPy on BLAS's threads: without SciPy (no compiled BLAS), or where 8
    rows' products are beyond _CHUNK_WORK (BLAS's own threads pay there; numba's handing over to them did not)."""
    per_row = y.shape[0] * x.shape[1]
    if not _checks.compiled_blas() or 8 * per_row > _CHUNK_WORK:
        return 0
    # at least 8 chunks where there are rows enough, so every thread gets some; from the sizes alone, never from
    # the thread count (chunk boundaries fix the bits)
    return min(_CHUNK_WORK // per_row, max(8, -(-x.shape[0] // 8)))


def _transposed64(y):
    return _np.ascontiguousarray(_np.asarray(y, dtype=_np.float64).T)


def _tiles(x, y):
    """Yield ``(lo, hi, products)``: float64 ``x[lo:hi] @ y.T`` for cache-sized tiles of rows (NumPy's BLAS, on its
    threads for wide products)."""
    y64 = _np.asarray(y, dtype=_np.float64)
    tile = max(16, _checks.TILE_PRODUCTS // max(1, y.shape[0]))
    scratch = _np.empty((min(tile, x.shape[0]), y.shape[0]))
    for lo in range(0, x.shape[0], tile):
        hi = min(x.shape[0], lo + tile)
        products = scratch[: hi - lo]
        _np.matmul(_np.asarray(x[lo:hi], dtype=_np.float64), y64.T, out=products)
        yield lo, hi, products


def _sqnorms(a):
    """The rows' squared norms in float64; float32 rows converted a block at a time (converted whole, labelling 1 GB
    of float32 points took a 2 GB copy beside them). Blocks of two rows or more: einsum sums a row of more than 8192
    elements in another order when it is alone in its operand, so a one-row tail joins the block before it; the
    bits are the whole array's."""
    if a.dtype == _np.float64:
        return _np.einsum("ij,ij->i", a, a)
    m = a.shape[0]
    norms = _np.empty(m)
    rows = max(2, _checks.BLOCK_ELEMENTS // max(1, a.shape[1]))
    lo = 0
    while lo < m:
        hi = m if m - (lo + rows) < 2 else lo + rows
        block = a[lo:hi].astype(_np.float64)
        _np.einsum("ij,ij->i", block, block, out=norms[lo:hi])
        lo = hi
    return norms


def _points(x, y, yname):
    x = _checks.matrix("x", x)
    y = _checks.matrix(yname, y)
    _checks.check_same_dtype(x=x, **{yname: y})
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{yname} must have {x.shape[1]} columns (features) like x; got shape {y.shape}")
    return x, y


@gpu_twin
def sqdist(
    x: Array, y: Array, *, out: Array | None = None, parallel: bool | None = None, block_rows: Int | None = None,
) -> Array:
    """Return the ``(m, n)`` matrix of squared Euclidean distances between the rows of ``x`` and of ``y``.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64, any strides.
        y (numpy.ndarray): 2-D ``(n, d)`` of ``x``'s dtype.
        out (numpy.ndarray or None): ``(m, n)`` of ``x``'s dtype.
        parallel (bool or None): rows of ``x`` shared among threads; ``None`` decides by size (from 2**17 row x
            point x feature products).
        block_rows (int or None): the rows ``[b * block_rows, (b + 1) * block_rows)`` of each block get the bits
            of a call on that block's rows alone (with the same ``parallel``). The form (direct, or GEMM with
            its fix-ups) and the GEMM form's tiles are chosen per block; thin problems, where every block takes
            the direct form, still take one call. What hpc.ml's blocks need to share a call.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.sqdist(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]])).tolist()
        [[25.0, 1.0]]
    """
    x, y = _points(x, y, "y")
    out = _checks.out_array(out, (x.shape[0], y.shape[0]), x.dtype)
    block = _checks.block_rows(block_rows, x.shape[0])
    # an out over an input's memory (even the very same array): the kernel reads whole rows of the inputs while it
    # writes rows of out, so the inputs are copied first
    x = x.copy() if _np.may_share_memory(out, x) else x
    y = y.copy() if _np.may_share_memory(out, y) else y
    if x.shape[0] == 0 or y.shape[0] == 0:
        return out
    if x.shape[1] == 0:
        out[...] = 0.0
        return out
    if block < x.shape[0] and not _direct(x, y):  # the direct form on all rows is every block's; else per block
        for lo in range(0, x.shape[0], block):
            _sqdist_rows(x[lo : lo + block], y, out[lo : lo + block], parallel)
        return out
    return _sqdist_rows(x, y, out, parallel)


def _sqdist_rows(x, y, out, parallel):
    """:func:`sqdist` of checked, non-empty, non-overlapping arrays into ``out``; return ``out``."""
    work = x.shape[0] * y.shape[0] * x.shape[1]
    if _direct(x, y):
        direct = _sqdist_direct_parallel if _checks.use_parallel(parallel, work) else _sqdist_direct_serial
        direct(x, y, out)
        return out
    with _quiet():
        xn, yn = _sqnorms(x), _sqnorms(y)
        rows = _thread_rows(x, y) if _checks.use_parallel(parallel, work) else 0
        if rows:
            _sqdist_threads(x, y, _transposed64(y), xn, yn, out, rows)
            return out
        for lo, hi, products in _tiles(x, y):
            _sqdist_finish_serial(x, y, xn[lo:hi], yn, products, out, lo)
    return out


@gpu_twin
def kmeans_assign(x: Array, centroids: Array, *, parallel: bool | None = None) -> tuple[Array, Array]:
    """Return ``(labels, sqdists)``: each row's nearest centroid (first one on ties) and its squared distance.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64, any strides.
        centroids (numpy.ndarray): 2-D ``(k, d)`` of ``x``'s dtype, ``k >= 1``.
        parallel (bool or None): rows of ``x`` shared among threads; ``None`` decides by size (from 2**17 row x
            point x feature products).

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
        direct(x, _np.ascontiguousarray(c, dtype=_np.float64), labels, out_dist)
    else:
        with _quiet():
            _assign_gemm(x, c, _checks.use_parallel(parallel, work), labels, out_dist)
    if out_dist is not dist:
        dist[:] = out_dist
    return labels, dist


def _quiet():
    """NumPy's overflow and underflow warnings off: the GEMM form's norms and products may leave float64's range,
    and every value they spoil is recomputed directly."""
    return _np.errstate(over="ignore", under="ignore", invalid="ignore")


def _assign_gemm(x, c, parallel, labels, dist):
    """kmeans_assign's labels and float64 distances into ``labels`` and ``dist``, filtered by the GEMM form."""
    xn, cn = _sqnorms(x), _sqnorms(c)
    if _np.isposinf(cn).any():  # a centroid's squared norm overflowed: its GEMM values are NaN, wherever it lies
        direct = _assign_direct_parallel if parallel else _assign_direct_serial
        direct(x, _np.ascontiguousarray(c, dtype=_np.float64), labels, dist)
        return
    finite = cn[_np.isfinite(cn)]
    cmax = float(finite.max()) if finite.size else _np.inf  # NaN centroids never win; they must not poison the bound
    # the rounding bound of a GEMM-form value, over |x|^2 + |c|^2: a dot product of d terms and the norms' sums
    scale = 2.0 * (x.shape[1] + 2) * float(_np.finfo(_np.float64).eps)
    rows = _thread_rows(x, c) if parallel else 0
    if rows:
        _assign_threads(x, c, _transposed64(c), xn, cn, cmax, scale, labels, dist, rows)
        return
    for lo, hi, products in _tiles(x, c):
        _assign_finish_serial(x, c, xn[lo:hi], cn, cmax, products, lo, scale, labels, dist)
