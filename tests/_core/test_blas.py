"""The process-wide BLAS cap: reference counted, and reset in a child made by fork."""

from __future__ import annotations

import os

import numpy as np  # noqa: F401 - loads the BLAS the cap limits
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from hpc._core.blas import blas_cap


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
@pytest.mark.timeout(60)
def test_a_child_forked_under_the_cap_starts_with_none():
    """Forked while a run held the cap, the child inherited its count (the cap was never lifted there: BLAS
    single-threaded for good) and perhaps its held lock (a deadlock). The child starts at 0 users, uncapped."""
    before = _blas_threads()
    blas_cap.acquire(64)  # a pool of 64: one BLAS thread each
    try:
        capped = _blas_threads()
        pid = os.fork()
        if pid == 0:
            ok = blas_cap._users == 0 and blas_cap._lock.acquire(timeout=5) and _blas_threads() == before
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        blas_cap.release()
    assert os.waitstatus_to_exitcode(status) == 0
    assert _blas_threads() == before
    if before and max(before) > 1:
        assert max(capped) == 1


@pytest.fixture
def three_blas_threads():
    """BLAS set to 3 threads for the test (whatever the cores), and given back its count afterwards."""
    with threadpool_limits(3, user_api="blas"):
        if set(_blas_threads()) != {3}:
            pytest.skip("this BLAS does not take a thread count")
        yield


def test_the_last_user_lifts_the_cap(three_blas_threads):
    """Overlapping users share one cap; it stays until the last one releases."""
    blas_cap.acquire(64)
    blas_cap.acquire(64)
    assert set(_blas_threads()) == {1}
    blas_cap.release()
    assert set(_blas_threads()) == {1}
    blas_cap.release()
    assert set(_blas_threads()) == {3}


def test_a_limit_ended_in_another_thread_meanwhile_is_not_undone(three_blas_threads):
    """A threadpool_limits block (scikit-learn's KMeans opens one) that starts before the cap and ends inside it
    gives BLAS back its 3 threads; lifting the cap afterwards leaves them (before, it set the 1 it had found at its
    start: BLAS on one thread for the rest of the process)."""
    other = threadpool_limits(1, user_api="blas")
    blas_cap.acquire(64)
    other.restore_original_limits()
    assert set(_blas_threads()) == {3}
    blas_cap.release()
    assert set(_blas_threads()) == {3}


def test_the_cap_never_raises_a_lower_count(three_blas_threads):
    """A pool of 1 on many cores would allow more BLAS threads than the process set: the cap keeps the lower one."""
    with threadpool_limits(1, user_api="blas"):
        blas_cap.acquire(1)
        try:
            assert set(_blas_threads()) == {1}
        finally:
            blas_cap.release()
        assert set(_blas_threads()) == {1}


def test_a_user_asking_fewer_threads_lowers_the_cap_until_the_last_leaves(three_blas_threads, monkeypatch):
    """A run wanting one BLAS thread per worker (an hpc.ml fit on every core) beside a smaller pool's run that holds
    the cap at 2 lowers it to 1 (the first user's cap held: BLAS oversubscribed the fit); the former count comes back
    when the last run ends."""
    from hpc._core import blas

    monkeypatch.setattr(blas._config, "available_cpus", lambda: 6)
    blas_cap.acquire(3)  # 6 // 3: two BLAS threads per worker
    assert set(_blas_threads()) == {2}
    blas_cap.acquire(6)
    assert set(_blas_threads()) == {1}
    blas_cap.acquire(2)  # would allow 3: the cap stays at the lowest
    assert set(_blas_threads()) == {1}
    blas_cap.release()
    blas_cap.release()
    assert set(_blas_threads()) == {1}
    blas_cap.release()
    assert set(_blas_threads()) == {3}
