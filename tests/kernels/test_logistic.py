"""hpc.kernels logistic losses against scikit-learn's formulas written in NumPy, with gradients checked numerically."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


def _binary_reference(x, y, w, b, weight):
    z = x.astype(np.float64) @ w + b
    loss = np.sum(weight * (np.logaddexp(0.0, z) - y * z))
    r = weight * (1.0 / (1.0 + np.exp(-z)) - y)
    return loss, np.concatenate([r @ x, [r.sum()]])


def _softmax_reference(x, y, W, b, weight):
    z = x.astype(np.float64) @ W.T + b
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    loss = np.sum(weight * (lse - z[np.arange(len(y)), y]))
    p = np.exp(z - lse[:, None])
    p[np.arange(len(y)), y] -= 1.0
    r = weight[:, None] * p
    return loss, np.hstack([r.T @ x, r.sum(axis=0)[:, None]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_matches_reference_and_is_stable(rng, dtype):
    """The fused binary pass equals the NumPy formulas, with weights, and stays finite for scores of +-800."""
    x = rng.standard_normal((400, 7)).astype(dtype)
    y = (rng.random(400) < 0.4).astype(np.float64)
    w, weight = rng.standard_normal(7), rng.random(400)
    loss, grad = k.logistic_loss_grad(x, y, w, 0.3, weight)
    ref_loss, ref_grad = _binary_reference(x, y, w, 0.3, weight)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    big = k.logistic_loss_grad(np.array([[800.0], [-800.0]]), np.array([0.0, 1.0]), np.ones(1))
    assert big[0] == pytest.approx(1600.0) and np.isfinite(big[1]).all()


@pytest.mark.parametrize("rows", [1, 3, 7, 255, 256, 259, 1029])
def test_binary_tiles_and_their_remainders(rng, rows):
    """Every row counts once, whatever the rows' count against the pass's tiles and its four-row steps."""
    x = rng.standard_normal((rows, 5)) * 4.0
    y = (rng.random(rows) < 0.5).astype(np.float64)
    w, weight = rng.standard_normal(5), rng.random(rows)
    loss, grad = k.logistic_loss_grad(x, y, w, -0.2, weight)
    ref_loss, ref_grad = _binary_reference(x, y, w, -0.2, weight)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)


def test_vectorizable_log1p_is_within_one_ulp(rng):
    """The polynomial log1p the binary pass uses, on [0, 1]: uniform points, exponents down to 2**-900, and the
    edges of its three ranges (tiny, below and above sqrt(2) - 1), within 1 ulp of NumPy's log1p; NaN stays NaN."""
    from hpc.kernels._vlog1p import log1p_unit
    from numba import njit

    @njit
    def apply(a, out):
        for i in range(a.shape[0]):
            out[i] = log1p_unit(a[i])

    edges = [0.0, 1.0, 2.0**-60, np.nextafter(2.0**-60, 0), 0.41421356237309503, 0.4142135623730951, 0.5,
             np.nextafter(0.5, 0), 0.42024254784381837, np.nan]  # 0.4202...: e - 1 inexact, fdlibm's correction
    a = np.concatenate([rng.random(200_000), 2.0 ** rng.uniform(-900, 0, 200_000), edges])
    out = np.empty_like(a)
    apply(a, out)
    ref = np.log1p(a)
    assert np.isnan(out[-1]) and out[-2] == ref[-2]
    ulps = np.abs(out[:-1] - ref[:-1]) / np.spacing(np.maximum(ref[:-1], np.finfo(np.float64).tiny))
    assert ulps.max() <= 1.0


def test_vectorizable_log_of_softmax_totals_is_within_one_ulp(rng):
    """The log the multinomial pass takes of each row's total (1 up to the number of classes, and beyond), within
    1 ulp of NumPy's log, exact at 1; NaN stays NaN."""
    from hpc.kernels._vlog1p import log_at_least_one
    from numba import njit

    @njit
    def apply(a, out):
        for i in range(a.shape[0]):
            out[i] = log_at_least_one(a[i])

    edges = [1.0, np.nextafter(1.0, 2), 2.0, np.nextafter(2.0, 0), 1e300, np.nan]
    a = np.concatenate([1.0 + rng.random(200_000) * 99, 2.0 ** rng.uniform(0, 1000, 200_000), edges])
    out = np.empty_like(a)
    apply(a, out)
    ref = np.log(a)
    assert out[-6] == 0.0 and np.isnan(out[-1])
    ulps = np.abs(out[:-1] - ref[:-1]) / np.spacing(np.maximum(ref[:-1], np.finfo(np.float64).tiny))
    assert ulps.max() <= 1.0


@pytest.mark.parametrize("rows", [300, 1, 259])
def test_multinomial_matches_reference(rng, rows):
    """The softmax loss and gradient equal the NumPy formulas, and the gradient matches finite differences, for
    row counts inside one tile of the pass and across two."""
    x = rng.standard_normal((rows, 5))
    y = rng.integers(0, 4, rows)
    W, b, weight = rng.standard_normal((4, 5)), rng.standard_normal(4), rng.random(rows)
    loss, grad = k.softmax_loss_grad(x, y, W, b, weight)
    ref_loss, ref_grad = _softmax_reference(x, y, W, b, weight)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-10, atol=1e-12)
    step = 1e-6
    W2 = W.copy()
    W2[2, 3] += step
    numeric = (k.softmax_loss_grad(x, y, W2, b, weight)[0] - loss) / step
    assert numeric == pytest.approx(grad[2, 3], rel=1e-4)


def test_margins_beyond_600_make_no_subnormal_and_keep_nan():
    """exp of a margin beyond 600 is 0, selected before the exp: near exp(-708) the exp, or its products with a
    weight and a feature, would be subnormal (a microcode assist each on Intel). That changes no result by more than
    1e-260; a margin within 600 keeps its exp; a NaN in a row still makes the loss and the gradient NaN."""
    x = np.array([[650.0], [-650.0], [-590.0]])
    y, weight = np.array([1.0, 0.0, 0.0]), np.array([1.0, 0.5, 0.5])
    loss, grad = k.logistic_loss_grad(x, y, np.ones(1), 0.0, weight)
    ref_loss, ref_grad = _binary_reference(x, y, np.ones(1), 0.0, weight)
    assert loss == pytest.approx(ref_loss, rel=1e-12)  # the -590 row's exp(-590) = 2.3e-257 is kept
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-12, atol=1e-260)
    tiny_row, _ = k.logistic_loss_grad(x[1:2], y[1:2], np.ones(1))
    assert tiny_row == 0.0 and _binary_reference(x[1:2], y[1:2], np.ones(1), 0.0, np.ones(1))[0] > 0
    nan_loss, nan_grad = k.logistic_loss_grad(np.array([[np.nan], [1.0]]), np.array([0.0, 1.0]), np.ones(1))
    assert np.isnan(nan_loss) and np.isnan(nan_grad).all()
    z = np.array([[0.0, -650.0, -1.0], [0.0, -590.0, 0.0]])  # scores of 3 classes: exp(-650) is 0 here
    W = np.eye(3)
    loss, grad = k.softmax_loss_grad(z, np.array([0, 2]), W)
    ref_loss, ref_grad = _softmax_reference(z, np.array([0, 2]), W, np.zeros(3), np.ones(2))
    assert loss == pytest.approx(ref_loss, rel=1e-15)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-15, atol=1e-260)
    assert grad[1, 1] == pytest.approx(ref_grad[1, 1], rel=1e-12) and grad[1, 1] != 0.0  # exp(-590) kept
    assert np.isnan(k.softmax_loss_grad(np.array([[np.nan, 0.0, 0.0]]), np.array([0]), W)[1]).any()


def test_logistic_errors():
    """Shapes and class indices are checked."""
    with pytest.raises(ValueError, match="y must be"):
        k.logistic_loss_grad(np.ones((3, 2)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="class indices"):
        k.softmax_loss_grad(np.ones((3, 2)), np.array([0, 1, 3]), np.ones((3, 2)))
    with pytest.raises(ValueError, match="class indices"):  # truncated to classes 0, 1, 0 before
        k.softmax_loss_grad(np.ones((3, 2)), np.array([0.9, 1.5, 0.2]), np.ones((3, 2)))
    whole = k.softmax_loss_grad(np.ones((3, 2)), np.array([0.0, 1.0, 2.0]), np.ones((3, 2)))
    np.testing.assert_array_equal(whole[1], k.softmax_loss_grad(np.ones((3, 2)), np.arange(3), np.ones((3, 2)))[1])
    for wrong in (np.zeros((3, 3)), np.zeros(4)):  # a row's intercepts broadcast, or NumPy's broadcasting error
        with pytest.raises(ValueError, match=r"intercept must be \(3,\)"):
            k.softmax_loss_grad(np.ones((3, 2)), np.arange(3), np.ones((3, 2)), wrong)
    with pytest.raises(ValueError, match="sample_weight"):
        k.softmax_loss_grad(np.ones((3, 2)), np.array([0, 1, 2]), np.ones((3, 2)), sample_weight=np.ones(2))
    for intercept in (None, "1", np.ones(2)):  # float()'s own message named no argument
        with pytest.raises(TypeError, match="intercept must be a real number"):
            k.logistic_loss_grad(np.ones((2, 2)), np.ones(2), np.ones(2), intercept=intercept)
