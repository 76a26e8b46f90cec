"""The one module of hpc.mpi that imports mpi4py: the MPI library's names, and a one-process stand-in without it.

Everything else in hpc.mpi calls the methods of the communicator objects this module hands out (an mpi4py
intracommunicator, or :class:`LocalComm`) and asks here for the library's constants, ops, windows and statuses.
``mpi4py.MPI`` is imported on first use (importing it initialises MPI), through :func:`hpc._optional.optional_module`,
which sets the environment a process started without a launcher needs.
"""

from __future__ import annotations

import os as _os
import sys as _sys
from collections.abc import Callable
from typing import Any

import numpy as _np

from hpc._optional import optional_module as _optional_module

__all__ = [
    "LocalComm",
    "allocate_shared",
    "any_source",
    "builtin_op",
    "create_keyval",
    "create_op",
    "in_place",
    "is_local",
    "module",
    "split_shared",
    "status",
    "tag_upper_bound",
    "thread_multiple",
    "world_comm",
]

_NAMES = {
    "sum": "SUM",
    "prod": "PROD",
    "min": "MIN",
    "max": "MAX",
    "land": "LAND",
    "lor": "LOR",
    "band": "BAND",
    "bor": "BOR",
}


def module() -> Any:
    """Return ``mpi4py.MPI`` (initialising MPI on first use), or ``None`` when mpi4py or its library is missing."""
    if "pid" in _initialised_in:
        return _optional_module("mpi4py.MPI")
    imported_before = "mpi4py.MPI" in _sys.modules
    MPI = _optional_module("mpi4py.MPI")
    if MPI is not None:
        pid = _os.getpid()
        if imported_before:  # by this process, or by the rank it was forked from (whose MPI this one may not use)
            from hpc import _launcher

            pid = _launcher.started_by_rank() or pid
        _initialised_in["pid"] = pid
        if pid == _os.getpid():
            _warn_other_library(MPI)
    return MPI


def _warn_other_library(MPI: Any) -> None:
    """Warn where a launcher started this process as one of several ranks but MPI started alone (a world of 1): the
    launcher and mpi4py's library are different MPI implementations (MPICH's mpiexec, Open MPI's library, or the
    reverse), and each rank would run the whole job alone, its collectives seeing only its own data (mpi4py's own
    warning says only "suspicious MPI execution environment"). Such a singleton's Open MPI shared-memory segment,
    which no peer will attach to, is unlinked (16 MiB left in /dev/shm per rank otherwise)."""
    from hpc import _launcher

    found = _launcher.detect()
    if not found or not (found["size"] or 0) > 1 or MPI.COMM_WORLD.Get_size() != 1:
        return
    _launcher.unlink_segment_names(_launcher.SINGLETON_SEGMENT_PREFIXES)
    library = " ".join(MPI.Get_library_version().strip().splitlines()[0].split())
    import warnings

    warnings.warn(
        f"hpc.mpi: {found['name']} started this process as one of {found['size']} ranks, but its MPI library "
        f"({library}) started alone, in a world of 1 process: the launcher belongs to another MPI implementation "
        "than the library mpi4py loaded, and every rank runs alone, its collectives seeing only its own data (start "
        "the job with the mpiexec of that library: docs/cluster.md)",
        RuntimeWarning,
        stacklevel=4,
    )


def world_comm() -> Any:
    """``MPI.COMM_WORLD``, or a :class:`LocalComm` without an MPI library, and in a child forked from a process that
    had initialised MPI (MPI may not be called there: the world is that child alone)."""
    MPI = module()
    if MPI is None:
        _warn_alone()
        return LocalComm()
    if _initialised_in["pid"] != _os.getpid():
        return LocalComm()
    return MPI.COMM_WORLD


def _warn_alone() -> None:
    """Warn, once, where a launcher started this process as one of several ranks and MPI cannot be loaded: every
    rank then runs alone, and a collective fit or sum sees only its own rows (silently, before this warning)."""
    from hpc import _launcher

    found = _launcher.detect()
    if _warned or not found or not (found["size"] or 0) > 1:
        return
    _warned.append(True)
    import warnings

    warnings.warn(
        f"hpc.mpi: {found['name']} started this process as one of {found['size']} ranks, but mpi4py or its MPI "
        "library could not be loaded: this rank runs alone, and its collectives see only its own data (pip install "
        "mpi4py, or match the MPI library to the launcher: docs/cluster.md)",
        RuntimeWarning,
        stacklevel=3,
    )


_warned: list[bool] = []

#: the process in which MPI was initialised (module() first answered), as a forked child inherits the import
_initialised_in: dict[str, int] = {}


def is_local(comm: Any) -> bool:
    """Whether ``comm`` is the one-process stand-in (no MPI library behind it)."""
    return isinstance(comm, LocalComm)


def in_place() -> Any:
    """``MPI.IN_PLACE`` (``None`` without an MPI library)."""
    MPI = module()
    return None if MPI is None else MPI.IN_PLACE


def builtin_op(name: str) -> Any:
    """The predefined MPI op of a built-in op name (``"sum"`` -> ``MPI.SUM``), or ``None``."""
    MPI = module()
    if MPI is None or name not in _NAMES:
        return None
    return getattr(MPI, _NAMES[name])


def create_op(combine: Callable[[Any, Any], None], commute: bool) -> Any:
    """An MPI op calling ``combine(inbuf, inout)`` on NumPy views of the buffers (``None`` without MPI).

    MPI semantics: ``inout = in (op) inout``, elementwise; the views have the dtype of the MPI datatype.
    """
    MPI = module()
    if MPI is None:
        return None
    from mpi4py.util import dtlib

    def callback(inbuf: Any, outbuf: Any, datatype: Any) -> None:
        dtype = dtlib.to_numpy_dtype(datatype)
        combine(_np.frombuffer(inbuf, dtype), _np.frombuffer(outbuf, dtype))

    return MPI.Op.Create(callback, commute=commute)


def split_shared(comm: Any, key: int) -> Any:
    """The communicator of ``comm``'s ranks that share this rank's node (collective; the caller frees it)."""
    return comm.Split_type(module().COMM_TYPE_SHARED, key=key)


def create_keyval(delete: Callable[[Any, Any, Any], None]) -> Any:
    """A communicator attribute key whose ``delete(comm, keyval, value)`` runs when the communicator is freed."""
    return module().Comm.Create_keyval(delete_fn=delete)


def allocate_shared(nbytes: int, node: Any) -> tuple[Any, memoryview]:
    """A shared-memory window over the node communicator ``node`` and rank 0's memory (``nbytes`` on rank 0)."""
    win = module().Win.Allocate_shared(nbytes if node.Get_rank() == 0 else 0, 8, comm=node)
    buffer, _ = win.Shared_query(0)
    return win, buffer


def status() -> Any:
    """A new ``MPI.Status``."""
    return module().Status()


def any_source() -> int:
    """``MPI.ANY_SOURCE``."""
    return module().ANY_SOURCE


def tag_upper_bound(comm: Any) -> int:
    """The largest tag ``comm`` allows (32767, the least the standard allows, if the library does not say)."""
    MPI = module()
    upper = comm.Get_attr(MPI.TAG_UB) if MPI is not None else None
    return int(upper) if upper else 32767


def thread_multiple() -> bool:
    """Whether MPI was initialised with ``THREAD_MULTIPLE`` (any thread may call MPI at any time)."""
    MPI = module()
    return MPI is not None and MPI.Query_thread() == MPI.THREAD_MULTIPLE


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

    def Allgather(self, send: Any, recv: Any) -> None:  # noqa: N802
        recv.reshape(-1)[...] = send.reshape(-1)

    def Allgatherv(self, send: Any, recv: Any) -> None:  # noqa: N802
        recv[0].reshape(-1)[...] = send.reshape(-1)

    def Reduce_scatter(self, send: Any, recv: Any, recvcounts: Any = None, op: Any = None) -> None:  # noqa: N802
        recv.reshape(-1)[...] = send.reshape(-1)[: recv.size]

    def allreduce(self, obj: Any, op: Any = None) -> Any:
        return obj

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

    def Free(self) -> None:  # noqa: N802
        return None

    def __repr__(self) -> str:
        return "<hpc.mpi LocalComm (no MPI library)>"
