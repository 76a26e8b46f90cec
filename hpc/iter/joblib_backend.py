"""A joblib backend on hpc's work-stealing pool: ``joblib.parallel_config(backend="hpc")``.

Importing this module registers the backend under the name ``"hpc"``, so joblib (and everything built on it, such
as scikit-learn's ``n_jobs``) runs its batches on :func:`hpc._core.pool.current_pool`:

    >>> import joblib
    >>> import hpc.iter.joblib_backend  # registers "hpc"
    >>> with joblib.parallel_config(backend="hpc"):
    ...     joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(4))
    [0, 1, 2, 3]

This module imports joblib (about 180 ms), which is why ``import hpc`` does not import it.
"""

from __future__ import annotations

import concurrent.futures as _futures
import contextlib as _contextlib
import sys as _sys
import threading as _threading
import time as _time
from collections.abc import Callable, Iterator
from typing import Any

import joblib as _joblib
from joblib import _utils as _joblib_utils
from joblib._parallel_backends import AutoBatchingMixin, FallbackToBackend, ParallelBackendBase, SequentialBackend
from joblib._utils import _retrieve_traceback_capturing_wrapped_call, _TracebackCapturingWrapper

from hpc._core import pool as _pool
from hpc._core.blas import blas_cap as _blas_cap
from hpc._core.blas import controllers as _controllers

__all__ = ["HpcBackend", "register_joblib_backend"]

#: what joblib's traceback-capturing wrapper returns for a batch that raised (defined where multiprocessing is)
_FAILED_BATCH = (BaseException, *[c for c in [getattr(_joblib_utils, "_ExceptionWithTraceback", None)] if c])

#: the name the backend is registered under
NAME = "hpc"


def register_joblib_backend() -> None:
    """Register :class:`HpcBackend` with joblib under the name ``"hpc"``; calling it again changes nothing.

    Importing :mod:`hpc.iter.joblib_backend` already calls it; call it yourself after replacing joblib's registry.

    Example:
        >>> import joblib
        >>> from hpc.iter.joblib_backend import register_joblib_backend
        >>> register_joblib_backend()
        >>> with joblib.parallel_config(backend="hpc", n_jobs=2):
        ...     joblib.Parallel()(joblib.delayed(pow)(i, 2) for i in range(4))
        [0, 1, 4, 9]

    .. versionadded:: 0.1.0
    """
    _joblib.register_parallel_backend(NAME, HpcBackend)


class _Call:
    """The batches of one ``Parallel`` call: how many are in flight, whether one failed, whether it was aborted."""

    __slots__ = ("lock", "in_flight", "last_end", "longest_gap", "failed", "aborted", "settled", "from_outside",
                 "on_drained", "parent", "openmp_threads")

    def __init__(self, from_outside: bool = True, parent: _Call | None = None) -> None:
        self.from_outside = from_outside  # started by a thread that is not one of the pool's workers
        self.parent = parent  # the call whose batch made this nested call, if any
        self.lock = _threading.Lock()
        self.in_flight = 0
        # when the last batch ended (ran, failed or was skipped), and the longest time the call went without one
        # ending: what joblib's timeout limits, which a nested call checks itself (_wait_within_timeout)
        self.last_end = _time.monotonic()
        self.longest_gap = 0.0
        self.failed = False
        self.aborted = False
        self.settled = _threading.Event()  # set while nothing is in flight, and once a batch failed
        self.settled.set()
        self.on_drained: Callable[[], None] | None = None
        self.openmp_threads: int | None = None  # the OpenMP threads each batch may use (None: no limit)

    def cancelled(self) -> bool:
        """Whether this call, or the call of a batch it is nested in (at any depth), was aborted."""
        call: _Call | None = self
        while call is not None:
            if call.aborted:
                return True
            call = call.parent
        return False

    def when_drained(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once no batch of the call is queued or running: now, or on the worker that ends the last."""
        with self.lock:
            if self.in_flight:
                self.on_drained = fn
                return
        fn()

    def __repr__(self) -> str:
        return f"<hpc joblib call in_flight={self.in_flight} failed={self.failed} aborted={self.aborted}>"


class HpcBackend(AutoBatchingMixin, ParallelBackendBase):
    """Run joblib's batches as jobs on hpc's work-stealing thread pool.

    The pool is the calling worker's own pool inside a worker (nested ``Parallel`` calls share its threads and
    never deadlock: the waiting worker runs queued batches), else :func:`hpc._core.pool.current_pool` when its size
    is the resolved ``n_jobs``, else a private ``ThreadPool(n_jobs)`` that lives for one ``Parallel`` call.
    ``n_jobs=-1`` means every thread of the current pool, and so does ``n_jobs=None`` (unlike joblib's threading
    backend, where ``None`` means 1): inside ``parallel_config(backend="hpc")`` every ``Parallel`` uses the pool.

    BLAS/OpenMP threads are capped to ``available_cpus // threads`` while calls from outside the pool run, so that
    NumPy inside batches does not oversubscribe the cores. The cap is process-wide while it lasts.

    Note:
        Inside a worker the call waits until every batch is done before joblib sees any result, so
        ``return_as="generator"`` yields late there. ``timeout`` holds there as joblib's does (a task's limit,
        counted from when the result before it came): ``TimeoutError`` where the call went ``timeout`` seconds
        without a batch ending; a batch the waiting worker runs itself meanwhile is not interrupted, so its
        overrun raises when it ends.
    """

    default_n_jobs = -1
    # joblib's automatic batching (batch_size="auto", its default), tuned for threads: a batch costs ~50 us to
    # dispatch here, against ~ms for processes, so batches grow only until they take 10 ms (joblib's process
    # backends aim at 0.2-2 s), which keeps the load balanced and the first results and errors early
    MIN_IDEAL_BATCH_DURATION = 0.01
    MAX_IDEAL_BATCH_DURATION = 0.1
    supports_retrieve_callback = True
    supports_inner_max_num_threads = False
    supports_sharedmem = True
    uses_threads = True

    def __init__(self, nesting_level: int | None = None, inner_max_num_threads: int | None = None, **kwargs: Any):
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs)
        self.parallel: Any = None
        self._n_jobs = 1
        self._pool: _pool.ThreadPool | None = None
        self._own_pool = False
        self._sharing = False  # this backend counts as the caller the shared pool serves (see _SharedPools)
        self._call = _Call()
        self._capped = False

    def __repr__(self) -> str:
        return f"<hpc joblib backend n_jobs={self._n_jobs} nesting_level={self.nesting_level}>"

    # ------------------------------------------------------------------ sizing

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Return how many batches run at once: ``n_jobs``, with -1 (or ``None``) all threads of the pool.

        Negative values count back from the pool size as in joblib (-2: all threads but one). Inside a worker the
        answer is at most that worker's pool size: nested calls stay within the same threads.

        Raises:
            ValueError: ``n_jobs`` is 0 (joblib's message).
        """
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")  # joblib's own words
        threads = _pool.current_num_threads()
        if n_jobs is None:
            n_jobs = -1
        if n_jobs < 0:
            n_jobs = max(threads + 1 + n_jobs, 1)
        if _pool.current_worker_index() is not None:
            n_jobs = min(n_jobs, threads)
        return n_jobs

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, **backend_kwargs: Any) -> int:
        """Choose the pool for a ``Parallel`` call and return its number of concurrent batches."""
        n = self.effective_n_jobs(n_jobs)
        if n == 1:
            raise FallbackToBackend(SequentialBackend(nesting_level=self.nesting_level))
        self.parallel = parallel
        self._release_pool()
        if _pool.current_worker_index() is not None:  # nested: the worker's own pool, within its budget
            self._pool = _pool.current_pool()
        elif _pool.current_num_threads() == n and _shared.enter(_pool.current_pool()):
            self._pool, self._sharing = _pool.current_pool(), True
        else:  # another size, or the shared pool already serves another caller's call: a pool of our own
            self._pool, self._own_pool = _pool.ThreadPool(n), True
        self._n_jobs = n
        return n

    def get_nested_backend(self) -> tuple[HpcBackend, None]:
        """Return the backend for ``Parallel`` calls made inside a batch: this one again, one level deeper."""
        return HpcBackend(nesting_level=(self.nesting_level or 0) + 1), None

    # ------------------------------------------------------------------ one call

    def start_call(self) -> None:
        """Start counting the batches of a new call; cap BLAS threads for a call from outside the pool."""
        from_outside = self._pool is None or not self._pool.is_worker()
        self._call = _Call(from_outside, parent=getattr(_running, "call", None))
        if self._pool is not None and not self._pool.is_worker() and self._n_jobs > 1:
            _blas_cap.acquire(self._n_jobs)
            self._capped = True
            self._call.openmp_threads = _openmp_limit.threads_per_batch(self._n_jobs)

    def stop_call(self) -> None:
        """Lift this call's BLAS cap."""
        if self._capped:
            self._capped = False
            _blas_cap.release()

    def submit(self, func: Callable[[], Any], callback: Callable[[Any], None] | None = None) -> _futures.Future:
        """Queue the batch ``func`` on the pool and return a future; ``callback(future)`` runs when it is done."""
        pool = self._pool
        if pool is None:  # submit without configure: joblib never does this, but keep the backend usable
            self.configure(self._n_jobs if self._n_jobs > 1 else -1)
            pool = self._pool
        call = self._call
        future: _futures.Future = _futures.Future()
        if callback is not None:
            future.add_done_callback(callback)  # before queueing, so the callback runs on the worker
        with call.lock:
            call.in_flight += 1
            if not call.failed:
                call.settled.clear()
        # A call from outside the pool queues its batches in order (joblib's callback pushes the next batch from
        # the worker that ran the last: on that worker's own deque it would start before the batches queued earlier,
        # and an error in batch 3 of 200 surfaced after all 200). A nested call keeps them on its worker's deque,
        # where the waiting worker finds them first.
        # joblib's own wrapper, as its threading and multiprocessing backends use: a batch that raises returns the
        # exception with the text of its traceback, which joblib raises in the caller chained to that text, so a
        # user's frames inside the batch (and inside nested calls) stay in the report
        batch = _TracebackCapturingWrapper(func)
        pool.push(_pool.Job(lambda: _run_batch(batch, future, call)), fifo=call.from_outside)
        return future

    def retrieve_result_callback(self, future: _futures.Future) -> Any:
        """Return the batch's results or raise its exception with the batch's traceback (joblib's callback)."""
        return _retrieve_traceback_capturing_wrapped_call(future.result())

    @_contextlib.contextmanager
    def retrieval_context(self) -> Iterator[None]:
        """Wait here, running queued work on a worker, until the call's batches are done.

        On a worker of the pool this is what makes nesting safe: joblib's own wait would sleep while the batches it
        waits for sit in the queue of the sleeping thread. Elsewhere it saves joblib's 10 ms polling, except for
        generators and calls with a timeout, which keep joblib's own loop.
        """
        pool, call, parallel = self._pool, self._call, self.parallel
        timeout = getattr(parallel, "timeout", None)
        if pool is not None and pool.is_worker() and timeout is not None:
            _wait_within_timeout(pool, call, timeout)
        elif pool is not None and (
            pool.is_worker() or (timeout is None and not getattr(parallel, "return_generator", False))
        ):
            pool.wait_until(call.settled)
        yield

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """Skip the batches of the failed call that have not started; running ones finish their batch."""
        self._call.aborted = True
        if not ensure_ready:
            self._release_pool()

    def terminate(self) -> None:
        """Release the private pool, if this call made one."""
        self.stop_call()
        self._release_pool()

    def _release_pool(self) -> None:
        pool, own, sharing = self._pool, self._own_pool, self._sharing
        self._pool, self._own_pool, self._sharing = None, False, False
        if pool is not None and own:
            pool.shutdown(wait=False)  # its workers finish what is queued (skipped when aborted), then exit
        if pool is not None and sharing:
            if self._call.aborted:
                # Batches of a failed (or timed out, or dropped) call may still run: the shared pool serves that call
                # until they end, and the next call meanwhile gets threads of its own, as if a concurrent caller held
                # it, instead of queuing behind batches whose results nobody will read.
                self._call.when_drained(lambda: _shared.leave(pool))
            else:
                _shared.leave(pool)


class _SharedPools:
    """Which pools serve a ``Parallel`` call from outside them: one caller at a time each (the fair-sharing rule).

    A second user thread whose call would land on a pool already serving another caller's call gets a pool of its
    own instead (as joblib's threading backend gives every call): independent calls of I/O- or sleep-bound work
    then overlap instead of queuing behind each other on the same threads. Nested calls stay on their worker's pool.
    A call that failed (or timed out, or was dropped) holds its pool until its batches still running have returned.
    """

    def __init__(self) -> None:
        self._lock = _threading.Lock()
        self._busy: set[int] = set()

    def enter(self, pool: _pool.ThreadPool) -> bool:
        """Claim ``pool`` for one caller; False when another caller holds it."""
        with self._lock:
            if id(pool) in self._busy:
                return False
            self._busy.add(id(pool))
            return True

    def leave(self, pool: _pool.ThreadPool) -> None:
        with self._lock:
            self._busy.discard(id(pool))

    def __repr__(self) -> str:
        return f"<hpc joblib shared pools busy={len(self._busy)}>"


_shared = _SharedPools()

class _OpenMPLimit:
    """OpenMP threads per batch: ``cpus // n_jobs``, set in the thread that runs the batch.

    OpenMP's thread count is a per-thread setting (``omp_set_num_threads``), so the cap the caller's thread sets does
    not reach the pool's workers: a batch running OpenMP code (HistGradientBoosting, many scikit-learn kernels) would
    start a full team of threads in every worker, n_jobs times the cores. loky caps it in each worker process; we cap
    it in the worker thread, for the batch's duration, through the process's one view of its thread pools
    (:data:`hpc._core.blas.controllers`), looked at as each batch starts: a library that a batch loads (scikit-learn
    imported inside a task) is capped from the next batch on.
    """

    def __init__(self) -> None:
        self._selected: tuple[Any, Any] = (None, None)  # (the controllers' view, its OpenMP libraries or None)

    def threads_per_batch(self, n_jobs: int) -> int | None:
        """Return the OpenMP threads a batch of a call of ``n_jobs`` may use, or None when nothing needs a cap."""
        from hpc import config

        threads = max(1, config.available_cpus() // n_jobs)
        return None if threads >= config.available_cpus() else threads

    def _openmp(self) -> Any:
        """The OpenMP libraries loaded now (a threadpoolctl controller), or None; chosen again after imports."""
        current = _controllers.current()
        source, selected = self._selected
        if current is not source:
            selected = None if current is None else current.select(user_api="openmp")
            selected = selected if selected is not None and selected.lib_controllers else None
            self._selected = (current, selected)
        return selected

    @_contextlib.contextmanager
    def limited(self, threads: int | None) -> Iterator[None]:
        """Cap OpenMP at ``threads`` in this thread for the block (no-op for None, or with no OpenMP loaded)."""
        controller = None if threads is None else self._openmp()
        if controller is None:
            yield
            return
        limiter = controller.limit(limits=threads)
        try:
            yield
        finally:
            limiter.restore_original_limits()

    def __repr__(self) -> str:
        return f"<hpc joblib OpenMP limit controller={self._selected[1]!r}>"


_openmp_limit = _OpenMPLimit()

#: ``call``: the call whose batch this thread is running (the innermost one), which nested calls record as parent
_running = _threading.local()


#: recursion levels a batch leaves free for joblib's callback, which completes its call (records the result or the
#: error, dispatches the next batch)
_CALLBACK_LEVELS = 200


def _near_recursion_limit() -> bool:
    """Whether this thread has fewer than ``_CALLBACK_LEVELS`` levels left below the recursion limit.

    Work stealing runs a batch inside the wait of the batch below it, so recursive ``Parallel`` calls (joblib's
    thread-bomb test) nest on one stack. A batch that hit the limit deep inside would leave joblib's callback,
    run by ``set_result`` at the batch's own depth, to fail in turn: concurrent.futures swallows that, joblib never
    learns that the batch ended, and its caller polls forever. Refused here, the batch's RecursionError reaches
    joblib with room to spare. The levels left are probed by recursing, since C calls on the stack count towards the
    limit too (a worker's stack had 814 frames when it reached a limit of 1000); only deep stacks pay for the probe.
    """
    try:
        _sys._getframe(_sys.getrecursionlimit() // 2)
    except ValueError:
        return False  # fewer frames than half the limit: the usual case, known in well under a microsecond
    try:
        _descend(_CALLBACK_LEVELS)
    except RecursionError:
        return True
    return False


def _descend(levels: int) -> None:
    if levels:
        _descend(levels - 1)


def _wait_within_timeout(pool: _pool.ThreadPool, call: _Call, timeout: float) -> None:
    """On a worker, wait for ``call``'s batches (running queued work meanwhile) and raise ``TimeoutError`` where the
    call went ``timeout`` seconds without a batch ending: joblib's per-task limit, counted from the result before.
    joblib's own loop, which checks it, runs only after this wait; a batch the waiting worker runs itself is not
    interrupted, so its overrun is seen when it ends."""
    def overdue() -> bool:  # a gap between two ends, or since the last one while batches are still out
        return call.longest_gap > timeout or (not call.settled.is_set() and _time.monotonic() - call.last_end > timeout)

    while not pool.wait_until(call.settled, timeout) and not overdue():
        pass
    with call.lock:
        late, failed = overdue(), call.failed
    if late and not failed:  # a failure is joblib's to raise
        raise TimeoutError(f"a task of this Parallel call took longer than its timeout of {timeout:g} s")


def _run_batch(func: Callable[[], Any], future: _futures.Future, call: _Call) -> None:
    failed = False
    try:
        if call.cancelled():
            # Skipped when the call, or any call it is nested in, was aborted: a batch that still runs after its call
            # failed starts no new nested batch (its nested Parallel raises CancelledError), so that branch ends soon
            # instead of running a whole tree of nested calls whose results nobody reads.
            failed = True
            future.cancel()
        elif future.set_running_or_notify_cancel():
            outer, _running.call = getattr(_running, "call", None), call
            try:
                if _near_recursion_limit():
                    raise RecursionError("maximum recursion depth exceeded: nested Parallel calls too deep to run")
                with _openmp_limit.limited(call.openmp_threads):
                    result = func()
            except BaseException as exc:  # the wrapper returns the batch's errors: this is one of its own
                failed = True
                future.set_exception(exc)
            else:
                failed = isinstance(result, _FAILED_BATCH)
                future.set_result(result)  # runs joblib's callback here, which may queue the next batch
            finally:
                _running.call = outer
    finally:
        drained = None
        with call.lock:
            call.in_flight -= 1
            now = _time.monotonic()
            call.longest_gap = max(call.longest_gap, now - call.last_end)
            call.last_end = now
            if failed:
                call.failed = True
            if call.in_flight == 0 or call.failed:
                call.settled.set()
            if call.in_flight == 0:
                drained, call.on_drained = call.on_drained, None
        if drained is not None:
            drained()


register_joblib_backend()
