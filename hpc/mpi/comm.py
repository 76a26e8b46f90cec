"""Communicators: ``world()``, and ``Comm``, hpc's collectives over any mpi4py communicator.

``Comm`` is the public front: each method hands its arguments to the communicator's engine
(:mod:`hpc.mpi._engine`) and the module that implements the collective. Without an MPI library, ``world()`` is a
one-process communicator over :class:`LocalComm`.
"""

from __future__ import annotations

import os as _os
from typing import Any

from hpc.mpi import _mpi, collectives
from hpc.mpi._engine import Engine
from hpc.mpi._mpi import LocalComm
from hpc.mpi.collectives import CollectiveFuture
from hpc.mpi.fused import Fused

__all__ = ["Comm", "LocalComm", "as_comm", "world"]


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

    __slots__ = ("mpi", "rank", "size", "_engine")

    def __init__(self, comm: Any = None) -> None:
        if isinstance(comm, Comm):
            comm = comm.mpi
        if comm is not None and not (hasattr(comm, "Get_rank") and hasattr(comm, "Get_size")):
            raise TypeError(f"comm must be an hpc.mpi.Comm, an mpi4py communicator or None; got {comm!r:.60}")
        null = _mpi.module()
        if null is not None and comm == null.COMM_NULL:  # Split's answer on a rank it left out
            raise ValueError("comm is MPI.COMM_NULL: this rank is in no group of it (a Split with color "
                             "MPI.UNDEFINED); call with a communicator this rank belongs to")
        self.mpi = _mpi.world_comm() if comm is None else comm
        self._engine = Engine(self.mpi)
        self.rank: int = self._engine.rank
        self.size: int = self._engine.size

    @property
    def local_rank(self) -> int:
        """Return this rank's index among the ranks on the same node (a shared-memory split, computed once)."""
        return self._engine.local_rank()

    @property
    def check(self) -> bool:
        """Whether check mode is on for this communicator (``HPC_MPI_CHECK``, read when it was created)."""
        return self._engine.check

    @property
    def timeout(self) -> float:
        """The watchdog's limit in seconds (``HPC_MPI_TIMEOUT``, read when it was created; 0: no watchdog)."""
        return self._engine.timeout

    def __repr__(self) -> str:
        return f"<hpc.mpi.Comm rank={self.rank} size={self.size}>"

    def allreduce(self, x: Any, op: Any = "sum", out: Any = None, *, reproducible: bool = False) -> Any:
        """Return ``op`` reduced elementwise over every rank's ``x``, on every rank.

        Args:
            x (numpy.ndarray or scalar): any numeric dtype, any layout (non-contiguous, 0-d and empty included).
                The one rule for Python ints, in every collective (docs/differences.md): ``op="sum"`` of integer
                scalars is exact (a Python int gets the exact sum, any size); other ops take Python ints as int64
                (wrapping like NumPy int64; OverflowError for an int beyond it).
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
        return self._engine.allreduce(x, op, out, reproducible)

    def iallreduce(self, x: Any, op: Any = "sum") -> CollectiveFuture:
        """Start an allreduce and return a future; ``future.result()`` waits and returns what allreduce would.

        With ``HPC_MPI_TIMEOUT`` set, the call first waits in the watched header step until every rank has started
        the same iallreduce (what lets mismatched collectives raise instead of matching); only the reduction itself
        then overlaps the caller's work.

        Python ints follow the one rule of :meth:`allreduce`, with one limit: sums are exact for magnitudes below
        2**80 (fewer bits from 8192 ranks up); beyond, ``result()`` raises OverflowError on every rank, since the
        pickled fallback has no non-blocking form.
        """
        return collectives.iallreduce(self._engine, x, op)

    def reduce(self, x: Any, op: Any = "sum", root: int = 0) -> Any:
        """Return ``op`` reduced over every rank's ``x`` on ``root``; ``None`` on the other ranks.

        Python ints follow the one rule of :meth:`allreduce` (sums exact, other ops int64).
        """
        return collectives.reduce(self._engine, x, op, root)

    def bcast(self, x: Any, root: int = 0) -> Any:
        """Return ``root``'s ``x`` on every rank (arrays travel on the buffer path; other ranks may pass None)."""
        return collectives.bcast(self._engine, x, root)

    def allgather(self, x: Any) -> Any:
        """Return every rank's ``x`` concatenated along axis 0, in rank order (first-axis sizes may differ)."""
        return collectives.allgather(self._engine, x)

    def reduce_scatter(self, x: Any, op: Any = "sum") -> Any:
        """Reduce ``x`` over ranks and return this rank's block of rows (``numpy.array_split`` blocks)."""
        return collectives.reduce_scatter(self._engine, x, op)

    def scan(self, x: Any, op: Any = "sum") -> Any:
        """Return the inclusive prefix reduction of ``x`` over ranks ``0..rank``.

        Python ints follow the one rule of :meth:`allreduce`: sums exact, any size; other ops int64.
        """
        return collectives.scan(self._engine, x, op, exclusive=False)

    def exscan(self, x: Any, op: Any = "sum") -> Any:
        """Return the exclusive prefix reduction over ranks ``0..rank-1`` (the op's identity on rank 0).

        Python ints follow the one rule of :meth:`allreduce`: sums exact, any size; other ops int64.
        """
        return collectives.scan(self._engine, x, op, exclusive=True)

    def fused(self) -> Fused:
        """Return a context manager that turns many small allreduces into one MPI call (results on exit).

        Python ints follow the one rule of :meth:`allreduce`: sums exact, any size; other ops int64.
        """
        return Fused(self._engine)

    def barrier(self) -> None:
        """Wait until every rank arrives.

        In check mode the agreement check is the barrier (its allgather waits for every rank), so a rank in another
        collective is reported; with the watchdog alone, a watched non-blocking barrier.
        """
        self._engine.barrier()


_world: Comm | None = None


def world() -> Comm:
    """Return the communicator of every rank of the job (``COMM_WORLD``), or a one-process one without MPI."""
    global _world
    if _world is None:
        _world = Comm()
    return _world


def _forget_world() -> None:
    global _world
    _world = None  # a forked child makes its own (see _mpi.world_comm)


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_forget_world)


def as_comm(comm: Any) -> Comm:
    """Return ``comm`` as a :class:`Comm` (accepts ours, a raw mpi4py communicator, or ``None`` for world)."""
    if comm is None:
        return world()
    if isinstance(comm, Comm):
        return comm
    return Comm(comm)
