"""Shared helpers for the hpc.cuda tests: which driver runs, and a check that no test leaks pool memory."""

from __future__ import annotations

import gc

import pytest

from hpc import cuda


@pytest.fixture
def no_leaks():
    """Fail the test if device or pinned bytes it allocated are still live once its objects are collected."""
    gc.collect()
    before = {name: s["current"] for name, s in cuda.memory_stats().items()}
    yield
    gc.collect()
    after = {name: s["current"] for name, s in cuda.memory_stats().items()}
    leaked = {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    assert not leaked, f"pool bytes still live after the test: {leaked}"
