"""The numba loops of the reproducible sum: exponents, fixed-point quantization, conversion back to floats.

Every loop works on a float's IEEE-754 bits or scales by powers of two built from bits (register bitcasts from
:mod:`hpc.kernels.intrinsics`): no libm call, no table, no branch, so LLVM vectorizes each loop (AVX-512 has
int64 <-> float64 conversions and packed rounding).

Notation: ``b`` is a biased exponent field (0..2047), ``E = max(b, 1) - 1022`` the exponent with ``|x| < 2**E``
for every ``x`` whose field is at most ``b`` (subnormals included), and a term ``x`` is replaced by the integer
``q = round(x * 2**(Q - E))``, ``Q = 60``, rounded to nearest (half to even): ``|q| <= 2**60``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hpc.kernels.intrinsics import bits_to_float as _from_bits
from hpc.kernels.intrinsics import float_to_bits as _bits

__all__ = [
    "HI_SHIFT",
    "NAN_BITS",
    "NONFINITE",
    "ONE_WORD_TERMS",
    "Q",
    "exponents",
    "max_into",
    "nonfinite_flags",
    "nonfinite_totals",
    "quantize",
    "quantize_split",
    "sum_columns",
    "to_float",
    "to_float_split",
]

NONFINITE = 0x7FF  # the exponent field of inf and NaN: a column holding one takes the rule of NAN_BITS
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
    return np.int64(v if abs(v) <= 1.2e18 else 0.0)  # inf/NaN (columns of NAN_BITS's rule): 0, not undefined


#: Below this many columns the loops run down each column: along a row of 1-7 columns the inner loop is too short
#: to vectorize (about 13x slower for one column; docs/performance.md, "Design choices measured").
_NARROW = 8


@njit(inline="always")
def _column(rows, j):  # pragma: no cover - compiled by numba
    # column j as C-contiguous memory (typed so: then the loops over it vectorize): numba's ascontiguousarray
    # returns a view where the column already is contiguous (rows of one column), else a copy
    return np.ascontiguousarray(rows[:, j])


# Row steps shared by the passes below and by sum_columns: each works along one row (or tile) of terms.


@njit(inline="always")
def _field(x):  # pragma: no cover - compiled by numba
    return np.int16((_bits(x) >> 52) & 0x7FF)


@njit(inline="always")
def _max_fields(r, f):  # pragma: no cover - compiled by numba
    for j in range(r.shape[0]):
        f[j] = max(f[j], _field(r[j]))


@njit(inline="always")
def _add_quantized(r, f, q):  # pragma: no cover - compiled by numba
    for j in range(r.shape[0]):
        q[j] += _quantize(r[j], f[j])


@njit(inline="always")
def _add_split(r, f, hi, lo):  # pragma: no cover - compiled by numba
    # the two-word form of each quantized term, added: hi gets t >> 48 (|t >> 48| <= 2**12), lo the low 48 bits
    for j in range(r.shape[0]):
        t = _quantize(r[j], f[j])
        hi[j] += t >> HI_SHIFT
        lo[j] += t & _LO_MASK


@njit(inline="always")
def _carry(hi, lo):  # pragma: no cover - compiled by numba
    # back to the canonical form 0 <= lo < 2**48 (at most every _CARRY_EVERY rows, so lo never overflows)
    for j in range(hi.shape[0]):
        hi[j] += lo[j] >> HI_SHIFT
        lo[j] &= _LO_MASK


@njit(inline="always")
def _split_float(h, low):  # pragma: no cover - compiled by numba
    # float(h) * 2**48 + float(l): the correctly rounded total h * 2**48 + l, both terms exact
    return np.float64(h + (low >> HI_SHIFT)) * _TWO_48 + np.float64(low & _LO_MASK)


_TWO_48 = float(1 << HI_SHIFT)


@njit(cache=True, nogil=True)
def exponents(rows, out):  # pragma: no cover - compiled by numba
    """Write into ``out[:n]`` the largest exponent field of each column of ``rows`` (k, n); 0x7FF: inf or NaN."""
    k, n = rows.shape
    o = out[:n]
    if n < _NARROW:  # few columns, many rows (a dot product's one column): down the columns
        for j in range(n):
            c = _column(rows, j)
            field = np.int64(0)
            for i in range(k):
                field = max(field, (_bits(c[i]) >> 52) & 0x7FF)
            o[j] = np.int16(field)
        return
    if k == 0:
        o[:] = 0
    else:  # the first row assigns, as in quantize
        r = rows[0]
        for j in range(n):
            o[j] = _field(r[j])
    for i in range(1, k):
        _max_fields(rows[i], o)


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
    if k == 0:
        for j in range(n):
            q[j] = 0
    else:  # the first row assigns: no separate zeroing pass over q (these loops are bound by memory traffic)
        r = rows[0]
        for j in range(n):
            q[j] = _quantize(r[j], f[j])
    for i in range(1, k):
        _add_quantized(rows[i], f, q)
    return _any_nonfinite(f)


@njit(inline="always")
def _split_sum(c, field):  # pragma: no cover - compiled by numba
    # the quantized terms of c summed as (sum of t >> 48, sum of t & (2**48 - 1)); a loop of its own vectorizes,
    # the same loop nested in quantize_split's carry loop did not (docs/performance.md, "Design choices measured")
    h, low = np.int64(0), np.int64(0)
    for i in range(c.shape[0]):
        t = _quantize(c[i], field)
        h += t >> HI_SHIFT
        low += t & _LO_MASK
    return h, low


@njit(cache=True, nogil=True)
def quantize_split(rows, fields, hi, lo):  # pragma: no cover - compiled by numba
    """Like :func:`quantize` for any number of terms: the sums as ``hi * 2**48 + lo``, ``0 <= lo < 2**48``."""
    k, n = rows.shape
    f = fields[:n]
    if n < _NARROW:  # down the columns, as in exponents; the same canonical (hi, lo) of the same total
        for j in range(n):
            c = _column(rows, j)
            field = f[j]
            h_total, l_total = np.int64(0), np.int64(0)
            for start in range(0, k, _CARRY_EVERY):
                h, low = _split_sum(c[start : start + _CARRY_EVERY], field)
                h_total += h + (low >> HI_SHIFT)
                l_total += low & _LO_MASK
                h_total += l_total >> HI_SHIFT
                l_total &= _LO_MASK
            hi[j] = h_total
            lo[j] = l_total
        return _any_nonfinite(f)
    for j in range(n):
        hi[j] = 0
        lo[j] = 0
    for start in range(0, k, _CARRY_EVERY):
        for i in range(start, min(k, start + _CARRY_EVERY)):
            _add_split(rows[i], f, hi, lo)
        _carry(hi[:n], lo[:n])
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
def to_float(words, fields, nonfinite):  # pragma: no cover - compiled by numba
    """Turn the one-word totals ``words`` (int64) in place into the float64 bits of ``total * 2**(E - 60)``.

    ``float(total)`` is the correctly rounded integer total and scaling by a power of two is exact: one rounding in
    all, except for results below 2**-1022, which round a second time. Either way the same integers always give
    the same bits. Non-finite columns take ``nonfinite`` (from :func:`nonfinite_totals`).
    """
    n = words.shape[0]
    f = fields[:n]
    out = words.view(np.float64)  # the same memory: LLVM sees one pointer, so the in-place loop still vectorizes
    for j in range(n):
        out[j] = _scale(np.float64(words[j]), f[j])
    _take_nonfinite(out, f, nonfinite)


@njit(cache=True, nogil=True)
def to_float_split(hi, lo, fields, nonfinite, out):  # pragma: no cover - compiled by numba
    """Write into ``out`` the floats ``(hi * 2**48 + lo) * 2**(E - 60)`` of the two-word totals.

    ``float(h) * 2**48 + float(l)`` is the correctly rounded integer total whatever its split into h and l (both
    terms are exact), the same float :func:`to_float` gets from one word.
    """
    n = out.shape[0]
    f = fields[:n]
    for j in range(n):
        out[j] = _scale(_split_float(hi[j], lo[j]), f[j])
    _take_nonfinite(out, f, nonfinite)


# A column holding inf or NaN has the sum IEEE arithmetic gives in exact arithmetic, whatever the order: NaN if a
# term is NaN or both infinities occur, else the one infinity; its finite terms cannot change that. The NaN is
# always NAN_BITS: a plain sum would pass on one operand's payload and sign, and which one depends on the order.
NAN_BITS = 0x7FF8000000000000
_FLAG_NAN, _FLAG_POS_INF, _FLAG_NEG_INF = 1, 2, 4


@njit(inline="always")
def _nonfinite_flag(x):  # pragma: no cover - compiled by numba
    if x != x:
        return np.uint8(_FLAG_NAN)
    if x == np.inf:
        return np.uint8(_FLAG_POS_INF)
    if x == -np.inf:
        return np.uint8(_FLAG_NEG_INF)
    return np.uint8(0)


@njit(inline="always")
def _nonfinite_total(flags):  # pragma: no cover - compiled by numba
    if flags & _FLAG_NAN or flags & (_FLAG_POS_INF | _FLAG_NEG_INF) == _FLAG_POS_INF | _FLAG_NEG_INF:
        return _from_bits(np.int64(NAN_BITS))
    return np.inf if flags & _FLAG_POS_INF else -np.inf


@njit(cache=True, nogil=True)
def nonfinite_flags(rows, fields, flags):  # pragma: no cover - compiled by numba
    """Set ``flags[j]`` to what column ``j`` of ``rows`` (k, n) holds, where ``fields[j]`` is non-finite: bit 1 a
    NaN, bit 2 +inf, bit 4 -inf (0 elsewhere). OR-ed over ranks, :func:`nonfinite_totals` turns them into sums."""
    k, n = rows.shape
    for j in range(n):  # down the columns: only the non-finite ones are read (and a dot product has one column)
        flag = np.uint8(0)
        if fields[j] == NONFINITE:
            for i in range(k):
                flag |= _nonfinite_flag(rows[i, j])
        flags[j] = flag


@njit(cache=True, nogil=True)
def nonfinite_totals(flags, fields, out):  # pragma: no cover - compiled by numba
    """Write into ``out[j]`` the sum of non-finite column ``j`` from its OR-ed ``flags`` (see the rule above)."""
    for j in range(out.shape[0]):
        if fields[j] == NONFINITE:
            out[j] = _nonfinite_total(flags[j])


@njit(inline="always")
def _take_nonfinite(out, f, nonfinite):  # pragma: no cover - compiled by numba
    if nonfinite.shape[0]:
        for j in range(out.shape[0]):
            if f[j] == NONFINITE:
                out[j] = nonfinite[j]


_TILE = 512  # columns per step of sum_columns: their terms, exponents, factors and integers stay in L1 (32 KiB)
_ONE_STEP_FROM = 82  # fields from here up scale by 2**(Q - E) in one multiplication (Q - E <= 1000)


@njit(inline="always")
def _row(rows, own, me, i, s, m):  # pragma: no cover - compiled by numba
    return own[s : s + m] if i == me else rows[i][s : s + m]


@njit(cache=True, nogil=True)
def sum_columns(rows, own, me, lo, hi, out):  # pragma: no cover - compiled by numba
    """Write into ``out[: hi - lo]`` the reproducible sums of columns ``lo..hi`` of ``rows`` (k, N), C-contiguous.

    Row ``me`` is read from ``own`` (N) instead (-1: none is): a rank's own terms need not be copied out to be
    summed. Every term is at hand (the shared-memory lane of :mod:`hpc.mpi.reproducible`), so the three passes of
    the collective lane (:func:`exponents`, :func:`quantize`, :func:`to_float`) run tile by tile in one call, with
    the same bits: the same exponent, the same rounding of each term, an exact integer total. More than
    :data:`ONE_WORD_TERMS` rows take the two-word form, whose float is the same (see :func:`to_float_split`).
    Non-finite columns take the rule of :data:`NAN_BITS` (NaN for a NaN or both infinities, else the infinity).
    """
    k = rows.shape[0]
    f = np.empty(_TILE, np.int16)
    up = np.empty(_TILE, np.float64)
    q = np.empty(_TILE, np.int64)
    q_lo = np.empty(_TILE, np.int64)
    one_word = k <= ONE_WORD_TERMS
    for s in range(lo, hi, _TILE):
        m = min(_TILE, hi - s)
        fm, um, qm, lm = f[:m], up[:m], q[:m], q_lo[:m]
        fm[:] = 0
        for i in range(k):
            _max_fields(_row(rows, own, me, i, s, m), fm)
        lowest, highest = np.int16(NONFINITE), np.int16(0)
        for j in range(m):
            lowest = min(lowest, fm[j])
            highest = max(highest, fm[j])
        o = out[s - lo : s - lo + m]
        if one_word and lowest >= _ONE_STEP_FROM and highest < NONFINITE:
            # The common tile: every term finite, every factor a normal float. _quantize's two multiplications
            # give the same exact product as one, and its range check is moot (|x| < 2**E: |q| <= 2**60).
            for j in range(m):
                um[j] = _from_bits(np.int64(Q + 1022 - fm[j] + 1023) << 52)  # 2**(Q - E)
            r = _row(rows, own, me, 0, s, m)
            for j in range(m):
                qm[j] = np.int64(np.rint(r[j] * um[j]))
            for i in range(1, k):
                r = _row(rows, own, me, i, s, m)
                for j in range(m):
                    qm[j] += np.int64(np.rint(r[j] * um[j]))
            for j in range(m):  # 2**(E - Q) is normal too: _scale's second factor is 1
                o[j] = np.float64(qm[j]) * _from_bits(np.int64(fm[j] - Q - 1022 + 1023) << 52)
            continue
        qm[:] = 0
        if one_word:  # the steps of quantize and to_float
            for i in range(k):
                _add_quantized(_row(rows, own, me, i, s, m), fm, qm)
            for j in range(m):
                o[j] = _scale(np.float64(qm[j]), fm[j])
        else:  # those of quantize_split and to_float_split
            lm[:] = 0
            for start in range(0, k, _CARRY_EVERY):
                for i in range(start, min(k, start + _CARRY_EVERY)):
                    _add_split(_row(rows, own, me, i, s, m), fm, qm, lm)
                _carry(qm, lm)
            for j in range(m):
                o[j] = _scale(_split_float(qm[j], lm[j]), fm[j])
        if highest == NONFINITE:
            for j in range(m):
                if fm[j] == NONFINITE:
                    flags = np.uint8(0)
                    for i in range(k):
                        flags |= _nonfinite_flag(_row(rows, own, me, i, s + j, 1)[0])
                    o[j] = _nonfinite_total(flags)
