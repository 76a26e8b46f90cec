"""Global row blocks: the unit of work whose results do not depend on ranks, threads or how rows are split.

The rows of every rank, laid end to end, are cut into blocks of :data:`BLOCK_ROWS` rows by global index. Each
block is computed whole by one thread of one rank, so its partial result (a Gram matrix, per-cluster sums, a
gradient) is the same bits whatever the split; the partials then meet in a reproducible sum
(:func:`hpc.mpi.sum` with ``reproducible=True``), whose bits do not depend on which rank holds which partial or
in what order they arrive. Together: a fit's sums are the same bits on 1..N ranks and any thread count.

A block that starts on one rank and ends on later ones is made whole on the rank holding its first row: the later
ranks send it their leading rows once, when the blocks are made (at most ``BLOCK_ROWS - 1`` rows per rank, one
pickled all-to-all). Per-row outputs (labels) travel back the same way (:meth:`Blocks.to_local`).
"""

from __future__ import annotations

import threading as _threading
import time as _time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as _np

from hpc._core import current_num_threads
from hpc._core.pool import Job, current_engine
from hpc.ml import _device

__all__ = ["BLOCK_ROWS", "SERIAL_BELOW_S", "SERIAL_BLOCKS_BELOW_S", "Blocks", "run_blocks"]

#: Rows per global block. Part of the reproducibility contract: fitted bits depend on it (and on nothing about the
#: ranks), so it is a constant, not a setting. 4096 rows of 100 float64 features are 3.2 MiB.
BLOCK_ROWS = 4096

#: A pass runs on the calling thread alone where the last pass of the same code took less than this many seconds of
#: one thread's work, or blocks shorter than :data:`SERIAL_BLOCKS_BELOW_S` each (:func:`run_blocks`; the helpers'
#: costs that set both: docs/performance.md, "hpc bench ml", what changed in the third session of 2026-12-07).
SERIAL_BELOW_S = 200e-6
SERIAL_BLOCKS_BELOW_S = 20e-6
_CODES_KEPT = 1024  # the passes' code objects whose last time per block is kept (a bound, never reached in hpc.ml)
_block_seconds: dict[Any, float] = {}  # by the code of a pass's fn: the caller's seconds per block, last time


def run_blocks(fn: Callable[[int], Any], n: int, *, like: Any = None) -> list[Any]:
    """Return ``[fn(0), ..., fn(n - 1)]``, computed by the calling thread and the current pool's (in any order).

    The caller takes blocks one at a time from a shared counter, with ``threads - 1`` of the pool's threads beside it
    (OpenMP's way, master thread included): no block waits for a worker to wake, and a pass never takes much
    longer than the caller alone would. When the blocks run out, the caller waits only for the blocks the helpers
    have taken, not for the helpers: a helper that has not started is taken back from the pool's queue, and one that
    wakes later finds nothing to do.

    A short pass runs on the calling thread alone: waking a sleeping thread costs the caller tens of microseconds on
    a VM, and handing the GIL back and forth as much again, more than a pass over a few small blocks takes. Short is
    what the last pass of the same code took (``fn``'s, or ``like``'s where ``fn`` wraps another function): under
    :data:`SERIAL_BELOW_S` seconds in all, or blocks of under :data:`SERIAL_BLOCKS_BELOW_S` each (whose Python,
    under the GIL, would leave the helpers waiting for it). Where such a pass runs longer this time, the helpers are
    woken once it has run that long.

    After a block raises, no new block starts, and once the blocks under way have finished the exception is raised
    here (one of them, where blocks on several threads raised: the others are dropped). An exception in the calling
    thread (its own block, an interrupt) stops the other threads too.
    """
    if n <= 1:  # the pool's size not even read: a pass over a few thousand rows is mostly such calls
        return [fn(i) for i in range(n)]
    threads = current_num_threads()
    if threads <= 1:
        return [fn(i) for i in range(n)]
    code = getattr(fn if like is None else like, "__code__", None)
    last = _block_seconds.get(code) if code is not None else None
    results: list[Any] = [None] * n
    start = _time.perf_counter()
    done = 0
    if last is not None and (last < SERIAL_BLOCKS_BELOW_S or last * n < SERIAL_BELOW_S):
        while done < n:  # alone, until the pass shows long blocks with two or more left
            took = _time.perf_counter() - start
            if n - done >= 2 and took >= SERIAL_BELOW_S and took >= SERIAL_BLOCKS_BELOW_S * done:
                break
            results[done] = fn(done)
            done += 1
    own = _time.perf_counter() - start  # one thread's work: the caller's own blocks, not its waits for helpers
    if done < n:  # from here `done` counts the caller's blocks only
        blocks, seconds = _run_shared(fn, done, n, results, threads)
        done, own = done + blocks, own + seconds
    if code is not None and done:
        if len(_block_seconds) >= _CODES_KEPT:
            _block_seconds.clear()
        _block_seconds[code] = own / done
    return results


def _run_shared(
    fn: Callable[[int], Any], first: int, n: int, results: list[Any], threads: int
) -> tuple[int, float]:
    """Run blocks ``first..n-1`` of :func:`run_blocks` on the caller and ``threads - 1`` helpers (results in place);
    return how many the caller ran and the seconds they took (none, where awake helpers took every block)."""
    claim = _threading.Lock()
    state = {"next": first, "failed": False, "running": 0}  # running: blocks the helpers took and have not finished
    quiet = _threading.Event()  # set while no helper runs a block
    quiet.set()
    errors: list[BaseException] = []

    def take(helper: bool) -> int:
        """The next block to run (-1: none left, or a block failed); a helper's counts as running."""
        with claim:
            i = state["next"]
            if i >= n or state["failed"]:
                return -1
            state["next"] = i + 1
            if helper:
                state["running"] += 1
                quiet.clear()
            return i

    def helper() -> None:
        while (i := take(True)) >= 0:
            try:
                results[i] = fn(i)
            except BaseException as exc:  # raised in the caller, once the blocks under way have finished
                errors.append(exc)
                state["failed"] = True
            finally:
                with claim:
                    state["running"] -= 1
                    if state["running"] == 0:
                        quiet.set()

    workers = current_engine()
    pushed: list[Job] = []
    mine, own = 0, 0.0
    try:
        for _ in range(min(n - first, threads) - 1):
            job = Job(helper)
            workers.push(job)
            pushed.append(job)
        while (i := take(False)) >= 0:
            began = _time.perf_counter()
            results[i] = fn(i)
            own += _time.perf_counter() - began
            mine += 1
        for job in pushed:
            workers.take_back(job)  # not started: it need not run
        workers.wait_until(quiet)  # the blocks the helpers took (an interrupt of this wait propagates)
    except BaseException:  # the caller's own block, or an interrupt: the other threads start no more blocks
        state["failed"] = True
        for job in pushed:
            workers.take_back(job)
        try:
            workers.wait_until(quiet)
        except BaseException:  # a second interrupt: the first one is raised
            pass
        raise
    if errors:
        raise errors[0]
    return mine, own


class Blocks:
    """This rank's whole global row blocks of some per-row arrays (``X``, and ``y`` or weights beside it).

    Args:
        comm (hpc.mpi.Comm): the ranks.
        counts (numpy.ndarray): rows per rank, the same on every rank (from :func:`hpc.ml._data.check_rows`).
        arrays: this rank's per-row arrays, each with ``counts[comm.rank]`` rows; NumPy arrays, or
            :class:`hpc.cuda.DeviceArray` rows of a fit on the GPU (the blocks are then views of them).
        block_rows (int): rows per block (tests shrink it to exercise many blocks on small data).

    Attributes:
        items (list of tuple): each block's arrays, in global order.
        starts (list of int): each block's first global row.
        on_device (bool): the blocks are in device memory (they are then computed one after another: the
            device runs each block's work in parallel).
    """

    def __init__(self, comm: Any, counts: _np.ndarray, arrays: Sequence[_np.ndarray], block_rows: int | None = None):
        self.comm = comm
        self.block_rows = block_rows = block_rows or BLOCK_ROWS  # read at each call: tests shrink it
        counts = _np.asarray(counts, _np.int64)
        ends = _np.cumsum(counts)
        starts = ends - counts
        rank = comm.rank
        lo, n = int(starts[rank]), int(counts[rank])
        self.n_total = int(ends[-1])
        self.on_device = any(not isinstance(a, _np.ndarray) for a in arrays)
        # Rows in another layout (a Fortran-ordered or strided X) are made C-ordered once, in one array whose
        # blocks are views: a copy per block took as much, and its thousands of blocks stayed in the heap's free
        # lists after the fit (the process kept the data's size more until malloc_trim)
        arrays = [_np.ascontiguousarray(a) if isinstance(a, _np.ndarray) else a for a in arrays]
        self.offset = lo
        self._head = self._head_rows(lo, n)
        # Who sends its leading rows to whom: rank q's head belongs to the block that starts on the rank owning
        # the row where that block begins.
        self._dest: dict[int, int] = {}
        for q in range(comm.size):
            q_lo, q_n = int(starts[q]), int(counts[q])
            if self._head_rows(q_lo, q_n):
                block_start = q_lo - q_lo % block_rows
                self._dest[q] = int(_np.searchsorted(ends, block_start, side="right"))
        self._sources = [q for q, d in sorted(self._dest.items()) if d == rank]
        self._source_rows = [self._head_rows(int(starts[q]), int(counts[q])) for q in self._sources]

        received = self._exchange([_device.host_rows(a, self._head) for a in arrays], to_owner=True)
        self.items: list[tuple[_np.ndarray, ...]] = []
        self.starts: list[int] = []
        for start in range(self._head, n, block_rows):
            # C order, as a block assembled from several ranks' rows is: BLAS, NumPy's reductions and the compiled
            # loops round differently for another layout, and the bits must not depend on where a block was made
            self.items.append(tuple(_device.rows(a, start, start + block_rows) for a in arrays))
            self.starts.append(lo + start)
        self._own_tail = 0
        if self._sources:  # the last block continues on later ranks: append their leading rows, in rank order
            last = self.items[-1]
            self._own_tail = last[0].shape[0]
            self.items[-1] = tuple(
                _device.join_rows(part, [fragment[i] for fragment in received]) for i, part in enumerate(last)
            )

    def _head_rows(self, lo: int, n: int) -> int:
        """Return how many of a rank's leading rows belong to a block that starts on an earlier rank."""
        return min(n, -lo % self.block_rows) if n else 0

    def _exchange(self, payload: list[_np.ndarray], *, to_owner: bool) -> list[Any]:
        """Send leading rows to their block's owner (or per-row results back); return what arrived, by source."""
        comm = self.comm
        if comm.size == 1 or not self._dest:
            return []
        send: list[Any] = [None] * comm.size
        if to_owner:
            if comm.rank in self._dest:
                send[self._dest[comm.rank]] = payload
        else:
            for q, part in zip(self._sources, payload):
                send[q] = part
        from hpc.mpi import guard  # loaded with hpc.mpi, which a fit on several ranks has loaded already

        # watched (a rank that never comes is reported), not numbered: a step of the fit, not a call of the user's
        guard.arrive(comm._engine, "hpc.ml row blocks (alltoall)", counted=False)
        got = comm.mpi.alltoall(send)
        if to_owner:
            return [got[q] for q in self._sources]
        return [got[self._dest[comm.rank]]] if comm.rank in self._dest else []

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"<hpc.ml Blocks {len(self.items)} of {self.block_rows} rows; rows {self.offset}+ of {self.n_total}>"

    def map(self, fn: Callable[..., Any]) -> list[Any]:
        """Return ``[fn(*block_arrays) for each block]``, computed on the pool's threads."""
        return self.run(lambda i: fn(*self.items[i]), like=fn)

    def run(self, fn: Callable[[int], Any], *, like: Any = None) -> list[Any]:
        """Return ``[fn(0), ..., fn(len(self) - 1)]``: on the pool's threads (see :func:`run_blocks` for ``like``),
        or in order for device blocks."""
        if self.on_device:
            return [fn(i) for i in range(len(self.items))]
        return run_blocks(fn, len(self.items), like=like)

    def sum(self, parts: Sequence[_np.ndarray] | _np.ndarray, shape: tuple[int, ...]) -> _np.ndarray:
        """Return the reproducible sum of every rank's per-block ``parts`` (each of ``shape``; or one array, a part
        per entry of its first axis), on every rank."""
        from hpc import mpi

        if isinstance(parts, _np.ndarray):
            stacked = parts
        else:
            stacked = _np.stack(parts) if parts else _np.empty((0, *shape), _np.float64)
        return mpi.sum(self.comm, stacked.astype(_np.float64, copy=False), reproducible=True)

    def to_local(self, per_block: Sequence[_np.ndarray]) -> _np.ndarray:
        """Return per-row results of the blocks (one array per block, rows first) for this rank's own rows."""
        parts = list(per_block)
        back: list[_np.ndarray] = []
        if self._sources:
            tail = parts[-1]
            own, rest = tail[: self._own_tail], tail[self._own_tail :]
            cuts = _np.cumsum(self._source_rows)[:-1]
            back = list(_np.split(rest, cuts))
            parts[-1] = own
        received = self._exchange(back, to_owner=False)
        pieces = received + parts
        if not pieces:
            return _np.empty((0,), _np.int64)
        return _np.concatenate(pieces)
