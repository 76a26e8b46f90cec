"""The joblib backend: joblib.Parallel batches on hpc's work-stealing pool."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import joblib
import pytest
from joblib import Parallel, delayed, parallel_config

from hpc import ThreadPool
from hpc._core.pool import current_pool
from hpc.iter.joblib_backend import HpcBackend, register_joblib_backend


class Boom(Exception):
    """A distinctive exception type for the propagation test."""


def square_on(i: int) -> tuple[int, str]:
    return i * i, threading.current_thread().name


def fail_at(i: int) -> int:
    if i == 37:
        raise Boom(f"item {i}")
    return i


def run_with_timeout(fn, seconds: float = 30.0):
    """Run fn on a daemon thread; fail (instead of hanging the suite) if it does not finish in time."""
    out: list = []
    errors: list = []

    def target():
        try:
            out.append(fn())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"did not finish within {seconds} s (deadlock?)"
    if errors:
        raise errors[0]
    return out[0]


def test_parallel_returns_ordered_results_on_hpc_workers():
    """Parallel(n_jobs=2) under the "hpc" backend returns ordered results computed on hpc-worker threads."""
    with parallel_config(backend="hpc"):
        out = Parallel(n_jobs=2)(delayed(square_on)(i) for i in range(100))
    assert [v for v, _ in out] == [i * i for i in range(100)]
    names = {name for _, name in out}
    assert names and all(name.startswith("hpc-worker-") for name in names)


def test_exception_propagates_with_its_type():
    """An exception raised inside a task reaches the caller with its own type and message."""
    with parallel_config(backend="hpc"), pytest.raises(Boom, match="item 37"):
        Parallel(n_jobs=2)(delayed(fail_at)(i) for i in range(100))


def test_backend_is_reusable_after_an_error():
    """A call that failed leaves the backend and the pool usable for the next call."""
    with parallel_config(backend="hpc"):
        with pytest.raises(Boom):
            Parallel(n_jobs=2)(delayed(fail_at)(i) for i in range(100))
        assert Parallel(n_jobs=2)(delayed(fail_at)(i) for i in range(10)) == list(range(10))


def leaf(j: int) -> int:
    time.sleep(0.002)
    return j


def nested_sum(i: int) -> int:
    return sum(Parallel(n_jobs=2)(delayed(leaf)(j) for j in range(8))) + i


def test_nested_parallel_does_not_deadlock():
    """A Parallel call inside a task finishes, even when every worker of a 2-thread pool waits on a nested call."""

    def outer():
        with ThreadPool(2), parallel_config(backend="hpc"):
            return Parallel(n_jobs=2)(delayed(nested_sum)(i) for i in range(6))

    assert run_with_timeout(outer) == [28 + i for i in range(6)]


def endless_parallel():
    return Parallel()(delayed(endless_parallel)() for _ in range(2))


def test_endless_nested_parallel_raises_recursion_error_whatever_the_limit():
    """joblib's thread-bomb case: recursive Parallel calls end in RecursionError, not a hang, wherever the limit
    falls. Work stealing nests the batches on one stack; when the limit struck inside joblib's completion callback,
    concurrent.futures swallowed that error, joblib never learned the batch had ended, and its caller polled
    forever (limits 959 and 1070 of this sweep hung)."""
    saved = sys.getrecursionlimit()

    def bomb():
        pool = ThreadPool(2)
        try:
            with pool, parallel_config(backend="hpc", n_jobs=2):
                try:
                    endless_parallel()
                except RecursionError:
                    return "RecursionError"
        finally:
            # the aborted calls' batches may still run, deep in the workers' stacks: a limit lowered under a thread
            # that deep is a fatal error in CPython ("Cannot recover from stack overflow": the suite aborted)
            pool.shutdown(wait=True)

    try:
        for limit in range(700, 1400, 37):
            sys.setrecursionlimit(limit)
            assert run_with_timeout(bomb) == "RecursionError", limit
    finally:
        sys.setrecursionlimit(saved)


def test_n_jobs_minus_one_uses_every_thread_of_the_pool():
    """n_jobs=-1 means all threads of the current pool, and the call returns the right results."""
    with ThreadPool(3), parallel_config(backend="hpc"):
        assert joblib.effective_n_jobs(-1) == 3
        assert Parallel(n_jobs=-1)(delayed(abs)(-i) for i in range(50)) == list(range(50))


def test_batches_run_on_the_current_pool():
    """Inside `with ThreadPool(k)`, n_jobs=k runs the batches on that pool, not on another one."""
    with ThreadPool(3) as pool, parallel_config(backend="hpc"):
        seen = Parallel(n_jobs=3)(delayed(lambda: current_pool() is pool)() for _ in range(20))
    assert all(seen)


def test_other_n_jobs_gets_a_pool_of_that_size():
    """An n_jobs that differs from the current pool's size runs on a pool with that many hpc workers."""
    with ThreadPool(2), parallel_config(backend="hpc"):
        sizes = Parallel(n_jobs=3)(delayed(lambda: current_pool().num_threads)() for _ in range(20))
    assert set(sizes) == {3}


def test_generator_output():
    """return_as='generator' yields every result in order."""
    with parallel_config(backend="hpc"):
        gen = Parallel(n_jobs=2, return_as="generator")(delayed(abs)(-i) for i in range(30))
        assert list(gen) == list(range(30))


@pytest.mark.parametrize("n_jobs", [0, 0.5])
def test_n_jobs_zero_is_rejected_in_joblibs_words(n_jobs):
    """n_jobs=0 (and 0.5, which joblib truncates to 0) is an error with joblib's own message."""
    with pytest.raises(ValueError, match="n_jobs == 0 in Parallel has no meaning"):
        Parallel(n_jobs=n_jobs, backend="hpc")(delayed(abs)(1) for _ in range(2))


def test_register_is_idempotent():
    """Registering twice leaves exactly the hpc backend under the name 'hpc'."""
    register_joblib_backend()
    register_joblib_backend()
    from joblib.parallel import BACKENDS

    assert BACKENDS["hpc"] is HpcBackend


def test_import_hpc_does_not_import_joblib():
    """`import hpc` stays cheap: it does not load joblib."""
    code = "import sys, hpc; print('joblib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


class _StartLog:
    """Records the order in which tasks start; a task may fail or sleep."""

    def __init__(self, fail: int | None = None, seconds: float = 0.002) -> None:
        self.started: list[int] = []
        self.lock = threading.Lock()
        self.fail, self.seconds = fail, seconds

    def __call__(self, i: int) -> int:
        with self.lock:
            self.started.append(i)
        time.sleep(self.seconds)
        if i == self.fail:
            raise Boom(f"task {i}")
        return i


def test_batches_start_in_dispatch_order():
    """Batches start in the order joblib dispatched them: a worker's next batch does not jump the queue."""
    log = _StartLog()

    def run():
        with parallel_config(backend="hpc"):  # the config is per thread: set it on the thread that runs the call
            return Parallel(n_jobs=2, batch_size=1)(delayed(log)(i) for i in range(40))

    assert run_with_timeout(run) == list(range(40))
    assert all(abs(task - position) <= 2 for position, task in enumerate(log.started)), log.started


def test_error_stops_the_call_early():
    """An error in the 4th of 200 batches surfaces before most batches start (none after it is reported)."""
    log = _StartLog(fail=3, seconds=0.005)

    def run():
        with parallel_config(backend="hpc"):
            return Parallel(n_jobs=2, batch_size=1)(delayed(log)(i) for i in range(200))

    with pytest.raises(Boom, match="task 3"):
        run_with_timeout(run)
    assert len(log.started) < 20, log.started


def test_generator_yields_before_the_last_batch_starts():
    """return_as="generator" streams: the first result arrives while most batches have not started."""
    log = _StartLog(seconds=0.005)

    def first_then_rest():
        with parallel_config(backend="hpc"):
            results = Parallel(n_jobs=2, batch_size=1, return_as="generator")(delayed(log)(i) for i in range(100))
            first = next(results)
            started_by_then = len(log.started)
            return first, started_by_then, list(results)

    first, started_by_then, rest = run_with_timeout(first_then_rest)
    assert first == 0 and rest == list(range(1, 100))
    assert started_by_then < 50


@pytest.mark.parametrize(
    "imports",
    ["import hpc; import joblib", "import joblib; import hpc", "import hpc; import sklearn.ensemble",
     "import hpc; from sklearn.model_selection import GridSearchCV"],
)  # fmt: skip
def test_backend_registered_in_any_import_order(imports):
    """In a fresh process, hpc imported before or after joblib (or scikit-learn) registers "hpc"; nothing is left
    on sys.meta_path; a wrong backend name still gets joblib's own error."""
    if "sklearn" in imports:
        pytest.importorskip("sklearn")
    code = f"""
{imports}
import sys, joblib
with joblib.parallel_config(backend="hpc"):
    print(joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(3)))
print(any("hpc joblib" in repr(finder) for finder in sys.meta_path))
try:
    joblib.parallel_config(backend="hcp").__enter__()
except ValueError as exc:
    print("Invalid backend" in str(exc))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["[0, 1, 2]", "False", "True"]


def _raises_in_the_end(i: int) -> None:
    if i == 7:
        raise ValueError("raised deep inside")


def _inner_call(i: int) -> list:
    return Parallel(n_jobs=2, backend="hpc")(delayed(_raises_in_the_end)(j) for j in range(i))


def _outer_call(i: int) -> list:
    return Parallel(n_jobs=2, backend="hpc")(delayed(_inner_call)(j) for j in range(i))


def test_traceback_keeps_the_frames_inside_batches():
    """An error inside nested Parallel calls reports every user frame it went through, as joblib's own backends do
    (joblib's test_nested_exception_dispatch, with our functions)."""
    from traceback import format_exception

    def run():
        with pytest.raises(ValueError) as info:
            Parallel(n_jobs=2, backend="hpc")(delayed(_outer_call)(i) for i in range(30))
        return "".join(format_exception(info.type, info.value, info.tb))

    report = run_with_timeout(run)
    for frame in ("_outer_call", "_inner_call", "_raises_in_the_end"):
        assert frame in report


def test_tiny_tasks_are_batched_automatically(monkeypatch):
    """With joblib's default batch_size="auto", thousands of tiny tasks travel in batches of more than one."""
    sizes: list[int] = []
    original = HpcBackend.batch_completed

    def record(self, batch_size, duration):
        sizes.append(batch_size)
        return original(self, batch_size, duration)

    def run():
        with parallel_config(backend="hpc"):
            return Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(20000))

    monkeypatch.setattr(HpcBackend, "batch_completed", record)
    assert run_with_timeout(run) == list(range(20000))
    assert max(sizes) > 1 and len(sizes) < 20000 / 4


def test_concurrent_callers_do_not_queue_behind_each_other():
    """Two user threads' Parallel calls on the default pool run side by side: all of their batches can wait on each
    other at once (on the one shared pool they would queue, and the barrier would never fill)."""
    from hpc import current_num_threads

    n = current_num_threads()  # each call asks for the default pool's size: the shared pool's case
    barrier = threading.Barrier(2 * n, timeout=20)

    def meet(i: int) -> int:
        barrier.wait()
        return i

    results: dict[int, list] = {}

    def caller(k: int) -> None:
        with parallel_config(backend="hpc"):
            results[k] = Parallel(n_jobs=n, batch_size=1, pre_dispatch="all")(delayed(meet)(i) for i in range(n))

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == {0: list(range(n)), 1: list(range(n))}


def test_batches_left_running_by_a_failed_call_do_not_hold_up_the_next_call():
    """A batch still running after its call failed keeps its thread; the next call runs on other threads meanwhile
    (as on joblib's threading backend, whose every call has threads of its own) instead of queuing behind it."""
    running, release = threading.Event(), threading.Event()

    def stuck_unless_first(i: int) -> int:
        if i == 0:
            running.wait(10)  # fail only once another batch of the call is running
            raise Boom("first")
        running.set()
        release.wait(5)
        return i

    def run():
        with ThreadPool(2), parallel_config(backend="hpc"):  # n_jobs=2: the calls land on this pool
            try:
                with pytest.raises(Boom):
                    Parallel(n_jobs=2, batch_size=1)(delayed(stuck_unless_first)(i) for i in range(4))
                start = time.perf_counter()
                out = Parallel(n_jobs=2)(delayed(abs)(-i) for i in range(10))
                return out, time.perf_counter() - start
            finally:
                release.set()

    out, seconds = run_with_timeout(run)
    assert out == list(range(10))
    assert seconds < 2, f"the next call waited {seconds:.1f} s for a batch of the failed call"


def test_a_failed_call_stops_the_nested_calls_of_its_running_batches():
    """After a call fails, the nested calls of its batches that still run start no new batch: a running branch ends
    soon instead of running a whole tree of nested calls whose results nobody reads (joblib's thread bomb test)."""
    started: list[int] = []
    lock, nesting = threading.Lock(), threading.Event()

    def branch(depth: int) -> int:
        with lock:
            started.append(depth)
            if len(started) >= 10:
                nesting.set()
        if depth == 0:
            nesting.wait(10)  # fail once the other top-level branch is running nested calls
            raise Boom("first branch")
        if depth >= 8:
            time.sleep(0.005)
            return depth
        return sum(Parallel(n_jobs=2, batch_size=1)(delayed(branch)(depth + 1) for _ in range(2)))

    def run():
        with ThreadPool(2), parallel_config(backend="hpc"):
            with pytest.raises(Boom):
                Parallel(n_jobs=2, batch_size=1)(delayed(branch)(d) for d in (0, 1))
            time.sleep(0.5)  # what the abandoned branch does meanwhile
            with lock:
                return len(started)

    # the branch from depth 1 is a tree of 2**8 - 1 batches, whose 128 leaves take 0.3 s on 2 threads
    assert run_with_timeout(run) < 64  # 10 to 20 here; 256 when the abandoned branch ran through


def test_batches_run_openmp_with_their_share_of_the_cores():
    """Inside a batch OpenMP code sees cpus // n_jobs threads (as in loky's workers), not a full team per batch."""
    pytest.importorskip("sklearn")
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    from hpc import config

    cpus = config.available_cpus()
    if cpus < 2:
        pytest.skip("one CPU: nothing to share")

    def run():
        with parallel_config(backend="hpc"):
            return Parallel(n_jobs=2, batch_size=1)(delayed(_openmp_effective_n_threads)() for _ in range(4))

    assert run_with_timeout(run) == [max(1, cpus // 2)] * 4
    assert _openmp_effective_n_threads() == cpus  # the caller's own setting is untouched


def test_a_nested_call_keeps_its_timeout():
    """On a worker the nested call waited for every batch before joblib's loop (which checks the timeout) ran: a
    stuck task hung it without a TimeoutError. A task that overruns the limit raises TimeoutError once it ends (a
    thread is not interrupted), and the call's other stuck batches are skipped."""
    never = threading.Event()

    def stuck() -> str:
        never.wait(1.0)
        return "returned"

    def inner(_: int) -> str:
        try:
            Parallel(n_jobs=2, timeout=0.2)(delayed(stuck)() for _ in range(4))
        except TimeoutError:
            return "TimeoutError"
        return "no TimeoutError"

    def outer():
        with ThreadPool(2), parallel_config(backend="hpc"):
            return Parallel(n_jobs=2)(delayed(inner)(i) for i in range(2))

    assert run_with_timeout(outer) == ["TimeoutError"] * 2


def test_a_nested_call_longer_than_its_timeout_whose_tasks_are_quick_does_not_time_out():
    """joblib's timeout limits each task (counted from the result before it), not the call: 40 tasks of 0.05 s on
    one or two threads take 1-2 s, beyond a timeout of 0.5 s, and raise nothing."""

    def quick(i: int) -> int:
        time.sleep(0.05)
        return i

    def inner(_: int) -> int:
        return sum(Parallel(n_jobs=2, timeout=0.5, batch_size=1)(delayed(quick)(i) for i in range(40)))

    def outer():
        with ThreadPool(2), parallel_config(backend="hpc"):
            return Parallel(n_jobs=2)(delayed(inner)(i) for i in range(2))

    assert run_with_timeout(outer) == [780, 780]


def test_an_openmp_a_batch_loads_is_capped_from_the_next_batch_on():
    """The OpenMP cap was chosen once, when the call started: in a process that had not loaded scikit-learn's
    OpenMP, every batch of the call that loaded it ran full teams. The batches after the one that loads it run
    capped (the loading batch itself is not: the library comes during it)."""
    pytest.importorskip("sklearn")
    from hpc import config

    if config.available_cpus() < 2:
        pytest.skip("one CPU: nothing to share")
    code = """
import threading
import joblib
from joblib import Parallel, delayed
import hpc

first_done = threading.Event()

def counts(i):
    if i > 0:
        first_done.wait(60)  # every later batch starts after the one that imports
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads
    first_done.set()
    return _openmp_effective_n_threads()

with joblib.parallel_config(backend="hpc"):
    out = Parallel(n_jobs=2, batch_size=1)(delayed(counts)(i) for i in range(6))
print(out[-1])
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) == max(1, config.available_cpus() // 2)
