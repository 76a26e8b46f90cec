"""A tiny parallel numba kernel run once so numba picks, and can report, its threading layer."""

from __future__ import annotations

import numba as _numba

__all__ = ["threading_layer"]


@_numba.njit(parallel=True, cache=True)
def _triangle(n: int) -> int:
    total = 0
    for i in _numba.prange(n):
        total += i
    return total


def threading_layer() -> str:
    """Run the probe once and return ``numba.threading_layer()``: ``"tbb"``, ``"omp"`` or ``"workqueue"``.

    Raises:
        RuntimeError: the kernel computed a wrong result.
    """
    n = 1000
    if _triangle(n) != n * (n - 1) // 2:
        raise RuntimeError("the numba parallel probe computed a wrong sum")
    return str(_numba.threading_layer())
