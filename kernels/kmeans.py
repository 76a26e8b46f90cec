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
from ._types import AnyArray, Array, Int

__all__ = ["kmeans_distances", "kmeans_step", "kmeans_step_bounded"]



@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _argmin_tile(half_norms, products, labels):  # pragma: no cover - compiled by numba
    k = half_norms.shape[0]
    for i in range(products.shape[0]):
        p = products[i]
        best = 0
        best_value = half_norms[0] - p[0]
        for j in range(1, k):
            value = half_norms[j] - p[j]
            if value < best_value:
                best_value = value
                best = j
        labels[i] = best


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _distances_tile(x, c, labels, dist):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        xi = x[i]
        centre = c[labels[i]]
        acc = 0.0
        for t in range(x.shape[1]):
            diff = _np.float64(xi[t]) - centre[t]
            acc += diff * diff
        dist[i] = acc


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sums_tile(x, labels, sums, counts):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        best = labels[i]
        counts[best] += 1.0
        total = sums[best]
        xi = x[i]
        for t in range(x.shape[1]):
            total[t] += xi[t]


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _finish_tile(x, c, half_norms, products, labels, dist, sums, counts, accumulate, distances):  # pragma: no cover
    # three loops, not one: in one loop the argmin's mispredicted branches stall the adds that wait on its label
    # (docs/performance.md, "hpc bench ml")
    _argmin_tile(half_norms, products, labels)
    if distances:
        _distances_tile(x, c, labels, dist)
    if accumulate:
        _sums_tile(x, labels, sums, counts)


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


def _centroids(x, centroids):
    c = _np.ascontiguousarray(centroids, dtype=_np.float64)
    if c.ndim != 2 or c.shape[1] != x.shape[1] or c.shape[0] == 0:
        raise ValueError(f"centroids must be (k >= 1, {x.shape[1]}); got shape {c.shape}")
    return c


def _blocked_sums(kernel, c, m, sums, counts, block_rows):
    """Check ``sums``/``counts`` (both or neither) and ``block_rows``; return ``(accumulate, rows per block, sums
    (blocks, k, d), counts (blocks, k))``, views of the caller's arrays (placeholders when not accumulating)."""
    accumulate = sums is not None
    if accumulate != (counts is not None):
        raise ValueError("sums and counts go together: pass both or neither")
    block = _checks.block_rows(block_rows, m)
    if not accumulate:
        return False, block, _np.empty((1, 1, 1)), _np.empty((1, 1))
    lead = () if block_rows is None else (-(-m // block),)
    want = (lead + c.shape, lead + (c.shape[0],))
    if sums.shape != want[0] or sums.dtype != _np.float64 or counts.shape != want[1] or (
        counts.dtype != _np.float64
    ):
        raise ValueError(f"sums must be float64 {want[0]} and counts float64 {want[1]}")
    _checks.writeable("sums", sums, f"{kernel} adds the rows to it", "pass a writeable copy")
    _checks.writeable("counts", counts, f"{kernel} adds the rows to it", "pass a writeable copy")
    return True, block, *((sums, counts) if block_rows is not None else (sums[None], counts[None]))


@gpu_twin
def kmeans_step(
    x: Array, centroids: AnyArray, *, sums: _np.ndarray | None = None, counts: _np.ndarray | None = None,
    block_rows: Int | None = None, distances: bool = True,
) -> tuple[Array, Array | None]:
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
    if not x.flags.c_contiguous:
        # a copy in C order, as kmeans_distances and kmeans_step_bounded take: the same bits for any layout of the
        # same rows (the tiles' distances, compiled for strided rows, are summed in another order), with SciPy's
        # compiled pass or without (the NumPy tiles below)
        x = _np.ascontiguousarray(x)
    c = _centroids(x, centroids)
    k = c.shape[0]
    m = x.shape[0]
    accumulate, block, sums3, counts2 = _blocked_sums("kmeans_step", c, m, sums, counts, block_rows)
    labels = _np.empty(m, _np.int32)
    dist = _np.empty(m, _np.float64)
    tile = max(64, _checks.TILE_PRODUCTS // k)
    if _checks.compiled_blas() and x.flags.c_contiguous and m:
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


@_njit(inline="always")
def _row_norm(x, r, d):  # pragma: no cover - compiled by numba
    """``|x[r]|^2`` in float64 over four running sums (one sum in order is a chain of dependent adds, the slowest part
    of refreshing a row's bounds; any order is within the bounds' margin, which allows d + 3 roundings)."""
    n0 = n1 = n2 = n3 = 0.0
    t = 0
    while t + 4 <= d:
        a0, a1, a2, a3 = (_np.float64(x[r, t]), _np.float64(x[r, t + 1]), _np.float64(x[r, t + 2]),
                          _np.float64(x[r, t + 3]))
        n0 += a0 * a0
        n1 += a1 * a1
        n2 += a2 * a2
        n3 += a3 * a3
        t += 4
    while t < d:
        a = _np.float64(x[r, t])
        n0 += a * a
        t += 1
    return (n0 + n1) + (n2 + n3)


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _refresh_bounds(x, rows, products, half_norms, labels, upper, lower, margin, floor, c2):  # pragma: no cover
    # the argmin over the computed values (first on ties, as _finish_tile) and bounds on the true distances from
    # them: each value is |c|^2/2 - x.c within margin * (|x|^2 + max |c|^2) + floor of the exact one (floor: what
    # products and norms near the subnormal range lose); a value that overflowed gives no bounds
    k = products.shape[1]
    d = x.shape[1]
    for g in range(rows.shape[0]):
        r = rows[g]
        p = products[g]
        best = 0
        best_value = half_norms[0] - p[0]
        second = _np.inf
        for j in range(1, k):  # selects, not branches: the branches' mispredictions cost 3x the loop
            value = half_norms[j] - p[j]
            second = min(second, max(value, best_value))
            better = value < best_value
            best = j if better else best
            best_value = value if better else best_value
        labels[r] = best
        norm = _row_norm(x, r, d)
        slack = 2.0 * (margin * (norm + c2) + floor)
        high = 2.0 * _np.float64(best_value) + norm + slack
        low = 2.0 * _np.float64(second) + norm - slack
        if not _np.isfinite(high) or (k > 1 and not _np.isfinite(low)):  # a value overflowed: no bounds
            upper[r] = _np.inf
            lower[r] = 0.0
        else:  # k == 1: no other centroid, always kept
            upper[r] = _np.sqrt(max(0.0, high)) * (1.0 + 1e-12)
            lower[r] = _np.inf if k == 1 else _np.sqrt(max(0.0, low)) * (1.0 - 1e-12)


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _bounded_compiled(x, c, labels, upper, lower, moved, margin, floor, dist, sums, counts, accumulate, distances,
                      tile, block):  # pragma: no cover - compiled by numba
    half_norms, ct = _prepared(x, c)
    k, d = c.shape
    c2 = 0.0
    centre_norms = _np.empty(k)
    for j in range(k):
        acc = 0.0
        for t in range(d):
            acc += c[j, t] * c[j, t]
        c2 = max(c2, acc)
        centre_norms[j] = _np.sqrt(acc) * (1.0 + 1e-12)
    # the largest move of a centre other than each row's own: the top two moves
    first, second, first_at = 0.0, 0.0, -1
    for j in range(k):
        if moved[j] > first:
            first, second, first_at = moved[j], first, j
        elif moved[j] > second:
            second = moved[j]
    m = x.shape[0]
    rows = _np.empty(tile, _np.int64)
    gathered = _np.empty((tile, d), x.dtype)
    computed = 0
    for start in range(0, m, block):
        end = min(m, start + block)
        b = start // block if accumulate else 0
        for lo in range(start, end, tile):
            hi = min(end, lo + tile)
            n = 0
            for r in range(lo, hi):
                own = labels[r]
                if own >= 0:  # the centres moved since the bounds were made: widen them (triangle inequality)
                    upper[r] = (upper[r] + moved[own]) * (1.0 + 1e-12)
                    lower[r] = max(0.0, (lower[r] - (second if own == first_at else first)) * (1.0 - 1e-12))
                    # kept: every other centre is farther by more than the products' rounding can reorder (|x| at
                    # most the distance to its centre plus that centre's norm: no pass over the row)
                    most = upper[r] + centre_norms[own]
                    if lower[r] > upper[r] and (
                        lower[r] * lower[r] - upper[r] * upper[r] > 4.0 * (margin * (most * most + c2) + floor)
                    ):
                        continue
                rows[n] = r
                n += 1
            if 2 * n > hi - lo:  # most of the tile: its whole product, as kmeans_step takes it, refreshes every row
                for r in range(lo, hi):
                    rows[r - lo] = r
                n = hi - lo
                products = _np.dot(x[lo:hi], ct)  # BLAS, the GIL released
            elif n:
                for g in range(n):
                    for t in range(d):
                        gathered[g, t] = x[rows[g], t]
                products = _np.dot(gathered[:n], ct)
            if n:
                _refresh_bounds(x, rows[:n], products, half_norms, labels, upper, lower, margin, floor, c2)
                computed += n
            if distances:
                _distances_tile(x[lo:hi], c, labels[lo:hi], dist[lo:hi])
            if accumulate:
                _sums_tile(x[lo:hi], labels[lo:hi], sums[b], counts[b])
    return computed


def kmeans_step_bounded(
    x: _np.ndarray, centroids: _np.ndarray, labels: _np.ndarray, upper: _np.ndarray, lower: _np.ndarray, *,
    moved: _np.ndarray | None = None, sums: _np.ndarray | None = None, counts: _np.ndarray | None = None,
    block_rows: Int | None = None, distances: bool = True,
) -> tuple[_np.ndarray, _np.ndarray | None, int]:
    """:func:`kmeans_step` that skips the rows whose nearest centroid bounds prove unchanged (Hamerly's bounds).

    ``labels``, ``upper`` and ``lower`` are per-row state the caller keeps between steps: a row's label (-1: not
    known yet), an upper bound on its distance (not squared) to that centroid and a lower bound on its distance to
    every other. ``moved`` (float64 ``(k,)``) is how far each centroid moved since the bounds were made (None: they
    were made for these centroids, or every label is -1). A row is skipped when its bounds, widened by the moves,
    keep every other centroid farther by more than the products' rounding could reorder (a margin of
    ``8 (d + 3) (eps (|x|^2 + max |c|^2) + tiny)`` in squared distance, ``eps`` and ``tiny`` of ``x``'s dtype: data
    near the subnormal range is never skipped, nor a row whose values overflowed), so its label is the one a full
    step would give: the argmin of ``|c|^2 - 2 x.c``, first on ties. The other rows of each tile are gathered and take
    one BLAS product (the whole tile where most rows need it, as :func:`kmeans_step` takes it); their labels and
    bounds are refreshed. BLAS may round a gathered subset's products differently from a whole tile's in the last
    bit, so on a tie to rounding (integer or symmetric data) a refreshed row's label can differ from
    :func:`kmeans_step`'s; every result depends on the rows' own state only, the same on any split of the blocks.

    Args:
        x, centroids, sums, counts, block_rows, distances: as :func:`kmeans_step` (``sums``/``counts`` add the
            rows of every label, kept or refreshed; ``distances`` are exact, to each row's centroid).
        labels (numpy.ndarray): int32 ``(m,)``, updated in place.
        upper, lower (numpy.ndarray): float64 ``(m,)``, updated in place.
        moved (numpy.ndarray or None): float64 ``(k,)``, each >= 0.

    Returns:
        ``(labels, sqdists, computed)``: the labels (the array passed), the exact squared distances (None with
        ``distances=False``) and how many rows took the products.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> x = np.array([[0.0], [9.0]]); lab = np.full(2, -1, np.int32); up = np.zeros(2); lo = np.zeros(2)
        >>> kernels.kmeans_step_bounded(x, np.array([[1.0], [8.0]]), lab, up, lo)[0].tolist()
        [0, 1]
        >>> kernels.kmeans_step_bounded(x, np.array([[1.5], [8.0]]), lab, up, lo, moved=np.array([0.5, 0.0]))[2]
        0
    """
    x = _checks.matrix("x", x)
    c = _centroids(x, centroids)
    m = x.shape[0]
    k = c.shape[0]
    for name, a, dtype in (("labels", labels, _np.int32), ("upper", upper, _np.float64), ("lower", lower, _np.float64)):
        if not isinstance(a, _np.ndarray) or a.shape != (m,) or a.dtype != dtype or not a.flags.c_contiguous:
            raise ValueError(f"{name} must be a contiguous {_np.dtype(dtype).name} array of shape ({m},)")
        _checks.writeable(name, a, "kmeans_step_bounded updates it", "pass a writeable array")
    if ((labels < -1) | (labels >= k)).any():
        raise ValueError(f"labels must be -1 (not known) or a centroid in [0, {k})")
    if moved is None:
        moved = _np.zeros(k)
    moved = _np.ascontiguousarray(moved, dtype=_np.float64)
    if moved.shape != (k,) or not (moved >= 0).all():
        raise ValueError(f"moved must be {k} distances >= 0; got {moved!r}")
    accumulate, block, sums3, counts2 = _blocked_sums("kmeans_step_bounded", c, m, sums, counts, block_rows)
    dist = _np.empty(m if distances else 0, _np.float64)
    if m == 0:
        return labels, dist if distances else None, 0
    if not _checks.compiled_blas():
        raise RuntimeError("kmeans_step_bounded needs SciPy (numba calls BLAS through scipy.linalg.cython_blas), "
                           "which does not import here; use kmeans_step")
    info = _np.finfo(x.dtype)
    margin = 2.0 * (x.shape[1] + 3) * float(info.eps)
    floor = 2.0 * (x.shape[1] + 3) * float(info.tiny)  # more than every rounding near the subnormal range adds
    tile = max(64, _checks.TILE_PRODUCTS // k)
    xc = _np.ascontiguousarray(x)
    computed = _bounded_compiled(xc, c, labels, upper, lower, moved, margin, floor, dist, sums3, counts2, accumulate,
                                 bool(distances), tile, block)
    return labels, dist if distances else None, int(computed)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _label_distances(x, c, labels, dist):  # pragma: no cover - compiled by numba
    m = x.shape[0]
    _distances_tile(x[0:m], c, labels[0:m], dist[0:m])  # sliced as the steps slice their tiles: the same code


def kmeans_distances(x: _np.ndarray, centroids: _np.ndarray, labels: _np.ndarray) -> _np.ndarray:
    """Return each row's exact squared distance to its labelled centroid, float64 ``(m,)``: ``sum((x - c_label)^2)``,
    the bits of the distances :func:`kmeans_step` and :func:`kmeans_step_bounded` return for the same labels.

    What a Lloyd step needs when it must know the distances for labels it already has (the farthest rows, to
    refill an empty cluster) without labelling the rows again.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.kmeans_distances(np.array([[0.0], [9.0]]), np.array([[1.0], [8.0]]), np.array([0, 0])).tolist()
        [1.0, 64.0]
    """
    x = _checks.matrix("x", x)
    c = _centroids(x, centroids)
    labels = _np.asarray(labels)
    if labels.shape != (x.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be {x.shape[0]} integers; got {labels.dtype} {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= c.shape[0]):
        raise ValueError(f"labels must be centroids in [0, {c.shape[0]})")
    dist = _np.empty(x.shape[0], _np.float64)
    if x.shape[0]:
        _label_distances(_np.ascontiguousarray(x), c, _np.ascontiguousarray(labels, dtype=_np.int32), dist)
    return dist
