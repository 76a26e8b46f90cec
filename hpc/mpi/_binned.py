"""The numba loops of the reproducible sum: exponents, fixed-point quantization, conversion back to floats.

Every loop works on a float's IEEE-754 bits or scales by powers of two built from bits (register bitcasts from
:mod:`hpc.kernels._intrinsics`): no libm call, no table, no branch, so LLVM vectorizes each loop (AVX-512 has
int64 <-> float64 conversions and packed rounding).

Notation: ``b`` is a biased exponent field (0..2047), ``E = max(b, 1) - 1022`` the exponent with ``|x| < 2**E``
for every ``x`` whose field is at most ``b`` (subnormals included), and a term ``x`` is replaced by the integer
``q = round(x * 2**(Q - E))``, ``Q = 60``, rounded to nearest (half to even): ``|q| <= 2**60``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpc.kernels._intrinsics import bits_to_float as _from_bits
from hpc.kernels._intrinsics import float_to_bits as _bits

__all__ = [
    "HI_SHIFT",
    "NONFINITE",
    "ONE_WORD_TERMS",
    "Q",
    "exponents",
    "max_into",
    "quantize",
    "quantize_split",
    "to_float",
    "to_float_split",
]

NONFINITE = 0x7FF  # the exponent field of inf and NaN: a column holding one is summed plainly
Q = 60  # terms are rounded to integer multiples of 2**(E - Q)
ONE_WORD_TERMS = 7  # |q| <= 2**60, so up to 7 terms always sum without overflow in one int64
HI_SHIFT = 48  # the two-word form: q = hi * 2**48 + lo with 0 <= lo < 2**48
_LO_MASK = (1 << HI_SHIFT) - 1
_CARRY_EVERY = 1 << 14  # rows between carries of the two-word form: lo sums stay below 2**62


@njit(inline="always")
def _quantize(x, field):  # pragma: no cover - compiled by numba
    # x * 2**(60 - E) in two multiplications by powers of two (built from their bits), each exact: the first
    # stops at 2**1000, so neither overflows nor leaves the normal range for terms that matter; terms far below
    # the column's largest may underflow, and round to 0 either way. np.rint rounds half to even.
    shift = 1082 - max(np.int64(field), 1)  # 60 - E, in -965..1081
    first = min(shift, 1000)
    v = np.rint((x * _from_bits((first + 1023) << 52)) * _from_bits((shift - first + 1023) << 52))
    return np.int64(v if abs(v) <= 1.2e18 else 0.0)  # inf/NaN (columns summed plainly) give 0, not undefined


@njit(cache=True, nogil=True)
def exponents(rows, out):  # pragma: no cover - compiled by numba
    """Write into ``out[:n]`` the largest exponent field of each column of ``rows`` (k, n); 0x7FF: inf or NaN."""
    k, n = rows.shape
    o = out[:n]
    if k == 0:
        o[:] = 0
    else:  # the first row assigns, as in quantize
        r = rows[0]
        for j in range(n):
            o[j] = np.int16((_bits(r[j]) >> 52) & 0x7FF)
    for i in range(1, k):
        r = rows[i]
        for j in range(n):
            o[j] = max(o[j], np.int16((_bits(r[j]) >> 52) & 0x7FF))


@njit(cache=True, nogil=True)
def max_into(a, b):  # pragma: no cover - compiled by numba
    """Set ``b = maximum(a, b)`` elementwise: the combine step of the exponent collective.

    MPICH's own int16 MAX is a scalar loop, about twice as slow from 1 MiB of data up.
    """
    for j in range(b.shape[0]):
        b[j] = max(a[j], b[j])


@njit(cache=True, nogil=True)
def quantize(rows, fields, q):  # pragma: no cover - compiled by numba
    """Write into ``q`` the int64 sums over rows of the quantized terms; return whether a column is non-finite.

    ``fields[:n]`` holds the exponent fields every rank agreed on. One int64 per column: the caller makes sure no
    more than :data:`ONE_WORD_TERMS` terms meet in a column over all ranks.
    """
    k, n = rows.shape
    f = fields[:n]
    bad = False
    if k == 0:
        for j in range(n):
            q[j] = 0
            bad |= f[j] == NONFINITE
    else:  # the first row assigns: no separate zeroing pass over q (these loops are bound by memory traffic)
        r = rows[0]
        for j in range(n):
            q[j] = _quantize(r[j], f[j])
            bad |= f[j] == NONFINITE
    for i in range(1, k):
        r = rows[i]
        for j in range(n):
            q[j] += _quantize(r[j], f[j])
    return bad


@njit(cache=True, nogil=True)
def quantize_split(rows, fields, hi, lo):  # pragma: no cover - compiled by numba
    """Like :func:`quantize` for any number of terms: the sums as ``hi * 2**48 + lo``, ``0 <= lo < 2**48``."""
    k, n = rows.shape
    f = fields[:n]
    for j in range(n):
        hi[j] = 0
        lo[j] = 0
    for start in range(0, k, _CARRY_EVERY):
        for i in range(start, min(k, start + _CARRY_EVERY)):
            r = rows[i]
            for j in range(n):
                t = _quantize(r[j], f[j])
                hi[j] += t >> HI_SHIFT
                lo[j] += t & _LO_MASK
        for j in range(n):
            hi[j] += lo[j] >> HI_SHIFT
            lo[j] &= _LO_MASK
    return _any_nonfinite(f)


@njit(inline="always")
def _any_nonfinite(f):  # pragma: no cover - compiled by numba
    bad = False
    for j in range(f.shape[0]):
        bad |= f[j] == NONFINITE
    return bad


@njit(inline="always")
def _scale(total, field):  # pragma: no cover - compiled by numba
    t = max(np.int64(field), 1) - 1022 - Q  # E - 60, in -1081..965
    t1 = max(t, -1022)
    t2 = t - t1  # -59..0: total * 2**t2 is exact for an integer total
    return (total * _from_bits((t2 + 1023) << 52)) * _from_bits((t1 + 1023) << 52)


@njit(cache=True, nogil=True)
def to_float(words, fields, plain):  # pragma: no cover - compiled by numba
    """Turn the one-word totals ``words`` (int64) in place into the float64 bits of ``total * 2**(E - 60)``.

    ``float(total)`` is the correctly rounded integer total and scaling by a power of two is exact: one rounding in
    all, except for results below 2**-1022, which round a second time. Either way the same integers always give
    the same bits. Non-finite columns take ``plain``.
    """
    n = words.shape[0]
    f = fields[:n]
    out = words.view(np.float64)  # the same memory: LLVM sees one pointer, so the in-place loop still vectorizes
    for j in range(n):
        out[j] = _scale(np.float64(words[j]), f[j])
    _take_plain(out, f, plain)


@njit(cache=True, nogil=True)
def to_float_split(hi, lo, fields, plain, out):  # pragma: no cover - compiled by numba
    """Write into ``out`` the floats ``(hi * 2**48 + lo) * 2**(E - 60)`` of the two-word totals.

    ``float(h) * 2**48 + float(l)`` is the correctly rounded integer total whatever its split into h and l (both
    terms are exact), the same float :func:`to_float` gets from one word.
    """
    n = out.shape[0]
    f = fields[:n]
    for j in range(n):
        total = np.float64(hi[j] + (lo[j] >> HI_SHIFT)) * 281474976710656.0 + np.float64(lo[j] & _LO_MASK)
        out[j] = _scale(total, f[j])
    _take_plain(out, f, plain)


@njit(inline="always")
def _take_plain(out, f, plain):  # pragma: no cover - compiled by numba
    if plain.shape[0]:
        for j in range(out.shape[0]):
            if f[j] == NONFINITE:
                out[j] = plain[j]
