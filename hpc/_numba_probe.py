"""A tiny parallel numba kernel run once so numba picks, and can report, its threading layer."""

from __future__ import annotations

import sys as _sys

import numba as _numba

__all__ = ["layer_started", "threading_layer"]


def layer_started() -> bool:
    """Whether numba's threading layer has started in this process (a parallel kernel ran, or its thread count was
    asked or set), read without starting it: started on GNU OpenMP, every child forked afterwards dies on its first
    parallel kernel."""
    layer = _sys.modules.get("numba.np.ufunc.parallel")
    return layer is not None and bool(layer._is_initialized)


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
