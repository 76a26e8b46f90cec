"""A vectorizable ``log1p`` for arguments in ``[0, 1]`` (the logistic loss's ``log(1 + exp(-|z|))``), and ``log`` for
arguments of 1 or more (the softmax loss's ``log`` of a row's total) built on it.

LLVM has no vector ``log1p`` without SVML, so a loop that calls ``math.log1p`` runs one row at a time. This is
fdlibm's ``log1p`` reduced to that range, written without branches: ``1 + e = 2**k (1 + f)`` with ``k = 0`` and
``f = e`` up to ``sqrt(2) - 1``, and ``k = 1``, ``f = (e - 1) / 2`` above it, so that ``|s| <= 0.1716`` for
``s = f / (2 + f)``; then ``log(1 + f) = f - f**2/2 + s (f**2/2 + R(s**2))`` with fdlibm's degree-14 polynomial
``R`` (error below 2**-58 on that range), plus ``k ln 2``, and fdlibm's correction for the rounding of ``e - 1``.
Within 1 ulp of NumPy's ``log1p`` on points of ``[0, 1]`` (uniform, and exponents down to 2**-900; the test in
tests/kernels/test_logistic.py takes 400,000 of them and the ranges' edges).

An ``e`` below 2**-60 is its own ``log1p`` (the next term, ``e**2 / 2``, is under half an ulp of ``e``): it is
selected before the polynomial, which then runs on 0, so no intermediate (``f**2``, ``s**2``) is subnormal for a
tiny ``e`` (a microcode assist each on Intel; scripts/audit_subnormals.py). The polynomial's value, exactly 0 there,
is added to ``e`` rather than dropped: a lane whose value the result does not use lets LLVM drop the select too (no
trap in its default floating-point environment says otherwise), and one build did (CPython 3.13, NumPy 2.5.5), squaring
``e / 2`` near 1e-261. NaN stays NaN.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

from .intrinsics import bits_to_float as _bits_to_float
from .intrinsics import float_to_bits as _float_to_bits

__all__ = ["log_at_least_one", "log1p_unit"]

_SQRT2_M1 = 0.41421356237309503  # sqrt(2) - 1, rounded down
_TINY = 2.0**-60  # below: log1p(e) rounds to e
_LN2_HI = 6.93147180369123816490e-01  # fdlibm's split of ln 2: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10
# fdlibm's e_log.c: R(z) = Lg1 z + Lg2 z**2 + ... + Lg7 z**7 approximates (log((1 + s) / (1 - s)) - 2 s) / s - s
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
#: 1 / (1 + e) for e between sqrt(2) - 1 and 1/2, the only arguments whose f carries a rounding error: 0.67-0.71
_ONE_OVER_ONE_PLUS_E = 0.686


@_njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def log1p_unit(e):  # pragma: no cover - compiled by numba
    """``log(1 + e)`` for ``0 <= e <= 1`` (or NaN), branch-free, so that loops calling it vectorize.

    Compiled with ``contract`` only, like :func:`hpc.kernels._vexp.exp_nonpos`: inlined into loops whose sums
    need ``reassoc``, the flags stay per instruction and cannot undo this function's rounding. IEEE division
    (``error_model="numpy"``): numba's default checks every divisor for zero, and that branch stops the loop's
    vectorization.
    """
    tiny = e < _TINY
    high = e > _SQRT2_M1
    t = e - 1.0  # exact from e = 1/2 up (Sterbenz); below, off by its last bit at most, which c gives back
    f = t * 0.5 if high else e
    f = 0.0 if tiny else f  # NaN stays (both comparisons are false)
    k = 1.0 if high else 0.0
    # fdlibm's correction: f's rounding error (half of t's, which e - (t + 1) gives exactly) over 1 + f, that is
    # t's error over 1 + e, about 1.46 where the error is not 0 (a 3% error in that factor is below 0.02 ulp)
    c = ((e - (t + 1.0)) * _ONE_OVER_ONE_PLUS_E) if high else 0.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    # fdlibm's even/odd split of R: two short dependency chains instead of one long one
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t1 + t2
    hfsq = 0.5 * f * f
    value = k * _LN2_HI - ((hfsq - (s * (hfsq + r) + (k * _LN2_LO + c))) - f)
    return value + (e if tiny else 0.0)  # value is exactly +0.0 where tiny (f = k = c = 0)


_MANTISSA = (1 << 52) - 1
_ONE_BITS = 1023 << 52  # the exponent field of 1.0


@_njit(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")
def log_at_least_one(x):  # pragma: no cover - compiled by numba
    """``log(x)`` for ``1 <= x < inf`` (or NaN), branch-free: ``x = 2**e m`` with ``1 <= m < 2`` taken from the bits,
    then ``e ln 2 + log1p_unit(m - 1)`` (``m - 1`` is exact). Within 1 ulp of NumPy's ``log`` (the softmax totals,
    between 1 and the number of classes; tests/kernels/test_logistic.py). NaN stays NaN; ``inf`` is out of range."""
    bits = _float_to_bits(x)
    e = _np.float64((bits >> 52) - 1023)
    m = _bits_to_float((bits & _MANTISSA) | _ONE_BITS)
    value = e * _LN2_HI + (log1p_unit(m - 1.0) + e * _LN2_LO)
    return value if x == x else x
