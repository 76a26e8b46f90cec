"""Loss and gradient of logistic regression over a block of rows: binary in one fused pass, multinomial by GEMM.

Both give the *half* losses scikit-learn's ``LinearModelLoss`` uses (binomial ``log(1 + e^z) - y z``, multinomial
``logsumexp(z) - z_y``), summed over the rows with sample weights, and their gradients with respect to the
coefficients and the intercept. The binary kernel takes the rows in tiles of 256, each read twice while it is in the
caches: the scores ``z = x.w + b``; then one vectorized loop for the losses and residuals ``w (p - y)`` (``exp`` and
``log1p`` by polynomials, ``kernels/_vexp.py`` and ``kernels/_vlog1p.py``: ``math.exp`` and ``math.log1p`` left the
row loop scalar); then ``(p - y) x`` added to the gradient, four rows at a time. The multinomial one takes
``Z = X W^T`` and ``R^T X`` from BLAS, with one compiled pass between them for the softmax, the loss, the residuals
``R`` and their column sums (its ``exp`` and ``log`` vectorized the same way).
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit
from numpy.typing import ArrayLike

from . import _checks
from ._dispatch import gpu_twin
from ._flags import REDUCE
from ._types import AnyArray, Real
from ._vexp import exp_nonpos
from ._vlog1p import log1p_unit as _log1p_unit
from ._vlog1p import log_at_least_one as _log_at_least_one

__all__ = ["logistic_loss_grad", "softmax_loss_grad"]


#: exp of a margin beyond this is 0: a row's terms are then below 1e-260, and no product of them with a weight and
#: a feature is subnormal (exp(-708) would be the last normal exp, but w * exp(-z) * x under it for small w or x)
_EXP_FLUSH = 600.0


#: rows per tile of the binary pass: its scores, losses and residuals stay in L1 between the pass's three loops
_TILE = 256


@_njit(cache=True, nogil=True, fastmath=REDUCE, error_model="numpy")  # IEEE division: see _vlog1p
def _binary_tile(z, y, weight, r):  # pragma: no cover - compiled by numba
    """From the scores ``z`` of a tile, write the weighted residuals ``r = w (p - y)`` and return the tile's loss.

    One branch-free loop over the rows (``exp`` and ``log1p`` of ``-|z|`` by polynomials), which LLVM vectorizes:
    ``math.exp`` and ``math.log1p`` would leave it one row at a time. ``e = exp(-|z|)`` is 0 for a margin beyond
    ``_EXP_FLUSH``, selected before the exp (near ``exp(-708)`` its products with weights and features would be
    subnormal, a microcode assist each on Intel). A NaN score makes its loss and residual NaN.
    """
    loss = 0.0
    for t in range(z.shape[0]):
        zt = z[t]
        e = exp_nonpos(-abs(zt), -_EXP_FLUSH)
        positive = zt > 0.0
        log1pexp = (zt if positive else 0.0) + _log1p_unit(e)
        p = (1.0 if positive else e) / (1.0 + e)
        loss += weight[t] * (log1pexp - y[t] * zt)
        r[t] = weight[t] * (p - y[t])
    return loss


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _binary(x, y, weight, coef, intercept, grad):  # pragma: no cover - compiled by numba
    n, d = x.shape
    z = _np.empty(_TILE)
    r = _np.empty(_TILE)
    loss = 0.0
    for lo in range(0, n, _TILE):
        hi = min(lo + _TILE, n)
        m = hi - lo
        for t in range(m):
            s = intercept
            for j in range(d):
                s += x[lo + t, j] * coef[j]
            z[t] = s
        loss += _binary_tile(z[:m], y[lo:hi], weight[lo:hi], r[:m])
        # four rows at a time: each grad[j] then waits on one add per four rows, not on one per row
        four = m - m % 4
        for t in range(0, four, 4):
            r0, r1, r2, r3 = r[t], r[t + 1], r[t + 2], r[t + 3]
            i = lo + t
            for j in range(d):
                grad[j] += (r0 * x[i, j] + r1 * x[i + 1, j]) + (r2 * x[i + 2, j] + r3 * x[i + 3, j])
            grad[d] += (r0 + r1) + (r2 + r3)
        for t in range(four, m):
            rt = r[t]
            for j in range(d):
                grad[j] += rt * x[lo + t, j]
            grad[d] += rt
    return loss


@_njit(cache=True, nogil=True, fastmath=REDUCE, error_model="numpy")  # IEEE division: see _vlog1p
def _softmax_rows(z, y, weight, r, rsum):  # pragma: no cover - compiled by numba
    """Turn the scores ``z`` (rows, classes) into weighted residuals ``r = w (softmax(z) - onehot(y))``, add their
    column sums to ``rsum`` and return the loss.

    In tiles of rows: each row's maximum; the shifted scores ``z - max`` into ``r``; one loop over the tile's values,
    contiguous whatever the number of classes, for the ``exp`` (the vector polynomial of ``_vexp``: with
    ``math.exp`` the rows ran one value at a time); each row's total; one loop over the rows for the ``log`` of the
    totals (``_vlog1p``), the losses and the scales; then the scaling. ``exp`` is 0 for a shift beyond ``_EXP_FLUSH``,
    as in ``_binary``; NaN takes the exp.
    """
    n, k = z.shape
    top = _np.empty(_TILE)
    total = _np.empty(_TILE)
    picked = _np.empty(_TILE)
    loss = 0.0
    for lo in range(0, n, _TILE):
        hi = min(lo + _TILE, n)
        m = hi - lo
        for i in range(m):
            t = z[lo + i, 0]
            for j in range(1, k):
                t = max(t, z[lo + i, j])
            top[i] = t
            picked[i] = z[lo + i, y[lo + i]]
        for i in range(m):
            for j in range(k):
                r[lo + i, j] = z[lo + i, j] - top[i]
        flat = r[lo:hi].reshape(m * k)
        for q in range(m * k):
            flat[q] = exp_nonpos(flat[q], -_EXP_FLUSH)
        for i in range(m):
            s = 0.0
            for j in range(k):
                s += r[lo + i, j]
            total[i] = s
        loss += _softmax_tile(top[:m], total[:m], picked[:m], weight[lo:hi])
        for i in range(m):
            w = weight[lo + i]
            scale = total[i]  # w / total, from _softmax_tile
            for j in range(k):
                r[lo + i, j] *= scale
            r[lo + i, y[lo + i]] -= w
            for j in range(k):
                rsum[j] += r[lo + i, j]
    return loss


@_njit(cache=True, nogil=True, fastmath=REDUCE, error_model="numpy")
def _softmax_tile(top, total, picked, weight):  # pragma: no cover - compiled by numba
    """The tile's loss ``sum w (max + log(total) - z_y)``; ``total`` becomes the rows' scales ``w / total``. One
    vectorized loop over the rows (a ``log`` each, by ``_vlog1p``'s polynomial)."""
    loss = 0.0
    for i in range(top.shape[0]):
        loss += weight[i] * (top[i] + _log_at_least_one(total[i]) - picked[i])
        total[i] = weight[i] / total[i]
    return loss


def _weights(sample_weight, n):
    if sample_weight is None:
        return _np.ones(n)
    weight = _np.ascontiguousarray(sample_weight, dtype=_np.float64)
    if weight.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},); got {weight.shape}")
    return weight


@gpu_twin
def logistic_loss_grad(
    x: AnyArray, y: ArrayLike, coef: ArrayLike, intercept: Real = 0.0, sample_weight: ArrayLike | None = None,
) -> tuple[float, _np.ndarray]:
    """Return ``(loss, grad)`` of the binary half-binomial loss summed over the rows of ``x``, in one pass.

    Args:
        x (numpy.ndarray): 2-D ``(n, d)``, float32 or float64.
        y (numpy.ndarray): ``(n,)`` targets in {0, 1} (float64).
        coef (numpy.ndarray): ``(d,)`` float64 coefficients.
        intercept (float): the intercept.
        sample_weight (numpy.ndarray or None): ``(n,)`` row weights (default 1).

    Returns:
        ``loss`` (float): ``sum w_i (log(1 + e^z_i) - y_i z_i)`` with ``z = x.coef + intercept``, and ``grad``
        (float64 ``(d + 1,)``): its gradient in ``coef`` then in ``intercept``.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> loss, grad = kernels.logistic_loss_grad(np.zeros((2, 1)), np.array([0.0, 1.0]), np.zeros(1))
        >>> round(loss, 6), grad.tolist()
        (1.386294, [0.0, 0.0])
    """
    x = _checks.matrix("x", x)
    n, d = x.shape
    y = _np.ascontiguousarray(y, dtype=_np.float64)
    coef = _np.ascontiguousarray(coef, dtype=_np.float64)
    if y.shape != (n,) or coef.shape != (d,):
        raise ValueError(f"y must be ({n},) and coef ({d},); got {y.shape} and {coef.shape}")
    grad = _np.zeros(d + 1)
    intercept = float(_checks.real_scalar("intercept", intercept, _np.dtype(_np.float64)))
    loss = _binary(x, y, _weights(sample_weight, n), coef, intercept, grad)
    return float(loss), grad


@gpu_twin
def softmax_loss_grad(
    x: AnyArray, y: ArrayLike, coef: ArrayLike, intercept: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> tuple[float, _np.ndarray]:
    """Return ``(loss, grad)`` of the multinomial half loss summed over the rows of ``x``.

    Args:
        x (numpy.ndarray): 2-D ``(n, d)``, float32 or float64.
        y (numpy.ndarray): ``(n,)`` class indices in ``[0, k)``.
        coef (numpy.ndarray): ``(k, d)`` float64 coefficients.
        intercept (numpy.ndarray or None): ``(k,)`` intercepts (default 0).
        sample_weight (numpy.ndarray or None): ``(n,)`` row weights (default 1).

    Returns:
        ``loss`` (float): ``sum w_i (logsumexp(z_i) - z_i[y_i])`` with ``z = x coef^T + intercept``, and ``grad``
        (float64 ``(k, d + 1)``): its gradient in ``coef`` (first ``d`` columns) and in ``intercept`` (last).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> loss, grad = kernels.softmax_loss_grad(np.zeros((3, 1)), np.array([0, 1, 2]), np.zeros((3, 1)))
        >>> round(loss, 6)
        3.295837
    """
    x = _checks.matrix("x", x)
    n, d = x.shape
    coef = _np.asarray(coef, dtype=_np.float64)
    k = coef.shape[0]
    if coef.shape != (k, d) or k < 1:
        raise ValueError(f"coef must be (k, {d}); got {coef.shape}")
    given = _np.asarray(y)
    labels = _np.ascontiguousarray(given, dtype=_np.int64)
    if (labels.shape != (n,) or (n and (labels.min() < 0 or labels.max() >= k))
            or (given.dtype.kind not in "iub" and not _np.array_equal(labels, given))):  # 0.9 is no class 0
        raise ValueError(f"y must be ({n},) class indices in [0, {k})")
    scores = x @ coef.T
    if intercept is not None:
        shift = _np.asarray(intercept, dtype=_np.float64)
        if shift.shape != (k,):
            raise ValueError(f"intercept must be ({k},), one per class; got shape {shift.shape}")
        scores += shift
    residuals = _np.empty_like(scores)
    grad = _np.empty((k, d + 1))
    column_sums = _np.zeros(k)
    loss = _softmax_rows(scores, labels, _weights(sample_weight, n), residuals, column_sums)
    grad[:, :d] = residuals.T @ x
    grad[:, d] = column_sums
    return float(loss), grad
