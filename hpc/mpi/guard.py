"""Guarded collectives: abort the job on an uncaught exception, check that ranks agree, a stall watchdog."""

from __future__ import annotations

import sys as _sys
import threading as _threading
import time as _time
import traceback as _traceback
from typing import Any

__all__ = [
    "CollectiveTimeoutError",
    "RankMismatchError",
    "agree",
    "arrive",
    "check_agreement",
    "install_abort_on_exception",
    "wait",
]


class RankMismatchError(ValueError):
    """Ranks called a collective with different shapes, dtypes, ops or call orders."""


class CollectiveTimeoutError(RuntimeError):
    """A collective waited longer than ``HPC_MPI_TIMEOUT`` for the other ranks."""


_installed = False


def install_abort_on_exception(comm: Any) -> None:
    """Make an uncaught exception on this rank print its traceback and abort every rank (``MPI_Abort``).

    Without this, one rank dying leaves the others waiting in their next collective forever. This affects the whole
    process: it chains ``sys.excepthook`` and ``threading.excepthook`` (a worker thread's uncaught exception aborts
    too). Installed by :func:`hpc.mpi.world` when the job has more than one rank.
    """
    global _installed
    if _installed or comm.Get_size() <= 1:
        return
    _installed = True
    previous = _sys.excepthook
    rank = comm.Get_rank()

    def abort(exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            _sys.stderr.write(f"hpc.mpi: uncaught exception on rank {rank}; aborting all ranks\n")
            previous(exc_type, exc, tb)
        finally:
            _abort(comm, 1)

    def abort_thread(args: Any) -> None:
        if args.exc_type is SystemExit:
            return
        abort(args.exc_type, args.exc_value, args.exc_traceback)

    _sys.excepthook = abort
    _threading.excepthook = abort_thread


def arrive(comm: Any, what: str) -> None:
    """With the watchdog on (``HPC_MPI_TIMEOUT``), wait in a watched barrier until every rank has reached ``what``.

    For the steps MPI offers no non-blocking form of (the pickled ``allgather`` of the agreement check, a window's
    creation): once every rank has arrived, the blocking step that follows cannot stall on a missing rank, and a
    rank that never comes is reported under ``what``. Without the watchdog this does nothing.
    """
    if comm._watchdog and comm.size > 1:
        comm._seq += 1
        wait(comm, comm.mpi.Ibarrier(), what)


def agree(comm: Any, what: str, signature: tuple[Any, ...]) -> None:
    """Before a blocking step (a pickled collective, a barrier): check ``signature`` in check mode, else arrive.

    In check mode :func:`check_agreement` compares the signatures; its allgather returns only once every rank has
    come, and it arrives first under the watchdog, so no second barrier is needed. Otherwise, with the watchdog on,
    :func:`arrive`. With neither, this does nothing.
    """
    if comm._check:
        check_agreement(comm, what, signature)
    else:
        arrive(comm, what)


def check_agreement(comm: Any, what: str, signature: tuple[Any, ...]) -> None:
    """In check mode (``HPC_MPI_CHECK=1``), raise :class:`RankMismatchError` on every rank if signatures differ.

    One extra small collective (an allgather of the signature) per checked call.
    """
    if comm.size <= 1 or not comm._check:
        return
    arrive(comm, what)
    # the collective's name travels too: scan on one rank and allreduce on another would otherwise pass the check
    everyone = comm.mpi.allgather((what, *signature))
    if all(s == everyone[0] for s in everyone):
        return
    lines = [f"  rank {r}: {s[0]} {s[1:]}" for r, s in enumerate(everyone)]
    raise RankMismatchError(
        f"{what}: ranks disagree on the collective or its arguments (op, dtype, shape, root):\n" + "\n".join(lines)
    )


#: seconds between writing a report and ``MPI_Abort``: the launcher forwards a rank's stderr through a pipe, and an
#: abort right after the write sometimes killed the job before the report got out (an empty stderr, exit 3)
_ABORT_GRACE_S = 0.3


def _abort(mpi_comm: Any, code: int) -> None:
    """Flush stderr, give the launcher a moment to forward it, then ``MPI_Abort`` every rank with ``code``."""
    try:
        _sys.stderr.flush()
        _time.sleep(_ABORT_GRACE_S)
    finally:
        mpi_comm.Abort(code)


def wait(comm: Any, request: Any, what: str) -> None:
    """Wait for a non-blocking collective, enforcing ``HPC_MPI_TIMEOUT`` when it is set.

    On a stall the rank prints which collective stalled and where, then aborts the job: the other ranks may be
    stuck in MPI and could never see a Python exception.
    """
    timeout = comm._timeout
    if timeout <= 0:
        request.Wait()
        return
    start = _time.monotonic()
    delay = 1e-5
    while not request.Test():
        waited = _time.monotonic() - start
        if waited > timeout:
            msg = (
                f"hpc.mpi: {what} (collective #{comm._seq}) on rank {comm.rank} of {comm.size} waited {waited:.1f} s "
                f"(HPC_MPI_TIMEOUT={timeout:g}); other ranks have not reached it. Stack of rank {comm.rank}:\n"
            )
            _sys.stderr.write(msg + "".join(_traceback.format_stack()[:-1]))
            _abort(comm.mpi, 3)
            raise CollectiveTimeoutError(msg)  # only reached with the one-process fallback
        _time.sleep(delay)
        delay = min(delay * 2, 1e-3)
