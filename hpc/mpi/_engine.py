"""The engine behind a :class:`hpc.mpi.Comm`: its state, and the allreduce fast path.

One :class:`Engine` per communicator holds everything the collectives share: the mpi4py communicator, the guard
mode (``HPC_MPI_CHECK``, ``HPC_MPI_TIMEOUT``, read once), the collective sequence number the watchdog reports, the
scratch buffers that are reused between calls, and the node's shared-memory window. The modules of hpc.mpi take an
engine as their first argument; :class:`~hpc.mpi.Comm` holds one and its methods hand it on.

Why results are recycled and large arrays go in blocks, with the measurements: docs/performance.md
("hpc bench mpi", "What holds").
"""

from __future__ import annotations

import sys as _sys
import threading as _threading
from collections.abc import Callable
from typing import Any

import numpy as _np

from hpc import _launcher
from hpc import config as _config
from hpc.mpi import _float_keys, _mpi, collectives, guard, reproducible

__all__ = ["BLOCK_BYTES", "UNHELD_REFS", "Engine"]

_INTS = "bhilqBHILQ"
#: built-in ops and the NumPy dtype chars MPI reduces natively with them (the general path converts and checks the
#: rest: float16, bool, logical ops, non-contiguous arrays)
_FAST_OPS = {
    "sum": _INTS + "fdgFDG",
    "prod": _INTS + "fdgFDG",
    "min": _INTS,  # floats take the general path: NaN-propagating keys (collectives._float_keys)
    "max": _INTS,
    "band": _INTS,
    "bor": _INTS,
}
#: fresh results from this size up reuse the last one when nobody holds it (a fresh block above glibc's mmap
#: threshold page-faults on first touch)
_RECYCLE_BYTES = 16 << 10
#: with every rank on one node, arrays above this many bytes are reduced in BLOCK_BYTES pieces: MPICH maps a fresh
#: scratch buffer of half the message per call from 32 MiB, a page fault per 4 KiB; across nodes each piece would pay
#: the network's latency again
_BLOCKED_FROM = 16 << 20
BLOCK_BYTES = 2 << 20
#: recycled results and scratch buffers are kept for the next call up to this size; a larger one is made for its
#: call alone (kept, one 512 MiB allreduce held its 512 MiB for the rest of the process after the caller let go)
KEEP_MAX_BYTES = 64 << 20


def _nbytes(buffers: Any) -> int:
    """The bytes of an array, or of a tuple of arrays (the reproducible sums' scratch)."""
    return sum(b.nbytes for b in buffers) if isinstance(buffers, tuple) else buffers.nbytes


class Engine:
    """The state of one communicator and the fast path of its allreduce (see the module docstring).

    Attributes:
        mpi: the mpi4py communicator, or :class:`hpc.mpi._mpi.LocalComm`.
        rank, size (int): this rank and the number of ranks.
        seq (int): MPI steps started so far (the unguarded fast paths do not count: only the watchdog reads it, to
            tell the ranks in one collective apart from those before and after).
        collectives (int): watched collectives started so far (their numbers in the watchdog's reports).
        check (bool): check mode (``HPC_MPI_CHECK``), off for one process.
        timeout (float): the watchdog's limit in seconds (``HPC_MPI_TIMEOUT``; 0: no watchdog).
        watchdog (bool): ``timeout > 0``.
        plain (bool): no check mode, no watchdog, a real MPI library: the fast paths may call MPI directly.
        fused_lane: ``(MPI.IN_PLACE, MPI.SUM)`` where plain (a fused block's end then calls ``Allreduce`` from C),
            else None.
        one_node (bool): every rank of the job is on this node, by the launcher's word (no collective asked).
        node_window: the shared-memory window of :mod:`hpc.mpi._node_window` (``None`` until asked for).
    """

    __slots__ = (
        "mpi",
        "rank",
        "size",
        "seq",
        "collectives",
        "check",
        "timeout",
        "watchdog",
        "plain",
        "fused_lane",
        "one_node",
        "node_window",
        "_fast_ops",
        "_scalars",
        "_in_place",
        "_local_rank",
        "_recycled",
        "_scratch",
    )

    def __init__(self, comm: Any) -> None:
        self.mpi = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self.seq = 0
        self.collectives = 0  # the watched collectives so far (the watchdog's reports number them)
        if self.size > 1:  # before the HPC_* values are read: a bad one on one rank then ends the job, not a hang
            guard.install_abort_on_exception(comm)
        local = _mpi.is_local(comm)
        self.check = _config.mpi_check() and not local
        self.timeout = 0.0 if local else _config.mpi_timeout()
        self.watchdog = self.timeout > 0
        self.plain = not (self.check or self.watchdog or local)
        self._fast_ops = (
            {} if local else {name: (_mpi.builtin_op(name), chars, "d" in chars) for name, chars in _FAST_OPS.items()}
        )
        self._scalars = _ScalarBuffers()
        self._in_place = None if local else _mpi.in_place()
        self.fused_lane = (self._in_place, self._fast_ops["sum"][0]) if self.plain else None
        world_size = 1 if local else _mpi.world_comm().Get_size()
        self.one_node = not local and self.size > 1 and _launcher.one_node(world_size)
        self.node_window: Any = None
        self._local_rank: int | None = None
        # per thread: fits and sums run in several threads at once on one process (scikit-learn's n_jobs under the
        # threading or hpc backend), and a scratch buffer shared between them mixed their sums (wrong fits, no error)
        self._recycled = _threading.local()
        self._scratch = _threading.local()

    # --------------------------------------------------------------------------------------------- allreduce

    def allreduce(self, x: Any, op: Any = "sum", out: Any = None, reproducible_: bool = False) -> Any:
        """See :meth:`hpc.mpi.Comm.allreduce`: the fast paths here, everything else in :mod:`hpc.mpi.collectives`.

        The fast path: no checks, no watchdog, a built-in op on a dtype MPI reduces natively: one mpi4py call (and
        one allocation for a new array).
        """
        if self.plain and not reproducible_:
            if type(op) is str and (op == "min" or op == "max"):  # the type first: no __eq__ of odd ops
                keyed = self._keyed_allreduce(x, op, out)
                if keyed is not None:
                    return keyed
            fast = self._fast_ops.get(op) if type(op) is str else None  # a list is unhashable: resolve() says why
            if fast is not None:
                kind = type(x)
                scalar = self._scalars.values.get(kind)
                if scalar is not None and fast[2] and out is None:  # every op that reduces floats takes float32 too
                    scalar[0] = x
                    self.mpi.Allreduce(self._in_place, scalar, fast[0])
                    return float(scalar[0]) if kind is float else scalar[0]  # a NumPy scalar stays one
                if kind is _np.ndarray and x.flags.c_contiguous and x.dtype.char in fast[1]:
                    nbytes = x.nbytes
                    if not x.ndim and x.dtype.kind in "biu":  # a 0-d integer sum travels as a scalar's exact words
                        return collectives.allreduce(self, x, op, out, False)
                    if out is None:
                        send = x
                        result = _np.empty(x.shape, x.dtype) if nbytes < _RECYCLE_BYTES else self.new_result(x)
                    elif out is x:
                        result, send = out, self._in_place
                    elif (
                        type(out) is _np.ndarray
                        and out.shape == x.shape
                        and out.dtype == x.dtype
                        and out.flags.c_contiguous
                        # MPI refuses aliased buffers but IN_PLACE; two arrays that own their memory never alias
                        and (out.base is None and x.base is None or not _np.may_share_memory(out, x))
                    ):
                        result, send = out, x
                    else:
                        return collectives.allreduce(self, x, op, out, False)
                    try:  # free unless raised: mpi4py refuses non-native byte order before calling MPI
                        if nbytes > _BLOCKED_FROM and self.one_node:
                            self._allreduce_in_blocks(send, result, fast[0])
                        else:
                            self.mpi.Allreduce(send, result, fast[0])
                    except BufferError:
                        return collectives.allreduce(self, x, op, out, False)
                    return result
        elif reproducible_ and self.plain and op == "sum" and out is None and type(x) is _np.ndarray:
            if x.dtype.char == "d":
                return reproducible.reproducible_allreduce(self, x)
        return collectives.allreduce(self, x, op, out, reproducible_)

    def _keyed_allreduce(self, x: Any, op: str, out: Any) -> Any:
        """The fast path of ``min``/``max`` of a float, a float64 or float32 scalar, or a C-contiguous float32/float64
        array (``out`` None or a matching C-contiguous array): one ``Allreduce`` of the values' keys
        (:mod:`hpc.mpi._float_keys`, NaN as NumPy) in a scratch buffer; None for anything else (the general path)."""
        kind = type(x)
        if kind is float or kind is _np.float64 or kind is _np.float32:
            if out is not None:
                return None
            size = 4 if kind is _np.float32 else 8
            buffer = self._scalars.keys[size]
            buffer[0] = _float_keys.scalar_key(x, size, op)
            self.mpi.Allreduce(self._in_place, buffer, self._fast_ops[op][0])
            value = _float_keys.scalar_value(int(buffer[0]), size)
            return value if kind is float else kind(value)
        if kind is _np.ndarray and x.dtype.char in "fd" and x.flags.c_contiguous and x.dtype.isnative:
            if out is not None and not (
                type(out) is _np.ndarray and out.shape == x.shape and out.dtype == x.dtype
                and out.flags.c_contiguous and out.flags.writeable
            ):
                return None
        else:
            return None
        ints, _ = _float_keys.KEY_TYPES[x.itemsize]
        n = x.size
        kept = self._scratch.__dict__  # this thread's (as scratch(), without its calls)
        keys = kept.get("keys")
        if keys is None or keys.dtype != ints or keys.size < n:
            keys = _np.empty(n, ints)
            if keys.nbytes <= KEEP_MAX_BYTES:
                kept["keys"] = keys
            else:
                kept.pop("keys", None)
        keys = keys[:n]
        _float_keys.to_keys(x, op, keys)
        mpi_op = self._fast_ops[op][0]
        if self.in_blocks(keys.nbytes):
            self._allreduce_in_blocks(self._in_place, keys, mpi_op)
        else:
            self.mpi.Allreduce(self._in_place, keys, mpi_op)
        result = out if out is not None else _np.empty(x.shape, x.dtype) if x.nbytes < _RECYCLE_BYTES else (
            self.new_result(x))
        return _float_keys.from_keys(keys, result)

    def in_blocks(self, nbytes: int) -> bool:
        """Whether an array of ``nbytes`` is reduced in pieces of :data:`BLOCK_BYTES` (every rank on this node)."""
        return nbytes > _BLOCKED_FROM and self.one_node

    def block_items(self, itemsize: int) -> int:
        """How many items of ``itemsize`` bytes one piece holds (see :meth:`in_blocks`)."""
        return BLOCK_BYTES // itemsize

    def _allreduce_in_blocks(self, send: Any, recv: Any, mpi_op: Any) -> None:
        """``Allreduce(send, recv)`` of C-contiguous arrays in pieces of ``BLOCK_BYTES`` (``send`` may be IN_PLACE)."""
        recv = recv.reshape(-1)
        in_place = send is self._in_place
        if not in_place:
            send = send.reshape(-1)
        step = self.block_items(recv.itemsize)
        for start in range(0, recv.shape[0], step):
            stop = start + step
            self.mpi.Allreduce(send if in_place else send[start:stop], recv[start:stop], mpi_op)

    def sum_in_place(self, buffer: Any) -> None:
        """Sum a writable buffer (a fused block's batch: float64, float32, int64 or int32) over the ranks, in place."""
        if self.plain:  # one mpi4py call on the buffer itself: fused blocks are all about per-call cost
            self.mpi.Allreduce(self._in_place, buffer, self._fast_ops["sum"][0])
            self.seq += 1
        elif not _mpi.is_local(self.mpi):  # checked and watched under its own name: an allreduce elsewhere mismatches
            values = _np.frombuffer(buffer, dtype=buffer.kind)
            guard.check_agreement(self, "fused allreduce", ("sum", values.dtype.str, values.shape))
            self.allreduce_in_place(values, _mpi.builtin_op("sum"))

    def allreduce_in_place(self, buffer: Any, mpi_op: Any) -> None:
        """``Allreduce(IN_PLACE, buffer, mpi_op)``, watched and counted like every collective (no checks)."""
        self.run(
            "allreduce",
            lambda: self.mpi.Allreduce(self._in_place, buffer, mpi_op),
            lambda: self.mpi.Iallreduce(self._in_place, buffer, mpi_op),
        )

    # ------------------------------------------------------------------------------------------- buffers

    def new_result(self, like: Any) -> Any:
        """A new array of the shape and dtype of ``like``; from 16 KiB (to :data:`KEEP_MAX_BYTES`), the last such
        result again if nobody holds it.

        A fresh array above glibc's mmap threshold can cost a page fault per 4 KiB on first touch (freed large
        blocks go back to the kernel). The previous large result is reused when no one else holds it: not the
        caller, not a view (a view keeps its base alive).
        """
        shape, dtype = like.shape, like.dtype
        if like.nbytes < _RECYCLE_BYTES:
            return _np.empty(shape, dtype)
        return self.unheld(
            "result", lambda: _np.empty(shape, dtype), lambda last: last.shape == shape and last.dtype == dtype
        )

    def unheld(self, name: str, make: Callable[[], Any], fits: Callable[[Any], bool]) -> Any:
        """The buffer last made under ``name`` if ``fits(it)`` and nothing but this engine holds it, else ``make()``.

        For buffers handed to callers as results or views of results (reused only once they let go).
        """
        buffers = self._recycled.__dict__  # this thread's
        last = buffers.get(name)
        if last is not None and _sys.getrefcount(last) == UNHELD_REFS and fits(last):
            return last
        del last
        return self._kept(buffers, name, make())

    def scratch(self, name: str, make: Callable[[], Any], fits: Callable[[Any], bool]) -> Any:
        """The scratch buffer kept under ``name`` if ``fits(it)``, else a new one from ``make()`` (kept instead).

        For buffers that never leave hpc.mpi (fresh megabyte arrays would page-fault on every call).
        """
        buffers = self._scratch.__dict__  # this thread's
        kept = buffers.get(name)
        if kept is None or not fits(kept):
            kept = self._kept(buffers, name, make())
        return kept

    @staticmethod
    def _kept(buffers: dict[str, Any], name: str, fresh: Any) -> Any:
        """``fresh``, kept under ``name`` for the next call if it is at most :data:`KEEP_MAX_BYTES`; a larger one
        replaces nothing (the one kept before is dropped: the caller's sizes have moved on)."""
        if _nbytes(fresh) <= KEEP_MAX_BYTES:
            buffers[name] = fresh
        else:
            buffers.pop(name, None)
        return fresh

    # --------------------------------------------------------------------------------------------- steps

    def run(self, what: str, blocking: Callable[[], Any], nonblocking: Callable[[], Any]) -> None:
        """Run one MPI step: blocking, or the non-blocking form under the watchdog's eye."""
        self.seq += 1
        if self.watchdog:
            guard.wait(self, nonblocking(), what)
        else:
            blocking()

    def barrier(self) -> None:
        """See :meth:`hpc.mpi.Comm.barrier`."""
        if self.check or self.watchdog:
            guard.agree(self, "barrier", ())
        else:
            self.mpi.Barrier()

    def local_rank(self) -> int:
        """This rank's index among the ranks on its node (a shared-memory split, computed once)."""
        if self._local_rank is None:
            if self.size == 1 or _mpi.is_local(self.mpi):
                self._local_rank = 0
            else:
                # the split is a collective MPI has no non-blocking form of (watched, not numbered: hpc's own step)
                guard.arrive(self, "local_rank", counted=False)
                node = _mpi.split_shared(self.mpi, self.rank)
                self._local_rank = node.Get_rank()
                node.Free()
        return self._local_rank


class _ScalarBuffers(_threading.local):
    """The one-element buffers of the scalar fast paths, never handed out, one set per thread: shared, two threads'
    reductions on one communicator read each other's value (a fit's ``n_jobs`` threads, a server's threads)."""

    def __init__(self) -> None:
        double = _np.zeros(1)
        #: a float scalar's value by its type (``allreduce`` of a sum, a product...)
        self.values = {float: double, _np.float64: double, _np.float32: _np.zeros(1, _np.float32)}
        #: the key of min/max of a float scalar (:mod:`hpc.mpi._float_keys`), by the float's size
        self.keys = {4: _np.zeros(1, _np.int32), 8: _np.zeros(1, _np.int64)}


class _Slot:
    __slots__ = ("value",)


def _unheld_refs() -> int:
    """What ``sys.getrefcount`` says of an object held by one container slot and one local, or -1 if it cannot tell.

    Recycled buffers (:meth:`Engine.new_result`, :meth:`Engine.unheld`) are reused only when nothing else refers to
    them: not the caller, not a view. That count is 3 up to Python 3.13 (the slot, the local, getrefcount's
    argument); Python 3.14 borrows references on the stack and may count fewer. So it is measured here, in the same
    pattern as the checks, and recycling is off (-1 never matches) unless one more reference shows as one more count.
    """
    slot = _Slot()
    slot.value = object()
    value = slot.value
    unheld = _sys.getrefcount(value)
    held = value  # noqa: F841 - the extra reference being counted
    return unheld if _sys.getrefcount(value) == unheld + 1 else -1


#: see :func:`_unheld_refs`
UNHELD_REFS = _unheld_refs()
