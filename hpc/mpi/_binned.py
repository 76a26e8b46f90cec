"""The numba loops of the reproducible sum: exponents, fixed-point accumulation, conversion back to floats."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["EMPTY", "HI_SHIFT", "NONFINITE", "accumulate", "exponents", "to_float"]

NONFINITE = 4000  # exponent marker: some rank holds inf or NaN at this position
EMPTY = -2000  # exponent marker: every term at this position is zero
HI_SHIFT = 48  # q = hi * 2**48 + lo with 0 <= lo < 2**48
_LO_MASK = (1 << HI_SHIFT) - 1
_CARRY_EVERY = 1 << 14  # rows between carries: lo sums stay below 2**62


#: POW2[k + 1074] == 2.0**k for k in -1074..1023 (exact; subnormals included): a table instead of ldexp, whose
#: libm call per element would cost more than everything else together
POW2 = np.ldexp(1.0, np.arange(-1074, 1024)).astype(np.float64)


@njit(cache=True, nogil=True)
def exponents(rows, out, peak, bad):  # pragma: no cover - compiled by numba
    """Write into ``out[:n]``, per column of ``rows`` (k, n), the int16 exponent E with max|x| < 2**E (or a marker).

    ``peak`` (float64) and ``bad`` (bool) are scratch arrays of length n.
    """
    n = rows.shape[1]
    peak[:] = 0.0
    bad[:] = False
    for i in range(rows.shape[0]):
        for j in range(n):
            x = rows[i, j]
            a = abs(x)
            peak[j] = a if a > peak[j] else peak[j]
            d = x - x  # NaN exactly when x is inf or NaN
            bad[j] |= d != d
    bits = peak.view(np.int64)
    subnormal = False
    for j in range(n):  # branch-free, so LLVM vectorizes it
        biased = (bits[j] >> 52) & 0x7FF
        subnormal |= biased == 0 and peak[j] != 0.0
        e = NONFINITE if bad[j] else (EMPTY if peak[j] == 0.0 else biased - 1022)  # frexp: peak = m * 2**e
        out[j] = e
    if subnormal:  # rare: let frexp normalise subnormal peaks
        for j in range(n):
            if not bad[j] and peak[j] != 0.0 and ((bits[j] >> 52) & 0x7FF) == 0:
                out[j] = math.frexp(peak[j])[1]


@njit(cache=True, nogil=True)
def accumulate(rows, exps, table, hi, lo, first, second):  # pragma: no cover - compiled by numba
    """Write into (hi, lo) the int64 sums of the terms truncated to multiples of 2**(E-62), lo in [0, 2**48).

    ``first`` and ``second`` are float64 scratch arrays of length n.
    """
    k, n = rows.shape
    hi[:] = 0
    lo[:] = 0
    # x * 2**(62-E) in two exact steps, so the scale never overflows for tiny E; markers get a zero scale (the
    # garbage this gives for inf/NaN columns is never read: those columns are summed plainly).
    for j in range(n):
        first[j] = 0.0
        second[j] = 0.0
        e = np.int64(exps[j])
        if e != NONFINITE and e != EMPTY:
            shift = 62 - e
            a = min(shift, 1023)
            first[j] = table[a + 1074]
            second[j] = table[shift - a + 1074]
    for start in range(0, k, _CARRY_EVERY):
        stop = min(k, start + _CARRY_EVERY)
        for i in range(start, stop):
            for j in range(n):
                q = np.int64(rows[i, j] * first[j] * second[j])  # exact scaling, truncated toward zero
                hi[j] += q >> HI_SHIFT
                lo[j] += q & _LO_MASK
        for j in range(n):
            hi[j] += lo[j] >> HI_SHIFT
            lo[j] &= _LO_MASK


@njit(cache=True, nogil=True)
def to_float(hi, lo, exps, plain, table):  # pragma: no cover - compiled by numba
    """Return hi*2**(E-14) + lo*2**(E-62) after a canonical carry (one rounding); ``plain`` where non-finite."""
    n = lo.shape[0]
    out = np.empty(n)
    nonfinite = False
    for j in range(n):  # branch-free (selects and clamped table reads), so LLVM vectorizes it
        e = np.int64(exps[j])
        h = np.int64(hi[j]) + (lo[j] >> HI_SHIFT)
        low = lo[j] & _LO_MASK
        a = min(max(e - 62 + HI_SHIFT, -1075), 1023)
        b = min(max(e - 62, -1075), 1023)
        scale_hi = 0.0 if a < -1074 else table[max(a, -1074) + 1074]
        scale_lo = 0.0 if b < -1074 else table[max(b, -1074) + 1074]
        value = float(h) * scale_hi + float(low) * scale_lo
        nonfinite |= e == NONFINITE
        out[j] = 0.0 if e == EMPTY else value
    if nonfinite:
        for j in range(n):
            if exps[j] == NONFINITE:
                out[j] = plain[j]
    return out
