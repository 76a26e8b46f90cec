"""Stress tests of the pool's wake-up protocol: lazy starts, sleepers, idle exits, shutdown races, stealing.

Most run with ``_IDLE_WAIT_S`` so long that an idle worker never wakes by itself: a job whose push fails to wake or
start a worker then hangs (and the test fails on its timeout) instead of running a second later.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hpc import ThreadPool, join, scope
from hpc._core import pool as pool_module
from hpc._core.pool import Job

WAIT = 20.0  # seconds any single job may take before the test calls it lost


def fib(n: int) -> int:
    if n < 2:
        return n
    a, b = join(lambda: fib(n - 1), lambda: fib(n - 2))
    return a + b


@pytest.fixture
def no_polling(monkeypatch):
    """Idle workers sleep until notified (never time out, never leave): only the wake-up protocol runs a job."""
    monkeypatch.setattr(pool_module, "_IDLE_WAIT_S", 10_000.0)
    monkeypatch.setattr(pool_module, "_IDLE_EXIT_WAITS", 10**9)


@pytest.fixture
def leave_at_once(monkeypatch):
    """Workers leave as soon as they find no work (and never poll): every push races a worker leaving."""
    monkeypatch.setattr(pool_module, "_IDLE_WAIT_S", 10_000.0)
    monkeypatch.setattr(pool_module, "_IDLE_EXIT_WAITS", 0)


@pytest.fixture
def leave_soon(monkeypatch):
    """Workers time out every 0.5 ms and leave after one such wait: starts, timeouts and exits all the time."""
    monkeypatch.setattr(pool_module, "_IDLE_WAIT_S", 0.0005)
    monkeypatch.setattr(pool_module, "_IDLE_EXIT_WAITS", 1)


def assert_consistent(pool: ThreadPool) -> None:
    with pool._core._cv:
        assert 0 <= pool._core._wakeups <= pool._core._sleeping <= pool._core._live <= pool.num_threads
        assert sum(pool._core._running) == pool._core._live


def shut(pool: ThreadPool) -> None:
    pool.shutdown()
    assert not any(t.is_alive() for t in pool._core._threads.values())


@contextmanager
def stressed(n: int) -> Iterator[ThreadPool]:
    """A pool of ``n`` threads, its counters checked when the body ends well, shut down (every thread gone) always."""
    pool = ThreadPool(n)
    try:
        yield pool
        assert_consistent(pool)
    finally:
        shut(pool)


def push_from_threads(pool: ThreadPool, threads: int, jobs: int, seed: int) -> None:
    """Push ``jobs`` jobs from each of ``threads`` foreign threads, pausing at random; each must run."""
    errors: list[BaseException] = []

    def pusher(rng: random.Random) -> None:
        try:
            pending = []
            for i in range(jobs):
                ran = threading.Event()
                spawn = rng.random() < 0.3

                def job(ran=ran, spawn=spawn):
                    if spawn:  # fire and forget from a worker: onto its own deque, for a thief or itself
                        pool.push(Job(lambda: None))
                    ran.set()

                pool.push(Job(job))
                pending.append(ran)
                if rng.random() < 0.3:
                    time.sleep(rng.random() * 0.001)
                if i % 4 == 3:  # let the pool run dry now and then, so workers go to sleep (or leave)
                    assert all(e.wait(WAIT) for e in pending), "a pushed job never ran"
                    pending.clear()
            assert all(e.wait(WAIT) for e in pending), "a pushed job never ran"
        except BaseException as exc:
            errors.append(exc)

    ts = [threading.Thread(target=pusher, args=(random.Random(seed * 100 + k),)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["no_polling", "leave_at_once", "leave_soon"])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_every_pushed_job_runs_while_workers_sleep_or_leave(request, mode, n):
    """Pushes from foreign threads and from workers, while workers go to sleep or leave, never lose a job."""
    request.getfixturevalue(mode)
    with stressed(n) as pool:
        push_from_threads(pool, threads=3, jobs=150, seed=n)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["no_polling", "leave_soon"])
@pytest.mark.parametrize("n", [2, 3])
def test_k_blocking_tasks_always_get_k_threads(request, mode, n):
    """k <= num_threads tasks that wait for each other (a barrier) all run at once, round after round.

    With no polling, a push that counted on a sleeper that another push had already claimed would hang here.
    """
    request.getfixturevalue(mode)
    rng = random.Random(n)
    with stressed(n) as pool:
        for _ in range(120):
            k = rng.randrange(1, n + 1)
            barrier = threading.Barrier(k, timeout=WAIT)
            futures = [pool.submit(barrier.wait) for _ in range(k)]
            assert sorted(f.result(timeout=WAIT) for f in futures) == list(range(k))
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.002)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["no_polling", "leave_soon"])
@pytest.mark.parametrize("n", [2, 3])
def test_blocking_chains_from_inside_workers(request, mode, n):
    """A task that blocks on a future it submitted (not helping) needs another thread: up to n deep they get one."""
    request.getfixturevalue(mode)
    rng = random.Random(n)
    pool = ThreadPool(n)

    def chain(depth: int) -> int:
        return 1 if depth == 1 else 1 + pool.submit(chain, depth - 1).result(timeout=WAIT)

    try:
        for _ in range(120):
            depth = rng.randrange(1, n + 1)
            assert pool.submit(chain, depth).result(timeout=WAIT) == depth
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.002)
    finally:
        shut(pool)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["no_polling", "leave_soon"])
@pytest.mark.parametrize("n", [2, 3])
def test_nested_joins_and_scopes_from_several_callers(request, mode, n):
    """Recursive joins and nested scopes from 3 threads at once, then joins whose first half blocks on the second.

    Those blocking joins run one at a time: each needs two threads, and a worker that helps while it waits may pick
    up a blocked first half, so several at once could need more threads than the pool has.
    """
    request.getfixturevalue(mode)
    pool = ThreadPool(n)
    errors: list[BaseException] = []

    def caller(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(15):
                assert pool.install(lambda: fib(9)) == 34
                out: list[int] = []
                lock = threading.Lock()

                def body(out=out, lock=lock) -> None:
                    with scope() as s:

                        def task(i: int) -> None:
                            if i < 15:
                                s.spawn(task, 2 * i + 1)
                                s.spawn(task, 2 * i + 2)
                            with lock:
                                out.append(i)

                        s.spawn(task, 0)

                pool.install(body)
                assert sorted(out) == list(range(31))
                if rng.random() < 0.5:
                    time.sleep(rng.random() * 0.002)
        except BaseException as exc:
            errors.append(exc)

    ts = [threading.Thread(target=caller, args=(k,)) for k in range(3)]
    try:
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert not errors, errors[0]
        rng = random.Random(n)
        for _ in range(40):
            got = threading.Event()
            # f blocks until g ran: g must be stolen by another worker, started or woken for it
            assert pool.install(lambda got=got: join(lambda: got.wait(WAIT), got.set)) == (True, None)
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.002)
        assert_consistent(pool)
    finally:
        shut(pool)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("n", [1, 2, 3])
def test_pushes_racing_shutdown_run_or_are_refused(n):
    """Work pushed while the pool shuts down either runs or its push raises; nothing is accepted and then lost."""
    rng = random.Random(n)
    for _ in range(80):
        pool = ThreadPool(n)
        pool.install(lambda: None)
        accepted: list[Job] = []
        go = threading.Event()

        def pusher(pool=pool, accepted=accepted, go=go) -> None:
            go.wait()
            for _ in range(10):
                job = Job(lambda: None)
                try:
                    pool.push(job)
                except RuntimeError as exc:
                    assert "after shutdown" in str(exc)
                else:
                    accepted.append(job)

        ts = [threading.Thread(target=pusher) for _ in range(3)]
        for t in ts:
            t.start()
        go.set()
        time.sleep(rng.random() * 0.0005)
        pool.shutdown(wait=rng.random() < 0.5, cancel_futures=rng.random() < 0.5)
        for t in ts:
            t.join()
        assert all(job.wait(WAIT) for job in accepted), "an accepted job never ran"
        shut(pool)
        assert_consistent(pool)


@pytest.mark.timeout(60)
def test_stealing_takes_each_job_exactly_once_while_deques_change():
    """_find_work's scan (any/filter over the deques) loses no job and takes none twice while others push and pop."""
    pool = ThreadPool(16)  # no push: no worker starts; these threads play the workers
    per_owner = 3000
    taken: list[list[Job]] = [[] for _ in range(8)]
    done_pushing = threading.Event()

    def owner(index: int) -> None:
        rng = random.Random(index)
        d = pool._core._deques[index]
        for _ in range(per_owner):
            d.append(Job(lambda: None))
            if rng.random() < 0.3:  # the owner pops its own back now and then, racing the thieves at the front
                job = pool._core._find_work(index)
                if job is not None:
                    taken[index].append(job)

    def thief(slot: int) -> None:
        while True:
            job = pool._core._find_work(None)
            if job is not None:
                taken[slot].append(job)
            elif done_pushing.is_set() and not any(pool._core._deques):
                return

    owners = [threading.Thread(target=owner, args=(i,)) for i in range(4)]
    thieves = [threading.Thread(target=thief, args=(4 + k,)) for k in range(4)]
    for t in owners + thieves:
        t.start()
    for t in owners:
        t.join()
    done_pushing.set()
    for t in thieves:
        t.join()
    jobs = [job for got in taken for job in got]
    assert len(jobs) == 4 * per_owner
    assert len({id(job) for job in jobs}) == len(jobs)
    assert not any(pool._core._deques) and not pool._core._live
