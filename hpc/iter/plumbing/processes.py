"""The processes backend: chunks run in loky's reusable worker processes (through joblib), in groups.

Groups of consecutive chunks shrink as the run proceeds (guided scheduling: big groups first, single chunks at the
end), so dispatch costs a few dozen round trips while uneven work still balances. Each group ships only the part
of the input it needs (``Indexed.restricted``), pickled with cloudpickle so lambdas and closures work. Large NumPy
arrays are written once to shared memory and mapped by the workers instead of being pickled.
"""

from __future__ import annotations

import atexit as _atexit
import copy as _copy
import mmap as _mmap
import multiprocessing.util as _mp_util
import os as _os
import tempfile as _tempfile
import threading as _threading
from collections import OrderedDict as _OrderedDict
from typing import Any

import numpy as _np

from hpc import config as _config
from hpc.iter.plumbing.chunking import guided_groups
from hpc.iter.plumbing.context import ExecContext
from hpc.iter.plumbing.drive import Backend, SerialBackend, Unshippable, _skip, raise_first_failure
from hpc.iter.plumbing.plan import ChunkFailure, Plan, run_chunk
from hpc.iter.plumbing.shipping import revived, shippable

__all__ = [
    "ProcessesBackend",
    "executor_is_warm",
    "in_worker_process",
    "picklable",
    "picklable_value",
    "remove_stale_files",
    "shutdown_executor",
]

#: arrays at least this large are shared through a memory-mapped file instead of pickled per group
SHARE_BYTES = 4 << 20
#: idle seconds before loky's workers exit (they are restarted on the next run)
IDLE_TIMEOUT_S = 300

_state_lock = _threading.Lock()
_executor: Any = None
_IN_WORKER = False
#: in a worker process: the driver's pid, which it checks before each chunk (a driver ended by SIGTERM or SIGKILL
#: cannot stop its workers, and loky's only notice it after their current group)
_DRIVER: int | None = None


def _cloudpickle() -> Any:
    import cloudpickle

    return cloudpickle


def _worker_init(blas_threads: int) -> None:
    global _IN_WORKER, _DRIVER
    _IN_WORKER = True
    _DRIVER = _os.getppid()
    # One BLAS/OpenMP thread per worker process: the processes already use every core.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(blas_threads)
    except Exception:  # threadpoolctl absent or no BLAS loaded yet: the env vars below still apply
        pass


def in_worker_process() -> bool:
    """Return whether this process is one of the processes backend's workers."""
    return _IN_WORKER


def executor_is_warm() -> bool:
    """Return whether worker processes already exist (so a run pays no start-up)."""
    return _executor is not None


def _lease_executor(workers: int) -> Any:
    """Return the pool of ``workers`` processes for one run, counted as in use until :func:`_end_lease`.

    A pool of another size (``set_num_threads`` in another thread) or marker is replaced, but one that runs are
    still using is only retired: they finish on it, and the last of them shuts it down.
    """
    # Our own loky executor, not loky's process-wide reusable one: joblib also uses that one and cannot share it
    # with another owner (each would kill the other's workers, and joblib fails on an executor it did not build).
    global _executor
    from joblib.externals.loky.process_executor import ProcessPoolExecutor

    env = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")}
    # workers started before this rank marked itself (its MPI started after a first processes run) lack the marker
    # that makes them drop the rank's launcher variables: they would join the MPI job ("PMI_Init failed"). New ones.
    from hpc._launcher import RANK_MARKER

    marker = _os.environ.get(RANK_MARKER)
    with _state_lock:
        ex = _executor
        if ex is not None and (ex._max_workers != workers or getattr(ex, "_flags", None) and ex._flags.broken
                               or getattr(ex, "_hpc_marker", None) != marker):
            _executor = None
            if not ex._hpc_runs:
                ex.shutdown(wait=False, kill_workers=True)
            ex = None
        if ex is None:
            ex = _executor = ProcessPoolExecutor(
                max_workers=workers, timeout=IDLE_TIMEOUT_S, initializer=_worker_init, initargs=(1,), env=env
            )
            ex._hpc_marker = marker
            ex._hpc_runs = 0
            ex._hpc_killed_by = None
            _kill_at_multiprocessing_exit()
        ex._hpc_runs += 1
        return ex


def _end_lease(ex: Any) -> None:
    """A run on ``ex`` is over: shut ``ex`` down if it was retired and this was its last run."""
    with _state_lock:
        ex._hpc_runs -= 1
        retired = ex is not _executor and not ex._hpc_runs
    if retired:
        ex.shutdown(wait=False, kill_workers=False)


def _own_copy(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for one run's notes: loky hands every future of a broken pool one exception object, and the
    notes of two runs on it named each other's items. ``exc`` itself where its type cannot be made again."""
    try:
        fresh = type(exc)(*exc.args)
    except Exception:
        return exc
    fresh.__traceback__ = exc.__traceback__
    return fresh


def _kill(ex: Any, why: str) -> None:
    """Terminate ``ex``'s workers now (a worker died, or Ctrl-C), forgetting it if it is the current pool; other
    threads' runs on it then fail with a note saying ``why``."""
    global _executor
    with _state_lock:
        if _executor is ex:
            _executor = None
        ex._hpc_killed_by = why
    ex.shutdown(wait=True, kill_workers=True)


_exit_hook_set = False


def _kill_at_multiprocessing_exit() -> None:
    # A multiprocessing child skips atexit: its exit joins its child processes, ours included, which would wait
    # out IDLE_TIMEOUT_S. Finalizers of priority >= 0 run before that join; at exit no result is wanted any more,
    # and a fork child's workers did not answer an orderly shutdown: they are killed. Once per process (a fork
    # child starts with multiprocessing's finalizers cleared, and with this flag cleared by _after_fork_in_child).
    global _exit_hook_set
    if not _exit_hook_set:
        _mp_util.Finalize(None, shutdown_executor, kwargs={"kill": True}, exitpriority=10)
        _exit_hook_set = True


def shutdown_executor(kill: bool = False) -> None:
    """Stop the worker processes (``kill=True`` terminates them at once, as after a KeyboardInterrupt)."""
    global _executor
    with _state_lock:
        ex, _executor = _executor, None
    if ex is not None:
        ex.shutdown(wait=True, kill_workers=kill)


#: the runs in progress (in any thread), which interpreter exit stops at their workers' next chunk
_live_runs: set[Any] = set()


def _stop_live_runs() -> None:
    """At exit, before loky's own hook waits for the groups in progress: runs still going (in other threads, daemon
    or not) stop at their workers' next chunk. A group can be a quarter of a run: exit waited 12 s for one."""
    with _state_lock:
        runs = list(_live_runs)
    for run in runs:
        run.stop_for_exit()


_stop_hook_set = False


def _stop_live_runs_at_exit() -> None:
    # threading's exit hooks run before atexit's, the last registered first: registered after loky's (which its
    # first executor registers as it starts its manager thread, on the first submit), ours runs before loky waits
    global _stop_hook_set
    if not _stop_hook_set and hasattr(_threading, "_register_atexit"):
        _threading._register_atexit(_stop_live_runs)
        _stop_hook_set = True


def _at_exit() -> None:
    _stop_live_runs()
    shutdown_executor()


_atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    # The child inherits the parent's executor object but neither its threads nor its workers (they answer the
    # parent): a run would wait forever. Forgotten, not shut down; the next run starts the child's own workers.
    # The parent's runs in progress are not the child's: its exit must not stop them (their boards are shared files).
    global _executor, _state_lock, _exit_hook_set
    _executor = None
    _state_lock = _threading.Lock()
    _exit_hook_set = False
    _live_runs.clear()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


def picklable(plan: Plan, terminal: Any, start: int = 0, stop: int = 0) -> bool:
    """Return whether ``plan`` and ``terminal``, with the items ``start..stop``, can be sent to worker processes."""
    try:
        _cloudpickle().dumps((plan.node.restricted(start, stop), plan.stages, terminal))
    except Exception:
        return False
    return True


def picklable_value(value: Any) -> bool:
    """Return whether ``value`` can travel between processes: pickled and loaded again (cloudpickle, as the
    pool's results are; an exception whose ``__init__`` takes other arguments pickles, and fails to load)."""
    try:
        _cloudpickle().loads(_cloudpickle().dumps(value))
    except Exception:
        return False
    return True


# ------------------------------------------------------------------------------------ shared arrays


class SharedArray:
    """A slice of a NumPy array stored in a ``.npy`` file; pickles as its path and row range, maps lazily."""

    def __init__(self, path: str, start: int, stop: int) -> None:
        self.path, self.start, self.stop = path, start, stop
        self._view: Any = None

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key: slice) -> Any:
        if self._view is None:
            # copy-on-write: a kernel may write into its chunk, as into the private copy a small array pickles to
            self._view = _np.load(self.path, mmap_mode="c")[self.start : self.stop]
        return self._view[key]

    def restricted(self, start: int, stop: int) -> SharedArray:
        stop = min(stop, len(self))
        start = min(start, stop)
        return SharedArray(self.path, self.start + start, self.start + stop)

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "start": self.start, "stop": self.stop, "_view": None}


#: the bytes of the pieces a strided array is written in (a contiguous copy of it whole was a second array)
_SAVE_PIECE_BYTES = 16 << 20


def _save_rows(path: str, array: _np.ndarray) -> None:
    """Write ``array`` to ``path`` as a C-ordered ``.npy`` file; a strided one in contiguous pieces of rows."""
    if array.flags.c_contiguous or array.ndim == 0:
        _np.save(path, array)
        return
    header = _np.lib.format.header_data_from_array_1_0(array)
    header["fortran_order"] = False
    rows = max(1, _SAVE_PIECE_BYTES // max(1, array[:1].nbytes))
    with open(path, "wb") as f:
        _np.lib.format.write_array_header_2_0(f, header)
        for lo in range(0, len(array), rows):
            f.write(_np.ascontiguousarray(array[lo : lo + rows]).view(_np.uint8).data)  # any dtype: datetimes too


def _share_arrays(node: Any, files: list[str]) -> Any:
    """Return ``node`` with every large array source replaced by a :class:`SharedArray` on a temp file."""
    from hpc.iter.indexed import ArrayChunksSource, ArraySource

    if isinstance(node, ArraySource | ArrayChunksSource) and isinstance(node.array, _np.ndarray):
        # only plain arrays: objects cannot be mapped, and a subclass (a masked array) would lose what it adds
        plain = type(node.array) is _np.ndarray or type(node.array) is _np.memmap
        if node.array.nbytes >= SHARE_BYTES and plain and not node.array.dtype.hasobject:
            directory = "/dev/shm" if _os.path.isdir("/dev/shm") else None
            fd, path = _tempfile.mkstemp(prefix=f"hpc-{_os.getpid()}-", suffix=".npy", dir=directory)
            _os.close(fd)
            files.append(path)  # before writing: a failed write (a full /dev/shm) is removed too
            _save_rows(path, node.array)
            clone = _copy.copy(node)
            clone.array = SharedArray(path, 0, len(node.array))
            return clone
        return node
    replaced = False
    clone = _copy.copy(node)
    for attr in ("base", "a", "b"):
        child = getattr(node, attr, None)
        if child is not None and hasattr(child, "items"):
            new = _share_arrays(child, files)
            if new is not child:
                setattr(clone, attr, new)
                replaced = True
    return clone if replaced else node


# ------------------------------------------------------------------------------------ the board


class Board:
    """What every process of one run must see at once: cancelled, the lowest failed chunk, the lowest match.

    Three int64 in a small shared file (``-1``: none yet). The driver posts what it gathers, a worker posts its
    own failure or match before its group returns, and workers read the board before each chunk, so groups
    already sent stop at their next chunk instead of running to their end. Writers only ever lower a chunk index
    (or set cancelled); a lost race leaves a higher index, which still skips only chunks after a real failure or
    match, and the driver posts its exact values when it gathers.
    """

    _FIELDS = 3

    def __init__(self, path: str, create: bool = False) -> None:
        self.path = path
        if create:
            with open(path, "wb") as fh:
                fh.write(_np.array([0, -1, -1], dtype=_np.int64).tobytes())
        fd = _os.open(path, _os.O_RDWR)
        try:
            self._map = _mmap.mmap(fd, 8 * self._FIELDS)
        finally:
            _os.close(fd)
        self._v = memoryview(self._map).cast("q")

    def read_into(self, ctx: ExecContext) -> None:
        """Merge the board into ``ctx``."""
        v = self._v
        if v[0]:
            ctx.cancelled = True
        if v[1] >= 0:
            ctx.note_failed(v[1])
        if v[2] >= 0:
            ctx.note_found(v[2])

    def post(self, ctx: ExecContext) -> None:
        """Merge ``ctx`` into the board."""
        v = self._v
        if ctx.cancelled:
            v[0] = 1
        for i, chunk in ((1, ctx.failed_chunk), (2, ctx.found_chunk)):
            if chunk is not None and (v[i] < 0 or chunk < v[i]):
                v[i] = chunk

    def close(self) -> None:
        """Unmap the board (``mmap`` keeps a descriptor of its own until then)."""
        self._v.release()
        self._map.close()


def remove_stale_files() -> list[str]:
    """Remove the shared files (``/dev/shm/hpc-<pid>-*``) of drivers that no longer run; return their paths.

    A driver removes its run's files when the run ends, even by an exception or Ctrl-C; one ended by SIGTERM or
    SIGKILL (a job's time limit, the OOM killer) cannot, so the next run of any driver on the machine does.
    """
    if not _os.path.isdir("/dev/shm"):
        return []
    removed = []
    for name in _os.listdir("/dev/shm"):
        if not name.startswith("hpc-"):
            continue
        pid = name.removeprefix("hpc-").removeprefix("board-").split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            _os.unlink(_os.path.join("/dev/shm", name))
            removed.append(name)
        except OSError:
            pass
    return removed


def _alive(pid: int) -> bool:
    try:
        _os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _new_board(files: list[str]) -> Board | None:
    """Create the run's board, or return ``None`` when it cannot be made (``/dev/shm`` full or not writable).

    The board only stops work early; without it the run is the same, groups already sent just run to their end.
    """
    directory = "/dev/shm" if _os.path.isdir("/dev/shm") else None
    try:
        fd, path = _tempfile.mkstemp(prefix=f"hpc-board-{_os.getpid()}-", dir=directory)
    except OSError:
        return None
    _os.close(fd)
    files.append(path)
    try:
        return Board(path, create=True)
    except (OSError, ValueError):
        return None


def _open_board(path: str | None) -> Board | None:
    if path is None:
        return None
    try:
        return Board(path)
    except (OSError, ValueError):  # cannot be mapped here (out of descriptors, ...): read nothing, post nothing
        return None


# ------------------------------------------------------------------------------------ the worker side

_contexts: _OrderedDict[str, ExecContext] = _OrderedDict()
#: calls whose contexts a worker process keeps, the least recently used dropped first: more runs than this at once
#: (each user thread its own) would call map_init's init again in a worker (8, by age, had dropped ones in use)
_KEPT_CONTEXTS = 64


def _context_for(token: str) -> ExecContext:
    # one context per call per worker process, so map_init's init runs once per worker per call
    ctx = _contexts.get(token)
    if ctx is None:
        ctx = _contexts[token] = ExecContext(token)
        while len(_contexts) > _KEPT_CONTEXTS:
            _contexts.popitem(last=False)
    else:
        _contexts.move_to_end(token)
    return ctx


def _run_group(
    token: str, board_path: str | None, payload: bytes, offset: int, spans: list[tuple[int, int, int]]
) -> dict[str, Any]:
    plan, terminal = _cloudpickle().loads(payload)
    ctx = _context_for(token)
    # Mapped for this group only (the run is alive while one of its groups runs): a worker keeps no descriptor or
    # mapping of a finished run's board, not even in the garbage a failure's traceback leaves for the collector.
    board = _open_board(board_path)
    try:
        result = _run_spans(plan, terminal, ctx, board, offset, spans)
    finally:
        if board is not None:
            board.close()
    # Pickled here, and loaded by the driver itself: a result that does not pickle, or not load (an exception
    # whose __init__ takes other arguments), is then this run's error, where in loky's own result channel it broke
    # the pool shared by every thread's runs ("A result has failed to un-serialize")
    try:
        return {"pickled": _cloudpickle().dumps(result)}
    except Exception as exc:
        return {"unsent": f"{type(exc).__name__}: {exc}", "ctx": result["ctx"]}


def _run_spans(
    plan: Plan, terminal: Any, ctx: ExecContext, board: Board | None, offset: int, spans: list[tuple[int, int, int]]
) -> dict[str, Any]:
    out: dict[int, Any] = {}
    try:
        for c, s, e in spans:
            if _DRIVER is not None and _os.getppid() != _DRIVER:
                _os._exit(0)  # the driver is gone: nobody waits for this group, or for this worker (idle 300 s)
            if board is not None:
                board.read_into(ctx)
            if _skip(ctx, terminal, c):
                break  # chunks ascend: the rest of the group is skipped too
            found = ctx.found_chunk
            out[c] = run_chunk(plan, terminal, c, s - offset, e - offset, ctx)
            if board is not None and (ctx.cancelled or ctx.found_chunk != found):
                board.post(ctx)  # any, all, find_any, find_first: the other workers stop now
    except ChunkFailure as failure:
        ctx.note_failed(failure.chunk)
        if board is not None:
            board.post(ctx)  # before the round trip to the driver: the other workers stop at their next chunk
        item = None if failure.item is None else failure.item + offset
        span = (failure.span[0] + offset, failure.span[1] + offset)
        shipped = (shippable(failure.error), failure.chunk, item, span)
        return {"partials": out, "failure": shipped, "ctx": (ctx.cancelled, ctx.found_chunk)}
    except BaseException as exc:  # SystemExit, KeyboardInterrupt... from the user's function: this run's failure,
        ctx.cancelled = True  # as on threads; escaping the worker, it would reach the driver as the pool's end
        if board is not None:
            board.post(ctx)
        shipped = (shippable(exc), c, None, (s, e))
        return {"partials": out, "failure": shipped, "ctx": (ctx.cancelled, ctx.found_chunk)}
    return {"partials": out, "failure": None, "ctx": (ctx.cancelled, ctx.found_chunk)}


# ------------------------------------------------------------------------------------ the driver side


def _span_text(group: list[tuple[int, int, int]]) -> str:
    """A group of ``(chunk, start, stop)`` spans as errors name it: ``items 848..1039, chunks 106..129``."""
    chunks = f"chunk {group[0][0]}" if len(group) == 1 else f"chunks {group[0][0]}..{group[-1][0]}"
    return f"items {group[0][1]}..{group[-1][2] - 1}, {chunks}"


def daemonic() -> bool:
    """Whether this is a daemonic process (a ``multiprocessing.Pool`` worker): it may not start processes."""
    import multiprocessing

    return bool(multiprocessing.current_process().daemon)


class ProcessesBackend(Backend):
    """Chunk groups on loky's reusable process pool (``joblib.externals.loky``)."""

    name = "processes"

    def run(self, plan, terminal, spans, ctx, progress):
        if _IN_WORKER:
            # Nested in a worker process: it is already one of the pool's parallel parts. Its own pool would start
            # workers of its own, n + n**2 processes at two levels.
            return SerialBackend().run(plan, terminal, spans, ctx, progress)
        if daemonic():
            raise RuntimeError(
                "the processes backend cannot start worker processes here: this is a daemonic process (a "
                "multiprocessing.Pool worker, say), which Python forbids to have children; use with_backend('threads') "
                "or 'auto', which takes threads here"
            )
        # one process per CPU at most: HPC_NUM_THREADS sizes thread pools (up to 4096), not a fleet of interpreters
        workers = min(_config.num_threads(), _config.available_cpus())
        executor = _lease_executor(workers)
        remove_stale_files()
        files: list[str] = []
        board = None
        try:
            board = _new_board(files)
            node = _share_arrays(plan.node, files)
            run = _Run(executor, workers, plan, node, terminal, ctx, progress, board)
            return run.run(guided_groups(spans, workers))
        finally:
            _end_lease(executor)
            if board is not None:
                board.close()
            for path in files:
                try:
                    _os.unlink(path)
                except OSError:
                    pass


class _Run:
    """One run on the process pool: submits groups through a window of ``workers + 1`` and gathers partials.

    The window keeps no more work queued in loky than its call queue holds, so short-circuiting and failures stop
    promptly, and a kill on Ctrl-C finds no half-queued work (which loky's manager thread mishandles).
    """

    def __init__(
        self,
        executor: Any,
        workers: int,
        plan: Plan,
        node: Any,
        terminal: Any,
        ctx: ExecContext,
        progress: Any,
        board: Board | None,
    ) -> None:
        self.executor, self.window, self.board = executor, workers + 1, board
        self.plan, self.node, self.terminal, self.ctx, self.progress = plan, node, terminal, ctx, progress
        self.out: dict[int, Any] = {}
        self.failures: list[ChunkFailure] = []
        self.exiting = False
        self.unshippable: tuple[TypeError, list[list[tuple[int, int, int]]]] | None = None

    def stop_for_exit(self) -> None:
        """The interpreter exits: stop this run's groups at their next chunk; the run raises, never returns part."""
        self.exiting = True
        self.ctx.cancelled = True
        if self.board is not None:
            self.board.post(self.ctx)

    def _submit(self, group: list[tuple[int, int, int]]) -> Any:
        first, last = group[0][1], group[-1][2]
        sub = Plan(self.node.restricted(first, last), self.plan.stages, self.plan.min_len, self.plan.max_len)
        try:
            payload = _cloudpickle().dumps((sub, self.terminal))
        except Exception as exc:
            raise TypeError(
                f"the processes backend must pickle the iterator's functions and items ({_span_text(group)}); {exc} "
                "(use with_backend('threads') for functions or items that cannot be pickled)"
            ) from exc
        path = None if self.board is None else self.board.path
        future = self.executor.submit(_run_group, self.ctx.token, path, payload, first, group)
        _stop_live_runs_at_exit()  # after the first submit, which registers loky's own hook
        return future

    def _stale(self, group: list[tuple[int, int, int]]) -> bool:
        ctx = self.ctx
        if ctx.cancelled or (ctx.failed_chunk is not None and group[0][0] > ctx.failed_chunk):
            return True
        return self.terminal.positional_first and ctx.found_chunk is not None and group[0][0] > ctx.found_chunk

    def _unpacked(self, group: list[tuple[int, int, int]], sent: dict[str, Any]) -> dict[str, Any]:
        """Return a group's result as the worker sent it, or raise TypeError: its results cannot come back."""
        why = sent.get("unsent")
        if why is None:
            try:
                return _cloudpickle().loads(sent["pickled"])
            except Exception as exc:
                why = f"{type(exc).__name__}: {exc}"
        raise TypeError(
            f"the results of {_span_text(group)} cannot come back from the worker process ({why}); use "
            "with_backend('threads') for results that cannot be pickled and loaded"
        )

    def _gather(self, group: list[tuple[int, int, int]], result: dict[str, Any]) -> None:
        self.out.update(result["partials"])
        if self.progress is not None:
            self.progress.update(sum(e - s for c, s, e in group if c in result["partials"]))
        cancelled, found = result["ctx"]
        if result["failure"] is not None:
            shipped, chunk, item, span = result["failure"]
            failure = ChunkFailure(revived(shipped), chunk, item, span)
            self.failures.append(failure)
            self.ctx.note_failed(failure.chunk)
        if found is not None:
            self.ctx.note_found(found)
        if cancelled:
            self.ctx.cancelled = True
        if self.board is not None:
            self.board.post(self.ctx)

    def run(self, groups: list[list[tuple[int, int, int]]]) -> dict[int, Any]:
        with _state_lock:
            _live_runs.add(self)
        stopped = "the processes backend's run was stopped before its end: the interpreter is exiting"
        try:
            self._drive(list(reversed(groups)), {})
        except Exception as exc:
            if self.exiting:  # the pool shut down under it (loky's "cannot schedule new futures after shutdown")
                raise RuntimeError(stopped) from exc
            raise
        finally:
            with _state_lock:
                _live_runs.discard(self)
        if self.exiting:
            raise RuntimeError(stopped)
        raise_first_failure(self.failures, self.terminal, self.ctx)
        if self.unshippable is not None:
            error, rest = self.unshippable
            raise Unshippable(self.out, [span for group in rest for span in group], error)
        return self.out

    def _drive(self, queue: list[list[tuple[int, int, int]]], running: dict[Any, list[tuple[int, int, int]]]) -> None:
        """Submit the queued groups through the window and gather them until none is left (or all are stale)."""
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        unshippable: tuple[TypeError, list[list[tuple[int, int, int]]]] | None = None
        try:
            while queue or running:
                while queue and len(running) < self.window:
                    group = queue.pop()
                    if self._stale(group):
                        continue
                    try:
                        running[self._submit(group)] = group
                    except TypeError as exc:  # its items do not pickle: the groups sent finish first
                        unshippable, queue = (exc, [group, *reversed(queue)]), []
                if not running:
                    break
                finished, _ = wait(list(running), timeout=0.1, return_when=FIRST_COMPLETED)
                for fut in finished:
                    group = running[fut]
                    sent = fut.result()  # raises where its worker died: the group is still listed for the note
                    del running[fut]
                    try:
                        result = self._unpacked(group, sent)
                    except TypeError as exc:  # as items that do not pickle: auto runs the rest on threads
                        rest = [group] + ([] if unshippable is None else unshippable[1]) + list(reversed(queue))
                        unshippable, queue = (exc, sorted(rest, key=lambda g: g[0][0])), []
                        continue
                    self._gather(group, result)
        except Exception as exc:
            killed_by = self.executor._hpc_killed_by
            if killed_by is not None:  # another thread's run ended the pool under this one
                note = (f"hpc: the processes backend's workers were terminated by {killed_by} while this run used "
                        "them; the next run starts new workers")
            elif isinstance(exc, BrokenProcessPool):  # a worker died: the next run starts a fresh pool
                _kill(self.executor, "a worker's death (on this run's items or another thread's)")
                spans = ", ".join(f"{g[0][1]}..{g[-1][2] - 1}" for g in list(running.values())[:4])
                note = (f"hpc: a worker process of the processes backend ended while the pool ran items {spans} of "
                        "this parallel iterator (or another thread's items: os._exit, a crash, or the memory "
                        "killer); the next run starts new workers")
            else:
                self._abandon(running)  # this run's own error (a result that does not pickle): the pool is shared
                raise
            own = _own_copy(exc)
            own.add_note(note)
            raise own from exc.__cause__
        except BaseException as exc:
            # KeyboardInterrupt: stop everything now and leave no worker behind.
            _kill(self.executor, f"a {type(exc).__name__} in another thread's run")
            raise
        self.unshippable = unshippable

    def _abandon(self, running: dict[Any, list[tuple[int, int, int]]]) -> None:
        """Stop this run's groups (the queued ones now, the running ones at their next chunk); the pool goes on."""
        self.ctx.cancelled = True
        if self.board is not None:
            self.board.post(self.ctx)
        for fut in running:
            fut.cancel()
