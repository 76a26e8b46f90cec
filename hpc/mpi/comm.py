"""Communicators: ``world()``, ``Comm`` wrapping any mpi4py communicator, and a one-process fallback."""

from __future__ import annotations

import os as _os
import sys as _sys
from typing import Any

import numpy as _np

from hpc import _launcher
from hpc import config as _config
from hpc._optional import optional_module
from hpc.mpi import guard as _guard

__all__ = ["Comm", "LocalComm", "as_comm", "mpi_module", "world"]

#: built-in ops and the NumPy dtype chars MPI reduces natively with them (the general path converts and checks the
#: rest: float16, bool, logical ops, non-contiguous arrays)
_INTS = "bhilqBHILQ"
# Results from this size up are recycled (see Comm._result_array). Freed blocks above glibc's mmap threshold
# (128 KiB) go back to the kernel, and so does a smaller one freed at the top of the heap once the free space there
# passes the trim threshold: on 2 ranks a fresh 64 KiB result cost up to +8.6 us per call over raw after the small
# sizes of `hpc bench mpi` had run, a recycled one +0.1 to +0.8 us.
_RECYCLE_BYTES = 16 << 10
#: Arrays above _BLOCKED_FROM bytes are reduced in _BLOCK_BYTES pieces when every rank is on this node. MPICH's
#: reduction allocates a scratch buffer of half the message per call, and from 32 MiB glibc always maps it fresh:
#: 64 MiB on 2 ranks took 8193 page faults per call. In 2 MiB pieces (scratch reused, no faults): 0.39x the time at
#: 64 MiB, 0.41x at 32 MiB on the dev VM; at 16 MiB it varied from 0.72x to 1.2x with the VM's phases, so that size
#: stays one call (docs/performance.md). Across nodes each piece would pay the network's latency again: one call.
_BLOCKED_FROM = 16 << 20
_BLOCK_BYTES = 2 << 20
_FAST_OPS = {
    "sum": _INTS + "fdgFDG",
    "prod": _INTS + "fdgFDG",
    "min": _INTS + "fdg",
    "max": _INTS + "fdg",
    "band": _INTS,
    "bor": _INTS,
}


def mpi_module() -> Any:
    """Return ``mpi4py.MPI`` (initialising MPI on first use), or ``None`` when mpi4py or its library is missing."""
    return optional_module("mpi4py.MPI")


class _Request:
    """A finished request, for the one-process fallback."""

    def Test(self) -> bool:  # noqa: N802 - mirrors mpi4py
        return True

    def Wait(self) -> None:  # noqa: N802
        return None


class LocalComm:
    """The subset of an mpi4py intracommunicator hpc uses, for one process and no MPI library.

    Every collective of a single process returns its own contribution, so results equal the local computation.
    """

    def Get_rank(self) -> int:  # noqa: N802 - mirrors mpi4py
        return 0

    def Get_size(self) -> int:  # noqa: N802
        return 1

    def Barrier(self) -> None:  # noqa: N802
        return None

    def Allreduce(self, send: Any, recv: Any, op: Any = None) -> None:  # noqa: N802
        recv[...] = send

    def Iallreduce(self, send: Any, recv: Any, op: Any = None) -> _Request:  # noqa: N802
        recv[...] = send
        return _Request()

    def Reduce(self, send: Any, recv: Any, op: Any = None, root: int = 0) -> None:  # noqa: N802
        recv[...] = send

    def Scan(self, send: Any, recv: Any, op: Any = None) -> None:  # noqa: N802
        recv[...] = send

    def Exscan(self, send: Any, recv: Any, op: Any = None) -> None:  # noqa: N802
        return None

    def Bcast(self, buf: Any, root: int = 0) -> None:  # noqa: N802
        return None

    def Allgatherv(self, send: Any, recv: Any) -> None:  # noqa: N802
        recv[0].reshape(-1)[...] = send.reshape(-1)

    def Reduce_scatter(self, send: Any, recv: Any, recvcounts: Any = None, op: Any = None) -> None:  # noqa: N802
        recv.reshape(-1)[...] = send.reshape(-1)[: recv.size]

    def allgather(self, obj: Any) -> list[Any]:
        return [obj]

    def bcast(self, obj: Any, root: int = 0) -> Any:
        return obj

    def gather(self, obj: Any, root: int = 0) -> list[Any]:
        return [obj]

    def Abort(self, errorcode: int = 1) -> None:  # noqa: N802
        _sys.stderr.flush()
        _os._exit(errorcode)

    def Split_type(self, *args: Any, **kwargs: Any) -> LocalComm:  # noqa: N802
        return self

    def __repr__(self) -> str:
        return "<hpc.mpi LocalComm (no MPI library)>"


class Comm:
    """A communicator: hpc's collectives on top of an mpi4py intracommunicator.

    ``HPC_MPI_CHECK`` and ``HPC_MPI_TIMEOUT`` are read when the communicator is created. With more than one rank,
    creating a communicator also installs the abort-on-uncaught-exception hook (see :mod:`hpc.mpi.guard`).

    Args:
        comm (mpi4py.MPI.Intracomm, Comm or None): the communicator to wrap; ``None`` takes ``COMM_WORLD``, or a
            one-process :class:`LocalComm` when mpi4py or the MPI library is missing.

    Attributes:
        mpi: the underlying mpi4py communicator (or the :class:`LocalComm` fallback).
        rank (int): this process's rank.
        size (int): the number of ranks.

    Example:
        >>> from hpc import mpi
        >>> comm = mpi.world()
        >>> comm.allreduce(3) == 3 * comm.size
        True
    """

    def __init__(self, comm: Any = None) -> None:
        if isinstance(comm, Comm):
            comm = comm.mpi
        if comm is None:
            MPI = mpi_module()
            comm = LocalComm() if MPI is None else MPI.COMM_WORLD
        self.mpi = comm
        self.rank: int = comm.Get_rank()
        self.size: int = comm.Get_size()
        self._local_rank: int | None = None
        self._seq = 0  # collective sequence number, for the watchdog's reports (the unguarded fast paths skip it)
        # HPC_MPI_CHECK and HPC_MPI_TIMEOUT are read once, here: the hot path must not parse the environment.
        local = isinstance(comm, LocalComm)
        self._check = _config.mpi_check() and not local
        self._timeout = 0.0 if local else _config.mpi_timeout()
        self._watchdog = self._timeout > 0
        self._plain = not (self._check or self._watchdog or local)
        MPI = None if local else mpi_module()
        self._fast_ops = (
            {}
            if MPI is None
            else {name: (getattr(MPI, name.upper()), chars, "d" in chars) for name, chars in _FAST_OPS.items()}
        )
        self._float_buf = _np.zeros(1)  # the one-element buffer of the Python-float fast path
        self._last_result: Any = None  # the last large result, reused once nobody else holds it
        self._in_place = None if MPI is None else MPI.IN_PLACE
        # Every rank of the job on this node, by the launcher's word (no collective): large arrays go in blocks.
        self._one_node = MPI is not None and self.size > 1 and _launcher.one_node(MPI.COMM_WORLD.Get_size())
        if self.size > 1:
            _guard.install_abort_on_exception(comm)

    @property
    def local_rank(self) -> int:
        """Return this rank's index among the ranks on the same node (a shared-memory split, computed once)."""
        if self._local_rank is None:
            MPI = mpi_module()
            if MPI is None or isinstance(self.mpi, LocalComm):
                self._local_rank = 0
            else:
                _guard.arrive(self, "local_rank")  # the split is a collective MPI has no non-blocking form of
                node = self.mpi.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
                self._local_rank = node.Get_rank()
                node.Free()
        return self._local_rank

    def __repr__(self) -> str:
        return f"<hpc.mpi.Comm rank={self.rank} size={self.size}>"

    # The collectives live in their own modules; these one-line methods are the public surface.

    def allreduce(self, x: Any, op: Any = "sum", out: Any = None, *, reproducible: bool = False) -> Any:
        """Return ``op`` reduced elementwise over every rank's ``x``, on every rank.

        Args:
            x (numpy.ndarray or scalar): any numeric dtype, any layout (non-contiguous, 0-d and empty included).
                ``op="sum"`` of integer scalars is exact: a Python int gets the exact sum, any size. Other ops
                reduce Python ints as int64 (wrapping like NumPy int64; OverflowError for an int beyond it).
            op (str or Op): ``"sum"``, ``"prod"``, ``"min"``, ``"max"``, ``"land"``, ``"lor"``, ``"band"``,
                ``"bor"``, ``"argmin"``, ``"argmax"`` or an :func:`hpc.mpi.op`.
            out (numpy.ndarray, optional): where to write the result (shape and dtype of ``x``); may be ``x``.
            reproducible (bool): ``op="sum"`` only: a binned exact accumulation whose result is bitwise identical
                for any number of ranks and any order (see :mod:`hpc.mpi.reproducible`).

        Returns:
            An array like ``x`` (a Python scalar for a scalar ``x``). For ``argmin``/``argmax``: ``(value, index)``
            where ``index`` is the position in the concatenation of every rank's 1-D ``x`` (for scalars: the rank),
            ties going to the lowest index.

        .. seealso:: :meth:`mpi4py.MPI.Comm.Allreduce`
        """
        # The fast paths, inline because every call counts at 8 bytes: no checks, no watchdog, a built-in op on
        # a dtype MPI reduces natively: one mpi4py call (and one allocation for a new array).
        if self._plain and not reproducible:
            fast = self._fast_ops.get(op)
            if fast is not None:
                kind = type(x)
                if (kind is float or kind is _np.float64) and fast[2] and out is None:
                    scalar = self._float_buf
                    scalar[0] = x
                    self.mpi.Allreduce(self._in_place, scalar, fast[0])
                    # no _seq count: only check mode and the watchdog report it; a NumPy scalar stays one
                    return float(scalar[0]) if kind is float else scalar[0]
                if kind is _np.ndarray and x.flags.c_contiguous and x.dtype.char in fast[1]:
                    nbytes = x.nbytes
                    if nbytes <= 16 and not x.ndim:  # a 0-d integer sum travels as a scalar's exact words
                        return _collectives().allreduce(self, x, op, out, reproducible)
                    try:  # free unless raised: mpi4py refuses non-native byte order before calling MPI
                        if out is None:
                            send = x
                            if nbytes < _RECYCLE_BYTES:
                                result = _np.empty(x.shape, x.dtype)
                            else:  # see _result_array
                                result = self._result_array(x.shape, x.dtype)
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
                            return _collectives().allreduce(self, x, op, out, reproducible)
                        if nbytes > _BLOCKED_FROM and self._one_node:
                            self._allreduce_in_blocks(send, result, fast[0])
                        else:
                            self.mpi.Allreduce(send, result, fast[0])
                    except BufferError:
                        return _collectives().allreduce(self, x, op, out, reproducible)
                    return result
        elif (
            reproducible
            and self._plain
            and op == "sum"
            and out is None
            and type(x) is _np.ndarray
            and x.dtype.char == "d"
        ):
            from hpc.mpi.reproducible import reproducible_allreduce

            return reproducible_allreduce(self, x)
        return _collectives().allreduce(self, x, op, out, reproducible)

    def _allreduce_in_blocks(self, send: Any, recv: Any, mpi_op: Any) -> None:
        """``Allreduce(send, recv)`` of C-contiguous arrays in pieces of ``_BLOCK_BYTES`` (``send`` may be IN_PLACE)."""
        recv = recv.reshape(-1)
        in_place = send is self._in_place
        if not in_place:
            send = send.reshape(-1)
        step = _BLOCK_BYTES // recv.itemsize
        for start in range(0, recv.shape[0], step):
            stop = start + step
            self.mpi.Allreduce(send if in_place else send[start:stop], recv[start:stop], mpi_op)

    def _result_array(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A new array of ``shape`` and ``dtype``, or the last large result again if nobody holds it any more.

        A fresh array above glibc's mmap threshold can cost a page fault per 4 KiB on first touch (freed large
        blocks go back to the kernel, depending on the heap's layout): 256 KiB took 270 us instead of 87 us on 2
        ranks, 4 MiB as long as the reduction itself. The previous large result is reused when no one else holds
        it: not the caller, not a view (a view keeps its base alive).
        """
        last = self._last_result
        if last is not None and _sys.getrefcount(last) == UNHELD_REFS and last.shape == shape and last.dtype == dtype:
            return last
        self._last_result = fresh = _np.empty(shape, dtype)
        return fresh

    def iallreduce(self, x: Any, op: Any = "sum") -> Any:
        """Start an allreduce and return a future; ``future.result()`` waits and returns what allreduce would.

        ``op="sum"`` of integer scalars is exact, as in :meth:`allreduce`, for magnitudes below 2**80 (fewer bits
        from 8192 ranks up): beyond, ``result()`` raises OverflowError on every rank, since the pickled fallback of
        allreduce has no non-blocking form. Other ops reduce Python ints as int64, wrapping like NumPy int64;
        OverflowError for an int beyond int64.
        """
        return _collectives().iallreduce(self, x, op)

    def reduce(self, x: Any, op: Any = "sum", root: int = 0) -> Any:
        """Return ``op`` reduced over every rank's ``x`` on ``root``; ``None`` on the other ranks.

        ``op="sum"`` of integer scalars is exact, any size, as in :meth:`allreduce` (it takes allreduce's words).
        Other ops reduce Python ints as int64, wrapping like NumPy int64; OverflowError for an int beyond int64.
        """
        return _collectives().reduce(self, x, op, root)

    def bcast(self, x: Any, root: int = 0) -> Any:
        """Return ``root``'s ``x`` on every rank (arrays travel on the buffer path; other ranks may pass None)."""
        return _collectives().bcast(self, x, root)

    def allgather(self, x: Any) -> Any:
        """Return every rank's ``x`` concatenated along axis 0, in rank order (first-axis sizes may differ)."""
        return _collectives().allgather(self, x)

    def reduce_scatter(self, x: Any, op: Any = "sum") -> Any:
        """Reduce ``x`` over ranks and return this rank's block of rows (``numpy.array_split`` blocks)."""
        return _collectives().reduce_scatter(self, x, op)

    def scan(self, x: Any, op: Any = "sum") -> Any:
        """Return the inclusive prefix reduction of ``x`` over ranks ``0..rank``.

        Python ints are reduced as int64, even by ``op="sum"``: sums wrap like NumPy int64 (``2**62`` on 2 ranks
        gives ``-2**63`` on rank 1), and an int beyond int64 raises OverflowError.
        """
        return _collectives().scan(self, x, op, exclusive=False)

    def exscan(self, x: Any, op: Any = "sum") -> Any:
        """Return the exclusive prefix reduction over ranks ``0..rank-1`` (the op's identity on rank 0).

        Python ints are reduced as int64, as in :meth:`scan`.
        """
        return _collectives().scan(self, x, op, exclusive=True)

    def fused(self) -> Any:
        """Return a context manager that turns many small allreduces into one MPI call (results on exit).

        Python ints are reduced as int64 there, even by ``op="sum"`` (wrapping like NumPy int64; OverflowError for
        an int beyond it): :meth:`allreduce` sums them exactly.
        """
        global _Fused
        if _Fused is None:
            from hpc.mpi.fused import Fused as _Fused
        return _Fused(self)

    def _sum_in_place(self, buffer: Any) -> None:
        """Sum a writable float64 buffer (a fused block's floats) over the ranks, in place."""
        if self._plain:  # one mpi4py call on the buffer itself: fused blocks are all about per-call cost
            self.mpi.Allreduce(self._in_place, buffer, self._fast_ops["sum"][0])
            self._seq += 1
        else:
            values = _np.frombuffer(buffer, dtype=_np.float64)
            self.allreduce(values, out=values)

    def barrier(self) -> None:
        """Wait until every rank arrives.

        In check mode the agreement check is the barrier (its allgather waits for every rank), so a rank in another
        collective is reported; with the watchdog alone, a watched non-blocking barrier.
        """
        if self._check or self._watchdog:
            _guard.agree(self, "barrier", ())
        else:
            self.mpi.Barrier()


class _Slot:
    __slots__ = ("value",)


def _unheld_refs() -> int:
    """What ``sys.getrefcount`` says of an object held by one attribute and one local, or -1 if it cannot tell.

    The buffers recycled here (:meth:`Comm._result_array`, ``hpc.mpi.reproducible._words``) are reused only when
    nothing else refers to them: not the caller, not a view. That count is 3 up to Python 3.13 (the attribute, the
    local, getrefcount's argument); Python 3.14 borrows references on the stack and may count fewer. So it is
    measured here, in the same pattern as the checks, and recycling is off (-1 never matches) unless one more
    reference shows as one more count.
    """
    slot = _Slot()
    slot.value = object()
    value = slot.value
    unheld = _sys.getrefcount(value)
    held = value  # noqa: F841 - the extra reference being counted
    return unheld if _sys.getrefcount(value) == unheld + 1 else -1


#: see :func:`_unheld_refs`
UNHELD_REFS = _unheld_refs()

_world: Comm | None = None
_Fused: Any = None  # hpc.mpi.fused.Fused, imported on first use


def world() -> Comm:
    """Return the communicator of every rank of the job (``COMM_WORLD``), or a one-process one without MPI."""
    global _world
    if _world is None:
        _world = Comm()
    return _world


def as_comm(comm: Any) -> Comm:
    """Return ``comm`` as a :class:`Comm` (accepts ours, a raw mpi4py communicator, or ``None`` for world)."""
    if comm is None:
        return world()
    if isinstance(comm, Comm):
        return comm
    return Comm(comm)


def _collectives() -> Any:
    from hpc.mpi import collectives

    return collectives
