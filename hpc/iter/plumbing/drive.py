"""Running a plan: choosing the backend, running the chunks, raising failures, finishing the terminal."""

from __future__ import annotations

import sys as _sys
import threading as _threading
import time as _time
from collections.abc import Callable
from typing import Any

from hpc import config as _config
from hpc._core.blas import blas_capped
from hpc._core.pool import current_pool
from hpc.iter.plumbing.chunking import guided_groups
from hpc.iter.plumbing.context import ExecContext
from hpc.iter.plumbing.plan import ChunkFailure, Plan, run_chunk

__all__ = ["BACKENDS", "Backend", "execute", "register", "resolve_backend"]

Span = tuple[int, int, int]  # (chunk index, start, stop)

#: ``auto`` sends per-item Python work to processes when the first chunk predicts at least this much serial time
#: (seconds); before the process pool exists it must also pay for starting it, hence the larger cold threshold.
AUTO_PROCESSES_WARM_S = 0.2
AUTO_PROCESSES_COLD_S = 1.0
#: ``auto`` runs per-item Python work on the calling thread, chunk after chunk, until it has taken this long
#: (seconds), and only then hands the rest to the pool: a short run costs what a loop costs, not a thread hand-off
#: (tens to hundreds of microseconds), and a long one loses at most this much of its parallel start
AUTO_INLINE_S = 0.0005


class Backend:
    """A way to run chunks. Subclasses set ``name`` and implement :meth:`run`."""

    name = ""

    def run(self, plan: Plan, terminal: Any, spans: list[Span], ctx: ExecContext, progress: Any) -> dict[int, Any]:
        """Run ``spans`` and return ``{chunk: partial}``; raise the lowest-indexed :class:`ChunkFailure`."""
        raise NotImplementedError


def _skip(ctx: ExecContext, terminal: Any, chunk: int) -> bool:
    if ctx.cancelled:
        return True
    # after a failure only lower chunks still start: one of them may fail too, and the lowest failure is raised
    if ctx.failed_chunk is not None and chunk > ctx.failed_chunk:
        return True
    return terminal.positional_first and ctx.found_chunk is not None and chunk > ctx.found_chunk


class Unshippable(Exception):
    """Raised by the processes backend when a group's items or functions do not pickle, or its results do not come
    back: the partials of the chunks that came back (every group already sent was waited for), the spans left, and
    the ``TypeError`` to raise when the backend was asked for by name (``auto`` runs the spans left on threads
    instead)."""

    def __init__(self, partials: dict[int, Any], remaining: list[Span], error: TypeError) -> None:
        super().__init__(str(error))
        self.partials, self.remaining, self.error = partials, remaining, error


def raise_first_failure(failures: list[ChunkFailure], terminal: Any, ctx: ExecContext) -> None:
    """Raise the failure of the lowest chunk, unless a positional search matched before it (as serial would)."""
    if failures:
        first = min(failures, key=lambda f: f.chunk)
        if not (terminal.positional_first and ctx.found_chunk is not None and ctx.found_chunk < first.chunk):
            raise first


class SerialBackend(Backend):
    """One chunk after another on the calling thread: the same chunks and tree as every other backend."""

    name = "serial"

    def run(self, plan, terminal, spans, ctx, progress):
        out = {}
        for c, s, e in spans:
            if _skip(ctx, terminal, c):
                continue
            out[c] = run_chunk(plan, terminal, c, s, e, ctx)
            if progress is not None:
                progress.update(e - s)
        return out


class _Task:
    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[], None]) -> None:
        self.fn = fn

    def run(self) -> None:
        self.fn()


class ThreadsBackend(Backend):
    """Chunks as tasks on the current work-stealing pool; a waiting worker helps instead of blocking."""

    name = "threads"

    def run(self, plan, terminal, spans, ctx, progress):
        pool = current_pool()
        out: dict[int, Any] = {}
        failures: list[ChunkFailure] = []
        lock = _threading.Lock()
        done = _threading.Event()
        remaining = [0]  # groups not yet finished, set below

        def group_task(group: list[Span]) -> None:
            c, s, e = group[0]
            try:
                for c, s, e in group:
                    if not _skip(ctx, terminal, c):
                        out[c] = run_chunk(plan, terminal, c, s, e, ctx)
                        if progress is not None:
                            progress.update(e - s)
            except ChunkFailure as failure:
                ctx.note_failed(failure.chunk)
                with lock:
                    failures.append(failure)
            except BaseException as exc:  # KeyboardInterrupt/SystemExit inside a worker: stop the run, report it
                ctx.cancelled = True
                with lock:
                    failures.append(ChunkFailure(exc, c, None, (s, e)))
            finally:
                with lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        done.set()

        groups = guided_groups(spans, pool.num_threads)
        remaining[0] = len(groups)
        with blas_capped(pool.num_threads):
            for group in groups:
                pool.push(_Task(lambda group=group: group_task(group)))
            try:
                pool.wait_until(done)
            except BaseException:
                ctx.cancelled = True  # tasks not yet started return at once; running ones finish their chunk
                raise
        raise_first_failure(failures, terminal, ctx)
        return out


BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> None:
    """Make ``backend`` available to ``with_backend(backend.name)``."""
    BACKENDS[backend.name] = backend


register(SerialBackend())
register(ThreadsBackend())


def _gil_enabled() -> bool:
    check = getattr(_sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def in_worker() -> bool:
    """Whether the calling thread runs work of a pool: a worker thread of an hpc ``ThreadPool`` (a parallel
    iterator's chunk, a ``join`` half, a joblib task) or a processes-backend worker process."""
    from hpc._core.pool import current_worker_index

    if current_worker_index() is not None:
        return True
    from hpc.iter.plumbing import processes

    return processes.in_worker_process()


def resolve_backend(requested: str | None, plan: Plan, terminal: Any) -> str:
    """Return the backend a run uses: ``requested``, else ``HPC_BACKEND``; ``auto`` is decided here or by probing.

    The ``auto`` rule: threads for numeric work (``map_chunks``, array items, numba kernels, plain sources), for
    side effects (``for_each``, ``inspect``), inside a worker and on a free-threaded interpreter; otherwise
    (per-item Python functions under the GIL) ``"probe"``: run chunks on the calling thread for up to
    :data:`AUTO_INLINE_S` (a short run ends there), then send the rest to the pool's threads, or to processes when
    the whole run would take long enough to pay for them. With ``map_init`` the first chunk is timed on a pool
    worker instead, whose state the rest of the run reuses.
    """
    name = requested or _config.backend()
    if name != "auto":
        if name not in _config.BACKENDS and name not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(_config.BACKENDS)}; got {name!r}")
        return name
    if not _gil_enabled() or in_worker():
        return "threads"
    from hpc.iter.plumbing import processes

    if processes.daemonic():  # a multiprocessing.Pool worker: no processes of its own (Python forbids them)
        return "threads"
    if not (plan.per_item_python() or terminal.per_item_python) or plan.numeric():
        return "threads"
    if plan.side_effects() or terminal.side_effects:
        return "threads"
    return "probe"


#: backends that live in modules loaded on first use (so importing hpc.iter never loads loky or MPI)
_PLUGINS = {"processes": "hpc.iter.plumbing.processes", "mpi": "hpc.mpi.iter_backend"}


def _backend(name: str) -> Backend:
    if name not in BACKENDS and name in _PLUGINS:
        import importlib

        module = importlib.import_module(_PLUGINS[name])
        if name not in BACKENDS:  # processes does not register itself at import
            register(module.ProcessesBackend())
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"backend must be one of {', '.join(_config.BACKENDS)}; got {name!r}") from None


def _noted(failure: ChunkFailure, where: str) -> BaseException:
    """The item's own exception, with a note saying where it was raised; not twice the same note (an exception
    object raised again by each run, a module-level one, gathered one per run). A nested run's note is another
    text, and stays beside the outer run's."""
    exc = failure.error
    note = failure.note(where)
    if note not in (getattr(exc, "__notes__", None) or ()):
        exc.add_note(note)
    return exc


def execute(plan: Plan, terminal: Any, backend: str | None, progress: bool = False) -> Any:
    """Run ``plan`` into ``terminal`` on ``backend`` and return the terminal's result."""
    ranges = plan.chunks()
    if not ranges:
        if resolve_backend(backend, plan, terminal) == "mpi":  # collective: this rank joins the others' exchange
            _backend("mpi").run(plan, terminal, [], ExecContext(), None)  # (a rank with items there: a mismatch)
        return terminal.finish([])
    spans = [(c, s, e) for c, (s, e) in enumerate(ranges)]
    name = resolve_backend(backend, plan, terminal)
    chosen = name  # what the caller asked for, resolved: a run it chose threads or auto for may stay on its thread
    if len(spans) == 1 and name in ("threads", "probe"):
        name = "serial"  # one chunk: a hand-off to a worker would only add latency
    bar = _progress_bar(plan.node.length) if progress else None
    ctx = ExecContext()
    auto = False  # whether automatic choice took the processes (which may then hand the rest back to threads)
    try:
        partials: dict[int, Any] = {}
        if name == "probe":
            total = len(spans)
            if plan.worker_states():  # map_init: the first chunk on a pool worker, whose state the rest reuses
                name = "threads"
                first, seconds = _probe(plan, terminal, spans[0], ctx, bar)
                done = 1
            else:
                name = "serial"  # a failure here names the backend that ran it
                first, done, seconds = _inline(plan, terminal, spans, ctx, bar)
            partials.update(first)
            first = {c: first[c] for c in sorted(first)[:1]}  # the first chunk's partial, for the pickle check
            estimate = seconds * total / done
            spans = spans[done:]
            if spans:
                name = "threads"
                # the items and the results travel too: check a chunk of each (locks, generators, ...); a later
                # chunk's items that do not pickle send the rest of the run back to threads (Unshippable below)
                if (
                    estimate > _processes_threshold()
                    and _picklable(plan, terminal, spans[0][1], spans[0][2])
                    and _picklable_value(first)
                ):
                    name, auto = "processes", True
        if spans:
            try:
                partials.update(_backend(name).run(plan, terminal, spans, ctx, bar))
            except Unshippable as unshippable:
                partials.update(unshippable.partials)
                if not auto:
                    raise unshippable.error from unshippable.error.__cause__
                name = "threads"
                partials.update(_backend(name).run(plan, terminal, unshippable.remaining, ctx, bar))
    except ChunkFailure as failure:
        stayed = name == "serial" and chosen != "serial"
        error = _noted(failure, f"calling thread ({'auto' if chosen == 'probe' else chosen} kept this short run "
                                "there)" if stayed else f"{name} backend")
    else:
        error = None
    finally:
        if bar is not None:
            bar.close()
    if error is not None:  # raised here, out of the except block: its traceback shows no ChunkFailure "during"
        raise error
    return terminal.finish([partials[c] for c in sorted(partials)])


def _inline(
    plan: Plan, terminal: Any, spans: list[Span], ctx: ExecContext, progress: Any
) -> tuple[dict[int, Any], int, float]:
    """Run chunks on the calling thread until :data:`AUTO_INLINE_S` has passed (at least one chunk); return their
    partials, how many spans were taken and the seconds they took."""
    out: dict[int, Any] = {}
    start = _time.perf_counter()
    taken, elapsed = 0, 0.0
    for c, s, e in spans:
        taken += 1
        if not _skip(ctx, terminal, c):
            out[c] = run_chunk(plan, terminal, c, s, e, ctx)
            if progress is not None:
                progress.update(e - s)
        elapsed = _time.perf_counter() - start
        if elapsed > AUTO_INLINE_S:
            break
    return out, taken, elapsed


def _probe(plan: Plan, terminal: Any, span: Span, ctx: ExecContext, progress: Any) -> tuple[dict[int, Any], float]:
    """Run the first chunk on a worker of the current pool; return its partial and its run time (seconds).

    On a pool worker, not on the caller: when the rest stays on threads, that worker's ``map_init`` states are
    reused, so ``init`` runs at most once per pool thread, as on the threads backend. The time is taken on the
    worker, so waking it does not count.
    """
    pool = current_pool()
    done = _threading.Event()
    result: list[Any] = [{}, 0.0, None]

    def probe() -> None:
        t0 = _time.perf_counter()
        try:
            result[0] = SerialBackend().run(plan, terminal, [span], ctx, progress)
        except BaseException as exc:  # a ChunkFailure, or an interrupt inside the worker: re-raised by the caller
            result[2] = exc
        finally:
            result[1] = _time.perf_counter() - t0
            done.set()

    pool.push(_Task(probe))
    try:
        pool.wait_until(done)
    except BaseException:
        ctx.cancelled = True  # the chunk finishes on its worker; nothing else starts
        raise
    if result[2] is not None:
        raise result[2]
    return result[0], result[1]


def _processes_threshold() -> float:
    from hpc.iter.plumbing import processes

    return AUTO_PROCESSES_WARM_S if processes.executor_is_warm() else AUTO_PROCESSES_COLD_S


def _picklable(plan: Plan, terminal: Any, start: int, stop: int) -> bool:
    from hpc.iter.plumbing import processes

    return processes.picklable(plan, terminal, start, stop)


def _picklable_value(value: Any) -> bool:
    """Whether ``value`` (a chunk's partial result) can come back from a worker process."""
    from hpc.iter.plumbing import processes

    return processes.picklable_value(value)


def _progress_bar(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="item", dynamic_ncols=True, mininterval=0.2)
