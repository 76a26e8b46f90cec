"""Row-wise kernels over the last axis of a 2-D array: ``softmax``, ``logsumexp``, ``layernorm`` (scipy/torch-like).

Each row is handled by one thread (``prange`` over rows in the parallel variant). softmax and logsumexp read it
once, in blocks of ``ROW_BLOCK`` elements: the block's maximum, then, while the block is in L1, the exponentials
shifted by the running maximum (a vectorized ``exp``, see ``hpc.kernels._vexp``) and their sum in one loop; a
new maximum rescales the sum (the online softmax). softmax then scales its output by one factor per block. For a
row that fits in cache that reads the input once from memory and writes the output once, where NumPy makes a
temporary array per operation (a longer row's output is read back and written again by the scaling pass). A 1-D
input is treated as one row.
"""

from __future__ import annotations

import math as _math
from typing import Any

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._dispatch import gpu_twin
from ._flags import EXACT, REDUCE
from ._types import Array, Real
from ._vexp import exp_shifted, exp_shifted_sum, flush_for
from .intrinsics import fmaximum as _fmaximum

__all__ = ["ROW_BLOCK", "layernorm", "logsumexp", "softmax"]

#: elements per block of softmax/logsumexp (8 KiB of float64: the exp pass finds the block in L1)
ROW_BLOCK = 1024


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _row_max(x):  # pragma: no cover - compiled by numba
    # the row's maximum as a float64: NaN if the row holds a NaN, -inf for an empty row (llvm.maximum: vectorized)
    n = x.shape[0]
    if n == 0:
        return -_np.inf
    m = x[0]
    for j in range(n):
        m = _fmaximum(m, x[j])
    return _np.float64(m)


_F64_FLUSH = flush_for(_np.float64)
#: per output dtype, what softmax's flush needs: the exp's threshold and the smallest normal number
_LIMITS = {_np.dtype(t): (flush_for(t), float(_np.finfo(t).tiny)) for t in (_np.float32, _np.float64)}
_NORMAL_MARGIN = 1.0 + 2.0**-20  # a product a little above the smallest normal is still normal once rounded


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _rescaled(s, d):  # pragma: no cover - compiled by numba
    # s * exp(d) for d <= 0 (a new row maximum), 0 where exp(d) would be subnormal; s is 0 or >= 1 (it holds the
    # previous maximum's own term), so the product is 0 or normal
    return s * _math.exp(d) if d >= _F64_FLUSH else 0.0


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_row(x, out, shifts, flush, tiny):  # pragma: no cover - compiled by numba
    # one pass over memory, block by block: the block's maximum, then exp(block - running max) written to out
    # and summed while the block is in L1; a new maximum rescales the sum, and each block's shift is kept in
    # shifts (one per block) for the scaling pass, which finds out still in cache if the row fits there
    n = x.shape[0]
    m = -_np.inf
    s = 0.0
    for c in range((n + ROW_BLOCK - 1) // ROW_BLOCK):
        lo, hi = c * ROW_BLOCK, min(n, (c + 1) * ROW_BLOCK)
        v, o = x[lo:hi], out[lo:hi]
        bm = _row_max(v)
        if not _math.isfinite(bm):
            if bm == -_np.inf:  # every element -inf: zeros once the maximum is finite
                for j in range(o.shape[0]):
                    o[j] = 0.0
                shifts[c] = m
                continue
            # a NaN or +inf: the reference formula gives NaN everywhere (a NaN maximum, or inf - inf in the sum)
            for j in range(n):
                out[j] = _np.nan
            return
        if bm > m:
            s = _rescaled(s, m - bm)
            m = bm
        shifts[c] = m
        s += exp_shifted(v, m, o, flush)
    if m == -_np.inf:  # all -inf: exp(-inf - -inf) is NaN in the reference formula
        for j in range(n):
            out[j] = _np.nan
        return
    # The scaling: a block's values times f = exp(its shift - m) / s. Select before multiplying: a value whose
    # product would fall below `lowest` (just above out's smallest normal) is made 0 first, so no lane of the
    # vector multiply makes a subnormal; a block whose every product would is all 0 (f is never formed).
    inv = 1.0 / s
    lowest = tiny * _NORMAL_MARGIN
    for c in range((n + ROW_BLOCK - 1) // ROW_BLOCK):
        o = out[c * ROW_BLOCK : min(n, (c + 1) * ROW_BLOCK)]
        d = shifts[c] - m
        e = 1.0 if d == 0.0 else _rescaled(1.0, d)
        f = e * inv if e >= lowest * s else 0.0  # f >= lowest, or 0
        cut = lowest / f if f > 0.0 else _np.inf
        for j in range(o.shape[0]):
            q = o[j] if not (o[j] < cut) else 0.0
            o[j] = q * f


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_serial(x, out, flush, tiny):  # pragma: no cover - compiled by numba
    shifts = _np.empty((x.shape[1] + ROW_BLOCK - 1) // ROW_BLOCK, _np.float64)
    for r in range(x.shape[0]):
        _softmax_row(x[r], out[r], shifts, flush, tiny)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _softmax_parallel(x, out, flush, tiny):  # pragma: no cover - compiled by numba
    shifts = _np.empty((x.shape[0], (x.shape[1] + ROW_BLOCK - 1) // ROW_BLOCK), _np.float64)  # no allocation per row
    for r in _prange(x.shape[0]):
        _softmax_row(x[r], out[r], shifts[r], flush, tiny)


# In place (out is x): the row loops read x and write out, and where the two are one array LLVM's runtime overlap
# check takes their scalar forms (softmax 2.4x, layernorm 2.6x slower); each row is read from a copy in cache.
@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_in_place_serial(x, flush, tiny):  # pragma: no cover - compiled by numba
    shifts = _np.empty((x.shape[1] + ROW_BLOCK - 1) // ROW_BLOCK, _np.float64)
    row = _np.empty(x.shape[1], x.dtype)
    for r in range(x.shape[0]):
        row[:] = x[r]
        _softmax_row(row, x[r], shifts, flush, tiny)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _softmax_in_place_parallel(x, flush, tiny):  # pragma: no cover - compiled by numba
    shifts = _np.empty((x.shape[0], (x.shape[1] + ROW_BLOCK - 1) // ROW_BLOCK), _np.float64)
    for r in _prange(x.shape[0]):
        _softmax_row(x[r].copy(), x[r], shifts[r], flush, tiny)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _lse_row(x):  # pragma: no cover - compiled by numba
    # one pass over memory, block by block as in _softmax_row; nothing stored
    n = x.shape[0]
    m = -_np.inf
    s = 0.0
    for lo in range(0, n, ROW_BLOCK):
        v = x[lo : min(n, lo + ROW_BLOCK)]
        bm = _row_max(v)
        if not _math.isfinite(bm):
            if bm == -_np.inf:  # adds nothing
                continue
            return _row_max(x)  # NaN if the row holds one, else +inf (as scipy)
        if bm > m:
            s = _rescaled(s, m - bm)
            m = bm
        s += exp_shifted_sum(v, m)
    if m == -_np.inf:  # empty, or all -inf
        return m
    return m + _math.log(s)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _lse_serial(x, out):  # pragma: no cover - compiled by numba
    for r in range(x.shape[0]):
        out[r] = _lse_row(x[r])


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _lse_parallel(x, out):  # pragma: no cover - compiled by numba
    for r in _prange(x.shape[0]):
        out[r] = _lse_row(x[r])


# error_model="numpy": IEEE division. Under numba's default ("python") 1.0 / 0.0 raises ZeroDivisionError, which the
# serial variant raised for a constant row with eps=0 while the parallel one returned 0.0 for it;
# the reference formula gives 0 / 0 = NaN there, and so do both now (0 * inf).
@_njit(cache=True, nogil=True, fastmath=REDUCE, error_model="numpy")
def _layernorm_row(x, gamma, beta, eps, out):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    s = 0.0
    for j in range(n):
        s += x[j]
    mu = s / n
    q = 0.0
    for j in range(n):
        d = x[j] - mu
        q += d * d
    rstd = 1.0 / _math.sqrt(q / n + eps)
    for j in range(n):
        out[j] = (x[j] - mu) * rstd * gamma[j] + beta[j]


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _layernorm_serial(x, gamma, beta, eps, out):  # pragma: no cover - compiled by numba
    for r in range(x.shape[0]):
        _layernorm_row(x[r], gamma, beta, eps, out[r])


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _layernorm_parallel(x, gamma, beta, eps, out):  # pragma: no cover - compiled by numba
    for r in _prange(x.shape[0]):
        _layernorm_row(x[r], gamma, beta, eps, out[r])


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _layernorm_in_place_serial(x, gamma, beta, eps):  # pragma: no cover - compiled by numba
    row = _np.empty(x.shape[1], x.dtype)
    for r in range(x.shape[0]):
        row[:] = x[r]
        _layernorm_row(row, gamma, beta, eps, x[r])


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _layernorm_in_place_parallel(x, gamma, beta, eps):  # pragma: no cover - compiled by numba
    for r in _prange(x.shape[0]):
        _layernorm_row(x[r].copy(), gamma, beta, eps, x[r])


def _rows(x):
    x = _checks.check_float("x", x)
    if x.ndim == 1:
        return x.reshape(1, -1)
    if x.ndim != 2:
        raise ValueError(f"x must be a 1-D or 2-D array; got shape {x.shape}")
    return x


def _out_rows(out, x, x2):
    res = _checks.out_array(out, x.shape, x.dtype)
    return res, res.reshape(x2.shape) if res.ndim == 1 else res


@gpu_twin
def softmax(x: Array, *, out: Array | None = None, parallel: bool | None = None) -> Array:
    """Return ``exp(x - max) / sum(exp(x - max))`` over each row of ``x`` (``scipy.special.softmax(x, axis=-1)``).

    Args:
        x (numpy.ndarray): float32 or float64, 1-D (one row) or 2-D (rows on axis 0), any strides.
        out (numpy.ndarray or None): where to write, of ``x``'s shape and dtype (may be ``x`` itself;
            any other overlap with ``x`` reads a copy of it).
        parallel (bool or None): one row per thread under ``prange``; ``None`` decides by size.

    Returns:
        ``out``. A row holding a NaN is all NaN; a row holding ``+inf`` gives NaN where ``inf - inf`` appears.
        Probabilities below about 3.3e-308 (``exp(-708)``) in float64 and below 1.2e-38 (the smallest normal) in
        float32 are 0 where NumPy may give a subnormal or a tiny normal number: no subnormal is made, read or
        stored (each costs a microcode assist on Intel; docs/kernels.md, "Per-element hazards").

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.softmax(np.log(np.array([[1.0, 3.0]]))).round(6).tolist()
        [[0.25, 0.75]]
    """
    x2 = _rows(x)
    res, o2 = _out_rows(out, x, x2)
    x2 = _checks.apart(o2, x2)
    par = _checks.use_parallel(parallel, x2.size) and x2.shape[0] > 1
    if _checks.same_elements(o2, x2):
        (_softmax_in_place_parallel if par else _softmax_in_place_serial)(o2, *_LIMITS[o2.dtype])
    else:
        (_softmax_parallel if par else _softmax_serial)(x2, o2, *_LIMITS[o2.dtype])
    return res


def logsumexp(x: _np.ndarray, *, out: _np.ndarray | None = None, parallel: bool | None = None) -> Any:
    """Return ``log(sum(exp(x)))`` over each row of ``x``, computed stably (``scipy.special.logsumexp(x, axis=-1)``).

    Computed as ``max + log(sum(exp(x - max)))``: where the answer is near 0 (a row's maximum near 0, the other terms
    far below it), SciPy's ``max + log1p(...)`` of the other terms keeps digits this form rounds away
    (``logsumexp([0, -40])`` is 0.0 here and 4.25e-18 in SciPy 1.17; the absolute difference is below an ulp of 1).

    Args:
        x (numpy.ndarray): float32 or float64, 1-D (one row: returns a scalar) or 2-D (returns one value per row).
        out (numpy.ndarray or None): 1-D, one element per row (2-D ``x`` only).
        parallel (bool or None): one row per thread under ``prange``; ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> round(float(kernels.logsumexp(np.log(np.array([1.0, 3.0])))), 12)
        1.38629436112
    """
    x2 = _rows(x)
    if x.ndim == 1:
        if out is not None:
            raise ValueError(f"out must be None for a 1-D x (the result is a scalar); got {type(out).__name__}")
        res = _np.empty(1, x.dtype)
    else:
        res = _checks.out_array(out, (x.shape[0],), x.dtype)
        x2 = _checks.apart(res, x2)  # out inside x: a row written before it is read
    (_lse_parallel if _checks.use_parallel(parallel, x2.size) and x2.shape[0] > 1 else _lse_serial)(x2, res)
    return res[0] if x.ndim == 1 else res


def layernorm(
    x: _np.ndarray, gamma: _np.ndarray | None = None, beta: _np.ndarray | None = None, *, eps: Real = 1e-5,
    out: _np.ndarray | None = None, parallel: bool | None = None,
) -> _np.ndarray:
    """Return ``(x - mean) / sqrt(var + eps) * gamma + beta`` over each row (``torch.nn.functional.layer_norm``).

    Args:
        x (numpy.ndarray): float32 or float64, 1-D (one row) or 2-D, any strides.
        gamma, beta (numpy.ndarray or None): 1-D, one element per column, ``x``'s dtype; ``None``: ones, zeros.
        eps (float): added to the (biased) variance; ``0.0`` makes a constant row NaN (``0 / 0``, as the formula).
        out (numpy.ndarray or None): where to write, of ``x``'s shape and dtype.
        parallel (bool or None): one row per thread under ``prange``; ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.layernorm(np.array([1.0, 3.0]), eps=0.0).tolist()
        [-1.0, 1.0]
    """
    x2 = _rows(x)
    cols = x2.shape[1]
    gamma = _np.ones(cols, x.dtype) if gamma is None else _checks.check_float("gamma", gamma)
    beta = _np.zeros(cols, x.dtype) if beta is None else _checks.check_float("beta", beta)
    _checks.check_same_dtype(x=x, gamma=gamma, beta=beta)
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v.shape != (cols,):
            raise ValueError(f"{name} must have shape ({cols},), one element per column; got {v.shape}")
    if not _checks.real_scalar("eps", eps, _np.dtype(_np.float64)) >= 0.0:  # TypeError naming eps for None, "1"
        raise ValueError(f"eps must be a non-negative float; got {eps!r}")
    res, o2 = _out_rows(out, x, x2)
    if cols == 0:  # rows of nothing: nothing to normalize (an empty result, as torch's)
        return res
    x2, gamma, beta = (_checks.apart(o2, v) for v in (x2, gamma, beta))
    par = _checks.use_parallel(parallel, x2.size) and x2.shape[0] > 1
    if _checks.same_elements(o2, x2):
        (_layernorm_in_place_parallel if par else _layernorm_in_place_serial)(o2, gamma, beta, float(eps))
    else:
        (_layernorm_parallel if par else _layernorm_serial)(x2, gamma, beta, float(eps), o2)
    return res
