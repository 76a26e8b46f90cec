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
