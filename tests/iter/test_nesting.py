"""Nested parallel iterators and joins share one pool and never deadlock."""

from __future__ import annotations

import threading

from hpc import ThreadPool, join, par_range


def test_par_iter_nested_three_levels_deep():
    """A par_iter inside a par_iter inside a par_iter gives the right answer on a 2-thread pool."""
    with ThreadPool(2):
        total = (
            par_range(6)
            .map(lambda i: par_range(5).map(lambda j: par_range(4).map(lambda k: i * 100 + j * 10 + k).sum()).sum())
            .with_backend("threads")
            .sum()
        )
    expected = sum(i * 100 + j * 10 + k for i in range(6) for j in range(5) for k in range(4))
    assert total == expected


def test_nested_iterators_on_a_one_thread_pool():
    """Even with a single worker, nested iterators complete: the waiting worker runs the inner chunks."""
    with ThreadPool(1):
        assert par_range(10).map(lambda i: par_range(i).sum()).with_backend("threads").collect() == [
            sum(range(i)) for i in range(10)
        ]


def test_nested_work_stays_on_pool_threads():
    """Inner chunks run on the same pool's workers, never on extra threads."""
    names = set()
    lock = threading.Lock()

    def inner(j):
        with lock:
            names.add(threading.current_thread().name)
        return j

    with ThreadPool(2):
        par_range(8).map(lambda i: par_range(50).map(inner).with_backend("threads").sum()).with_backend("threads").sum()
    assert names and all(n.startswith("hpc-worker-") for n in names) and len(names) <= 2


def test_join_inside_par_iter_and_par_iter_inside_join():
    """join and par_iter compose in both directions."""
    with ThreadPool(2):
        a, b = join(
            lambda: par_range(100).sum(), lambda: par_range(10).map(lambda x: join(lambda: x, lambda: 1)[0]).sum()
        )
    assert (a, b) == (4950, 45)
