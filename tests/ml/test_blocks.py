"""hpc.ml._blocks.run_blocks: every block once, results in block order, on any pool; a failing block stops the
pass and its exception reaches the caller."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

import hpc
from hpc.ml._blocks import run_blocks


@pytest.mark.parametrize("threads", [1, 2, 4])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 25, 200])
def test_every_block_runs_once_and_results_come_in_block_order(threads, n):
    calls = Counter()
    lock = threading.Lock()

    def fn(i):
        with lock:
            calls[i] += 1
        return i * i

    with hpc.ThreadPool(threads):
        assert run_blocks(fn, n) == [i * i for i in range(n)]
    assert calls == Counter(range(n))


@pytest.mark.timeout(60)
def test_a_failing_block_stops_the_pass_and_raises():
    """Block 5 raises: the blocks after it are not started (each takes 2 ms: a pass of 500 would take a second;
    the bound leaves room for a thread descheduled on a loaded machine), and the caller gets block 5's exception."""
    ran = Counter()
    lock = threading.Lock()

    def fn(i):
        with lock:
            ran[i] += 1
        if i == 5:
            raise KeyError("block 5")
        time.sleep(0.002)
        return i

    with hpc.ThreadPool(2), pytest.raises(KeyError, match="block 5"):
        run_blocks(fn, 500)
    assert 5 in ran and len(ran) < 100, sorted(ran)


@pytest.mark.timeout(60)
def test_nested_passes_finish():
    """A block that runs a pass of its own (a fit inside a pool worker, as under joblib's hpc backend) finishes."""
    with hpc.ThreadPool(2):
        out = run_blocks(lambda i: sum(run_blocks(lambda j: i * j, 10)), 8)
    assert out == [45 * i for i in range(8)]


@pytest.mark.timeout(60)
def test_a_helper_that_has_not_started_is_taken_back_not_waited_for():
    """Every thread of the pool is busy: the caller runs every block itself and returns without waiting for a
    thread to take its queued helper (which would have waited for the busy jobs to end)."""
    caller = threading.get_ident()
    with hpc.ThreadPool(2) as pool:
        release = threading.Event()
        started = [threading.Event(), threading.Event()]
        busy = [pool.submit(lambda e=e: (e.set(), release.wait(20))) for e in started]
        assert all(e.wait(10) for e in started)
        out = run_blocks(lambda i: (i, threading.get_ident()), 6)
        assert not any(b.done() for b in busy)  # run_blocks returned while both workers were still busy
        release.set()
        for b in busy:
            b.result()
    assert out == [(i, caller) for i in range(6)]


@pytest.mark.timeout(60)
def test_a_failing_helper_is_raised_once_every_block_under_way_has_finished():
    """The first block a pool thread takes raises after 30 ms; the blocks under way on the other pool threads (100 ms
    each) have all finished when the caller gets the exception: none is left running behind it."""
    state = Counter()
    lock = threading.Lock()
    caller = threading.get_ident()

    def fn(i):
        if threading.get_ident() == caller:
            time.sleep(0.005)
            return i
        with lock:
            state["taken"] += 1
            first = state["taken"] == 1
            state["now"] += 0 if first else 1
        if first:
            time.sleep(0.03)
            raise KeyError("first helper block")
        time.sleep(0.1)
        with lock:
            state["now"] -= 1
        return i

    with hpc.ThreadPool(4):
        for _ in range(5):
            state.clear()
            with pytest.raises(KeyError, match="first helper block"):
                run_blocks(fn, 200)
            with lock:
                assert state["now"] == 0, state


@pytest.mark.timeout(60)
def test_an_interrupt_while_the_pass_waits_is_raised_not_swallowed():
    """Ctrl-C (KeyboardInterrupt in the main thread) while the pass waits for a block on a pool thread, or runs
    one itself, reaches the caller: the pass never returns with a block's result missing."""
    import _thread

    release = threading.Event()

    def fn(i):
        if i == 0:
            time.sleep(0.05)  # the caller's first block: a pool thread takes block 1 meanwhile
        if i == 1:
            release.wait(10)  # held until after the interrupt: it lands inside run_blocks
        return i

    def interrupt():
        _thread.interrupt_main()
        time.sleep(0.1)
        release.set()  # the pool thread's block ends: the pass raises once it has

    timer = threading.Timer(0.2, interrupt)
    with hpc.ThreadPool(2):
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                run_blocks(fn, 2)
        finally:
            release.set()
            timer.cancel()


@pytest.fixture
def fresh_memory(monkeypatch):
    """run_blocks with no pass remembered (the last time per block of each pass's code)."""
    from hpc.ml import _blocks

    monkeypatch.setattr(_blocks, "_block_seconds", {})
    return _blocks


def _threads_of(fn_blocks):
    """Run ``run_blocks`` of a pass whose blocks record their thread; return the set of threads that ran blocks."""
    seen = set()

    def fn(i):
        seen.add(threading.get_ident())
        fn_blocks(i)
        return i

    return fn, seen


@pytest.mark.timeout(60)
def test_a_pass_short_last_time_runs_on_the_caller_alone(fresh_memory):
    """A pass of tiny blocks: the first runs may wake the helpers (nothing is known of it yet; the caller records its
    own blocks' time, where it ran any), and once it is remembered as short the next runs of the same code take
    every block on the calling thread."""
    caller = threading.get_ident()
    with hpc.ThreadPool(2):
        for _ in range(20):
            fn, seen = _threads_of(lambda i: None)
            assert run_blocks(fn, 50) == list(range(50))
            if fresh_memory._block_seconds:
                break
        (kept,) = fresh_memory._block_seconds.values()
        assert kept < fresh_memory.SERIAL_BLOCKS_BELOW_S
        for _ in range(3):
            fn, seen = _threads_of(lambda i: None)
            assert run_blocks(fn, 50) == list(range(50))
            assert seen == {caller}


@pytest.mark.timeout(60)
def test_a_pass_that_runs_long_this_time_wakes_the_helpers(fresh_memory):
    """The same code, short last time and long now (blocks of 20 ms): the caller wakes the helpers once the pass has
    run SERIAL_BELOW_S, and a pool thread takes blocks; the time kept is one thread's per block, not the pass's."""
    caller = threading.get_ident()
    pause = {"s": 0.0}
    with hpc.ThreadPool(2):
        fn, seen = _threads_of(lambda i: time.sleep(pause["s"]))
        run_blocks(fn, 4)
        run_blocks(fn, 4)  # short: remembered as such
        seen.clear()
        pause["s"] = 0.02
        assert run_blocks(fn, 40) == list(range(40))
    assert caller in seen and len(seen) == 2
    (kept,) = fresh_memory._block_seconds.values()
    assert 0.015 < kept < 0.5  # a block's sleep (with a loaded machine's slack), not a pass of 20


@pytest.mark.timeout(60)
def test_blocks_map_remembers_each_function_apart(fresh_memory):
    """Blocks.map wraps each function in one lambda: the time kept is the mapped function's, one per function, so a
    short map does not make a long one wait for the helpers."""
    import numpy as np

    from hpc import mpi

    blocks = fresh_memory.Blocks(mpi.world(), np.array([64]), [np.zeros((64, 1))], block_rows=8)

    def short(x):
        return x.shape[0]

    def long(x):
        time.sleep(0.001)
        return x.shape[0]

    with hpc.ThreadPool(2):
        for _ in range(3):
            assert blocks.map(short) == [8] * 8
            assert blocks.map(long) == [8] * 8
    kept = fresh_memory._block_seconds
    assert kept[long.__code__] > 0.0005 and kept[short.__code__] < 0.0005


@pytest.mark.parametrize("layout", ["fortran", "strided"])
def test_rows_in_another_layout_are_copied_once_and_the_blocks_are_views_of_it(layout):
    """A Fortran-ordered or strided X is made C-ordered in one array whose blocks are views (a copy per block: a
    fit on 0.5 GB of Fortran-ordered rows left the process 0.5 GB larger after it, in the heap's free lists)."""
    import numpy as np

    from hpc import mpi
    from hpc.ml._blocks import Blocks

    base = np.arange(200 * 6, dtype=np.float64).reshape(200, 6)
    X = np.asfortranarray(base) if layout == "fortran" else np.repeat(base, 2, axis=1)[:, ::2]
    blocks = Blocks(mpi.world(), np.array([200]), [X], block_rows=16)
    first = blocks.items[0][0]
    assert first.base is not None
    assert all(item[0].flags.c_contiguous and item[0].base is first.base for item in blocks.items)
    np.testing.assert_array_equal(np.concatenate([item[0] for item in blocks.items]), base)
