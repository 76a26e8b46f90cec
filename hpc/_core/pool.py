"""A work-stealing thread pool: a deque per worker, random stealing, helping while waiting.

Each worker owns a deque. Work a worker creates goes to the back of its own deque and the worker takes it back
from there (LIFO, so the freshest and smallest work stays local); idle workers steal from the front of a random
victim's deque (FIFO, so thieves take the oldest and largest pieces). Work submitted from outside the pool goes to
a shared injector queue. A worker that must wait for a result (``join``, a nested parallel iterator, a scope)
never blocks idle: it keeps running other work until the result is there. That is what lets nested parallel calls
share one budget of threads and never deadlock.
"""

from __future__ import annotations

import collections as _collections
import concurrent.futures as _futures
import os as _os
import random as _random
import sys as _sys
import threading as _threading
import time as _time
import weakref as _weakref
from collections.abc import Callable, Iterable, Iterator
from itertools import chain as _chain
from itertools import islice as _islice
from typing import Any, ParamSpec, TypeVar

from hpc import config as _config

__all__ = ["Job", "ThreadPool", "current_pool", "current_num_threads", "current_worker_index", "default_pool"]

T = TypeVar("T")
P = ParamSpec("P")

_local = _threading.local()
#: a worker that found no work for this many waits of ``_IDLE_WAIT_S`` seconds leaves; the next push starts it again
#: (so pools that are no longer used, e.g. after ``with ThreadPool(n): ...``, do not keep their threads forever)
_IDLE_WAIT_S = 1.0
_IDLE_EXIT_WAITS = 30
#: the stealing order's own generator: drawing from the random module's would shift a user's seeded sequence
_victims = _random.Random()


class Job:
    """One unit of work: a callable, its result or exception, and a completion event."""

    __slots__ = ("fn", "result", "error", "done", "_event")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self._event = _threading.Event()

    def run(self) -> None:
        """Run the callable once, storing its result or exception; never raises."""
        try:
            self.result = self.fn()
        except BaseException as exc:  # stored and re-raised by whoever waits on the job
            self.error = exc
        finally:
            self.done = True
            self._event.set()
            self.fn = None  # drop references held by the closure as soon as the job is finished

    def wait(self, timeout: float) -> bool:
        """Block until done or ``timeout`` seconds pass; return whether it is done."""
        return self._event.wait(timeout)

    def outcome(self) -> Any:
        """Return the result or re-raise the stored exception."""
        if self.error is not None:
            raise self.error
        return self.result

    def __repr__(self) -> str:
        return f"<hpc Job {'done' if self.done else 'pending'}>"


class _FutureJob(Job):
    """A job made by :meth:`ThreadPool.submit`: ``shutdown(cancel_futures=True)`` cancels its future."""

    __slots__ = ("future",)

    def __init__(self, fn: Callable[[], Any], future: _futures.Future[Any]) -> None:
        super().__init__(fn)
        self.future = future


class _Workers:
    """The engine behind a :class:`ThreadPool`: the deques, the worker threads and their bookkeeping.

    Workers hold this object, never the :class:`ThreadPool` the user holds, so a pool the user drops can be
    collected while its threads still exist; its collection retires the workers (they leave as soon as they find no
    work, as :class:`concurrent.futures.ThreadPoolExecutor`'s do when their executor is collected).
    """

    def __init__(self, num_threads: int) -> None:
        self.num_threads = num_threads
        self._deques: list[_collections.deque[Job]] = [_collections.deque() for _ in range(num_threads)]
        self._injector: _collections.deque[Job] = _collections.deque()
        self._shutdown = False
        self._retired = False  # no pool object uses it: workers leave when none has work, pushes still run
        self._replaced = False  # replaced as the default pool: retired for good, whatever pool object comes
        self._owner: Callable[[], ThreadPool | None] = lambda: None
        self._no_workers()
        _engines.add(self)

    def pool(self) -> ThreadPool:
        """The :class:`ThreadPool` these workers serve; a new one over them if the user's was collected meanwhile
        (work queued before it was dropped still runs, and may ask for its pool)."""
        pool = self._owner()
        if pool is None:
            pool = ThreadPool._over(self)
        return pool

    def own(self, pool: ThreadPool) -> None:
        """Serve ``pool``, and retire when it is collected (the callback holds this engine, not the pool).

        A new pool object over workers whose first one was collected (:meth:`pool`) makes them serve again.
        """
        self._retired = self._replaced
        # the callback may run inside the garbage collector, on any thread, even one inside this engine's lock: it
        # must not wait for the lock for long (workers hold it for microseconds)
        self._owner = _weakref.ref(pool, lambda _, engine=self: engine.retire(timeout=0.01))

    def _no_workers(self) -> None:
        """Set the workers' bookkeeping to "none started, none asleep", with a fresh lock."""
        self._cv = _threading.Condition(_threading.Lock())
        self._sleeping = 0
        self._wakeups = 0  # notifications sent to sleepers that no sleeper has woken up for yet (see _wake)
        self._threads: dict[int, _threading.Thread] = {}  # by worker index, the last thread started for each
        self._live = 0  # workers running (they leave when idle for long, or after shutdown)
        self._running = [False] * self.num_threads
        self._busy = [False] * self.num_threads  # by worker index: running a job (each worker writes its own)

    def _reset_after_fork(self) -> None:
        # In a forked child only the thread that forked exists: no worker runs, nobody waits on the queued jobs (their
        # callers stayed in the parent), and the lock may have been held by a thread that is gone.
        self._no_workers()
        for queue in [self._injector, *self._deques]:
            queue.clear()

    # ------------------------------------------------------------------ lifecycle

    def _start_worker(self, index: int) -> None:
        # called with self._cv held; if the thread cannot start (the OS refuses one: RuntimeError), nothing counts it
        t = _threading.Thread(target=self._worker_main, args=(index,), name=f"hpc-worker-{index}", daemon=True)
        self._running[index] = True
        self._live += 1
        self._threads[index] = t
        try:
            t.start()
        except Exception:  # never started: a worker counted here but never running would take no work, ever
            self._running[index] = False
            self._live -= 1
            del self._threads[index]  # shutdown joins these; the one it replaced, if any, has left
            raise

    def shutdown(self, wait: bool, cancel_futures: bool) -> None:
        """See :meth:`ThreadPool.shutdown`."""
        with self._cv:  # under the cv: no worker is started once this is set
            self._shutdown = True
        if cancel_futures:
            for d in [self._injector, *self._deques]:
                for job in list(d):
                    if isinstance(job, _FutureJob):
                        job.future.cancel()  # its run() then returns at once
        with self._cv:
            self._cv.notify_all()
        if wait:
            for t in list(self._threads.values()):
                if t is not _threading.current_thread():
                    t.join()

    def retire(self, *, timeout: float = -1, for_good: bool = False) -> None:
        """Let the workers leave as soon as none of them has work, but keep taking work: runs that other threads
        started on this pool before :func:`default_pool` replaced it (``for_good``) go on pushing their pieces here
        (a shutdown made them fail with "cannot schedule new work after shutdown"), and so does work queued on a
        pool the user then dropped. While one worker still runs a job, which may push more, the others wait as
        usual instead of leaving at each gap (each push then started a thread). If the lock is not had within
        ``timeout`` seconds (negative: no limit), sleeping workers see it when their wait times out
        (``_IDLE_WAIT_S``) instead of at once."""
        if for_good:
            self._replaced = True
        self._retired = True
        if self._cv.acquire(timeout=timeout):
            try:
                self._cv.notify_all()
            finally:
                self._cv.release()

    # ------------------------------------------------------------------ scheduling

    def push(self, job: Job, *, fifo: bool = False) -> None:
        """See :meth:`ThreadPool.push`."""
        worker = getattr(_local, "worker", None)
        if not fifo and worker is not None and worker[0] is self:
            self._deques[worker[1]].append(job)
        else:
            self._injector.append(job)
        if self._sleeping or self._live < self.num_threads:
            self._wake(job)

    def _wake(self, job: Job) -> None:
        # Workers leave only under the cv, after a last look at the queues (idle for long, or after shutdown), and
        # count as sleeping meanwhile: so here, after the job is queued, either a worker will still see it or
        # _live already shows that it left.
        # Workers start lazily, one per push that finds no sleeper to take it, so a tiny job on a huge pool starts
        # a few threads, not num_threads. Each push gets a worker of its own: a sleeper that no earlier push has
        # claimed (_wakeups counts the claims; whichever sleeper's wait returns next clears one under the cv and
        # then looks at the queues, so it sees this job), else a new worker, else (all running) any that frees up.
        # A worker that cannot start (the OS refuses a thread) leaves the job to the workers there are; with none,
        # push raises and takes the job back, as after shutdown, so a job whose push raised never runs.
        with self._cv:
            if self._sleeping > self._wakeups:
                self._wakeups += 1
            elif self._live < self.num_threads:
                error: Exception
                if not self._shutdown:
                    try:
                        self._start_worker(self._running.index(False))  # it looks at the queues first thing
                        return
                    except Exception as exc:
                        error = exc
                else:
                    error = RuntimeError("cannot schedule new work after shutdown")
                if self._live == 0:  # no worker and none to come: the job would never run
                    try:
                        self._injector.remove(job)
                    except ValueError:  # taken meanwhile (or on a worker's own deque): it runs
                        return
                    raise error
            self._cv.notify()

    def _find_work(self, index: int | None) -> Job | None:
        if index is not None:
            try:
                return self._deques[index].pop()
            except IndexError:
                pass
        try:
            return self._injector.popleft()
        except IndexError:
            pass
        # Steal from the first non-empty deque from a random victim on. An idle worker of a large pool runs this
        # often (and under the cv before sleeping), so the empty deques are skipped in C: any() and filter() cost
        # a truth test each, where popping each one in a Python loop cost ~0.2 us (5000 workers: ~1 ms per look).
        # Our own deque is empty here (only its owner, this thread, pushes to it), so the filter skips it too.
        deques = self._deques
        if not any(deques):
            return None
        start = _victims.randrange(len(deques))
        for victim in filter(None, _chain(_islice(deques, start, None), _islice(deques, start))):
            try:
                return victim.popleft()
            except IndexError:  # emptied meanwhile by its owner or another thief
                continue
        return None

    def _worker_main(self, index: int) -> None:
        _local.worker = (self, index)
        try:
            self._work(index)
        except BaseException:  # a job's run() raised (Job.run catches everything; a Job subclass pushed may not)
            with self._cv:  # this worker is gone: uncounted, so the next push starts another in its place
                self._running[index] = False
                self._live -= 1
                self._busy[index] = False
            raise  # threading.excepthook reports it

    def _work(self, index: int) -> None:
        idle = 0
        busy = self._busy
        # numba's count for this worker: what hpc.kernels start numba's layer with here, and what it is set to once
        # the layer runs
        _config.set_pool_numba_threads(max(1, _config.available_cpus() // self.num_threads))
        numba_limited = _limit_numba_threads()
        while True:
            job = self._find_work(index)
            if not numba_limited and job is not None:  # numba's layer started since this worker did: limit it now
                numba_limited = _limit_numba_threads()
            if job is not None:
                idle = 0
                busy[index] = True
                _run_in_own_scope(job.run)
                busy[index] = False
                job = None  # the finished job (its result) is not kept alive while this worker sleeps
                continue
            with self._cv:
                self._sleeping += 1
                try:
                    job = self._find_work(index)
                    if job is None:
                        if (
                            self._shutdown
                            or idle >= _IDLE_EXIT_WAITS
                            or (self._retired and not any(busy))
                        ):
                            self._running[index] = False  # under the cv: see _wake
                            self._live -= 1
                            return
                        if not self._cv.wait(timeout=_IDLE_WAIT_S):
                            idle += 1
                        if self._wakeups:  # a push counted on one sleeper waking: this one (see _wake)
                            self._wakeups -= 1
                finally:
                    self._sleeping -= 1
            if job is not None:
                idle = 0
                if not numba_limited:
                    numba_limited = _limit_numba_threads()
                busy[index] = True
                _run_in_own_scope(job.run)
                busy[index] = False
                job = None

    def wait_for(self, job: Job) -> Any:
        """See :meth:`ThreadPool.wait_for`."""
        self.wait_until(job._event)
        return job.outcome()

    def wait_for_quietly(self, job: Job) -> None:
        """See :meth:`ThreadPool.wait_for_quietly`."""
        try:
            self.wait_for(job)
        except BaseException:
            pass

    def wait_until(self, event: _threading.Event, timeout: float | None = None) -> bool:
        """See :meth:`ThreadPool.wait_until`."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        worker = getattr(_local, "worker", None)
        if worker is not None:
            # a worker of this pool, or of another (install across pools, as Rayon's): it keeps its own pool's work
            # moving while it waits, so two pools waiting on each other's jobs do not deadlock
            own, index = worker
            delay = 20e-6
            while not event.is_set():
                if deadline is not None and _time.monotonic() >= deadline:
                    return False
                other = own._find_work(index)
                if other is not None:
                    _run_in_own_scope(other.run)
                    delay = 20e-6
                else:
                    event.wait(delay)
                    delay = min(delay * 2, 2e-3)
            return True
        while not event.wait(0.1 if deadline is None else max(0.0, min(0.1, deadline - _time.monotonic()))):
            if deadline is not None and _time.monotonic() >= deadline:
                return False
        return True

    def take_back(self, job: Job) -> bool:
        """See :meth:`ThreadPool.take_back`."""
        worker = getattr(_local, "worker", None)
        queues = [self._injector] + ([self._deques[worker[1]]] if worker is not None and worker[0] is self else [])
        for queue in queues:
            try:
                queue.remove(job)  # atomic under the GIL, as the workers' pops are
            except ValueError:  # not there: taken by a worker (or never pushed there)
                continue
            return True
        return False

    def is_worker(self) -> bool:
        """See :meth:`ThreadPool.is_worker`."""
        worker = getattr(_local, "worker", None)
        return worker is not None and worker[0] is self


class ThreadPool(_futures.Executor):
    """A pool of worker threads with work stealing.

    Use it as a context manager to make it the pool that parallel calls of the current thread run on, call
    :meth:`install` to run one function inside it, or use it as a :class:`concurrent.futures.Executor`. A ``with``
    block ends when the futures this thread submitted to the pool inside it are done, as an executor's does; unlike
    an executor's, it leaves the pool running, to be entered again (:meth:`shutdown` stops it).

    Args:
        num_threads (int or None): number of workers; ``None`` takes :func:`hpc.config.num_threads`.

    .. note:: Threads start as work arrives, one per piece of work no idle thread takes, up to ``num_threads``;
       they are daemons and :meth:`shutdown` stops them. A thread that finds no work for about 30 s leaves and
       starts again with later work, so a pool no longer used costs nothing. A pool that is no longer referenced
       (``with ThreadPool(2): ...`` in a loop) lets its threads go as soon as they find no work, as
       :class:`concurrent.futures.ThreadPoolExecutor` does; work queued before it was dropped still runs.

    Example:
        >>> from hpc import ThreadPool, par_range
        >>> with ThreadPool(2):
        ...     par_range(10).sum()
        45
    """

    def __init__(self, num_threads: int | None = None) -> None:
        if num_threads is None:
            num_threads = min(_config.num_threads(), _config.MAX_THREADS)  # a machine of more CPUs: the cap
        count = _config.whole_number(num_threads)
        if count is None or not 1 <= count <= _config.MAX_THREADS:  # HPC_NUM_THREADS' cap: 10**6 threads took 800 MB
            raise ValueError(f"num_threads must be a positive int of at most {_config.MAX_THREADS}; got "
                             f"{num_threads!r}")
        num_threads = count
        self.num_threads = num_threads
        self._core = _Workers(num_threads)
        self._core.own(self)

    @classmethod
    def _over(cls, core: _Workers) -> ThreadPool:
        """A pool object for workers whose pool object was collected (see :meth:`_Workers.pool`)."""
        pool = cls.__new__(cls)
        pool.num_threads, pool._core = core.num_threads, core
        core.own(pool)
        return pool

    # ------------------------------------------------------------------ lifecycle

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop the workers once the queued work is done; refuse work pushed from outside the pool afterwards.

        With ``cancel_futures`` the futures of :meth:`submit` calls that have not started are cancelled (as in
        :class:`concurrent.futures.ThreadPoolExecutor`); work that other callers wait for still runs.
        """
        self._core.shutdown(wait, cancel_futures)

    def __enter__(self) -> ThreadPool:
        stack = _pool_stack()
        stack.append(self)
        _submitted_stack().append(set())
        return self

    def __exit__(self, *exc: object) -> None:
        _pool_stack().pop()
        pending = _submitted_stack().pop()
        if not pending:
            return
        # the block's own submits, as concurrent.futures' __exit__ waits for its executor's work. On a worker of this
        # pool they may sit in this worker's own deque: it runs work while it waits (a blocking wait deadlocked a
        # pool of one thread, or of n whose workers all waited so)
        if self.is_worker():
            for future in list(pending):
                done = _threading.Event()
                future.add_done_callback(lambda _, done=done: done.set())
                self.wait_until(done)
        else:
            _futures.wait(list(pending))

    def __repr__(self) -> str:
        return f"<hpc.ThreadPool num_threads={self.num_threads}>"

    # ------------------------------------------------------------------ scheduling

    def push(self, job: Job, *, fifo: bool = False) -> None:
        """Queue ``job``: on the caller's own deque when the caller is one of this pool's workers.

        A worker takes the newest job of its own deque first (fork-join's depth-first order). ``fifo=True`` queues
        on the pool's shared queue instead, behind the jobs already there, whoever pushes: for work whose start order
        must follow the push order (joblib's batches, whose next batch is pushed by a worker as the previous ends).
        """
        self._core.push(job, fifo=fifo)

    def wait_for(self, job: Job) -> Any:
        """Wait for ``job`` and return its outcome; a worker of this pool runs other work meanwhile."""
        return self._core.wait_for(job)

    def wait_for_quietly(self, job: Job) -> None:
        """Wait for ``job`` like :meth:`wait_for` but ignore its outcome (used while another error propagates)."""
        self._core.wait_for_quietly(job)

    def wait_until(self, event: _threading.Event, timeout: float | None = None) -> bool:
        """Wait for ``event``, at most ``timeout`` seconds when given, and return whether it is set; a worker of this
        pool runs other work meanwhile (the time is looked at between the jobs it runs: one it runs may end past
        the timeout)."""
        return self._core.wait_until(event, timeout)

    def take_back(self, job: Job) -> bool:
        """Remove ``job`` from the queue it was pushed to, if no worker has taken it yet, and return whether it was
        removed: the caller then owns it (runs it, or drops it), and nobody waits for a worker to wake for it.

        Finds jobs pushed by this thread: on the shared queue, or on its own deque when it is a worker of this pool.
        """
        return self._core.take_back(job)

    def is_worker(self) -> bool:
        """Return whether the calling thread is one of this pool's workers."""
        return self._core.is_worker()

    # ------------------------------------------------------------------ user entry points

    def install(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on a worker of this pool and return its result; parallel calls inside use this pool.

        Raises:
            Whatever ``fn`` raised, unchanged.
        """
        if self.is_worker():
            return _run_in_own_scope(fn)
        job = Job(fn)
        self.push(job)
        return self.wait_for(job)

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> _futures.Future[T]:
        """Schedule ``fn(*args, **kwargs)`` and return a :class:`concurrent.futures.Future`."""
        if self._core._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future: _futures.Future[T] = _futures.Future()
        block = self._innermost_block()
        if block is not None:  # the with block waits for it; done futures leave the set (no results kept)
            block.add(future)
            future.add_done_callback(block.discard)

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self.push(_FutureJob(run, future))
        return future

    def _innermost_block(self) -> set[_futures.Future[Any]] | None:
        """Return the futures of the calling thread's innermost ``with`` block of this pool, or None outside one."""
        pools = getattr(_local, "pools", None)
        if not pools:
            return None
        blocks = _submitted_stack()
        for depth in range(len(pools) - 1, -1, -1):
            if pools[depth] is self:
                return blocks[depth]
        return None

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
    ) -> Iterator[T]:
        """Like :meth:`concurrent.futures.Executor.map`: results in input order, lazily."""
        return super().map(fn, *iterables, timeout=timeout, chunksize=chunksize)


def _limit_numba_threads() -> bool:
    """Limit numba's threads for the calling worker; return whether that was done (False: try again at the next job,
    numba may be imported, or its threading layer started, after the worker started)."""
    # numba's thread count is per calling thread; a numba parallel kernel called from each of our workers
    # would otherwise start a full team per worker and oversubscribe the cores.
    numba = _sys.modules.get("numba")
    if numba is None:
        return False
    from hpc import _numba_probe

    if not _numba_probe.layer_started():
        # set_num_threads would start numba's threading layer, in a process that may not run numba's parallel code
        # at all; started on GNU OpenMP, it ends every child forked afterwards on its first parallel kernel
        # (multiprocessing's fork Pool: a hang). Limited from the first job after something else starts it, or by
        # the hpc kernel that starts it (pool_numba_threads).
        return False
    try:
        numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS, _config.pool_numba_threads() or 1)))
    except Exception:  # numba's layer may be unusable here; the kernels then run single-threaded anyway
        pass
    return True


def _run_in_own_scope(fn: Callable[[], T]) -> T:
    """Run ``fn()`` with an empty ``with ThreadPool`` stack, restored after: a job sees the ``with`` blocks it
    enters itself, not those of a task that waits further up this worker's stack (work stealing runs other jobs
    inside that wait)."""
    saved = _local.__dict__.pop("pools", None)
    saved_submitted = _local.__dict__.pop("submitted", None)
    try:
        return fn()
    finally:
        for name, value in (("pools", saved), ("submitted", saved_submitted)):
            if value is None:
                _local.__dict__.pop(name, None)
            else:
                setattr(_local, name, value)


def _pool_stack() -> list[ThreadPool]:
    stack = getattr(_local, "pools", None)
    if stack is None:
        stack = _local.pools = []
    return stack


def _submitted_stack() -> list[set[_futures.Future[Any]]]:
    """The futures submitted inside each ``with`` block of the calling thread, one set per block of
    :func:`_pool_stack` (the two stacks move together)."""
    stack = getattr(_local, "submitted", None)
    if stack is None:
        stack = _local.submitted = []
    return stack


_default: ThreadPool | None = None
_default_lock = _threading.Lock()
_engines: _weakref.WeakSet[_Workers] = _weakref.WeakSet()  # every pool's workers, for _after_fork_in_child


def _after_fork_in_child() -> None:
    """Make every pool usable in a child made by ``os.fork`` (multiprocessing's default start method on Linux).

    The child inherits the pools' counts of running and sleeping workers but not the threads, so its first parallel
    call would wait forever for workers that do not exist.
    """
    global _default_lock
    _default_lock = _threading.Lock()
    _local.__dict__.pop("worker", None)  # the forking thread may have been a worker; in the child it is not
    for engine in list(_engines):
        engine._reset_after_fork()


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)


def default_pool() -> ThreadPool:
    """Return the process-wide pool, (re)built when :func:`hpc.set_num_threads` changed its size."""
    global _default
    want = _config.num_threads()
    pool = _default
    if pool is None or pool.num_threads != want:
        with _default_lock:
            pool = _default
            if pool is None or pool.num_threads != want:
                old, pool = pool, ThreadPool(want)
                _default = pool
                if old is not None:
                    old._core.retire(for_good=True)
    return pool


def current_pool() -> ThreadPool:
    """Return the pool parallel calls from this thread run on.

    The innermost ``with ThreadPool(...)`` entered by the running code (on a worker: by the running job), else a
    worker's own pool, else the default pool.
    """
    stack = getattr(_local, "pools", None)
    if stack:
        return stack[-1]
    worker = getattr(_local, "worker", None)
    if worker is not None:
        return worker[0]._owner() or worker[0].pool()
    return default_pool()


def _entered_engine() -> _Workers | None:
    """The workers of the innermost ``with ThreadPool`` block of the running code, else of the calling worker's own
    pool; None on a thread outside both (which uses the default pool)."""
    stack = getattr(_local, "pools", None)
    if stack:
        return stack[-1]._core
    worker = getattr(_local, "worker", None)
    return None if worker is None else worker[0]


def current_engine() -> _Workers:
    """The workers of :func:`current_pool`, without making a pool object (for ``join``'s hot path)."""
    return _entered_engine() or default_pool()._core


def current_num_threads() -> int:
    """Return the number of threads of :func:`current_pool` (without starting it)."""
    engine = _entered_engine()
    return _config.num_threads() if engine is None else engine.num_threads


def current_worker_index() -> int | None:
    """Return the index of the calling worker thread in its pool, or ``None`` outside any pool."""
    worker = getattr(_local, "worker", None)
    return None if worker is None else worker[1]
