"""The numba kernel of ``hpc bench iter`` workload (c): a sum of ``sqrt(x*x + 1)`` over a float64 chunk."""

from __future__ import annotations

import math as _math

from numba import njit as _njit

__all__ = ["sqrt_sum"]


@_njit(nogil=True, cache=True)
def sqrt_sum(a):  # pragma: no cover - compiled by numba
    """Return ``sum(sqrt(x*x + 1) for x in a)``; releases the GIL, so threads run it in parallel."""
    acc = 0.0
    for x in a:
        acc += _math.sqrt(x * x + 1.0)
    return acc
