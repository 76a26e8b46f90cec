"""k-means initializations over row blocks: k-means++, random, k-means|| (Bahmani et al.), all split-invariant.

Every draw is keyed by global row index (:mod:`hpc.ml._random`), and a weighted pick is an exponential race whose
minimum MPI finds in one collective: the same rows win however the rows are split, so the initial centres (and
with them the whole fit) are the same bits on any number of ranks. Rows with sample weights are drawn as
scikit-learn draws them: in proportion to their weight (the first centre, random rows), or to their weight times
their squared distance (k-means++, k-means||).
"""

from __future__ import annotations

import math as _math
from dataclasses import dataclass
from typing import Any

import numpy as _np
from numba import njit as _njit

from hpc.ml import _device, _random
from hpc.ml._blocks import Blocks

__all__ = ["Points", "kmeans_parallel", "kmeans_plusplus", "random_rows"]

# stream ids: the purpose of each draw, packed with the run, the centre or round, and the trial; a k-means++ centre
# after the first races blocks (_PLUSPLUS_BLOCK, keyed by the block's first row) and picks a row in each
# (_PLUSPLUS_ROW, the same key)
_PLUSPLUS, _RANDOM, _PARALLEL, _RECLUSTER, _PLUSPLUS_BLOCK, _PLUSPLUS_ROW = 1, 2, 3, 4, 5, 6


def _stream(purpose: int, run: int, step: int, trial: int = 0) -> int:
    return (((purpose << 16) | (run & 0xFFFF)) << 32 | (step & 0xFFFFFF) << 8 | (trial & 0xFF)) & (2**64 - 1)


@dataclass
class Points:
    """The (centred) rows of a fit in blocks and the seed of their draws; with ``weighted``, each block's second
    array holds its rows' sample weights (float64, on the host)."""

    blocks: Blocks
    seed: int
    n_features: int
    weighted: bool = False
    weight_exponent: int = 0  #: the binary exponent of the largest weight over every rank (keys are scaled by it)
    #: host blocks' rows laid end to end in one array (block ``i`` its rows ``offsets[i]:offsets[i + 1]``), which
    #: lets a Lloyd pass take several blocks per kernel call (:meth:`lloyd_step`); None: one call per block
    rows: _np.ndarray | None = None
    offsets: _np.ndarray | None = None
    _on_device: tuple[_np.ndarray, Any] | None = None  #: the last centres copied to the device, and the copy
    _weight_rows: _np.ndarray | None = None  #: the blocks' weights laid end to end (made once, when first asked)
    #: the bounded Lloyd steps' per-row labels, upper and lower bounds, and the centres they were last made for
    _bounds: tuple[_np.ndarray, _np.ndarray, _np.ndarray] | None = None
    _bounds_centres: _np.ndarray | None = None
    #: how many of this rank's rows the last pass took the products for, where it kept bounds made before it (None
    #: for a full pass, or one that made its bounds anew): what tells whether the bounds pay for themselves
    carried_bounds_computed: int | None = None
    _whole_blocks: bool | None = None  #: every block but the last whole, host rows laid end to end (made once)

    def __post_init__(self) -> None:
        if self.offsets is None:  # device blocks: the offsets of per-row host arrays of this rank's blocks
            sizes = [item[0].shape[0] for item in self.blocks.items]
            self.offsets = _np.concatenate([[0], _np.cumsum(sizes, dtype=_np.int64)]).astype(_np.int64)

    def per_block(self, values: _np.ndarray) -> list[_np.ndarray]:
        """Return views of ``values``, one entry per row of this rank's blocks in block order, one view per block."""
        o = self.offsets
        return [values[o[i] : o[i + 1]] for i in range(len(self.blocks))]

    def weight_rows(self) -> _np.ndarray | None:
        """Return every block's sample weights laid end to end (host float64), or None for an unweighted fit."""
        if self.weighted and self._weight_rows is None:
            parts = [self.weights(i) for i in range(len(self.blocks))]
            self._weight_rows = _np.concatenate(parts) if parts else _np.empty(0)
        return self._weight_rows

    def chances(self, closest: _np.ndarray) -> _np.ndarray:
        """Return the per-row ``closest`` (this rank's rows end to end) times the rows' sample weights: what the
        k-means++ and k-means|| draws are in proportion to (``closest`` itself for an unweighted fit)."""
        w = self.weight_rows()
        return closest if w is None else closest * w

    def weights(self, i: int) -> _np.ndarray | None:
        """Return block ``i``'s sample weights, or None for an unweighted fit."""
        return _device.host(self.blocks.items[i][1]) if self.weighted else None

    def weight(self, i: int, j: int) -> float:
        """Return the weight of row ``j`` of block ``i`` (1.0 for an unweighted fit)."""
        return float(_device.host(self.blocks.items[i][1])[j]) if self.weighted else 1.0

    def inertia(self, i: int, dist: _np.ndarray) -> float:
        """Return block ``i``'s inertia from its rows' squared distances (weighted by the rows' weights)."""
        w = self.weights(i)
        return float(dist.sum() if w is None else w @ dist)

    def race_keys(self, i: int, u: _np.ndarray) -> _np.ndarray:
        """Return block ``i``'s keys ``-log(u) / w`` of a race in proportion to the rows' weights (``-log(u)``
        unweighted; a weight of 0 never wins: key inf). The weights are scaled by a power of two that brings the
        largest into [0.5, 1) (the same order of keys; subnormal weights no longer make every key overflow)."""
        w = self.weights(i)
        if w is None:
            return -_np.log(u)
        scaled = _np.ldexp(w, -self.weight_exponent)
        with _np.errstate(divide="ignore", invalid="ignore"):
            return _np.where(scaled > 0.0, -_np.log(u) / scaled, _np.inf)

    @property
    def comm(self) -> Any:
        return self.blocks.comm

    def sqdist(self, i: int, centres: _np.ndarray) -> _np.ndarray:
        """Return block ``i``'s squared distances to ``centres`` rounded to the rows' dtype, float64 ``(rows, m)``.

        :func:`hpc.kernels.sqdist`, serial (this runs on the pool's threads already): the direct form for thin
        problems, the GEMM form with its fix-ups otherwise, never negative. Device blocks: the direct form on the
        device (:func:`hpc.cuda.twins.sqdist`).
        """
        X = self.blocks.items[i][0]
        if self.blocks.on_device:
            from hpc.cuda import twins

            return twins.sqdist(X, self._device_copy(centres, X)).get().astype(_np.float64, copy=False)
        from hpc import kernels

        c = centres.astype(X.dtype, copy=False)
        return kernels.sqdist(X, c, parallel=False).astype(_np.float64, copy=False)

    def step(
        self, i: int, centres: _np.ndarray, distances: bool = True, **sums: _np.ndarray
    ) -> tuple[_np.ndarray, _np.ndarray | None]:
        """Return :func:`hpc.kernels.kmeans_step` of block ``i`` (its GPU twin for device blocks) as host arrays
        (the distances None unless ``distances``).

        A weighted fit adds each row times its weight to ``sums`` and its weight to ``counts`` (on the host, rows
        in order)."""
        from hpc import kernels

        X = self.blocks.items[i][0]
        add = sums if not self.weighted else {}
        if self.blocks.on_device:
            labels, dist = kernels.kmeans_step(
                X, self._device_copy(centres, X, _np.float64), distances=distances, **add
            )
            labels, dist = labels.get(), None if dist is None else dist.get()
        else:
            labels, dist = kernels.kmeans_step(X, centres, distances=distances, **add)
        if self.weighted and sums:
            _add_weighted(_device.host(X), labels, self.weights(i), sums["sums"], sums["counts"])
        return labels, dist

    def lloyd_step(
        self, centres: _np.ndarray, sums: _np.ndarray | None = None, counts: _np.ndarray | None = None, *,
        distances: bool = True, bounded: bool = False,
    ) -> tuple[_np.ndarray, _np.ndarray | None]:
        """Return the labels (int32) and squared distances (float64; None unless ``distances``) of a Lloyd step from
        ``centres`` for this rank's rows end to end, and with ``sums`` (float64 ``(blocks, k, d)``) and ``counts``
        (float64 ``(blocks, k)``) write over each block's entries the sums of its rows per cluster and their counts
        (times the rows' weights): the bits of :meth:`step` per block.

        Host rows laid end to end (:attr:`rows`) are taken several blocks per :func:`hpc.kernels.kmeans_step` call
        (``block_rows``: each block's sums its own), a few groups of blocks per pool thread: one kernel call per group
        instead of one per block (the calls' Python, run under the GIL, cost about a sixth of a pass on 2 threads).

        ``bounded`` (Lloyd's iterations): where it pays (:meth:`_bounds_pay`), the calls are
        :func:`hpc.kernels.kmeans_step_bounded`, with per-row bounds kept here from one call to the next (valid for
        whatever centres come next: the kernel widens them by how far each centre moved), so the rows whose nearest
        centre cannot have changed skip the products.
        """
        if sums is not None:
            sums.fill(0.0)
            counts.fill(0.0)
        self.carried_bounds_computed = None
        edges = self._group_edges()
        if edges is None:

            def one(i: int) -> tuple[_np.ndarray, _np.ndarray | None]:
                into = {} if sums is None else {"sums": sums[i], "counts": counts[i]}
                return self.step(i, centres, distances, **into)

            return _joined(self.blocks.run(one), distances)
        from hpc import kernels
        from hpc.ml._blocks import run_blocks

        block_rows = self.blocks.block_rows
        state = self._bounds_for(centres) if bounded and self._bounds_pay(centres) else None
        add = sums is not None and not self.weighted
        computed = [0] * (len(edges) - 1)

        def group(g: int) -> tuple[_np.ndarray, _np.ndarray | None]:
            b0, b1 = edges[g], edges[g + 1]
            lo, hi = int(self.offsets[b0]), int(self.offsets[b1])
            x = self.rows[lo:hi]
            into = {"sums": sums[b0:b1], "counts": counts[b0:b1]} if add else {}
            if state is None:
                labels, dist = kernels.kmeans_step(x, centres, block_rows=block_rows, distances=distances, **into)
            else:
                every, upper, lower, moved = state
                labels, dist, computed[g] = kernels.kmeans_step_bounded(
                    x, centres, every[lo:hi], upper[lo:hi], lower[lo:hi], moved=moved, block_rows=block_rows,
                    distances=distances, **into,
                )
            if sums is not None and self.weighted:
                for i in range(b0, b1):
                    a, b = int(self.offsets[i]) - lo, int(self.offsets[i + 1]) - lo
                    _add_weighted(x[a:b], labels[a:b], self.weights(i), sums[i], counts[i])
            return labels, dist

        parts = run_blocks(group, len(edges) - 1)
        if state is None:
            return _joined(parts, distances)
        if state[3] is not None:  # bounds carried over from an earlier pass
            self.carried_bounds_computed = sum(computed)
        self._bounds_centres = centres.copy()
        labels = state[0].copy()  # the kept labels change in place at the next call
        return labels, _joined(parts, distances)[1]

    def label_distances(self, labels: list[_np.ndarray], centres: _np.ndarray) -> list[_np.ndarray]:
        """Return each block's exact squared distances of its rows to their centres in ``labels`` (per block), the
        bits a step's distances have (:func:`hpc.kernels.kmeans_distances`); device blocks take a whole step again
        (the twins' steps give the same labels again)."""
        if self.blocks.on_device:
            return [self.step(i, centres)[1] for i in range(len(self.blocks))]
        from hpc import kernels

        return self.blocks.run(lambda i: kernels.kmeans_distances(self.blocks.items[i][0], centres, labels[i]))

    def lowered(self, closest: _np.ndarray, candidates: _np.ndarray) -> _np.ndarray:
        """Return ``closest`` (per row, this rank's rows end to end) lowered to each row's nearest of
        ``candidates``, block by block on the pool's threads: no matrix of every row's distances at once."""
        o = self.offsets
        out = closest.copy()

        def one(i: int) -> None:
            _lower(out[o[i] : o[i + 1]], self.sqdist(i, candidates))

        self.blocks.run(one)
        return out

    def _bounds_pay(self, centres: _np.ndarray) -> bool:
        """Whether Lloyd's steps keep per-row bounds: compiled BLAS (SciPy), and products wide enough that skipping
        them pays for the bookkeeping of every row (where the thresholds come from: docs/performance.md, "hpc bench
        ml")."""
        from hpc.kernels import _checks

        k, d = centres.shape
        wide = 256 if self.rows is None or self.rows.dtype == _np.float64 else 1000  # float32: cheaper products
        return _checks.compiled_blas() and k >= 4 and d >= 8 and k * d >= wide

    def forget_bounds(self) -> None:
        """Drop the bounded steps' per-row state: the next bounded step makes it anew (a new run of Lloyd's
        iterations, whose first centres are unrelated to the last run's)."""
        self._bounds = self._bounds_centres = None

    def _bounds_for(self, centres: _np.ndarray) -> tuple[_np.ndarray, _np.ndarray, _np.ndarray, _np.ndarray | None]:
        """Return the per-row state of the bounded steps (labels, upper and lower bounds, this rank's rows end to
        end) and how far each centre moved since the bounds were made (None: no bounds yet), made anew for another
        number of centres."""
        n = int(self.offsets[-1])
        last = self._bounds_centres
        moved = None
        if last is not None and last.shape == centres.shape:
            with _np.errstate(over="ignore", invalid="ignore"):
                moved = _np.sqrt(((centres - last) ** 2).sum(axis=1))
        if self._bounds is None or moved is None or not _np.isfinite(moved).all():  # none yet, or no use: anew
            self._bounds = (_np.full(n, -1, _np.int32), _np.zeros(n), _np.zeros(n))
            moved = None
        # until the step has run whole (it may raise midway, with some rows' bounds already for these centres)
        self._bounds_centres = None
        return (*self._bounds, moved)

    def _group_edges(self) -> list[int] | None:
        """Return the first block of each group of consecutive blocks that one kernel call takes (and the number of
        blocks last), a few groups per pool thread; None where each block takes its own call (device blocks, or a
        short block before the last)."""
        if self._whole_blocks is None:  # once: the blocks do not change
            sizes = _np.diff(self.offsets)
            self._whole_blocks = self.rows is not None and not (sizes[:-1] != self.blocks.block_rows).any()
        if not self._whole_blocks:
            return None
        n = len(self.blocks)
        if n <= 1:  # one group (a rank without blocks: an empty one)
            return [0, n]
        from hpc import current_num_threads

        groups = min(n, 4 * current_num_threads())
        return [n * g // groups for g in range(groups + 1)]

    def distances(
        self, candidates: _np.ndarray, closest: _np.ndarray | None = None
    ) -> tuple[_np.ndarray, _np.ndarray | None]:
        """Return every row's squared distances to ``candidates`` (float64 ``(rows, m)``, each as :meth:`sqdist`
        gives it), and with ``closest`` (float64 ``(rows,)``) each distance lowered to it and per block their sums
        over the block's rows (times the rows' weights), float64 ``(blocks, m)`` (else None).

        Host rows laid end to end take a few groups of blocks per pool thread, one :func:`hpc.kernels.sqdist` call
        per group (``block_rows``: each block's distances the bits of its own call); device blocks one call each.
        """
        o = self.offsets
        m = candidates.shape[0]
        dist = _np.empty((int(o[-1]), m))
        sums = _np.zeros((len(self.blocks), m)) if closest is not None else None
        w = self.weight_rows()

        def fold(b0: int, b1: int) -> None:
            if closest is not None:
                lo, hi = o[b0], o[b1]
                _fold_nearest(closest[lo:hi], dist[lo:hi], sums[b0:b1], _np.empty(0) if w is None else w[lo:hi],
                              w is not None, o[b0 : b1 + 1] - lo)

        edges = self._group_edges()
        if edges is None:

            def one(i: int) -> None:
                dist[o[i] : o[i + 1]] = self.sqdist(i, candidates)
                fold(i, i + 1)

            self.blocks.run(one)
            return dist, sums
        from hpc import kernels
        from hpc.ml._blocks import run_blocks

        def group(g: int) -> None:
            b0, b1 = edges[g], edges[g + 1]
            lo, hi = o[b0], o[b1]
            x = self.rows[lo:hi]
            c = candidates.astype(x.dtype, copy=False)
            if x.dtype == _np.float64:
                kernels.sqdist(x, c, out=dist[lo:hi], parallel=False, block_rows=self.blocks.block_rows)
            else:
                dist[lo:hi] = kernels.sqdist(x, c, parallel=False, block_rows=self.blocks.block_rows)
            fold(b0, b1)

        run_blocks(group, len(edges) - 1)
        return dist, sums

    def plusplus_entrants(
        self, draw_on: _np.ndarray, run: int, c: int, trials: int, exponent: int, weighted: bool
    ) -> tuple[_np.ndarray, _np.ndarray]:
        """Return every block's keys in the race of blocks for centre ``c`` and its own picks of rows (global), each
        ``(blocks, trials)``, for the rows' weights ``draw_on`` (this rank's rows end to end) scaled by
        ``2**-exponent`` (or equal weights where not ``weighted``); see :func:`block_entrants`. The draws are keyed
        by the block's first row (times 256, plus the trial: trials < 256), all blocks' in one call."""
        starts = _np.asarray(self.blocks.starts, _np.int64).reshape(-1)
        u_block = _random.uniform_at(self.seed, _stream(_PLUSPLUS_BLOCK, run, c), starts * 256, trials)
        u_row = _random.uniform_at(self.seed, _stream(_PLUSPLUS_ROW, run, c), starts * 256, trials)
        keys = _np.empty((starts.shape[0], trials))
        rows = _np.empty((starts.shape[0], trials), _np.int64)
        _entrants_blocks(draw_on, self.offsets, exponent, weighted, u_block, u_row, keys, rows)
        return keys, starts[:, None] + rows

    def _device_copy(self, centres: _np.ndarray, X: Any, dtype: Any = None) -> Any:
        """Return ``centres`` (as ``dtype``, default ``X``'s) on ``X``'s device: copied once for every block of a
        pass, not once per block (the last copy is kept while the same values in the same dtype come again)."""
        host = _np.ascontiguousarray(centres, dtype=X.dtype if dtype is None else dtype)
        last = self._on_device
        if last is None or last[0].dtype != host.dtype or not _np.array_equal(last[0], host):
            from hpc.cuda import to_device

            self._on_device = last = (host.copy(), to_device(host, device=X.device_index))
        return last[1]

    def row(self, i: int, j: int) -> _np.ndarray:
        """Return row ``j`` of block ``i`` as float64 on the host."""
        return _device.row(self.blocks.items[i][0], j)

    def uniform(self, stream: int) -> list[_np.ndarray]:
        """Return per-block draws in (0, 1] keyed by global row (made on the pool's threads)."""
        return self.blocks.run(lambda i: self.block_uniform(i, stream))

    def block_uniform(self, i: int, stream: int) -> _np.ndarray:
        """Return block ``i``'s draws in (0, 1] keyed by global row."""
        return _random.uniform(self.seed, stream, self.blocks.starts[i], self.blocks.items[i][0].shape[0])

    def race(self, keys: list[_np.ndarray], t: int) -> _np.ndarray:
        """Return, for each of the ``t`` columns of the per-block ``keys`` ``(rows, t)``, the global row of the
        smallest key. Ties go to the lower row; a column whose keys are all ``inf`` returns -1.
        """
        values, rows = [], []
        for start, k in zip(self.blocks.starts, keys):
            if k.shape[0]:
                first = _np.argmin(k, axis=0)
                values.append(k[first, _np.arange(t)])
                rows.append(start + first)
        if not values:
            return self.race_entrants(_np.empty((0, t)), _np.empty((0, t), _np.int64), t)
        return self.race_entrants(_np.stack(values), _np.stack(rows), t)

    def race_entrants(self, keys: _np.ndarray, rows: _np.ndarray, t: int) -> _np.ndarray:
        """Return, for each of ``t`` columns, the global row of the smallest key among this rank's entrants (``keys``
        and their global ``rows``, ``(entrants, t)``, entrants in order of their rows) and every other rank's. Ties
        go to the lower row; a column whose keys are all ``inf`` returns -1.
        """
        best_keys, best_rows = _np.full(t, _np.inf), _np.full(t, -1, _np.int64)
        if keys.shape[0]:
            first = _np.argmin(keys, axis=0)  # the first smallest: the lowest row of this rank's smallest keys
            columns = _np.arange(t)
            best_keys, best_rows = keys[first, columns], rows[first, columns]
        finite = _np.isfinite(best_keys)
        if self.comm.size == 1:  # every entrant is here
            return _np.where(finite, best_rows, -1).astype(_np.int64)
        mine = _np.stack([_np.where(finite, best_keys, _np.inf), _np.where(finite, best_rows, _np.inf)], axis=1)
        every = self.comm.allgather(mine[None])
        keys, rows = every[:, :, 0], every[:, :, 1]  # (ranks, t) each; the keys are never NaN
        smallest = keys.min(axis=0)
        row = _np.where(keys == smallest, rows, _np.inf).min(axis=0)  # of the ranks with the smallest key
        return _np.where(_np.isfinite(smallest), row, -1).astype(_np.int64)

    def smallest(self, keys: list[_np.ndarray], m: int) -> _np.ndarray:
        """Return the global rows of the ``m`` smallest of the per-block 1-D ``keys``, smallest first."""
        pairs = _np.empty((0, 2))
        if keys:
            values = _np.concatenate(keys)
            rows = _np.concatenate([start + _np.arange(k.shape[0]) for start, k in zip(self.blocks.starts, keys)])
            order = _np.lexsort((rows, values))[:m]
            pairs = _np.stack([values[order], rows[order].astype(_np.float64)], axis=1)
        every = self.comm.allgather(pairs) if self.comm.size > 1 else pairs
        order = _np.lexsort((every[:, 1], every[:, 0]))[:m]
        return every[order, 1].astype(_np.int64)

    def fetch(self, rows: _np.ndarray) -> _np.ndarray:
        """Return the given global rows (float64 ``(len(rows), d)``), from whichever ranks hold them."""
        if (rows < 0).any():
            raise RuntimeError(f"hpc.ml internal error: no row won a draw (rows {rows.tolist()})")
        d = self.n_features
        if self.comm.size == 1 and self.rows is not None:  # one rank: global row r is row r of the rows end to end
            return self.rows[rows].astype(_np.float64, copy=False)
        local = _np.empty((0, d + 1))  # (the row's position in rows, the row)
        starts = _np.asarray(self.blocks.starts, _np.int64).reshape(-1)
        if starts.shape[0]:
            block = _np.maximum(_np.searchsorted(starts, rows, side="right") - 1, 0)
            inside = (rows >= starts[block]) & (rows < starts[block] + _np.diff(self.offsets)[block])
            positions = _np.flatnonzero(inside)
            if self.rows is not None:  # host rows end to end: taken in one step
                at = self.offsets[block[positions]] + rows[positions] - starts[block[positions]]
                local = _np.column_stack([positions.astype(_np.float64), self.rows[at].astype(_np.float64)])
            elif positions.shape[0]:
                local = _np.array([
                    _np.concatenate([[float(p)], self.row(int(block[p]), int(rows[p] - starts[block[p]]))])
                    for p in positions
                ])
        every = self.comm.allgather(local) if self.comm.size > 1 else local
        out = _np.empty((rows.shape[0], d))
        out[every[:, 0].astype(_np.int64)] = every[:, 1:]
        return out

    def largest(self, parts: list[_np.ndarray]) -> float:
        """Return the largest value of the per-block 1-D ``parts`` over every rank (0.0 where there is none)."""
        mine = max((float(p.max()) for p in parts if p.shape[0]), default=0.0)
        return float(self.comm.allreduce(mine, op="max")) if self.comm.size > 1 else mine

    def total(self, parts: list[_np.ndarray] | _np.ndarray, shape: tuple[int, ...]) -> _np.ndarray:
        """Return the reproducible sum of per-block ``parts`` over every rank (a list, or one array with a part per
        entry of its first axis)."""
        return self.blocks.sum(parts, shape)


def _joined(parts: list[tuple[_np.ndarray, _np.ndarray | None]], distances: bool) -> tuple[_np.ndarray, Any]:
    """The labels and distances of a pass's parts (in row order) laid end to end (distances None unless asked)."""
    if len(parts) == 1:
        return parts[0][0], parts[0][1] if distances else None
    labels = _np.concatenate([p[0] for p in parts]) if parts else _np.empty(0, _np.int32)
    if not distances:
        return labels, None
    return labels, _np.concatenate([p[1] for p in parts]) if parts else _np.empty(0)


@_njit(cache=True, nogil=True)
def _add_weighted(x, labels, w, sums, counts):  # pragma: no cover - compiled by numba
    """``sums[labels[r]] += w[r] * x[r]`` and ``counts[labels[r]] += w[r]``, rows in order."""
    for r in range(x.shape[0]):
        j = labels[r]
        weight = w[r]
        counts[j] += weight
        for t in range(x.shape[1]):
            sums[j, t] += weight * x[r, t]


def _unit_scaled(weights: _np.ndarray, top: float) -> _np.ndarray:
    """``weights`` scaled by the power of two that brings ``top`` (their largest, over every rank) into [0.5, 1).

    The race keys ``-log(u) / w`` keep exactly their order, but a squared distance near the bottom of float64's range
    no longer makes every key overflow to inf (no row would win: at data scale 1e-160 row 0 took every draw)."""
    return _np.ldexp(weights, -_math.frexp(top)[1])


@_njit(cache=True, nogil=True)
def _lower(closest, dist):  # pragma: no cover - compiled by numba
    """``closest[r] = min(closest[r], dist[r, :])`` (NumPy's row minimum took longer than the distances)."""
    for r in range(dist.shape[0]):
        near = closest[r]
        for j in range(dist.shape[1]):
            near = min(near, dist[r, j])
        closest[r] = near


@_njit(cache=True, nogil=True)
def _fold_nearest(closest, dist, sums, w, weighted, offsets):  # pragma: no cover - compiled by numba
    """``dist[r, j] = min(dist[r, j], closest[r])`` and ``sums[b, j] += dist[r, j]`` (times ``w[r]`` where
    ``weighted``) for the rows ``offsets[b] <= r < offsets[b + 1]`` of each block ``b``, rows in order."""
    for b in range(offsets.shape[0] - 1):
        for r in range(offsets[b], offsets[b + 1]):
            near = closest[r]
            for j in range(dist.shape[1]):
                value = min(dist[r, j], near)
                dist[r, j] = value
                sums[b, j] += w[r] * value if weighted else value


@_njit(cache=True, nogil=True)
def _entrants(distances, exponent, weighted, u_block, u_row, keys, rows):  # pragma: no cover - compiled by numba
    """A block's keys in the race of blocks and its picks of rows, one per trial (see :func:`block_entrants`).

    The weights are ``distances * 2**-exponent`` (``math.ldexp``, as :func:`_unit_scaled`), or 1 where not
    ``weighted``; their running sum is made once and searched once per trial.
    """
    n = distances.shape[0]
    cumulative = _np.empty(n)
    total = 0.0
    scale = _math.ldexp(1.0, -exponent)
    exact = 0.0 < scale < _np.inf  # then x * scale is ldexp(x, -exponent), both rounded once, and no libm call
    for i in range(n):
        if not weighted:
            total += 1.0
        elif exact:
            total += distances[i] * scale
        else:
            total += _math.ldexp(distances[i], -exponent)
        cumulative[i] = total
    for t in range(u_block.shape[0]):
        if not total > 0.0:
            keys[t] = _np.inf
            rows[t] = 0
            continue
        row = _np.searchsorted(cumulative, u_row[t] * total, side="right")  # the first sum past the target
        if row >= n:  # u_row * total rounded up to total: the last row of positive weight
            row = _np.searchsorted(cumulative, total, side="left")
        rows[t] = row
        keys[t] = -_math.log(u_block[t]) / total


@_njit(cache=True, nogil=True)
def _entrants_blocks(distances, offsets, exponent, weighted, u_block, u_row, keys, rows):  # pragma: no cover
    """:func:`_entrants` of each block ``b``: the rows ``offsets[b]:offsets[b + 1]`` of ``distances``, the draws and
    results in row ``b`` of the others."""
    for b in range(offsets.shape[0] - 1):
        _entrants(distances[offsets[b] : offsets[b + 1]], exponent, weighted, u_block[b], u_row[b], keys[b], rows[b])


def block_entrants(w: _np.ndarray, u_block: _np.ndarray, u_row: _np.ndarray) -> tuple[_np.ndarray, _np.ndarray]:
    """Return a block's keys in a race of blocks and its picks of its rows, for row weights ``w`` (finite, >= 0)
    and a pair of draws in (0, 1] per trial.

    A key is ``-log(u_block) / W`` with ``W`` the block's total weight: the smallest of such keys falls on block
    ``b`` with probability ``W_b / sum(W)``, as the smallest of the rows' own keys ``-log(u) / w`` falls in it (the
    minimum of independent exponential keys is exponential with the summed rate). A pick is ``w``'s inverse CDF at
    ``u_row``: row ``i`` with probability ``w_i / W``. Together: row ``i`` of any block with probability
    ``w_i / sum(W)``, from two draws per block and trial instead of one per row. A block of zero weight has key
    ``inf``.
    """
    keys = _np.empty(u_block.shape[0])
    rows = _np.empty(u_block.shape[0], _np.int64)
    _entrants(_np.asarray(w, _np.float64), 0, True, u_block, u_row, keys, rows)
    return keys, rows


def kmeans_plusplus(points: Points, k: int, run: int) -> _np.ndarray:
    """Return ``k`` centres by greedy k-means++ (scikit-learn's ``_kmeans_plusplus``, ``2 + log k`` trials each).

    Each trial picks a row with probability proportional to its squared distance to the nearest centre so far (times
    its sample weight), by a race of blocks (:func:`block_entrants`): the same picks however the rows are split over
    ranks and threads. The first centre is drawn in proportion to the sample weights. Per-row values (the nearest
    distance, the chances) are held for all of this rank's rows end to end, so that each step is a few calls over
    groups of blocks, not one per block.
    """
    trials = 2 + int(_math.log(k))
    first = points.race(
        [points.race_keys(i, u)[:, None] for i, u in enumerate(points.uniform(_stream(_PLUSPLUS, run, 0)))], 1
    )
    centres = _np.empty((k, points.n_features))
    centres[0] = points.fetch(first)[0]
    weights = points.weight_rows()
    closest = points.distances(centres[:1])[0][:, 0].copy()
    chances = points.chances(closest)
    potential = points.total([c.sum(keepdims=True) for c in points.per_block(chances)], (1,))[0]
    for c in range(1, k):
        # every row already a centre (distance 0): the draw falls back to the sample weights (uniform without)
        draw_on = chances if potential > 0 or weights is None else weights
        top = points.largest([draw_on])
        exponent, weighted = _math.frexp(top)[1], bool(potential > 0) or points.weighted
        keys, entrants = points.plusplus_entrants(draw_on, run, c, trials, exponent, weighted)
        candidates = points.race_entrants(keys, entrants, trials)
        candidates[candidates < 0] = 0  # every weight 0 everywhere cannot happen with potential > 0; kept safe
        rows = points.fetch(candidates)
        distances, sums = points.distances(rows, closest)
        potentials = points.total(sums, (trials,))
        best = int(_np.argmin(potentials))
        potential = potentials[best]
        closest = distances[:, best].copy()
        chances = points.chances(closest)
        centres[c] = rows[best]
    return centres


def random_rows(points: Points, k: int, run: int) -> _np.ndarray:
    """Return ``k`` distinct rows chosen at random (scikit-learn's ``init="random"``): uniformly, or in proportion to
    their sample weights, without replacement (the ``k`` smallest keys ``-log(u) / w``)."""
    if points.weighted:
        positive = points.total(
            [_np.array([float(_np.count_nonzero(points.weights(i)))]) for i in range(len(points.blocks))], (1,))[0]
        if positive < k:
            raise ValueError(f"init='random' draws n_clusters={k} distinct rows in proportion to sample_weight, but "
                             f"only {int(positive)} rows have a positive weight")
    keys = [points.race_keys(i, u) for i, u in enumerate(points.uniform(_stream(_RANDOM, run, 0)))]
    return points.fetch(points.smallest(keys, k))


def kmeans_parallel(points: Points, k: int, run: int, *, rounds: int = 5, oversampling: float = 2.0) -> _np.ndarray:
    """Return ``k`` centres by k-means|| (Bahmani et al., VLDB 2012): sampled rounds, then a weighted recluster.

    Each round keeps every row independently with probability ``min(1, l * d^2(x) / phi)``, ``l = oversampling *
    k``; the candidates are weighted by the rows nearest to them and reduced to ``k`` centres by weighted
    k-means++ and weighted Lloyd iterations, on every rank alike.
    """
    n_blocks = len(points.blocks)
    first = points.race(
        [points.race_keys(i, u)[:, None] for i, u in enumerate(points.uniform(_stream(_PARALLEL, run, 0)))], 1
    )
    chosen = [int(first[0])]
    candidates = points.fetch(first)
    closest = points.distances(candidates)[0][:, 0].copy()  # this rank's rows end to end
    ell = oversampling * k
    for r in range(1, rounds + 1):
        chances = points.per_block(points.chances(closest))
        phi = points.total([c.sum(keepdims=True) for c in chances], (1,))[0]
        if phi <= 0:
            break
        draws = points.uniform(_stream(_PARALLEL, run, r))
        picked = _np.concatenate(
            [start + _np.flatnonzero(u < ell * c / phi) for start, u, c in zip(points.blocks.starts, draws, chances)]
        ).astype(_np.int64) if n_blocks else _np.empty(0, _np.int64)
        picked = points.comm.allgather(picked) if points.comm.size > 1 else picked  # global order
        picked = picked[~_np.isin(picked, chosen)]
        if picked.shape[0] == 0:
            continue
        new = points.fetch(picked)
        chosen.extend(picked.tolist())
        candidates = _np.vstack([candidates, new])
        closest = points.lowered(closest, new)
    if candidates.shape[0] < k:  # too few sampled (tiny or duplicated data): top up with uniform rows
        keys = [points.race_keys(i, u) for i, u in enumerate(points.uniform(_stream(_PARALLEL, run, rounds + 1)))]
        for start, key in zip(points.blocks.starts, keys):
            key[_np.isin(start + _np.arange(key.shape[0]), chosen)] = _np.inf
        extra = points.smallest(keys, k - candidates.shape[0])
        candidates = _np.vstack([candidates, points.fetch(extra)])
    labels = points.per_block(points.lloyd_step(candidates, distances=False)[0])
    # each candidate weighted by the rows nearest to it (their sample weights), block by block
    counts = [
        _np.bincount(part, weights=points.weights(i), minlength=candidates.shape[0]).astype(_np.float64)
        for i, part in enumerate(labels)
    ]
    return _recluster(candidates, points.total(counts, (candidates.shape[0],)), k, points.seed, run)


def _recluster(candidates: _np.ndarray, weights: _np.ndarray, k: int, seed: int, run: int) -> _np.ndarray:
    """Return ``k`` centres of the weighted ``candidates``: weighted k-means++, then weighted Lloyd to convergence."""
    from hpc import kernels

    m = candidates.shape[0]
    # scaled by a power of two (exact: the same picks and centres) so that sums of tiny sample weights stay normal
    weights = _unit_scaled(weights, float(weights.max()))

    def sqdist(centres: _np.ndarray) -> _np.ndarray:
        return kernels.sqdist(candidates, _np.ascontiguousarray(centres), parallel=False)

    def pick(step: int, trial: int, w: _np.ndarray) -> int:
        with _np.errstate(divide="ignore"):
            keys = -_np.log(_random.uniform(seed, _stream(_RECLUSTER, run, step, trial), 0, m)) / w
        return int(_np.argmin(keys))

    trials = 2 + int(_math.log(k))
    centres = _np.empty((k, candidates.shape[1]))
    centres[0] = candidates[pick(0, 0, weights)]
    closest = sqdist(centres[:1])[:, 0]
    for c in range(1, k):
        w = weights * _unit_scaled(closest, float(closest.max()))
        w = w if w.sum() > 0 else weights
        options = [pick(c, t, w) for t in range(trials)]
        distances = _np.minimum(closest[:, None], sqdist(candidates[options]))
        best = int(_np.argmin(weights @ distances))
        closest = distances[:, best]
        centres[c] = candidates[options[best]]
    labels = None
    for _ in range(300):
        new_labels = _np.argmin(sqdist(centres), axis=1)
        if labels is not None and _np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(k):
            members = labels == j
            total = weights[members].sum()
            if total > 0:
                centres[j] = weights[members] @ candidates[members] / total
    return centres
