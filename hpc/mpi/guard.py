"""Guarded collectives: abort the job on an uncaught exception, check that ranks agree, a stall watchdog."""

from __future__ import annotations

import atexit as _atexit
import gc as _gc
import os as _os
import signal as _signal
import socket as _socket
import sys as _sys
import threading as _threading
import time as _time
import traceback as _traceback
import zlib as _zlib
from typing import Any, NoReturn

import numpy as _np

from hpc._launcher import unlink_segment_names as _unlink_segment_names
from hpc.mpi import _mpi

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
    """A collective waited longer than ``HPC_MPI_TIMEOUT`` for the other ranks.

    Kept for callers that name it; the watchdog itself never raises it. A stalled rank reports and aborts the job
    instead, because the other ranks may be stuck inside MPI where no Python exception can reach them.
    """


_installed = False


def install_abort_on_exception(mpi_comm: Any) -> None:
    """Make an uncaught exception on this rank print its traceback and abort every rank (``MPI_Abort``).

    Without this, one rank dying leaves the others waiting in their next collective forever. This affects the whole
    process: it chains ``sys.excepthook`` and ``threading.excepthook`` (a worker thread's uncaught exception aborts
    too). Installed by :func:`hpc.mpi.world` when the job has more than one rank. Installing also removes the names of
    MPICH's shared-memory segments (:func:`hpc._launcher.unlink_segment_names`; hpc does that when it imports
    ``mpi4py.MPI`` too, and does it again here for an MPI initialised later), so a killed job leaves none behind.
    """
    global _installed
    if _installed or mpi_comm.Get_size() <= 1:
        return
    _installed = True
    _unlink_segment_names()
    previous = _sys.excepthook
    rank = mpi_comm.Get_rank()

    def abort(exc_type: Any, exc: Any, tb: Any) -> None:
        _leave_within(_LEAVE_S, 1)  # the traceback goes to a pipe that may never drain (a launcher cut off)
        try:
            _sys.stderr.write(f"hpc.mpi: uncaught exception on rank {rank}; aborting all ranks\n")
            previous(exc_type, exc, tb)
        finally:
            _abort(mpi_comm, 1)

    def abort_thread(args: Any) -> None:
        if args.exc_type is SystemExit:
            return
        abort(args.exc_type, args.exc_value, args.exc_traceback)

    _sys.excepthook = abort
    _threading.excepthook = abort_thread


def arrive(engine: Any, what: str, signature: tuple[Any, ...] = (), *, counted: bool = True) -> None:
    """With the watchdog on (``HPC_MPI_TIMEOUT``), wait until every rank has reached ``what`` with ``signature``.

    The wait is the watched header step (:func:`_header_step`): every rank's ``(what, signature)`` checksum, reduced
    in one small non-blocking collective that every watched collective of hpc begins with, so two ranks in different
    collectives meet there and raise :class:`RankMismatchError` instead of matching each other's messages. For the
    steps MPI offers no non-blocking form of (a pickled ``allgather``, a window's creation): once every rank has
    arrived, the blocking step that follows cannot stall on a missing rank, and a rank that never comes is reported
    under ``what``. The blocking step can still stall when a rank or its host drops out in the middle of it (a link
    cut): a thread watches it (see :func:`_watch_steps`) until the calling function returns or waits again. Without
    the watchdog this does nothing. ``counted=False``: a step inside a collective (hpc's own), which the reports'
    collective numbers, the user's calls, leave out.
    """
    _arrive(engine, what, signature, _sys._getframe(1), counted)


def _arrive(engine: Any, what: str, signature: tuple[Any, ...], frame: Any, counted: bool = True) -> None:
    if engine.watchdog and engine.size > 1:
        _header_step(engine, what, signature, counted)
        _steps[_threading.get_ident()] = _Step(engine, what, frame)
        _start_watching_steps()


def _header_step(engine: Any, what: str, signature: tuple[Any, ...], counted: bool = True) -> None:
    """One watched ``MAX`` allreduce of ``(h, -h)``, ``h`` a 62-bit checksum of ``(what, signature)``.

    Every rank gets ``(max h, -min h)``: the two agree exactly when every rank sent the same ``h``. On a mismatch every
    rank learns it from the same words, so all of them go on to :func:`_mismatch` together.
    """
    key = repr((what, *signature)).encode()
    h = ((_zlib.crc32(key) << 30) ^ _zlib.adler32(key)) & ((1 << 62) - 1)
    words = _np.array([h, -h], _np.int64)
    engine.seq += 1
    if counted:  # a collective the caller made (not a step inside one): its number in the reports
        engine.collectives += 1
    wait(engine, engine.mpi.Iallreduce(_mpi.in_place(), words, _mpi.builtin_op("max")), what, in_order=True)
    if words[0] != -words[1]:
        _mismatch(engine, what, signature)


def _mismatch(engine: Any, what: str, signature: tuple[Any, ...]) -> NoReturn:
    """Every rank has seen the header step disagree: gather what each called (pickled), raise RankMismatchError."""
    table = _hosts.get(id(engine.mpi))
    if table is not None and table.names is None:  # started by every rank with this header step: let it finish
        table.wait()
    _raise_mismatch(what, engine.mpi.allgather((what, *signature)))


#: the names of the fields each collective's signature holds (what a mismatch report prints them as)
_FIELDS = {
    "allreduce": ("op", "dtype", "shape", "reproducible"),
    "reduce": ("op", "dtype", "shape", "root"),
    "iallreduce": ("op", "dtype", "shape"),
    "scan": ("op", "dtype", "shape"),
    "exscan": ("op", "dtype", "shape"),
    "reduce_scatter": ("op", "dtype", "shape"),
    "fused allreduce": ("op", "dtype", "shape"),
    "mpi.sum": ("dtype", "row shape", "reproducible"),
    "bcast": ("root",),
}


def _described(signature: tuple[Any, ...]) -> str:
    """``(collective, *fields)`` as ``collective name=value ...`` where the collective's fields are known (a
    signature of another length, such as argmin's or a refused argument's, as the raw tuple)."""
    what, fields = signature[0], signature[1:]
    names = _FIELDS.get(what)
    if names is None or len(names) != len(fields):
        return f"{what} {fields}" if fields else str(what)
    return " ".join([str(what), *(f"{name}={value!r}" for name, value in zip(names, fields))])


def _raise_mismatch(what: str, everyone: list[tuple[Any, ...]]) -> NoReturn:
    lines = [f"  rank {r}: {_described(s)}" for r, s in enumerate(everyone)]
    raise RankMismatchError(f"{what}: ranks disagree on the collective or its arguments:\n" + "\n".join(lines))


def agree(engine: Any, what: str, signature: tuple[Any, ...]) -> None:
    """Before a blocking step (a pickled collective, a barrier): check ``signature`` in check mode, else arrive.

    In check mode :func:`check_agreement` compares the signatures; its allgather returns only once every rank has
    come, and it arrives first under the watchdog, so no second barrier is needed. Otherwise, with the watchdog on,
    :func:`arrive` with ``signature``. With neither, this does nothing.
    """
    caller = _sys._getframe(1)  # the blocking step follows there
    if engine.check:
        _check_agreement(engine, what, signature, caller)
    else:
        _arrive(engine, what, signature, caller)


def check_agreement(engine: Any, what: str, signature: tuple[Any, ...]) -> None:
    """Raise :class:`RankMismatchError` on every rank if the ranks called different collectives or arguments.

    With the watchdog (``HPC_MPI_TIMEOUT``), check mode or not: the watched header step of :func:`arrive`, one small
    non-blocking allreduce. In check mode alone (``HPC_MPI_CHECK=1``): one pickled allgather of the signature per
    call. With neither, nothing.
    """
    _check_agreement(engine, what, signature, None)


def _check_agreement(engine: Any, what: str, signature: tuple[Any, ...], frame: Any) -> None:
    if engine.size <= 1 or not (engine.check or engine.watchdog):
        return
    if engine.watchdog:  # the header step compares (what, signature) and raises on every rank if they differ
        _arrive(engine, what, signature, frame or _sys._getframe(0))
        return
    # the collective's name travels too: scan on one rank and allreduce on another would otherwise pass the check
    everyone = engine.mpi.allgather((what, *signature))
    if any(s != everyone[0] for s in everyone):
        _raise_mismatch(what, everyone)


# ------------------------------------------------------------------------------------------------ the watchdog

#: seconds between writing a report and ``MPI_Abort``: the launcher forwards a rank's stderr through a pipe, and an
#: abort right after the write sometimes killed the job before the report got out (an empty stderr, exit 3)
_ABORT_GRACE_S = 0.3
#: MPICH's ``MPI_Abort`` returns once it has told the launcher, which then kills every rank; seconds to wait for that
#: before leaving on our own (a rank on a host cut off from the launcher is never killed: its MPI_Finalize at exit
#: would wait for the others forever)
_ABORT_WAIT_S = 2.0
#: the most seconds a rank stays once it has decided to abort, whatever it is stuck in (a report written to a pipe
#: that no longer drains, an MPI_Abort that cannot reach the launcher): then ``os._exit``
_LEAVE_S = 10.0
#: how long a stalled rank asks the others where they are before it reports
_ASK_S = 1.0
#: a watched wait polls its request without sleeping for this long, then sleeps between polls (backing off to 1 ms)
_SPIN_S = 0.002
#: a watched wait answers the other ranks' questions once it has waited this long (a fast collective never asks)
_ANSWER_AFTER_S = 0.05
#: host names are sent in this many bytes (POSIX's HOST_NAME_MAX)
_NAME_BYTES = 64


def _leave_within(seconds: float, code: int) -> None:
    """Make sure this process ends with ``code`` within ``seconds``, whatever its threads are stuck in."""

    def leave() -> None:
        _time.sleep(seconds)
        _flush()
        _os._exit(code)

    _threading.Thread(target=leave, name="hpc.mpi leave", daemon=True).start()
    # a backstop the kernel keeps: the thread above needs the GIL, which a stuck C call might hold
    if _signal.getsignal(_signal.SIGALRM) in (_signal.SIG_DFL, None):
        _signal.alarm(int(seconds) + 5)


def _flush() -> None:
    for stream in (_sys.stdout, _sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed or broken stream: nothing more to save
            pass


def _abort(mpi_comm: Any, code: int) -> NoReturn:
    """Flush stderr, give the launcher a moment to forward it, ``MPI_Abort`` every rank with ``code``, then leave.

    ``MPI_Abort`` may return (MPICH's tells the launcher, which kills the job) or never come back; the process
    leaves with ``code`` either way, without MPI_Finalize.
    """
    _leave_within(_LEAVE_S, code)
    try:
        _flush()
        _time.sleep(_ABORT_GRACE_S)
    finally:
        try:
            mpi_comm.Abort(code)
            _time.sleep(_ABORT_WAIT_S)  # the launcher ends every rank now, if it can be reached
        finally:
            _flush()
            _os._exit(code)


class _Hosts:
    """Every rank's host name on one communicator, gathered at its first watched collective, for the reports."""

    def __init__(self, mpi_comm: Any, size: int) -> None:
        self.mpi = mpi_comm  # held: the table is found by the communicator's id
        self._mine = _np.frombuffer(_socket.gethostname().encode()[:_NAME_BYTES].ljust(_NAME_BYTES, b"\0"), _np.uint8)
        self._all = _np.empty((size, _NAME_BYTES), _np.uint8)
        self._request: Any = mpi_comm.Iallgather(self._mine, self._all)
        self.names: list[str] | None = None

    def wait(self) -> None:
        """Wait for every rank's name (only once every rank is known to have started the gathering)."""
        if self._request is not None:
            self._request.Wait()
        self.poll()

    def poll(self) -> list[str] | None:
        """Return the names by rank once every rank has sent its own (never blocks), else ``None``."""
        if self.names is None and self._request.Test():
            self.names = [bytes(row).rstrip(b"\0").decode(errors="replace") for row in self._all]
            self._request = None
        return self.names


#: communicator id -> its host names (the table holds the communicator, so the id is not reused)
_hosts: dict[int, _Hosts] = {}
#: the watchdog's messages in flight (MPI reads their buffers until they complete)
_outbox: list[Any] = []
#: messages between stalled ranks use the largest tag MPI allows, which applications rarely choose
_tag: int | None = None


def _note_hosts(engine: Any, in_order: bool) -> None:
    table = _hosts.get(id(engine.mpi))
    if table is None:
        # Start the names' allgather at a wait every rank reaches in the same order: a header step, or a blocking
        # collective's own wait. Not at an iallreduce's own wait: a future may be waited for out of that order, and
        # the allgathers would then cross (a rank whose first collective is an iallreduce starts it in the header).
        if in_order:
            if not _hosts:
                _atexit.register(_finish_host_tables)
            _hosts[id(engine.mpi)] = _Hosts(engine.mpi, engine.size)
    elif table.names is None:
        table.poll()


def _finish_host_tables() -> None:
    """At exit, before MPI finalizes (atexit runs this first: it was registered after mpi4py's), complete the
    gatherings still pending, which MPICH otherwise reports ("Builtin communicator ... has pending 1 references").
    Every rank started them; a rank that never comes is waited for a second at most."""
    MPI = _mpi.module()
    if MPI is None or MPI.Is_finalized():  # the user finalized MPI: its requests are gone with it
        return
    deadline = _time.monotonic() + 1.0
    try:
        for table in list(_hosts.values()):
            while table.names is None and _time.monotonic() < deadline:
                if table.poll() is None:
                    _time.sleep(1e-3)
    except Exception:  # noqa: S110 - at exit, a communicator freed by the user: nothing left to complete
        pass


def _host_names(engine: Any) -> list[str] | None:
    table = _hosts.get(id(engine.mpi))
    return None if table is None else table.poll()


def _watchdog_tag(mpi_comm: Any) -> int:
    global _tag
    if _tag is None:
        _tag = _mpi.tag_upper_bound(mpi_comm)
    return _tag


def _where(engine: Any, what: str) -> tuple[int, str, str, int]:
    """Where this rank is: its MPI step (which tells ranks in the same collective apart from the ones before and
    after), the collective, its host, and the collective's number (what a user counting calls sees)."""
    return (engine.seq, what, _socket.gethostname(), engine.collectives)


def _answer(engine: Any, what: str, heard: dict[int, tuple[int, str, str, int]] | None = None) -> None:
    """Answer every stalled rank that asked where this rank is; with ``heard``, also note who answered us."""
    tag = _watchdog_tag(engine.mpi)
    while True:
        status = _mpi.status()
        message = engine.mpi.improbe(source=_mpi.any_source(), tag=tag, status=status)
        if message is None:
            return
        kind, where = message.recv()
        source = status.Get_source()
        if heard is not None:
            heard[source] = where
        if kind == "ask":
            _outbox.append(engine.mpi.isend(("tell", _where(engine, what)), dest=source, tag=tag))


def _ask(engine: Any, what: str) -> dict[int, tuple[int, str, str, int]]:
    """Ask every other rank where it is; return the answers that came within ``_ASK_S``: rank -> :func:`_where`.

    Ranks waiting in a watched collective or a watched blocking step answer (or ask, their own watchdog having
    fired); a rank that is computing, in a call hpc does not watch, dead, or on a host that cannot be reached stays
    silent.
    """
    tag = _watchdog_tag(engine.mpi)
    for other in range(engine.size):
        if other != engine.rank:
            _outbox.append(engine.mpi.isend(("ask", _where(engine, what)), dest=other, tag=tag))
    heard: dict[int, tuple[int, str, str, int]] = {}
    deadline = _time.monotonic() + _ASK_S
    while len(heard) < engine.size - 1 and _time.monotonic() < deadline:
        _answer(engine, what, heard)
        _time.sleep(1e-3)
    return heard


def _ranks(ranks: list[int]) -> str:
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(map(str, ranks))


def _report(engine: Any, what: str, waited: float, heard: dict[int, tuple[int, str, str, int]] | None) -> str:
    """Say which collective stalled where, which ranks (and hosts) did not answer, and where the others wait."""
    lines = [
        f"hpc.mpi: {what} (collective #{engine.collectives}) on rank {engine.rank} of {engine.size} "
        f"(host {_socket.gethostname()}) "
        f"waited {waited:.1f} s (HPC_MPI_TIMEOUT={engine.timeout:g}); other ranks have not reached it."
    ]
    if heard is None:
        lines.append("  (the other ranks were not asked where they are: MPI was not initialised with THREAD_MULTIPLE)")
        return "\n".join(lines) + "\n"
    names = _host_names(engine)
    silent = [r for r in range(engine.size) if r != engine.rank and r not in heard]
    if silent:
        if names is None:
            where = " (hosts unknown: not every rank reached a watched collective)"
        else:
            where = " (on " + ", ".join(sorted({names[r] for r in silent}, key=names.index)) + ")"
        lines.append(f"  missing: {_ranks(silent)} gave no answer in {_ASK_S:g} s{where}")
        for host in sorted({names[r] for r in silent}, key=names.index) if names else []:
            on_host = [r for r, n in enumerate(names) if n == host]
            if all(r in silent for r in on_host):
                lines.append(f"  missing: host {host} ({_ranks(on_host)}): no rank there answered")
    places: dict[tuple[int, str, int], list[int]] = {}
    for r, (seq, where_r, _, number) in sorted(heard.items()):
        places.setdefault((seq, where_r, number), []).append(r)
    for (seq, where_r, number), ranks in places.items():
        hosts = ", ".join(sorted({heard[r][2] for r in ranks}))
        verb = "waits" if len(ranks) == 1 else "wait"
        too = " too" if (seq, where_r) == (engine.seq, what) else ""
        lines.append(f"  {_ranks(ranks)} (on {hosts}) {verb} in {where_r} (collective #{number}){too}")
    return "\n".join(lines) + "\n"


def wait(engine: Any, request: Any, what: str, in_order: bool | None = None) -> None:
    """Wait for a non-blocking collective, enforcing ``HPC_MPI_TIMEOUT`` when it is set.

    On a stall the rank asks the others where they are, prints which collective stalled, which ranks and hosts did
    not answer and where the others wait, with its stack, then aborts the job: the other ranks may be stuck in MPI and
    could never see a Python exception. If the launcher cannot end this rank (its host is cut off), it leaves on its
    own. The first watched collective on a communicator also gathers every rank's host name (in the background),
    so that a report can name hosts without communicating. ``in_order``: whether every rank waits here in the same
    order (default: every collective's wait but an ``iallreduce``'s, whose future may be waited for out of order).
    """
    timeout = engine.timeout
    if timeout <= 0:
        request.Wait()
        return
    _steps.pop(_threading.get_ident(), None)  # this thread's blocking step, if any, is over
    _note_hosts(engine, what != "iallreduce" if in_order is None else in_order)
    start = _time.monotonic()
    delay = 1e-5
    while not request.Test():
        waited = _time.monotonic() - start
        if waited < _SPIN_S:  # polled without sleeping first, as MPI's blocking calls poll: a sleep costs 60 us+
            continue
        if waited > _ANSWER_AFTER_S:
            _answer(engine, what)
        if waited > timeout:
            _stalled(engine, what, waited, _traceback.format_stack()[:-1], "", ask=True)
        _time.sleep(delay)
        delay = min(delay * 2, 1e-3)


def _stalled(engine: Any, what: str, waited: float, stack: list[str], note: str, ask: bool) -> NoReturn:
    """Ask the others where they are (if ``ask``), report, abort the job: never returns."""
    _leave_within(_LEAVE_S + _ASK_S, 3)  # the report goes to a pipe that may never drain
    heard = _ask(engine, what) if ask else None
    msg = _report(engine, what, waited, heard) + note
    _sys.stderr.write(f"{msg}Stack of rank {engine.rank}:\n{''.join(stack)}")
    _abort(engine.mpi, 3)


class _Step:
    """A blocking step every rank has arrived at (:func:`arrive`), on one thread: over once ``frame`` returns."""

    __slots__ = ("engine", "what", "frame", "start")

    def __init__(self, engine: Any, what: str, frame: Any) -> None:
        self.engine, self.what, self.frame, self.start = engine, what, frame, _time.monotonic()

    def __repr__(self) -> str:
        return f"<hpc.mpi blocking step {self.what!r} of rank {self.engine.rank}>"


#: thread id -> the blocking step it is in, if any (set by arrive, cleared by the next watched wait)
_steps: dict[int, _Step] = {}
_watcher: _threading.Thread | None = None
#: how often the watcher looks at the blocking steps
_WATCH_EVERY_S = 0.25


def _start_watching_steps() -> None:
    global _watcher
    if _watcher is None:
        _watcher = _threading.Thread(target=_watch_steps, name="hpc.mpi watchdog", daemon=True)
        _watcher.start()


def _watch_steps() -> None:
    """Watch the blocking steps that follow :func:`arrive`; report and abort when one outlasts ``HPC_MPI_TIMEOUT``.

    Every rank has arrived by then, so such a step stalls only when a rank or its host drops out in the middle of it
    (a link cut, a rank killed): the thread that runs it sits inside MPI, where it cannot poll. A step is over once
    the function that arrived has returned (its frame is no longer on the thread's stack) or its thread waits again.
    """
    while True:
        _time.sleep(_WATCH_EVERY_S)
        if _steps:
            _watch_once()


def _watch_once() -> None:
    """One look at the steps in progress. A function of its own: the frames it holds (every thread's, with their
    locals) go when it returns, not at the watcher's next look (a 512 MiB result stayed alive after the caller
    dropped it, held by the watcher's locals while no step ran)."""
    frames = _current_frames()
    now = _time.monotonic()
    for ident, step in list(_steps.items()):
        current = frames.get(ident)
        if current is None or not _on_stack(step.frame, current):
            if _steps.get(ident) is step:
                del _steps[ident]
            continue
        waited = now - step.start
        if waited > _ANSWER_AFTER_S and _threads_ok():
            _answer(step.engine, step.what)
        if waited > step.engine.timeout:
            note = "  (in a blocking step MPI has no non-blocking form of, after every rank had arrived at it)\n"
            _stalled(step.engine, step.what, waited, _traceback.format_stack(current), note, _threads_ok())


def _current_frames() -> dict[int, Any]:
    """``sys._current_frames()`` with the garbage collector paused. CPython (3.11 before 3.11.9, among others) holds the
    lock of its thread states there while it allocates: a collection set off then can wait for that lock, the GIL held,
    while a thread that is ending holds it and waits for the GIL (python/cpython#106883, fixed this way). A rank froze
    so in CI (tests/mpi/test_guard.py), no thread able to report it; the watcher looks every few seconds while threads
    come and go. A collector the program turned off stays off."""
    enabled = _gc.isenabled()
    _gc.disable()
    try:
        return _sys._current_frames()
    finally:
        if enabled:
            _gc.enable()


def _on_stack(frame: Any, current: Any) -> bool:
    while current is not None:
        if current is frame:
            return True
        current = current.f_back
    return False


_thread_level: bool | None = None


def _threads_ok() -> bool:
    """Whether MPI may be called from the watcher thread while another thread is inside MPI (THREAD_MULTIPLE)."""
    global _thread_level
    if _thread_level is None:
        _thread_level = _mpi.thread_multiple()
    return _thread_level
