"""The demonstration job of `make run`: what hpc can do today, in a few seconds."""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from hpc import ThreadPool, join, par_chunks, par_iter, par_range


@njit(nogil=True, cache=True)
def sum_sqrt(v):
    acc = 0.0
    for x in v:
        acc += np.sqrt(x * x + 1.0)
    return acc


def fib(n: int) -> int:
    return n if n < 2 else sum(join(lambda: fib(n - 1), lambda: fib(n - 2)))


def timed(label: str, fn):
    t0 = time.perf_counter()
    value = fn()
    print(f"  {label:<58} {time.perf_counter() - t0:8.3f} s   -> {value}")
    return value


def main() -> None:
    print("\n== hpc.iter: Rayon-style parallel iterators ==")
    timed(
        "par_iter(range(10)).map(x*x).filter(even).sum()",
        lambda: par_iter(range(10)).map(lambda x: x * x).filter(lambda x: x % 2 == 0).sum(),
    )
    xs = np.random.default_rng(0).standard_normal(200_000).tolist()
    sums = {}
    for n in (1, 2, 3, 8):
        with ThreadPool(n):
            sums[n] = par_iter(xs).with_backend("threads").sum()
    serial = par_iter(xs).with_backend("serial").sum()
    timed("float sum, same bits on 1/2/3/8 threads and serial?", lambda: len({*sums.values(), serial}) == 1)
    timed("recursive join: fib(20)", lambda: fib(20))
    a = np.random.default_rng(1).random(8_000_000)
    sum_sqrt(a[:10])  # compile (or load from numba's cache) before timing
    timed(
        "numba nogil kernel, 64 MB in chunks, serial backend",
        lambda: round(par_chunks(a, 1 << 16).with_backend("serial").map(sum_sqrt).sum(), 3),
    )
    timed(
        "numba nogil kernel, 64 MB in chunks, threads backend",
        lambda: round(par_chunks(a, 1 << 16).with_backend("threads").map(sum_sqrt).sum(), 3),
    )
    timed(
        "1e5 tiny Python tasks x*x on processes (pool start-up included)",
        lambda: par_range(100_000).map(lambda x: x * x).with_backend("processes").sum(),
    )
    timed(
        "1e5 tiny Python tasks x*x on processes (warm)",
        lambda: par_range(100_000).map(lambda x: x * x).with_backend("processes").sum(),
    )


if __name__ == "__main__":
    main()
