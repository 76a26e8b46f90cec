"""Prefix sums: ``inclusive_scan`` (``numpy.cumsum``) and ``exclusive_scan`` (the sum of the elements before each).

The parallel variant is the classic two-pass block scan: each fixed ``CHUNK`` of the input is summed in parallel,
the chunk sums are scanned serially (a few thousand values), then each chunk is scanned again from its offset in
parallel. It reads the input twice (the second time chunk by chunk, often from cache) and writes once. Partial
sums are carried in float64, also for float32 input.
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._dispatch import gpu_twin
from ._flags import EXACT
from ._types import Array
from .blas1 import _asum_range
from .reductions import CHUNK, _sum_range

__all__ = ["exclusive_scan", "inclusive_scan"]


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _scan_range(x, out, lo, hi, start, exclusive):  # pragma: no cover - compiled by numba
    acc = start
    if exclusive:
        for i in range(lo, hi):
            v = x[i]
            out[i] = acc
            acc += v
    else:
        for i in range(lo, hi):
            acc += x[i]
            out[i] = acc
    return acc


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _scan_serial(x, out, exclusive):  # pragma: no cover - compiled by numba
    _scan_range(x, out, 0, x.shape[0], 0.0, exclusive)


#: a chunk whose offset and magnitude (the sum of its |x|) stay below this cannot overflow in a running sum, in
#: any order: half the float64 range leaves room for every rounding
_SAFE_MAGNITUDE = 2.0**1023


@_njit(cache=True, nogil=True, fastmath=EXACT, parallel=True)
def _scan_parallel(x, out, exclusive):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    offsets = _np.empty(nchunks, _np.float64)
    magnitudes = _np.empty(nchunks, _np.float64)
    for c in _prange(nchunks):  # slice views from 0: numba vectorizes those loops (see reductions.py)
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        offsets[c] = _sum_range(x[lo:hi], 0, hi - lo)
        magnitudes[c] = _asum_range(x[lo:hi], 0, hi - lo)
    acc = 0.0
    ordered = False
    for c in range(nchunks):
        s = offsets[c]
        # A running sum that overflows in order (1e308 + 1e308) stays inf in the serial scan, where the chunk's sum
        # in vector lanes may not (1e308 - 1e308 in one lane): later chunks would then start from a finite offset,
        # and the scan come back from inf. Where a finite chunk might overflow so, the scan is done in order instead
        # (before anything is written: out may be x itself). Infinities in the data carry alike either way.
        if _np.isfinite(acc) and _np.isfinite(s) and not abs(acc) + magnitudes[c] < _SAFE_MAGNITUDE:
            ordered = True
        offsets[c] = acc
        acc += s
    if ordered:
        _scan_range(x, out, 0, n, 0.0, exclusive)
        return
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
        _scan_range(x[lo:hi], out[lo:hi], 0, hi - lo, offsets[c], exclusive)


def _scan(x, out, parallel, exclusive):
    v = _checks.as_vector("x", x)
    res = _checks.out_array(out, x.shape, x.dtype)
    ov = _checks.as_vector("out", res)
    v = _checks.apart(ov, v)
    par = _checks.use_parallel(parallel, v.shape[0])
    (_scan_parallel if par else _scan_serial)(v, ov, exclusive)
    return res


@gpu_twin
def inclusive_scan(x: Array, *, out: Array | None = None, parallel: bool | None = None) -> Array:
    """Return the running sums ``out[i] = x[0] + ... + x[i]`` (:func:`numpy.cumsum` of the flattened ``x``).

    Args:
        x (numpy.ndarray): float32 or float64; 1-D of any stride or N-D C-contiguous (scanned in C order).
        out (numpy.ndarray or None): of ``x``'s shape and dtype; may be ``x`` itself (an ``out`` that overlaps ``x``
            otherwise scans a copy of ``x``).
        parallel (bool or None): two-pass block scan under ``prange``; ``None`` decides by size. Its values
            differ from the serial scan's by rounding: each chunk starts from the chunks before summed in another
            order. Where increments fall below the running total's rounding (1e-16 steps on a total of 1), a value
            can come out below the one before it, as in no serial scan: pass ``parallel=False`` where a scan of
            non-negative data must never decrease (a ``searchsorted`` on it, say).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.inclusive_scan(np.array([1.0, 2.0, 3.0])).tolist()
        [1.0, 3.0, 6.0]
    """
    return _scan(x, out, parallel, False)


@gpu_twin
def exclusive_scan(x: Array, *, out: Array | None = None, parallel: bool | None = None) -> Array:
    """Return the running sums before each element: ``out[0] = 0``, ``out[i] = x[0] + ... + x[i-1]``.

    Arguments as :func:`inclusive_scan`.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.exclusive_scan(np.array([1.0, 2.0, 3.0])).tolist()
        [0.0, 1.0, 3.0]
    """
    return _scan(x, out, parallel, True)
