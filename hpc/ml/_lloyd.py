"""Lloyd's iterations of :class:`hpc.ml.KMeans` over row blocks: the same bits on any number of ranks or threads.

An iteration is one pass over this rank's blocks (:meth:`hpc.ml._kmeans_init.Points.lloyd_step`: each block's
per-cluster sums and counts, the rows' labels) and one reproducible sum over every rank of one matrix, a row per
block: the block's sums, counts and inertia, and in the rank's first row how many of its rows took the products
(:class:`BoundsSwitch`) and how many labels changed. The new centres and whether a cluster is empty come from that
total in one compiled call, so the iteration's own Python is a handful of calls around the pass: on a few thousand
rows it is the pass that counts.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

from hpc.ml import _kmeans_init
from hpc.ml._progress import Progress

__all__ = ["lloyd"]


def lloyd(
    points: _kmeans_init.Points, centres: _np.ndarray, max_iter: int, tol: float, progress: Progress,
    inertia_each: bool,
) -> tuple[list[_np.ndarray], float, _np.ndarray, int]:
    """Run Lloyd's iterations from ``centres``; return ``(labels per block, inertia, centres, n_iter)``. Each
    iteration's inertia is computed only with ``inertia_each`` (to report it: rank 0's ``verbose``, on every rank)."""
    k, d = centres.shape
    n_blocks = len(points.blocks)
    # a row per block: sums, counts, inertia; in the rank's first row, its rows that took products and changed labels
    parts = _np.zeros((n_blocks, k * d + k + 3))
    sums = parts[:, : k * d]
    block_sums = _np.zeros((n_blocks, k, d))  # the pass's own buffers: C-contiguous, as the kernels take them
    block_counts = _np.zeros((n_blocks, k))
    new_centres = _np.empty((k, d))
    previous: _np.ndarray | None = None
    labels = dist = None
    strict = False
    iteration = 0
    bounds = BoundsSwitch()
    points.forget_bounds()
    for iteration in range(max_iter):
        # the distances (a sixth of a pass) only where the iterations' inertia is reported; the final labels'
        # distances come from one more pass
        labels, dist = points.lloyd_step(
            centres, block_sums, block_counts, distances=inertia_each, bounded=bounds.bounded(points)
        )
        sums[...] = block_sums.reshape(n_blocks, k * d)
        parts[:, k * d : k * d + k] = block_counts
        if inertia_each:
            parts[:, -3] = _inertias(points, dist)
        carried = points.carried_bounds_computed  # None on every rank alike (the same centres, the same steps)
        if n_blocks:
            parts[0, -2] = carried or 0
            parts[0, -1] = labels.shape[0] if previous is None else _np.count_nonzero(labels != previous)
        total = points.total(parts, parts.shape[1:])
        total_sums = total[: k * d].reshape(k, d)
        total_counts = total[k * d : k * d + k]
        inertia, changed = total[-3], total[-1]
        bounds.after(None if carried is None else total[-2] / max(points.blocks.n_total, 1))
        if _moved(total_sums, total_counts, new_centres):
            # an empty cluster: moved onto far rows (by the distances of this iteration's labels), centres made again
            per_block = points.per_block(labels)
            far = points.per_block(dist) if inertia_each else points.label_distances(per_block, centres)
            _relocate_empty(points, per_block, far, total_sums, total_counts)
            _moved(total_sums, total_counts, new_centres)
        progress.step(iteration, inertia)
        if changed == 0:
            strict = _np.array_equal(new_centres, centres)
            centres = new_centres.copy()
            progress.note(f"converged at iteration {iteration}: strict convergence")
            break
        shift = float(((new_centres - centres) ** 2).sum())  # summed as NumPy sums (pairwise): tol compares these bits
        centres = new_centres.copy()
        previous = labels
        if shift <= tol:
            progress.note(f"converged at iteration {iteration}: center shift {shift:.6g} within tolerance {tol:.6g}")
            break
    if not strict or not inertia_each:  # labels that match the final centres, and their exact distances
        labels, dist = points.lloyd_step(centres, bounded=True)
    inertia = points.total(_inertias(points, dist)[:, None], (1,))[0]
    return points.per_block(labels), float(inertia), centres, iteration + 1


class BoundsSwitch:
    """Whether Lloyd's next step keeps per-row bounds (:func:`hpc.kernels.kmeans_step_bounded`), from the share of
    every rank's rows that still took the products in the steps before.

    The bounds pay where clusters stand apart: after a few steps few rows can change cluster, and they skip the
    products (blobs of 1e5 x 100, k = 100: a fit 0.42x full steps' time). Where clusters overlap, or the data have
    none, most rows take the products every step and the bookkeeping is a loss (a fit 1.44-1.53x). Blobs too take
    the products on every row for their first steps (2-4 seen), while the centres still move far. So after
    :data:`MISSES` steps in a row in which more than :data:`MISS_SHARE` of the rows took the products, the steps run
    without bounds for :data:`FIRST_REST` steps. Then one step makes the bounds anew and the next is judged alone: a
    miss rests again, twice as long each time (up to :data:`LONGEST_REST`). The share is a sum over every rank's rows,
    each row's part fixed by its own bounds: every rank takes the same turns, whatever the split (measurements:
    docs/performance.md, "hpc bench ml").
    """

    MISS_SHARE = 0.6
    MISSES = 5
    FIRST_REST = 8
    LONGEST_REST = 32

    def __init__(self) -> None:
        self.anew = False  #: the next step makes its bounds anew (back from a rest)
        self._misses = 0
        self._rest = 0
        self._next_rest = self.FIRST_REST

    def wanted(self) -> bool:
        """Whether the next step keeps bounds."""
        return self._rest == 0

    def bounded(self, points: _kmeans_init.Points) -> bool:
        """Whether the next step keeps bounds; back from a rest, the points' bounds are forgotten first (made anew)."""
        if self.anew:
            points.forget_bounds()
            self.anew = False
        return self.wanted()

    def after(self, share: float | None) -> None:
        """Take a step's share of rows that took the products (None: it did not carry bounds over)."""
        if self._rest:
            self._rest -= 1
            self.anew = self._rest == 0
            return
        if share is None:
            return
        self._misses = self._misses + 1 if share > self.MISS_SHARE else 0
        if self._misses >= (self.MISSES if self._next_rest == self.FIRST_REST else 1):
            self._rest, self._next_rest = self._next_rest, min(2 * self._next_rest, self.LONGEST_REST)
            self._misses = 0


def _inertias(points: _kmeans_init.Points, dist: _np.ndarray) -> _np.ndarray:
    """Each block's inertia from its rows' squared distances (this rank's rows end to end)."""
    return _np.array([points.inertia(i, part) for i, part in enumerate(points.per_block(dist))], _np.float64)


@_njit(cache=True, nogil=True)
def _moved(sums, counts, out):  # pragma: no cover - compiled by numba
    """Write the new centres into ``out``: each cluster's sum times the inverse of its count (divided by the count
    where the inverse overflows: a total of subnormal weights), the sum itself for a cluster of count 0. Return
    whether a cluster has count 0 (to relocate, then call again)."""
    k, d = sums.shape
    empty = False
    for j in range(k):
        n = counts[j]
        inverse = 1.0 / n if n > 0.0 else 1.0
        for t in range(d):
            if n <= 0.0:
                out[j, t] = sums[j, t]
            elif _np.isfinite(inverse):
                out[j, t] = sums[j, t] * inverse
            else:
                out[j, t] = sums[j, t] / n
        empty |= n == 0.0
    return empty


def _relocate_empty(
    points: _kmeans_init.Points, labels: list[_np.ndarray], dist: list[_np.ndarray], sums: _np.ndarray,
    counts: _np.ndarray,
) -> None:
    """Move each empty cluster onto one of the rows farthest from their centres, as scikit-learn does (in place):
    the row, times its weight, leaves its cluster's sum and becomes the empty one's.

    The farthest rows over every rank are taken in order of distance (not weighted, as scikit-learn), ties to the
    lower global row (scikit-learn takes them in ``argpartition``'s order).
    """
    empty = _np.flatnonzero(counts == 0)
    m = empty.shape[0]
    d = sums.shape[1]
    blocks = points.blocks
    rows = []
    for i, (start, lab, dst) in enumerate(zip(blocks.starts, labels, dist)):
        top = _np.lexsort((_np.arange(dst.shape[0]), -dst))[:m]
        for j in top:
            head = [-dst[j], start + j, lab[j], points.weight(i, int(j))]
            rows.append(_np.concatenate([head, points.row(i, int(j))]))
    local = _np.array(rows).reshape(-1, d + 4)
    every = blocks.comm.allgather(local) if blocks.comm.size > 1 else local
    far = every[_np.lexsort((every[:, 1], every[:, 0]))[:m]]
    for new_id, row in zip(empty, far):
        old_id, weight = int(row[2]), row[3]
        x = row[4:] * weight
        sums[old_id] -= x
        sums[new_id] = x
        counts[new_id] = weight
        counts[old_id] -= weight
