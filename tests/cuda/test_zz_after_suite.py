"""Checks that must run after every other hpc.cuda test (pytest runs files in name order, so this one is last)."""

from __future__ import annotations

import gc

import pytest

from hpc import cuda
from hpc.cuda import _transfer, context


def test_nothing_left_after_the_suite() -> None:
    """Once the suite's objects are collected, no pool bytes are live and no context is left on this thread."""
    _transfer.release_staging()
    gc.collect()
    stats = cuda.memory_stats()
    assert all(s["current"] == 0 and s["live"] == 0 for s in stats.values()), cuda.memory_report()
    assert context.stack() == ()


@pytest.mark.gpu
def test_gpu_no_current_context_left() -> None:
    """On a GPU, pycuda reports no current context on this thread after the suite."""
    import pycuda.driver as drv

    assert drv.Context.get_current() is None
