"""One Lloyd step of k-means in the GEMM form: nearest centre, exact squared distance, per-cluster sums.

The nearest centre of each row is the argmin of ``|c|^2 - 2 x.c`` (``|x|^2`` is the same for every centre), with
the products ``x.c`` of a tile of rows computed by BLAS (``x @ c.T``): the same form scikit-learn's Lloyd uses, at
BLAS speed. One compiled pass over the tile then takes the argmin, recomputes the squared distance to the chosen
centre directly (``sum((x - c)^2)``: no cancellation, never negative, what the inertia needs) and adds the row to
its cluster's sum and count. Tiles are sized so the products stay in cache between the two steps.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

from . import _checks
from ._dispatch import gpu_twin
from ._flags import EXACT, REDUCE

__all__ = ["kmeans_step"]



@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _finish_tile(x, c, half_norms, products, labels, dist, sums, counts, accumulate, distances):  # pragma: no cover
    # three loops, not one: in one loop the argmin's mispredicted branches stall the adds that wait on its label
    # (docs/performance.md, "hpc bench ml")
    k = c.shape[0]
    d = x.shape[1]
    for i in range(x.shape[0]):
        p = products[i]
        best = 0
        best_value = half_norms[0] - p[0]
        for j in range(1, k):
            value = half_norms[j] - p[j]
            if value < best_value:
                best_value = value
                best = j
        labels[i] = best
    if distances:
        for i in range(x.shape[0]):
            xi = x[i]
            centre = c[labels[i]]
            acc = 0.0
            for t in range(d):
                diff = _np.float64(xi[t]) - centre[t]
                acc += diff * diff
            dist[i] = acc
    if accumulate:
        for i in range(x.shape[0]):
            best = labels[i]
            counts[best] += 1.0
            total = sums[best]
            xi = x[i]
            for t in range(d):
                total[t] += xi[t]


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _prepared(x, c):  # pragma: no cover - numba
    """The centroids' half norms and the transposed copy the products take, both in x's dtype (one compiled call,
    not NumPy calls per block: einsum's call overhead was a visible share of a block's step). No fastmath: each norm
    is summed in order, the same bits on every CPU."""
    k, d = c.shape
    half_norms = _np.empty(k, x.dtype)
    ct = _np.empty((d, k), x.dtype)
    for j in range(k):
        acc = 0.0
        for t in range(d):
            acc += c[j, t] * c[j, t]
            ct[t, j] = c[j, t]
        half_norms[j] = 0.5 * acc
    return half_norms, ct


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _step_compiled(x, c, labels, dist, sums, counts, accumulate, distances, tile, block):  # pragma: no cover
    # sums (blocks, k, d) and counts (blocks, k): rows [b * block, (b + 1) * block) add to entry b; the tiles start
    # again at each block, so a block's results are those of a call on its rows alone
    half_norms, ct = _prepared(x, c)
    m = x.shape[0]
    for start in range(0, m, block):
        end = min(m, start + block)
        b = start // block if accumulate else 0
        for lo in range(start, end, tile):
            hi = min(end, lo + tile)
            products = _np.dot(x[lo:hi], ct)  # BLAS, through SciPy's bindings, with the GIL released
            _finish_tile(
                x[lo:hi], c, half_norms, products, labels[lo:hi], dist[lo:hi], sums[b], counts[b], accumulate,
                distances,
            )


@gpu_twin
def kmeans_step(x, centroids, *, sums=None, counts=None, block_rows=None, distances=True):
    """Return ``(labels, sqdists)`` of each row's nearest centroid; add the rows to ``sums``/``counts`` if given.

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64.
        centroids (numpy.ndarray): 2-D ``(k, d)``, float64 (the products use ``x``'s dtype, as scikit-learn does).
        sums (numpy.ndarray or None): float64 ``(k, d)``; row ``j`` gets the sum of the rows labelled ``j`` added.
        counts (numpy.ndarray or None): float64 ``(k,)``; entry ``j`` gets the number of rows labelled ``j`` added.
        block_rows (int or None): partial sums per block of rows: ``sums`` is then ``(blocks, k, d)`` and ``counts``
            ``(blocks, k)`` with ``blocks = ceil(m / block_rows)``, and the rows ``[b * block_rows, (b + 1) *
            block_rows)`` add to entry ``b``. Every result is then the same bits as a call on each block's rows
            alone (one call instead of one per block: what hpc.ml's reproducible sums need, without the calls'
            overhead).
        distances (bool): also compute ``sqdists``; False returns None in its place and skips that part of the
            pass (a Lloyd iteration that needs no inertia).

    Returns:
        ``labels`` (int32 ``(m,)``): the argmin of ``|c|^2 - 2 x.c`` (first on ties), and ``sqdists`` (float64
        ``(m,)``): ``sum((x - c_label)^2)`` computed directly (None with ``distances=False``). Finite input only
        (the estimators check it).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.kmeans_step(np.array([[0.0], [9.0]]), np.array([[1.0], [8.0]]))[0].tolist()
        [0, 1]
    """
    x = _checks.matrix("x", x)
    c = _np.ascontiguousarray(centroids, dtype=_np.float64)
    if c.ndim != 2 or c.shape[1] != x.shape[1] or c.shape[0] == 0:
        raise ValueError(f"centroids must be (k >= 1, {x.shape[1]}); got shape {c.shape}")
    accumulate = sums is not None
    if accumulate != (counts is not None):
        raise ValueError("sums and counts go together: pass both or neither")
    k = c.shape[0]
    m = x.shape[0]
    block = _checks.block_rows(block_rows, m)
    blocks = -(-m // block)
    if accumulate:
        lead = () if block_rows is None else (blocks,)
        want = (lead + c.shape, lead + (k,))
        if sums.shape != want[0] or sums.dtype != _np.float64 or counts.shape != want[1] or (
            counts.dtype != _np.float64
        ):
            raise ValueError(f"sums must be float64 {want[0]} and counts float64 {want[1]}")
        _checks.writeable("sums", sums, "kmeans_step adds the rows to it", "pass a writeable copy")
        _checks.writeable("counts", counts, "kmeans_step adds the rows to it", "pass a writeable copy")
        sums3, counts2 = (sums, counts) if block_rows is not None else (sums[None], counts[None])  # views
    else:
        sums3, counts2 = _np.empty((1, 1, 1)), _np.empty((1, 1))
    labels = _np.empty(m, _np.int32)
    dist = _np.empty(m, _np.float64)
    tile = max(64, _checks.TILE_PRODUCTS // k)
    if _checks.COMPILED_BLAS and x.flags.c_contiguous and m:
        _step_compiled(x, c, labels, dist, sums3, counts2, accumulate, bool(distances), tile, block)
        return labels, dist if distances else None
    half_norms, ct = _prepared(x, c)
    for start in range(0, m, block):
        end = min(m, start + block)
        b = start // block if accumulate else 0
        for lo in range(start, end, tile):
            hi = min(end, lo + tile)
            products = x[lo:hi] @ ct
            _finish_tile(x[lo:hi], c, half_norms, products, labels[lo:hi], dist[lo:hi], sums3[b], counts2[b],
                         accumulate, bool(distances))
    return labels, dist if distances else None
