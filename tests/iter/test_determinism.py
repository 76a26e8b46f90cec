"""Float reductions give identical bits on any thread count and on every backend."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import ThreadPool, par_chunks, par_iter


def _hard_floats(n: int) -> list[float]:
    rng = np.random.default_rng(42)
    return (rng.standard_normal(n) * 10.0 ** rng.integers(-8, 12, n)).tolist()


@pytest.mark.parametrize("n", [1, 7, 1000, 100_003])
def test_float_sum_is_bitwise_identical_on_1_2_3_8_threads_and_every_backend(n):
    """sum() of badly conditioned floats is the same bits for 1, 2, 3, 8 threads and serial/processes."""
    xs = _hard_floats(n)
    results = set()
    for threads in (1, 2, 3, 8):
        with ThreadPool(threads):
            results.add(par_iter(xs).with_backend("threads").sum().hex())
            results.add(par_iter(xs).map(lambda x: x * 1.5).with_backend("threads").sum().hex())
    results.discard(None)
    assert len(results) == 2
    assert par_iter(xs).with_backend("serial").sum().hex() in results
    assert par_iter(xs).with_backend("processes").sum().hex() in results
    assert par_iter(xs).sum().hex() in results


def test_float_reduce_is_bitwise_identical_across_thread_counts():
    """reduce() with float addition combines in the same fixed tree whatever the pool size."""
    xs = _hard_floats(5000)
    seen = set()
    for threads in (1, 2, 3, 8):
        with ThreadPool(threads):
            seen.add(par_iter(xs).reduce(0.0, lambda a, b: a + b).hex())
    seen.add(par_iter(xs).with_backend("processes").reduce(0.0, lambda a, b: a + b).hex())
    assert len(seen) == 1


def test_float_sum_is_not_just_python_sum():
    """The determinism is real: the fixed tree differs from a left-to-right sum on hard data."""
    xs = _hard_floats(100_003)
    assert par_iter(xs).sum() != sum(xs) or par_iter(xs).sum() == pytest.approx(sum(xs))


def test_chunk_kernel_sums_are_identical_across_threads():
    """A numeric chunk pipeline (par_chunks + kernel) gives the same bits on any pool size."""
    a = np.random.default_rng(3).standard_normal(1 << 16)
    seen = set()
    for threads in (1, 2, 3, 8):
        with ThreadPool(threads):
            seen.add(float(par_chunks(a, 1000).map(np.sum).sum()).hex())
            seen.add(float(par_iter(a).map_chunks(lambda v: v * 2.0).sum()).hex())
    assert len(seen) == 2
