"""A vectorizable ``exp`` for arguments ``<= 0`` (softmax, logsumexp): LLVM has no vector ``exp`` without SVML.

``exp(x) = 2**k * 2**(j/64) * exp(r)`` with ``64 k + j = round(64 x / ln 2)`` and ``|r| <= ln(2)/128``;
``exp(r)`` is a degree-6 Taylor polynomial (error below 1 ulp of float64 on that interval), ``2**(j/64)`` comes
from a 64-entry table, and ``2**k`` is built by writing ``(k + 1023) << 52`` into an int64 buffer that is read back
through a float64 view. Every loop is branch-free, so LLVM vectorizes it.
Results below ``exp(-708)`` flush to 0 (no subnormals); NaN stays NaN.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

from ._flags import REDUCE

__all__ = ["BLOCK", "exp_block"]

#: elements per call of :func:`exp_block` (the scratch buffers' length)
BLOCK = 512

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that k * _LN2_HI is exact for |k| < 2**11
_LN2_LO = 1.9082149292705877e-10
_FLUSH = -708.0
_C = (
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800,
)  # fmt: skip
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _C[2:]


#: 2**(j/64) for j = 0..63, correctly rounded (the table of the table-driven exp)
_T64 = _np.array([2.0 ** (j / 64) for j in range(64)])
_INV_LN2_64 = 92.33248261689366  # 64 / ln 2
_LN2_64_HI = 0.010830424696223417  # ln(2)/64 with 36 significant bits: k * _LN2_64_HI is exact for |k| < 2**17
_LN2_64_LO = 2.572804622327669e-14
_P2, _P3, _P4, _P5, _P6 = 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720


@_njit(cache=True, nogil=True, fastmath={"contract"})
def _exp_parts(x, lo, hi, shift, pbuf, kbuf):  # pragma: no cover - compiled by numba
    # exp(v) = 2**(K >> 6) * 2**((K & 63) / 64) * exp(r), K = round(64 v / ln 2), |r| <= ln(2)/128: a degree-6
    # polynomial is below 1 ulp there, half the work of the degree-13 one the wider interval needed
    n = hi - lo
    xv = x[lo:hi]  # a view from 0: numba vectorizes loops over it, not loops with an offset into x
    for j in range(n):
        v = _np.float64(xv[j]) - shift
        v = v if v >= _FLUSH - 40.0 else _FLUSH - 40.0  # clamp: keeps k in range (NaN passes: comparison false)
        kf = _np.floor(v * _INV_LN2_64 + 0.5)
        r = (v - kf * _LN2_64_HI) - kf * _LN2_64_LO
        p = _P6
        p = p * r + _P5
        p = p * r + _P4
        p = p * r + _P3
        p = p * r + _P2
        p = p * r + 1.0
        p = p * r + 1.0
        kf = kf if kf == kf else 0.0  # NaN lanes: any index (their p is NaN already)
        k64 = _np.int64(kf)
        p = p * _T64[k64 & 63]
        pbuf[j] = p if not (v < _FLUSH) else 0.0
        k = k64 >> 6
        k = k if k >= -1022 else -1022  # flushed lanes: any finite scale (their p is 0)
        kbuf[j] = (k + 1023) << 52


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def exp_block(x, lo, hi, shift, dst, dlo, pbuf, kbuf):  # pragma: no cover - compiled by numba
    """Write ``exp(x[lo:hi] - shift)`` to ``dst[dlo:dlo+hi-lo]`` and return the float64 sum of those values.

    ``hi - lo <= BLOCK``; ``pbuf`` (float64) and ``kbuf`` (int64) are scratch arrays of ``BLOCK`` elements.
    Every ``x - shift`` must be ``<= 0`` (or NaN). ``dst`` may be ``pbuf`` itself (``dlo = 0``) to get the sum only.
    """
    _exp_parts(x, lo, hi, shift, pbuf, kbuf)
    fbuf = kbuf.view(_np.float64)
    dv = dst[dlo : dlo + hi - lo]
    s = 0.0
    for j in range(hi - lo):
        e = pbuf[j] * fbuf[j]
        dv[j] = e
        s += e
    return s
