"""A vectorizable ``exp`` for arguments ``<= 0`` (softmax, logsumexp): LLVM has no vector ``exp`` without SVML.

``exp(v) = 2**k * exp(r)`` with ``k = round(v / ln 2)`` and ``|r| <= ln(2)/2``; ``exp(r)`` is a near-minimax
degree-11 polynomial. Against a long double ``exp`` on 5 million points in ``[-708, 0]`` the result is within
1.5e-16 relative (0.94 ulp; 0.26 ulp on average), NumPy's ``exp`` within 1.3e-16. ``k`` comes from adding
``1.5 * 2**52`` to ``v / ln 2`` (the sum's low mantissa bits are ``k``), and ``2**k`` from shifting those bits
into the exponent field and reinterpreting them as a float64 (:func:`hpc.kernels.intrinsics.bits_to_float`, a
register bitcast). One loop, no table, no branch, no scratch buffer: LLVM vectorizes it to packed FMAs on zmm/ymm
registers.
Results below ``exp(-708)`` (including ``exp(-inf)``) flush to 0, with no subnormals; :func:`exp_shifted` takes
the threshold, so that a float32 row gets 0 below float32's smallest normal (:func:`flush_for`); NaN stays NaN.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

from ._flags import REDUCE
from .intrinsics import bits_to_float as _bits_to_float
from .intrinsics import float_to_bits as _float_to_bits

__all__ = ["exp_nonpos", "exp_shifted", "exp_shifted_sum", "flush_for"]

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.9082149292705877e-10
_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: v / ln 2 + this rounds to an integer held in the low mantissa bits
_EXP_ONE = 1023 << 52  # the biased exponent of 1.0
_FLUSH = -708.0  # below: 2**k would be subnormal, the result flushes to 0
_FLUSH_FLOAT32 = -87.336544750553  # 1e-12 above ln(2**-126): exp of it is float32's smallest normal or more
# exp(r) ~ 1 + r + r**2 * q(r) on |r| <= ln(2)/2: q of degree 9 interpolates (exp(r) - 1 - r) / r**2 at Chebyshev
# nodes (near-minimax; fitted in 60-digit decimal arithmetic). Relative error of the degree-11 polynomial with these
# float64 coefficients, in exact arithmetic: 1.6e-17 (0.07 ulp); the Taylor polynomial needs degree 13 for that.
_C2 = 0.5000000000000001
_C3 = 0.16666666666666669
_C4 = 0.04166666666662399
_C5 = 0.008333333333330051
_C6 = 0.0013888888917281794
_C7 = 0.00019841269863105968
_C8 = 2.480152119021773e-05
_C9 = 2.7557268378684192e-06
_C10 = 2.7620138719733994e-07
_C11 = 2.5100424157005067e-08


def flush_for(dtype: _np.dtype) -> float:
    """The ``flush`` of :func:`exp_shifted` for an ``out`` of ``dtype``: below it exp would be subnormal there."""
    return _FLUSH_FLOAT32 if _np.dtype(dtype) == _np.float32 else _FLUSH


@_njit(cache=True, nogil=True, fastmath={"contract"})
def exp_nonpos(v, flush):  # pragma: no cover - compiled by numba
    """``exp(v)`` for ``v <= 0`` (or NaN), 0 below ``flush`` (``>= -708``), branch-free, so that loops calling it
    vectorize (the softmax rows here, the logistic losses in ``logistic.py``)."""
    # Its own function, compiled with contract only: LLVM inlines it into the loops that call it (the flags stay per
    # instruction), where reassoc, which their sums need, could undo the rounding.
    # A flushed lane computes exp(flush), a normal number, and the last line multiplies it by 0: computed from v
    # itself, v just below log(2**-1022) gave k = -1022 and p < 1, a subnormal product that AVX-512 code masked away
    # but 256-bit (AVX2) code formed before its blend (scripts/audit_subnormals.py, on a znver3 CPU). The product,
    # not a select of 0, keeps the flushed lane's value in use: were it dropped, LLVM may also drop the select of
    # flush for v (the default floating-point environment has no traps to keep), and one build did so in log1p_unit.
    low = v < flush
    v = flush if low else v  # NaN stays (the comparison is false)
    z = v * _LOG2E + _SHIFTER
    kf = z - _SHIFTER
    r = (v - kf * _LN2_HI) - kf * _LN2_LO
    p = _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + 1.0
    p = p * r + 1.0
    e = p * _bits_to_float((_float_to_bits(z) << 52) + _EXP_ONE)  # 2**k: k's bits into the exponent field
    return e * (0.0 if low else 1.0)  # exp(flush) * 0 is exactly 0; NaN * 1 stays NaN


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def exp_shifted(x, shift, out, flush):  # pragma: no cover - compiled by numba
    """Write ``exp(x - shift)`` to ``out`` (``x``'s length; may be ``x``) and return the float64 sum of the values.

    Every ``x - shift`` must be ``<= 0`` (or NaN). Where ``x - shift < flush`` the value is 0: pass
    :func:`flush_for` of ``out``'s dtype, and no value stored is subnormal (a float32 ``out`` would otherwise hold
    subnormals, each a microcode assist on Intel where it is stored and again where it is read). Pass views that
    start at 0 (``x[lo:hi]``): numba vectorizes loops over those, not loops with an offset.
    """
    s = 0.0
    for j in range(x.shape[0]):
        e = exp_nonpos(_np.float64(x[j]) - shift, flush)
        out[j] = e
        s += e
    return s


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def exp_shifted_sum(x, shift):  # pragma: no cover - compiled by numba
    """Return the float64 sum of ``exp(x - shift)`` (every ``x - shift <= 0`` or NaN), storing nothing."""
    s = 0.0
    for j in range(x.shape[0]):
        s += exp_nonpos(_np.float64(x[j]) - shift, _FLUSH)
    return s
