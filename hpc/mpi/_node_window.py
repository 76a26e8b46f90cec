"""A shared-memory window over the ranks of a communicator that all run on one node, cached on the communicator.

Where every rank shares the node's memory, a reduction can skip MPI's message path: each rank writes its terms
into its own slot of an ``MPI.Win.Allocate_shared`` window, and after a barrier every rank can read every rank's
terms (see :mod:`hpc.mpi.reproducible`). The window is made once per communicator, collectively, and kept as an
MPI attribute of the mpi4py communicator, so every :class:`hpc.mpi.Comm` wrapping it finds the same window, and
``Free()`` of the communicator frees it (MPI calls an attribute's delete callback on every rank of a collective
free). ``COMM_WORLD``'s window lives until the job ends.

Layout: ``slots`` is a ``(size + 1, chunk)`` float64 array: row ``r`` is rank ``r``'s input, the last row the
output, each rank writing its own share of the columns. ``chunk`` is 2**18 columns (2 MiB) up to 7 ranks, halved
as the ranks grow so the window stays within 16 MiB, down to 2**12 (beyond 511 ranks the window is
``(size + 1) * 32 KiB``). After them, ``small_slots``: ``(2, size, SMALL)`` float64, 8 KiB per rank. On 2 ranks:
6 MiB + 16 KiB of ``/dev/shm``.

Ranks write the slots with streaming (non-temporal) stores, :func:`write`: a line another core read in the last
step sits in that core's cache, and an ordinary store must first take it back. ``scripts/bench_shm_stores.py``
measures both kinds of store; docs/performance.md ("Design choices measured") has the runs and when each wins.
"""

from __future__ import annotations

import os as _os
from typing import Any

import numpy as _np
from numba import njit as _njit

from hpc.kernels.intrinsics import STREAM_BYTES as _STREAM_BYTES
from hpc.kernels.intrinsics import store_fence as _store_fence
from hpc.kernels.intrinsics import stream_copy as _stream_copy
from hpc.kernels.intrinsics import stream_start as _stream_start
from hpc.mpi import _mpi
from hpc.mpi import guard as _guard

__all__ = ["SMALL", "NodeWindow", "node_window", "write"]

_BUDGET_BYTES = 16 << 20  # the whole window's chunk slots together
SMALL = 512  # columns of the small slots: arrays of up to 512 elements take one barrier (NodeWindow.small_slots)
_MAX_CHUNK = 1 << 18  # 2 MiB per slot: a chunk of every rank's terms stays in the last-level cache
_MIN_CHUNK = 1 << 12


class NodeWindow:
    """One shared-memory window: ``slots`` (``size + 1`` rows of ``chunk`` float64) and the barrier between steps.

    Attributes:
        slots (numpy.ndarray): ``(size + 1, chunk)`` float64, shared by every rank of the communicator.
        chunk (int): columns per slot.
        small_slots (numpy.ndarray): ``(2, size, SMALL)`` float64: two sets of one slot per rank, used in turn by
            calls of at most ``SMALL`` columns. Every rank sums every column of such a call itself, so one barrier
            suffices: a rank writes a set again only two small calls later, after the barrier of the call between,
            which no rank passes before it has read that set.
    """

    def __init__(self, win: Any, slots: _np.ndarray, small_slots: _np.ndarray) -> None:
        self.win = win
        self.slots: _np.ndarray | None = slots
        self.chunk = slots.shape[1]
        self.small_slots = small_slots
        self._small_calls = 0

    def next_small_slots(self) -> _np.ndarray:
        """The set of small slots for the next small call (``(size, SMALL)``), alternating call by call.

        Every rank makes the same small calls on a communicator (they are collective), so all alternate alike.
        """
        self._small_calls += 1
        return self.small_slots[self._small_calls & 1]

    def sync(self, engine: Any) -> None:
        """Make this rank's writes to ``slots`` visible to every rank, and wait until every rank's are.

        ``Win.Sync`` orders this process's memory accesses around the barrier (MPI's rule for shared-memory
        windows in passive-target epochs; on x86 it costs almost nothing).
        """
        self.win.Sync()
        if engine.watchdog:
            _guard.arrive(engine, "allreduce(reproducible=True): shared-memory step", counted=False)
        else:
            engine.mpi.Barrier()
        self.win.Sync()

    def free(self) -> None:
        """Free the window (collective over the communicator's ranks); ``slots`` becomes ``None``."""
        self.slots = self.small_slots = None  # unmapped: a wrapper still holding this window must not touch it
        self.win.Unlock_all()
        self.win.Free()


_LANES = _STREAM_BYTES // 8


@_njit(cache=True, nogil=True)
def write(out, x):  # pragma: no cover - compiled by numba
    """``out[:] = x`` for 1-D float64 arrays (``out`` C-contiguous, ``x`` too), in streaming stores where aligned."""
    n = x.shape[0]
    i = min(_stream_start(out), n)
    for j in range(i):
        out[j] = x[j]
    while i + _LANES <= n:
        _stream_copy(x, out, i)
        i += _LANES
    for j in range(i, n):
        out[j] = x[j]
    _store_fence()


_NONE = "none"  # the attribute's value where the ranks are not on one node (asked once, answered once)
_keyval: Any = None


def node_window(engine: Any) -> NodeWindow | None:
    """Return the shared-memory window of ``engine`` (an :class:`~hpc.mpi._engine.Engine`), or ``None`` if none.

    Collective on the first call for a communicator (every rank calls it at the same point, as with any
    collective): it splits the communicator by node, and where every rank is on one node and ``/dev/shm`` has room,
    allocates the window. Either answer is kept: later calls are a lookup.
    """
    window = engine.node_window
    if window is not None:  # freed with its communicator: the message lane then raises MPI's error
        return None if window is _NONE or window.slots is None else window
    if engine.size < 2 or _mpi.is_local(engine.mpi):
        return None
    global _keyval
    if _keyval is None:
        _keyval = _mpi.create_keyval(_delete)
    window = engine.mpi.Get_attr(_keyval)
    if window is None:
        window = _create(engine)
        engine.mpi.Set_attr(_keyval, window)
    engine.node_window = window
    return window if window is not _NONE else None


def _create(engine: Any) -> NodeWindow | str:
    size = engine.size
    chunk = _MAX_CHUNK
    while chunk > _MIN_CHUNK and (size + 1) * chunk * 8 > _BUDGET_BYTES:
        chunk //= 2
    chunk_words, small_words = (size + 1) * chunk, 2 * size * SMALL
    nbytes = (chunk_words + small_words) * 8
    _guard.arrive(engine, "allreduce(reproducible=True): making the shared-memory window", counted=False)
    node = _mpi.split_shared(engine.mpi, engine.rank)
    try:
        # Every rank must agree, or some would wait in the window's barriers while others send messages.
        # twice the window: room for it and for whatever else this job maps there meanwhile (MPICH's own segments)
        fits = node.Get_size() == size and _shm_has_room(2 * nbytes)
        if not engine.mpi.allreduce(fits, op=_mpi.builtin_op("land")):
            return _NONE
        win, buffer = _mpi.allocate_shared(nbytes, node)
    finally:
        node.Free()
    words = _np.frombuffer(buffer, _np.float64, chunk_words + small_words)
    slots = words[:chunk_words].reshape(size + 1, chunk)
    small_slots = words[chunk_words:].reshape(2, size, SMALL)
    win.Lock_all()
    return NodeWindow(win, slots, small_slots)


def _shm_has_room(nbytes: int) -> bool:
    """Whether ``/dev/shm`` (where MPICH maps shared windows) has ``nbytes`` free.

    A shared mapping beyond the room of its file system is not refused when made: the process dies of SIGBUS
    when it first touches a page that has no room, so the room is checked before.
    """
    try:
        stat = _os.statvfs("/dev/shm")
    except OSError:
        return True  # no /dev/shm to measure: the MPI library maps its memory elsewhere
    return stat.f_bavail * stat.f_frsize >= nbytes


def _delete(mpi_comm: Any, keyval: Any, window: Any) -> None:
    """The attribute's delete callback: ``Free()`` of the communicator frees its window."""
    if isinstance(window, NodeWindow):
        window.free()
