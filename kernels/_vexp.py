"""A vectorizable ``exp`` for arguments ``<= 0`` (softmax, logsumexp): LLVM has no vector ``exp`` without SVML.

``exp(x) = 2**k * exp(r)`` with ``k = round(x / ln 2)`` and ``|r| <= ln(2)/2``; ``exp(r)`` is a degree-13 Taylor
polynomial (error below 1 ulp of float64 on that interval), and ``2**k`` is built by writing ``(k + 1023) << 52``
into an int64 buffer that is read back through a float64 view. Every loop is branch-free, so LLVM vectorizes it.
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


@_njit(cache=True, nogil=True, fastmath={"contract"})
def _exp_parts(x, lo, hi, shift, pbuf, kbuf):  # pragma: no cover - compiled by numba
    n = hi - lo
    xv = x[lo:hi]  # a view from 0: numba vectorizes loops over it, not loops with an offset into x
    for j in range(n):
        v = _np.float64(xv[j]) - shift
        v = v if v >= _FLUSH - 40.0 else _FLUSH - 40.0  # clamp: keeps k in range (NaN passes: comparison false)
        k = _np.floor(v * _LOG2E + 0.5)
        r = (v - k * _LN2_HI) - k * _LN2_LO
        p = _C13
        p = p * r + _C12
        p = p * r + _C11
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
        pbuf[j] = p if not (v < _FLUSH) else 0.0
        kk = k if k >= -1022.0 else -1022.0  # NaN and flushed lanes: any finite scale (their p is NaN or 0)
        kbuf[j] = (_np.int64(kk) + 1023) << 52


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
