"""The work-stealing pool, join and scope."""

from __future__ import annotations

import os
import threading
import time

import pytest

from hpc import ThreadPool, current_num_threads, join, scope, set_num_threads
from hpc._core.pool import current_pool
from hpc.config import available_cpus


def fib(n: int) -> int:
    if n < 2:
        return n
    a, b = join(lambda: fib(n - 1), lambda: fib(n - 2))
    return a + b


def test_recursive_join_fib_does_not_deadlock():
    """Recursive join (fib) on a 2-thread pool finishes with the right answer."""
    with ThreadPool(2) as pool:
        assert pool.install(lambda: fib(18)) == 2584


def test_join_on_one_thread_pool_runs_both_sides():
    """A 1-thread pool runs both sides of a nested join itself instead of waiting forever."""
    with ThreadPool(1):
        assert fib(12) == 144


def test_join_returns_both_results_in_order():
    """join returns (f(), g()) in that order."""
    assert join(lambda: "f", lambda: "g") == ("f", "g")


def test_join_reraises_after_the_other_side_finishes():
    """If one side raises, join re-raises it only after the other side has run to completion."""
    finished = threading.Event()

    def slow():
        time.sleep(0.05)
        finished.set()

    def boom():
        raise KeyError("left")

    with pytest.raises(KeyError, match="left"):
        join(boom, slow)
    assert finished.is_set()
    with pytest.raises(ValueError, match="right"):
        join(lambda: 1, lambda: (_ for _ in ()).throw(ValueError("right")))


def test_pool_never_uses_more_threads_than_its_size():
    """Nested joins run only on the pool's own workers, never on extra threads."""
    seen = set()
    lock = threading.Lock()

    def work(n):
        with lock:
            seen.add(threading.current_thread().name)
        if n > 0:
            join(lambda: work(n - 1), lambda: work(n - 1))

    with ThreadPool(3) as pool:
        pool.install(lambda: work(8))
    assert seen and all(name.startswith("hpc-worker-") for name in seen)
    assert len(seen) <= 3


def test_scope_waits_for_all_spawned_tasks_including_nested_spawns():
    """Leaving a scope waits for every spawned task, also those spawned by spawned tasks."""
    out = []
    lock = threading.Lock()
    with scope() as s:

        def task(i):
            time.sleep(0.01)
            with lock:
                out.append(i)
            if i < 3:
                s.spawn(task, i + 10)

        for i in range(5):
            s.spawn(task, i)
    assert sorted(out) == [0, 1, 2, 3, 4, 10, 11, 12]


def test_scope_reraises_a_task_exception():
    """An exception in a spawned task is re-raised when the scope exits, after the other tasks ran."""
    done = []
    with pytest.raises(RuntimeError, match="task failed"):
        with scope() as s:
            s.spawn(lambda: (_ for _ in ()).throw(RuntimeError("task failed")))
            s.spawn(lambda: done.append(1))
    assert done == [1]


def test_executor_interface_submit_map_shutdown():
    """ThreadPool works as a concurrent.futures.Executor and refuses work after shutdown."""
    pool = ThreadPool(2)
    assert pool.submit(pow, 2, 10).result(timeout=10) == 1024
    assert list(pool.map(lambda x: x * 2, range(5))) == [0, 2, 4, 6, 8]
    fut = pool.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        fut.result(timeout=10)
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(print)


def test_thread_pool_context_sets_the_current_pool():
    """Inside `with ThreadPool(n)` parallel calls see a pool of n threads; outside the default again."""
    with ThreadPool(3) as pool:
        assert current_pool() is pool
        assert current_num_threads() == 3
    assert current_pool() is not pool


def test_set_num_threads_resizes_the_default_pool(monkeypatch):
    """hpc.set_num_threads changes the default pool's size; None returns to the CPU count."""
    monkeypatch.delenv("HPC_NUM_THREADS", raising=False)
    try:
        set_num_threads(5)
        assert current_pool().num_threads == 5
    finally:
        set_num_threads(None)
    assert current_pool().num_threads == available_cpus()


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_thread_pool_rejects_bad_sizes(bad):
    """ThreadPool(num_threads) accepts only positive ints and says what it got."""
    with pytest.raises(ValueError, match="num_threads must be a positive int"):
        ThreadPool(bad)


def test_shutdown_cancel_futures_cancels_pending_futures():
    """shutdown(cancel_futures=True) cancels the futures not yet started, as concurrent.futures does."""
    import concurrent.futures

    pool = ThreadPool(1)
    started = threading.Event()
    release = threading.Event()
    first = pool.submit(lambda: (started.set(), release.wait(10))[1])
    assert started.wait(10)
    pending = pool.submit(lambda: 1)
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert first.result(timeout=10) is True
    with pytest.raises(concurrent.futures.CancelledError):
        pending.result(timeout=10)


def test_work_pushed_after_shutdown_is_refused_not_left_hanging():
    """install, join and parallel iterators on a shut-down pool raise instead of waiting forever."""
    from hpc import par_range

    pool = ThreadPool(2)
    assert pool.install(lambda: 1) == 1
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.install(lambda: 2)
    with pool, pytest.raises(RuntimeError, match="after shutdown"):
        par_range(1000).map(abs).with_backend("threads").sum()


def test_work_stealing_leaves_the_random_module_state_alone():
    """Choosing a victim to steal from never draws from the random module, so a user's seeded sequence holds."""
    import random

    from hpc import par_range

    random.seed(1234)
    expected = [random.random() for _ in range(3)]
    random.seed(1234)
    with ThreadPool(2):
        for _ in range(5):
            par_range(2000).with_max_len(1).map(abs).with_backend("threads").sum()
    assert [random.random() for _ in range(3)] == expected


def test_work_pushed_while_a_shut_down_pool_still_drains_runs():
    """shutdown(wait=False) lets queued work finish; work pushed before the last worker left still runs.

    This is the case of a parallel call that took the default pool just before set_num_threads replaced it.
    """
    from hpc._core.pool import Job

    pool = ThreadPool(1)
    release = threading.Event()
    blocker = Job(lambda: release.wait(10))
    pool.push(blocker)
    pool.shutdown(wait=False)
    late = Job(lambda: "ran")
    pool.push(late)  # the worker is still busy with the blocker, so it will run this too
    release.set()
    assert pool.wait_for(late) == "ran"
    assert pool.wait_for(blocker) is True


@pytest.mark.timeout(120)
def test_runs_in_other_threads_survive_set_num_threads():
    """Threads running par_range, join and scope on the default pool while another thread resizes it: every run
    finishes with the right answer (the replaced pool was shut down under them: "cannot schedule new work after
    shutdown" in about one run in ten), and the replaced pool's workers then leave."""
    from hpc import par_range
    from hpc._core.pool import default_pool

    errors, stop = [], threading.Event()

    def runs(kind):
        while not stop.is_set():
            try:
                if kind == 0:
                    assert par_range(3000).with_max_len(50).map(abs).with_backend("threads").sum() == 4498500
                elif kind == 1:
                    assert fib(12) == 144
                else:
                    seen = []
                    with scope() as s:
                        for i in range(20):
                            s.spawn(seen.append, i)
                    assert sorted(seen) == list(range(20))
            except BaseException as exc:
                errors.append(repr(exc))
                return

    threads = [threading.Thread(target=runs, args=(k,)) for k in range(3)]
    replaced = []
    try:
        for t in threads:
            t.start()
        for i in range(200):
            replaced.append(default_pool())
            set_num_threads(1 + i % 4)
            time.sleep(0.002)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
        set_num_threads(None)
    assert errors == []
    old = [p for p in replaced if p is not default_pool()]
    assert old and all(p._core._retired and not p._core._shutdown for p in old)
    assert _wait_for(lambda: not any(t.is_alive() for p in old for t in p._core._threads.values()))


def _wait_for(condition, seconds=20.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_idle_workers_leave_and_come_back_when_work_arrives(monkeypatch):
    """A pool nobody uses gives its threads back (no leak per `with ThreadPool(n)`); new work starts them again."""
    from hpc import par_range
    from hpc._core import pool as pool_module

    monkeypatch.setattr(pool_module, "_IDLE_WAIT_S", 0.01)
    monkeypatch.setattr(pool_module, "_IDLE_EXIT_WAITS", 2)
    pool = ThreadPool(3)
    with pool:
        assert par_range(1000).map(abs).with_backend("threads").sum() == 499500
    assert _wait_for(lambda: not any(t.is_alive() for t in pool._core._threads.values()))
    with pool:
        assert par_range(1000).map(abs).with_backend("threads").sum() == 499500
        assert fib(10) == 55
    assert pool.submit(pow, 2, 5).result(timeout=10) == 32
    pool.shutdown()
    assert not any(t.is_alive() for t in pool._core._threads.values())


def test_a_tiny_job_on_a_huge_pool_starts_only_the_threads_it_needs():
    """Workers start as work arrives (at most one per push), not all num_threads up front; the size stays the same."""
    from hpc import par_range

    pool = ThreadPool(2000)
    pushes = []
    push = pool.push
    pool.push = lambda job: (pushes.append(job), push(job))[1]
    try:
        with pool:
            assert current_num_threads() == 2000
            assert par_range(10).map(abs).with_backend("threads").sum() == 45
            assert pool.install(current_num_threads) == 2000
        assert 1 <= len(pool._core._threads) <= len(pushes) < 2000
    finally:
        pool.shutdown()
    assert not any(t.is_alive() for t in pool._core._threads.values())


def test_each_piece_of_work_gets_its_own_worker_while_threads_are_left():
    """k blocking tasks run at once on a pool of k threads, whether their workers sleep idle or are still to start.

    The second round finds two sleeping workers for six tasks: each sleeper takes one and four more threads start.
    """
    pool = ThreadPool(6)
    try:
        for k in (2, 6, 6):
            barrier = threading.Barrier(k, timeout=20)
            futures = [pool.submit(barrier.wait) for _ in range(k)]
            assert sorted(f.result(timeout=30) for f in futures) == list(range(k))
            assert len(pool._core._threads) <= 6
    finally:
        pool.shutdown()


def test_work_a_busy_worker_pushes_is_stolen_by_another():
    """join's second half, pushed by a worker that then blocks, runs on another worker (started or woken for it)."""
    with ThreadPool(2) as pool:
        for _ in range(3):  # the first time the thief starts for it, then it is asleep and woken
            g_ran = threading.Event()

            def f(g_ran=g_ran):
                assert g_ran.wait(20)
                return threading.current_thread().name

            def g(g_ran=g_ran):
                g_ran.set()
                return threading.current_thread().name

            a, b = pool.install(lambda f=f, g=g: join(f, g))
            assert a != b
            time.sleep(0.05)  # let the thief go to sleep


@pytest.mark.timeout(60)
def test_a_worker_the_os_refuses_to_start_is_not_counted(monkeypatch):
    """A failed thread start counts no worker: the push raises and drops its job when no worker runs, the job
    runs on the workers there are when some do, and later pushes start threads again (no pool left hanging)."""
    from hpc._core.pool import Job

    refuse = [True]
    real_start = threading.Thread.start

    def start(self):
        if refuse[0] and self.name.startswith("hpc-worker-"):
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    pool = ThreadPool(1)
    with pytest.raises(RuntimeError, match="can't start new thread"):
        pool.push(Job(lambda: "never"))
    core = pool._core
    assert not core._injector and core._live == 0 and not core._threads  # the job is not run behind the caller's back
    refuse[0] = False
    later = Job(lambda: "ran")
    pool.push(later)
    assert later.wait(10), "the pool counted a worker that never started and woke nobody"
    pool.shutdown()

    pool = ThreadPool(2)
    release = threading.Event()
    blocker = Job(lambda: release.wait(10))
    pool.push(blocker)  # starts worker 0
    refuse[0] = True
    queued = Job(lambda: "ran")
    pool.push(queued)  # worker 1 cannot start: worker 0 takes it once free, and the push does not raise
    assert pool._core._live == 1
    release.set()
    assert pool.wait_for(queued) == "ran" and pool.wait_for(blocker) is True
    refuse[0] = False
    pool.shutdown()
    assert not any(t.is_alive() for t in pool._core._threads.values())


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.timeout(60)
def test_a_forked_child_can_use_the_pools_the_parent_used():
    """A child made by fork (multiprocessing's default on Linux) runs parallel calls instead of waiting forever.

    It inherits the pools' counts of running and sleeping workers but not their threads; the fork is made while a
    worker of the parent is busy, so a job is also queued and the pool's lock may be held.
    """
    import multiprocessing

    from hpc import par_range

    assert par_range(1000).sum() == 499500  # the default pool's workers are running and then sleep
    explicit = ThreadPool(2)
    assert explicit.install(lambda: join(lambda: 1, lambda: 2)) == (1, 2)
    busy = threading.Event()
    release = threading.Event()
    blocker = explicit.submit(lambda: (busy.set(), release.wait(10)))
    busy.wait(10)

    def child():
        ok = par_range(1000).sum() == 499500 and explicit.install(lambda: join(lambda: 3, lambda: 4)) == (3, 4)
        os._exit(0 if ok else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    release.set()
    blocker.result(10)
    explicit.shutdown()
    if process.exitcode is None:
        process.kill()
    assert process.exitcode == 0


@pytest.mark.timeout(60)
def test_a_job_whose_run_raises_does_not_leave_a_dead_worker_counted():
    """A Job subclass whose run() raises ends its worker; the pool starts another and keeps running work."""
    from hpc._core.pool import Job

    class Broken(Job):
        def run(self):
            raise RuntimeError("broken job")

    reported = []
    previous = threading.excepthook
    threading.excepthook = lambda args: reported.append(args.exc_value)
    try:
        pool = ThreadPool(1)
        pool.push(Broken(lambda: None))
        deadline = time.monotonic() + 10
        while not reported and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [str(e) for e in reported] == ["broken job"]
        assert pool.install(lambda: join(lambda: 1, lambda: 2)) == (1, 2)  # hung: the dead worker was counted
        pool.shutdown()
    finally:
        threading.excepthook = previous


@pytest.mark.timeout(20)
def test_a_spawn_the_pool_refuses_raises_and_the_scope_still_closes():
    """spawn on a pool that was shut down raises RuntimeError, as join does, and the scope does not then wait for
    the task that was never queued (it used to wait forever)."""
    pool = ThreadPool(2)
    pool.shutdown()
    with pool:
        with pytest.raises(RuntimeError, match="after shutdown"):
            with scope() as s:
                s.spawn(print, "never")


@pytest.mark.timeout(30)
def test_a_with_block_inside_a_task_chooses_the_pool():
    """``with ThreadPool(n):`` inside a pool's task makes that pool the one its parallel calls use, as it does on any
    other thread (the worker's own pool used to win); without it a task's calls stay on its own pool."""
    from hpc import par_range

    big = ThreadPool(3)
    try:

        def task(_):
            with big:
                inside = current_num_threads(), current_pool() is big
                workers = par_range(64).with_backend("threads").map(lambda _: current_pool() is big).collect()
            return inside, all(workers), current_pool() is big

        with ThreadPool(2):
            results = par_range(4).with_backend("threads").with_max_len(1).map(task).collect()
        assert results == [((3, True), True, False)] * 4
    finally:
        big.shutdown()


@pytest.mark.timeout(120)
def test_numba_imported_after_the_pool_started_is_limited_in_its_workers(run_script):
    """Each worker caps numba's threads when it starts; one started before numba was imported capped nothing, and
    a parallel kernel there started a full team per worker. A worker now caps it at its first job after numba's
    threading layer started (here on the main thread, after the import)."""
    run_script(
        "import threading\n"
        "from hpc import config, current_num_threads, par_range\n"
        "assert par_range(100).map(lambda x: x).with_backend('threads').sum() == 4950  # workers before numba\n"
        "import numba\n"
        "numba.get_num_threads()  # starts numba's threading layer\n"
        "main = threading.main_thread()\n"
        "seen = par_range(64).with_max_len(1).with_backend('threads').map(\n"
        "    lambda i: None if threading.current_thread() is main else numba.get_num_threads()).collect()\n"
        "cap = max(1, min(numba.config.NUMBA_NUM_THREADS, config.available_cpus() // current_num_threads()))\n"
        "counts = {n for n in seen if n is not None}\n"
        "print(counts, cap)\n"
        "assert counts and counts <= {cap}, (counts, cap)\n"
    )


@pytest.mark.timeout(120)
def test_a_kernel_that_starts_numbas_layer_in_a_worker_takes_the_workers_count(run_script):
    """Workers leave an unstarted numba layer alone (fork safety), so the first kernel in a worker starts it: with
    the worker's count (cores over the pool's size), not numba's full team per worker (its first job took the
    parallel variant, a team of every core on each worker)."""
    out = run_script(
        "import threading, numpy as np\n"
        "from hpc import ThreadPool, par_range\n"
        "from hpc.kernels import _checks\n"
        "main = threading.main_thread()\n"
        "def job(i):\n"
        "    return None if threading.current_thread() is main else _checks.use_parallel(None, 1 << 21)\n"
        "with ThreadPool(2):\n"
        "    seen = par_range(8).with_max_len(1).with_backend('threads').map(job).collect()\n"
        "print(sorted({s for s in seen if s is not None}))\n",
        HPC_NUM_THREADS="2", NUMBA_NUM_THREADS="2",
    )
    from hpc.config import available_cpus

    # numba at 2 threads, 2 workers: one numba thread each on up to 3 cores (the serial variant), two from 4
    assert out.split("\n")[-2] == str([available_cpus() // 2 > 1])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.timeout(120)
def test_a_threads_run_does_not_start_numbas_threads_so_forked_children_run_parallel_kernels(run_script):
    """A pure-Python threads run with numba imported (hpc.kernels, hpc.ml) set numba's count in each worker, which
    started numba's threading layer: on GNU OpenMP every child forked afterwards (multiprocessing's fork Pool)
    died on its first parallel kernel, or hung the Pool. The workers now leave an unstarted layer alone."""
    out = run_script(
        "import multiprocessing, numpy as np\n"
        "import numba.np.ufunc.parallel as layer\n"
        "from hpc import kernels, par_range\n"
        "def child_sum(_):\n"
        "    return float(kernels.sum(np.ones(1 << 20), parallel=True))\n"
        "assert par_range(1000).map(lambda x: x * x).with_backend('threads').sum() == 332833500\n"
        "assert not layer._is_initialized\n"
        "with multiprocessing.get_context('fork').Pool(1) as pool:\n"
        "    print(pool.map_async(child_sum, [0]).get(timeout=60))\n",
        NUMBA_THREADING_LAYER="omp",
    )
    assert out.split()[-1] == "[1048576.0]"


@pytest.mark.timeout(60)
def test_a_with_block_waits_for_the_futures_submitted_in_it():
    """``with ThreadPool(n) as ex: ex.submit(...)`` ends when that work is done, as a concurrent.futures executor's
    block does (before, the block ended at once and the daemon workers' queued work was lost at exit); the pool is
    not shut down, and futures submitted to an outer block's pool from an inner block are that block's to wait for."""
    gate = threading.Event()
    done = []

    def slow(i):
        gate.wait(10)
        done.append(i)
        return i

    pool, inner = ThreadPool(2), ThreadPool(1)
    try:
        with pool as ex:
            futures = [ex.submit(slow, i) for i in range(6)]
            with inner:
                futures.append(pool.submit(slow, 6))
            threading.Timer(0.2, gate.set).start()
        assert all(f.done() for f in futures) and sorted(done) == list(range(7))
        with pool as ex:  # still running: the block may be entered again
            assert sum(ex.map(abs, range(-3, 3))) == 9
        outside = pool.submit(pow, 2, 3)  # outside any block: nothing waits, the future works as before
        assert outside.result(timeout=10) == 8
    finally:
        pool.shutdown()
        inner.shutdown()


@pytest.mark.timeout(60)
def test_a_with_block_on_a_worker_of_its_own_pool_runs_what_it_waits_for():
    """A with block entered by a job of the same pool waits for its submits by running work meanwhile: the futures
    sit in that worker's own queue, and a blocking wait there deadlocked a pool of one thread."""
    pool = ThreadPool(1)

    def job():
        with pool:
            futures = [pool.submit(pow, 2, i) for i in range(5)]
        return [f.done() and f.result() for f in futures]

    try:
        assert pool.install(job) == [1, 2, 4, 8, 16]
    finally:
        pool.shutdown()


def test_a_pool_dropped_without_shutdown_lets_its_threads_go():
    """A new pool per loop step, never shut down (`with ThreadPool(2): ...` in a loop): each dropped pool's threads
    leave once they find no work, as a collected ThreadPoolExecutor's do (they stayed 30 s idle each: a loop of
    short steps piled up thousands of threads, and the process livelocked). Work queued before the drop still runs."""
    import gc

    from hpc import par_range

    before = threading.active_count()
    for step in range(60):
        with ThreadPool(2) as pool:
            assert pool.submit(pow, 2, step).result(timeout=10) == 2**step
            assert par_range(200).with_max_len(10).map(abs).with_backend("threads").sum() == 19900
    del pool
    gc.collect()
    assert _wait_for(lambda: threading.active_count() <= before + 2), threading.active_count() - before

    release = threading.Event()
    pool = ThreadPool(1)
    future = pool.submit(release.wait, 10)
    later = pool.submit(lambda: current_pool().num_threads)  # its pool object is gone when it runs
    del pool
    gc.collect()
    release.set()
    assert future.result(timeout=10) is True and later.result(timeout=10) == 1
    assert _wait_for(lambda: threading.active_count() <= before + 2)


def test_a_pool_collected_while_its_lock_is_held_on_the_same_thread_does_not_deadlock():
    """The collection of a dropped pool retires its workers from inside the garbage collector, which may run on a
    thread that holds the workers' lock (a pool in a reference cycle, collected during an allocation there): the
    retirement must not wait for that lock for good."""
    pool = ThreadPool(1)
    assert pool.submit(abs, -3).result(timeout=10) == 3
    core = pool._core
    held = [pool]
    del pool

    def drop_inside_the_lock():
        with core._cv:
            held.clear()  # the last reference: the callback runs here, on this thread, inside the lock

    t = threading.Thread(target=drop_inside_the_lock, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive() and core._retired
    assert _wait_for(lambda: not any(t.is_alive() for t in core._threads.values()))


def test_work_still_running_on_a_dropped_pool_keeps_its_threads():
    """A dropped pool's workers leave once none of them has work, not at each gap while a job still runs and pushes
    more (each push then started a new thread: hundreds for 100 scopes); and the pool object that such a job gets
    from current_pool() serves as a pool of its own, whose workers stay."""
    import gc

    pool = ThreadPool(3)
    core = pool._core
    starts = []
    start_worker = core._start_worker
    core._start_worker = lambda index: (starts.append(index), start_worker(index))[1]

    def rounds():
        for _ in range(100):
            with scope() as s:
                for _ in range(3):
                    s.spawn(time.sleep, 0.0005)
        return current_pool()

    future = pool.submit(rounds)
    del pool
    gc.collect()
    again = future.result(timeout=60)
    assert again.num_threads == 3 and len(starts) <= 3, len(starts)
    for _ in range(30):
        time.sleep(0.002)
        assert again.submit(abs, -1).result(timeout=10) == 1
    assert len(starts) <= 3, len(starts)


@pytest.mark.timeout(60)
def test_take_back_removes_a_job_no_worker_has_started():
    """A job queued behind a busy worker is taken back (and never runs); a job already run, or taken back once, is
    not; a worker takes back what it pushed to its own deque."""
    from hpc._core.pool import Job

    with ThreadPool(1) as pool:
        started, release = threading.Event(), threading.Event()
        busy = pool.submit(lambda: (started.set(), release.wait(20)))
        assert started.wait(10)
        ran = []
        queued = Job(lambda: ran.append("queued"))
        pool.push(queued)
        assert pool.take_back(queued)
        assert not pool.take_back(queued)
        release.set()
        busy.result()
        done = Job(lambda: ran.append("done"))
        pool.push(done)
        pool.wait_for(done)
        assert not pool.take_back(done)

        def inside():
            own = Job(lambda: ran.append("own"))
            pool.push(own)  # onto this worker's own deque
            return pool.take_back(own)

        assert pool.install(inside) is True
    assert ran == ["done"]


def test_spawn_after_the_scope_ended_raises_and_other_failures_are_named():
    """A task spawned after the with block ran unwaited, its error stored on a dead scope and never raised; the
    errors of the tasks after the first were dropped without a trace."""
    with scope() as s:
        s.spawn(lambda: None)
    with pytest.raises(RuntimeError, match="whose with block has ended"):
        s.spawn(lambda: None)

    def fail(i):
        raise ValueError(f"task {i}")

    with pytest.raises(ValueError, match=r"task \d") as caught:
        with scope() as s:
            for i in range(3):
                s.spawn(fail, i)
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "2 other spawned task(s) of this scope raised too" in notes and notes.count("ValueError: task") == 2


def test_install_across_two_pools_and_back_does_not_deadlock():
    """A -> B -> A with one thread each: A's only worker waited for B's job, which waited for a job on A (a hang).
    A worker waiting on another pool's job now keeps its own pool's work moving, as in Rayon."""
    a, b = ThreadPool(1), ThreadPool(1)

    def pingpong(n):
        if n == 0:
            return 0
        return (b if n % 2 else a).install(lambda: pingpong(n - 1)) + 1

    out = []
    runner = threading.Thread(target=lambda: out.append(a.install(lambda: pingpong(5))), daemon=True)
    runner.start()
    runner.join(30)
    assert out == [5]
    a.shutdown()
    b.shutdown()


def test_wait_until_with_a_timeout_says_whether_the_event_came():
    """From a plain thread and from a worker (which runs queued work meanwhile): False once the time has passed with
    the event unset, True as soon as it is set."""
    import threading

    from hpc import ThreadPool

    with ThreadPool(2) as pool:
        unset, done = threading.Event(), threading.Event()
        done.set()
        assert pool.wait_until(unset, 0.05) is False and pool.wait_until(done, 0.05) is True
        assert pool.install(lambda: (pool.wait_until(unset, 0.05), pool.wait_until(done, 0.05))) == (False, True)
        assert pool.wait_until(done) is True


def test_numpy_ints_size_pools_as_ints_do():
    """ThreadPool(np.int64(2)) and set_num_threads(np.int32(2)) were refused as not positive ints."""
    import numpy as np

    from hpc import config

    with ThreadPool(np.int64(2)) as pool:
        assert pool.num_threads == 2 and type(pool.num_threads) is int
    set_num_threads(np.int32(3))
    try:
        assert current_num_threads() == 3
    finally:
        set_num_threads(None)
    for bad in (True, 2.0):
        with pytest.raises(config.ConfigError):
            set_num_threads(bad)


def test_a_pool_is_capped_as_hpc_num_threads_is():
    """ThreadPool(10**6) started a million threads (800 MB) where set_num_threads and HPC_NUM_THREADS stop at the
    cap."""
    from hpc import config

    with pytest.raises(ValueError, match=f"at most {config.MAX_THREADS}"):
        ThreadPool(config.MAX_THREADS + 1)


def test_ctrl_c_in_a_scope_drops_the_tasks_not_started():
    """A KeyboardInterrupt in a scope's block waited for every task spawned (5 s of queued work after Ctrl-C, and
    the next parallel call behind them): the tasks not started are dropped, the running ones finish."""
    ran = []
    with ThreadPool(2):
        with pytest.raises(KeyboardInterrupt):
            with scope() as s:
                for i in range(40):
                    s.spawn(lambda i=i: (time.sleep(0.02), ran.append(i)))
                raise KeyboardInterrupt
        assert len(ran) < 40
        done = len(ran)
        time.sleep(0.2)
        assert len(ran) == done  # nothing of the scope runs after it ended
        with scope() as s:  # the pool is usable at once
            s.spawn(ran.append, "after")
    assert ran[-1] == "after"


def test_ctrl_c_in_joins_first_side_does_not_start_the_second():
    """join ran g after a KeyboardInterrupt in f when no other thread had taken it (the caller ran all of g before
    Ctrl-C got through): g now starts only if it had already; any other exception still lets both run."""
    ran = []

    def f_interrupted():
        raise KeyboardInterrupt

    with ThreadPool(1):  # nobody but the caller: g is still queued when f raises
        with pytest.raises(KeyboardInterrupt):
            join(f_interrupted, lambda: ran.append("g"))
        assert ran == []
        with pytest.raises(ValueError):
            join(lambda: (_ for _ in ()).throw(ValueError("f")), lambda: ran.append("g"))
        assert ran == ["g"]
