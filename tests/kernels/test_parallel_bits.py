"""Every parallel variant gives the same bits on any number of numba threads (docs/kernels.md: partial results are
combined in chunk order, and the chunks depend only on the length).

A reduction written as ``parts.sum()`` inside a ``parallel=True`` function broke this: numba turns it into a
parallel reduction of its own, split by the thread count (``dot``, ``asum`` and ``nrm2`` differed in the last bit
between 1 and 2 threads).
"""

from __future__ import annotations

import inspect

import numba
import numpy as np
import pytest

from hpc import kernels

THREADS = numba.config.NUMBA_NUM_THREADS
N = 5 * 65536 + 7  # several chunks, and a ragged last one

pytestmark = pytest.mark.skipif(THREADS < 2, reason="numba has one thread on this machine: nothing to compare")


def _vectors():
    rng = np.random.default_rng(20261206)
    x = rng.standard_normal(N) * 1e3
    y = rng.standard_normal(N)
    return x, y


def _calls():
    """(label, call) for every public kernel that takes ``parallel``, on inputs of several chunks."""
    x, y = _vectors()
    rows = np.random.default_rng(7).standard_normal((37, 3001)) * 20
    grid = np.random.default_rng(8).standard_normal((700, 700))
    a = np.random.default_rng(9).standard_normal((300, 200))
    centroids = a[:17].copy()
    return {
        "sum": lambda p: kernels.sum(x, parallel=p),
        "sum accurate": lambda p: kernels.sum(x, accurate=True, parallel=p),
        "mean": lambda p: kernels.mean(x, parallel=p),
        "var": lambda p: kernels.var(x, ddof=1, parallel=p),
        "mean_var": lambda p: kernels.mean_var(x, parallel=p),
        "min": lambda p: kernels.min(x, parallel=p),
        "max": lambda p: kernels.max(x, parallel=p),
        "argmin": lambda p: kernels.argmin(x, parallel=p),
        "argmax": lambda p: kernels.argmax(x, parallel=p),
        "dot": lambda p: kernels.dot(x, y, parallel=p),
        "asum": lambda p: kernels.asum(x, parallel=p),
        "nrm2": lambda p: kernels.nrm2(x, parallel=p),
        "nrm2 scaled": lambda p: kernels.nrm2(x * 1e-300, parallel=p),  # the second, scaled pass
        "axpy": lambda p: kernels.axpy(2.0, x, y, out=np.empty_like(x), parallel=p),
        "scal": lambda p: kernels.scal(3.0, x, out=np.empty_like(x), parallel=p),
        "axpbyc": lambda p: kernels.axpbyc(2.0, x, -1.0, y, 0.5, parallel=p),
        "inclusive_scan": lambda p: kernels.inclusive_scan(x, parallel=p),
        "exclusive_scan": lambda p: kernels.exclusive_scan(x, parallel=p),
        "histogram": lambda p: kernels.histogram(x, 64, parallel=p),
        "softmax": lambda p: kernels.softmax(rows, parallel=p),
        "logsumexp": lambda p: kernels.logsumexp(rows, parallel=p),
        "layernorm": lambda p: kernels.layernorm(rows, parallel=p),
        "jacobi_step": lambda p: kernels.jacobi_step(grid, parallel=p),
        "gemv": lambda p: kernels.gemv(a, a[0], parallel=p),
        "gemm": lambda p: kernels.gemm(a, a.T, parallel=p),
        "gemm_tiled": lambda p: kernels.gemm_tiled(a, a.T, parallel=p),
        "sqdist": lambda p: kernels.sqdist(a, centroids, parallel=p),
        "kmeans_assign": lambda p: kernels.kmeans_assign(a, centroids, parallel=p),
    }


def _bits(result):
    parts = result if isinstance(result, tuple) else (result,)
    return [np.asarray(part).tobytes() for part in parts]


def test_every_kernel_with_a_parallel_variant_is_covered():
    takes_parallel = {
        name
        for name in kernels.__all__
        if callable(getattr(kernels, name)) and "parallel" in inspect.signature(getattr(kernels, name)).parameters
    }
    covered = {label.split()[0] for label in _calls()}
    assert takes_parallel <= covered, sorted(takes_parallel - covered)


@pytest.mark.parametrize("label", list(_calls()))
def test_parallel_variant_gives_the_same_bits_on_one_thread_and_on_all(label):
    call = _calls()[label]
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _bits(call(True))
        numba.set_num_threads(THREADS)
        every = _bits(call(True))
    finally:
        numba.set_num_threads(before)
    assert one == every
