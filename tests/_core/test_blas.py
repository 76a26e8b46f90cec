"""The process-wide BLAS cap: reference counted, and reset in a child made by fork."""

from __future__ import annotations

import os

import numpy as np  # noqa: F401 - loads the BLAS the cap limits
import pytest
from threadpoolctl import threadpool_info

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
