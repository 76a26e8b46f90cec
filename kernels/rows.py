"""Row-wise kernels over the last axis of a 2-D array: ``softmax``, ``logsumexp``, ``layernorm`` (scipy/torch-like).

Each row is handled by one thread (``prange`` over rows in the parallel variant) in passes that stay in cache:
a row's maximum, then the shifted exponentials (a vectorized ``exp``, see ``hpc.kernels._vexp``) and their sum,
then the scaling. That reads the input once from memory and writes the output once, where NumPy makes a
temporary array per operation. A 1-D input is treated as one row.
"""

from __future__ import annotations

import math as _math

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._flags import EXACT, REDUCE
from ._vexp import BLOCK, exp_block

__all__ = ["layernorm", "logsumexp", "softmax"]


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _row_max(x):  # pragma: no cover - compiled by numba
    # returns (max ignoring NaN, whether a NaN was seen); -inf for an empty row
    m0 = m1 = m2 = m3 = -_np.inf
    bad = False
    n = x.shape[0]
    i = 0
    while i + 4 <= n:
        v0, v1, v2, v3 = x[i], x[i + 1], x[i + 2], x[i + 3]
        m0 = v0 if v0 > m0 else m0
        m1 = v1 if v1 > m1 else m1
        m2 = v2 if v2 > m2 else m2
        m3 = v3 if v3 > m3 else m3
        bad |= (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3)
        i += 4
    while i < n:
        v0 = x[i]
        m0 = v0 if v0 > m0 else m0
        bad |= v0 != v0
        i += 1
    return max(max(m0, m1), max(m2, m3)), bad


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_row(x, out, pbuf, kbuf):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    m, bad = _row_max(x)
    if bad or _math.isinf(m):  # a NaN row, or +-inf present: the reference formula gives NaN / inf - inf
        for j in range(n):
            out[j] = _np.exp(x[j] - m)
        s = 0.0
        for j in range(n):
            s += out[j]
    else:
        s = 0.0
        for b in range(0, n, BLOCK):
            s += exp_block(x, b, min(n, b + BLOCK), m, out, b, pbuf, kbuf)
    inv = 1.0 / s
    for j in range(n):
        out[j] = out[j] * inv


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _softmax_serial(x, out):  # pragma: no cover - compiled by numba
    pbuf = _np.empty(BLOCK, _np.float64)
    kbuf = _np.empty(BLOCK, _np.int64)
    for r in range(x.shape[0]):
        _softmax_row(x[r], out[r], pbuf, kbuf)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _softmax_parallel(x, out):  # pragma: no cover - compiled by numba
    for r in _prange(x.shape[0]):
        pbuf = _np.empty(BLOCK, _np.float64)
        kbuf = _np.empty(BLOCK, _np.int64)
        _softmax_row(x[r], out[r], pbuf, kbuf)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _lse_row(x, pbuf, kbuf):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    m, bad = _row_max(x)
    if bad:
        return _np.nan
    if _math.isinf(m):
        return m
    s = 0.0
    for b in range(0, n, BLOCK):
        s += exp_block(x, b, min(n, b + BLOCK), m, pbuf, 0, pbuf, kbuf)
    return m + _math.log(s)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _lse_serial(x, out):  # pragma: no cover - compiled by numba
    pbuf = _np.empty(BLOCK, _np.float64)
    kbuf = _np.empty(BLOCK, _np.int64)
    for r in range(x.shape[0]):
        out[r] = _lse_row(x[r], pbuf, kbuf)


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _lse_parallel(x, out):  # pragma: no cover - compiled by numba
    for r in _prange(x.shape[0]):
        pbuf = _np.empty(BLOCK, _np.float64)
        kbuf = _np.empty(BLOCK, _np.int64)
        out[r] = _lse_row(x[r], pbuf, kbuf)


@_njit(cache=True, nogil=True, fastmath=REDUCE)
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


def softmax(x, *, out=None, parallel=None):
    """Return ``exp(x - max) / sum(exp(x - max))`` over each row of ``x`` (``scipy.special.softmax(x, axis=-1)``).

    Args:
        x (numpy.ndarray): float32 or float64, 1-D (one row) or 2-D (rows on axis 0), any strides.
        out (numpy.ndarray or None): where to write, of ``x``'s shape and dtype (may be ``x`` itself).
        parallel (bool or None): one row per thread under ``prange``; ``None`` decides by size.

    Returns:
        ``out``. A row holding a NaN is all NaN; a row holding ``+inf`` gives NaN where ``inf - inf`` appears.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.softmax(np.log(np.array([[1.0, 3.0]]))).round(6).tolist()
        [[0.25, 0.75]]
    """
    x2 = _rows(x)
    res, o2 = _out_rows(out, x, x2)
    (_softmax_parallel if _checks.use_parallel(parallel, x2.size) and x2.shape[0] > 1 else _softmax_serial)(x2, o2)
    return res


def logsumexp(x, *, out=None, parallel=None):
    """Return ``log(sum(exp(x)))`` over each row of ``x``, computed stably (``scipy.special.logsumexp(x, axis=-1)``).

    Args:
        x (numpy.ndarray): float32 or float64, 1-D (one row: returns a scalar) or 2-D (returns one value per row).
        out (numpy.ndarray or None): 1-D, one element per row (2-D ``x`` only).
        parallel (bool or None): one row per thread under ``prange``; ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> round(float(kernels.logsumexp(np.log(np.array([1.0, 3.0])))), 12)
        1.386294361112
    """
    x2 = _rows(x)
    if x.ndim == 1:
        if out is not None:
            raise ValueError(f"out must be None for a 1-D x (the result is a scalar); got {type(out).__name__}")
        res = _np.empty(1, x.dtype)
    else:
        res = _checks.out_array(out, (x.shape[0],), x.dtype)
    (_lse_parallel if _checks.use_parallel(parallel, x2.size) and x2.shape[0] > 1 else _lse_serial)(x2, res)
    return res[0] if x.ndim == 1 else res


def layernorm(x, gamma=None, beta=None, *, eps=1e-5, out=None, parallel=None):
    """Return ``(x - mean) / sqrt(var + eps) * gamma + beta`` over each row (``torch.nn.functional.layer_norm``).

    Args:
        x (numpy.ndarray): float32 or float64, 1-D (one row) or 2-D, any strides.
        gamma, beta (numpy.ndarray or None): 1-D, one element per column, ``x``'s dtype; ``None``: ones, zeros.
        eps (float): added to the (biased) variance.
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
    if not eps >= 0.0:
        raise ValueError(f"eps must be a non-negative float; got {eps!r}")
    res, o2 = _out_rows(out, x, x2)
    kernel = _layernorm_parallel if _checks.use_parallel(parallel, x2.size) and x2.shape[0] > 1 else _layernorm_serial
    kernel(x2, gamma, beta, float(eps), o2)
    return res
