"""hpc.ml.LinearRegression and hpc.ml.Ridge against scikit-learn 1.9's on one process."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from hpc import ml

from .conftest import regression, rel_err

sklearn_linear = pytest.importorskip("sklearn.linear_model")
from sklearn.exceptions import NotFittedError  # noqa: E402

#: the issue's target for well-conditioned problems: coef_ and intercept_ within 1e-8 (relative to the largest)
TOL = 1e-8


def _assert_close(ours, theirs, tol=TOL):
    assert np.shape(ours.coef_) == np.shape(theirs.coef_)
    assert np.shape(ours.intercept_) == np.shape(theirs.intercept_)
    assert rel_err(ours.coef_, theirs.coef_) <= tol
    scale = max(np.abs(theirs.intercept_).max(), np.abs(theirs.coef_).max())
    assert np.abs(np.asarray(ours.intercept_) - np.asarray(theirs.intercept_)).max() <= tol * scale


@pytest.mark.parametrize("targets", [None, 1, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_linear_regression_matches(fit_intercept, targets):
    """LinearRegression's coef_, intercept_, rank_ and singular_ match scikit-learn's (1-D and 2-D y)."""
    X, y = regression(n=300, d=5, seed=2, targets=targets)
    ours = ml.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    theirs = sklearn_linear.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ours, theirs)
    assert ours.rank_ == theirs.rank_ == 5
    assert rel_err(ours.singular_, theirs.singular_) <= TOL
    assert isinstance(ours.intercept_, float) == isinstance(theirs.intercept_, float)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=TOL, atol=TOL * np.abs(y).max())


@pytest.mark.parametrize("targets", [None, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("alpha", [1e-3, 1.0, 50.0])
def test_ridge_matches(alpha, fit_intercept, targets):
    """Ridge's coef_ and intercept_ match scikit-learn's for each alpha (1-D and 2-D y, with or without intercept)."""
    X, y = regression(n=300, d=5, seed=3, targets=targets)
    ours = ml.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    theirs = sklearn_linear.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ours, theirs)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=TOL, atol=TOL * np.abs(y).max())


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ridge_alpha_per_target(fit_intercept):
    """An array alpha gives each target its own penalty, as scikit-learn's Ridge does."""
    X, y = regression(n=300, d=5, seed=4, targets=3)
    alpha = np.array([0.01, 5.0, 300.0])
    ours = ml.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    theirs = sklearn_linear.Ridge(alpha=alpha, fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ours, theirs)
    for j in range(3):  # each row of coef_ is the one-target fit with that target's alpha
        alone = ml.Ridge(alpha=float(alpha[j]), fit_intercept=fit_intercept).fit(X, y[:, j])
        assert rel_err(ours.coef_[j], alone.coef_) <= TOL


def test_ridge_zero_alpha_is_least_squares():
    """Ridge(alpha=0) gives LinearRegression's answer."""
    X, y = regression(n=200, d=4, seed=5)
    assert rel_err(ml.Ridge(alpha=0.0).fit(X, y).coef_, ml.LinearRegression().fit(X, y).coef_) <= TOL


def test_far_from_origin():
    """Data offset by 1e6 loses no more digits than scikit-learn's centring: within 1e-6 relative.

    Rounding the inputs near 1e6 already costs ~1e6 * 2.2e-16 = 2e-10 of each value, so two correct solvers agree
    to about that times the condition number of the centred data (small here), far inside 1e-6.
    """
    X, y = regression(n=300, d=4, seed=6)
    X = X + 1e6
    ours = ml.LinearRegression().fit(X, y)
    theirs = sklearn_linear.LinearRegression().fit(X, y)
    assert rel_err(ours.coef_, theirs.coef_) <= 1e-6
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-6)


def _nearly_collinear(n=200, d=5, seed=7, gap=1e-12):
    """Return ``(X, y)`` whose last two columns differ by ``gap`` times noise: cond(centred X) about 1e12."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    X[:, d - 1] = X[:, d - 2] + gap * rng.normal(size=n)
    y = X[:, : d - 1] @ rng.normal(size=d - 1) + 0.1 * rng.normal(size=n) + 3.0
    return X, y


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_ill_conditioned_matches_lstsq(fit_intercept):
    """On X with cond ~1e12, LinearRegression gives scikit-learn's lstsq answer (rank_ too), within 1e-9 relative.

    scikit-learn's LinearRegression passes tol=1e-6 to scipy.linalg.lstsq as ``cond``: singular values below 1e-6
    times the largest count as zero, so the rank is d - 1 and the answer is the minimum-norm solution of the
    truncated problem (the two nearly equal columns share one coefficient). That solution is well-conditioned
    (the kept singular values are within a factor of about 2 of each other), so two correct solvers agree to a few
    ulps times small factors; 1e-9 leaves room for summation order and the 1e-12 perturbation, and is far below
    the ~1e9 size of the untruncated solution's coefficients on the near-null direction.
    """
    X, y = _nearly_collinear()
    centred = X - X.mean(axis=0) if fit_intercept else X
    singular = np.linalg.svd(centred, compute_uv=False)
    assert 1e11 < singular[0] / singular[-1] < 1e13
    ours = ml.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    theirs = sklearn_linear.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    assert ours.rank_ == theirs.rank_
    _assert_close(ours, theirs, tol=1e-9)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-9 * np.abs(y).max())
    assert rel_err(ours.singular_[:-1], theirs.singular_[:-1]) <= 1e-9


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_duplicated_column_minimum_norm(fit_intercept):
    """An exactly duplicated column: rank_ is d - 1 and the coefficients are lstsq's minimum-norm split, within 1e-8.

    The two copies' coefficients are equal in the minimum-norm answer; the rest of the problem is well-conditioned,
    so the issue's 1e-8 holds here as for a full-rank X.
    """
    X, y = regression(n=200, d=5, seed=8)
    X = np.hstack([X, X[:, [1]]])
    ours = ml.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    theirs = sklearn_linear.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    assert ours.rank_ == theirs.rank_ == 5
    _assert_close(ours, theirs)
    assert ours.coef_[1] == pytest.approx(ours.coef_[5], rel=1e-8)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-8, atol=1e-8 * np.abs(y).max())


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_fewer_rows_than_features(fit_intercept):
    """With fewer rows than features LinearRegression gives lstsq's minimum-norm answer, rank_ and singular_ (1e-8)."""
    rng = np.random.default_rng(16)
    X, y = rng.normal(size=(6, 10)), rng.normal(size=6)
    ours = ml.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    theirs = sklearn_linear.LinearRegression(fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ours, theirs)
    assert ours.rank_ == theirs.rank_
    assert ours.singular_.shape == theirs.singular_.shape
    assert rel_err(ours.singular_[: ours.rank_], theirs.singular_[: theirs.rank_]) <= TOL
    ridge = ml.Ridge(alpha=0.1, fit_intercept=fit_intercept).fit(X, y)
    _assert_close(ridge, sklearn_linear.Ridge(alpha=0.1, fit_intercept=fit_intercept).fit(X, y))


def test_ridge_duplicated_column():
    """Ridge on a duplicated column is well-posed and matches scikit-learn's within 1e-8."""
    X, y = regression(n=200, d=4, seed=9)
    X = np.hstack([X, X[:, [0]]])
    ours = ml.Ridge(alpha=0.5).fit(X, y)
    theirs = sklearn_linear.Ridge(alpha=0.5).fit(X, y)
    _assert_close(ours, theirs)


def test_moderately_ill_conditioned():
    """cond ~1e5 (ill-conditioned normal equations, kept full rank by scikit-learn's tol) matches within 1e-7.

    The least-squares forward error of a backward-stable solver is about cond * eps (plus cond^2 * eps times the
    relative residual): 1e5 * 2.2e-16 and 1e10 * 2.2e-16 * 0.03 give ~1e-7 at most; the normal equations would
    lose cond^2 * eps ~ 2e-6 and fail.
    """
    X, y = _nearly_collinear(seed=10, gap=1e-5)
    singular = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    assert 1e4 < singular[0] / singular[-1] < 1e6
    ours = ml.LinearRegression().fit(X, y)
    theirs = sklearn_linear.LinearRegression().fit(X, y)
    assert ours.rank_ == theirs.rank_ == 5
    _assert_close(ours, theirs, tol=1e-7)


@pytest.mark.parametrize("model", [ml.LinearRegression, lambda: ml.Ridge(alpha=3.0)])
@pytest.mark.parametrize("targets", [None, 2])
def test_score_matches(model, targets):
    """score is R^2 as scikit-learn's (targets averaged uniformly), on training and new rows."""
    X, y = regression(n=200, d=4, seed=11, targets=targets)
    X_new, y_new = regression(n=80, d=4, seed=12, targets=targets)
    ours = model().fit(X, y)
    Sk = sklearn_linear.LinearRegression if isinstance(ours, ml.LinearRegression) else sklearn_linear.Ridge
    theirs = Sk(**ours.get_params()).fit(X, y)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-10)
    assert ours.score(X_new, y_new) == pytest.approx(theirs.score(X_new, y_new), rel=1e-8)


def test_column_vector_y():
    """A (n, 1) y gives 2-D coef_ (1, d) and a 1-element intercept_, as scikit-learn."""
    X, y = regression(n=100, d=3, seed=13)
    ours = ml.LinearRegression().fit(X, y[:, None])
    theirs = sklearn_linear.LinearRegression().fit(X, y[:, None])
    assert ours.coef_.shape == theirs.coef_.shape == (1, 3)
    assert np.shape(ours.intercept_) == np.shape(theirs.intercept_) == (1,)
    assert ours.predict(X).shape == theirs.predict(X).shape


def test_input_messages():
    """Another feature count, a y of the wrong length and NaN in X or y raise scikit-learn's messages."""
    X, y = regression(n=20, d=4, seed=14)
    model = ml.LinearRegression().fit(X, y)
    with pytest.raises(ValueError, match=re.escape("X has 3 features, but LinearRegression is expecting 4 features "
                                                   "as input")):
        model.predict(X[:, :3])
    with pytest.raises(ValueError, match=re.escape("Found input variables with inconsistent numbers of samples: "
                                                   "[20, 18]")):
        ml.Ridge().fit(X, y[:18])
    bad = y.copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        ml.LinearRegression().fit(X, bad)
    bad = X.copy()
    bad[2, 2] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        ml.Ridge().fit(bad, y)


def test_not_fitted():
    """predict before fit raises scikit-learn's NotFittedError."""
    for model in (ml.LinearRegression(), ml.Ridge()):
        with pytest.raises(NotFittedError):
            model.predict(np.zeros((2, 2)))


def test_bad_parameters():
    """A negative alpha, an alpha of the wrong length, positive=True and an unknown solver raise ValueError."""
    X, y = regression(n=30, d=3, seed=15, targets=2)
    with pytest.raises(ValueError, match="alpha"):
        ml.Ridge(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        ml.Ridge(alpha=np.array([1.0, 2.0, 3.0])).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        ml.Ridge(alpha=np.array([1.0, -2.0])).fit(X, y)
    with pytest.raises(ValueError, match="positive"):
        ml.Ridge(positive=True).fit(X, y)
    with pytest.raises(ValueError, match="positive"):
        ml.LinearRegression(positive=True).fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        ml.Ridge(solver="sag").fit(X, y)


@pytest.mark.parametrize("model", [ml.LinearRegression, lambda: ml.Ridge(alpha=3.0)])
@pytest.mark.parametrize("targets", [None, 2])
def test_weighted_score_matches(model, targets):
    """score(X, y, sample_weight) is scikit-learn's weighted R^2; weights of 1 give the unweighted score; bad
    weights raise."""
    X, y = regression(n=200, d=4, seed=17, targets=targets)
    w = np.random.default_rng(18).uniform(0.0, 2.0, len(X))
    ours = model().fit(X, y)
    Sk = sklearn_linear.LinearRegression if isinstance(ours, ml.LinearRegression) else sklearn_linear.Ridge
    theirs = Sk(**ours.get_params()).fit(X, y)
    assert ours.score(X, y, sample_weight=w) == pytest.approx(theirs.score(X, y, sample_weight=w), rel=1e-12)
    assert ours.score(X, y, np.ones(len(X))) == pytest.approx(ours.score(X, y), rel=1e-14)
    for bad in (-w, w[:-1], np.where(w > 1, np.nan, w)):
        with pytest.raises(ValueError, match="sample_weight"):
            ours.score(X, y, sample_weight=bad)


@pytest.mark.parametrize("alpha", [np.nan, np.inf, "1", True, np.array([[1.0]])])
def test_ridge_refuses_alpha_that_is_not_a_finite_number(alpha):
    """NaN (which fitted least squares: the comparisons skipped both the check and the penalty), inf (LAPACK's
    "SVD did not converge"), a string and a bool raise ValueError naming alpha, as scikit-learn refuses them."""
    X, y = regression(n=30, d=3, seed=15)
    with pytest.raises(ValueError, match="alpha must be"):
        ml.Ridge(alpha=alpha).fit(X, y)


@pytest.mark.parametrize("tol", [-1.0, np.nan, "1e-6"])
def test_linear_regression_refuses_bad_tol(tol):
    X, y = regression(n=30, d=3, seed=15)
    with pytest.raises(ValueError, match="tol must be"):
        ml.LinearRegression(tol=tol).fit(X, y)


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_score_refuses_another_number_of_targets(name):
    """score of a one-target model against two target columns (or the reverse) raises scikit-learn's error;
    before, (Y - P) broadcast one column against two and gave a wrong R^2 (-1.002)."""
    X, y = regression(n=100, d=3, seed=16)
    Y = np.stack([y, -y], axis=1)
    one = getattr(ml, name)().fit(X, y)
    two = getattr(ml, name)().fit(X, Y)
    with pytest.raises(ValueError, match=re.escape("different number of output (2!=1)")):
        one.score(X, Y)
    with pytest.raises(ValueError, match=re.escape("different number of output (1!=2)")):
        two.score(X, y)
    assert one.score(X, y[:, None]) == pytest.approx(one.score(X, y), rel=1e-15)


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_a_target_of_no_columns_is_refused_as_by_scikit_learn(name):
    """y of shape (n, 0) raises scikit-learn's ValueError (Ridge raised an IndexError, LinearRegression fitted a
    coef_ of shape (0, d))."""
    X, _ = regression(n=10, d=2, seed=18)
    with pytest.raises(ValueError, match=re.escape(f"Found array with 0 feature(s) (shape=(10, 0)) while a minimum "
                                                   f"of 1 is required by {name}.")):
        getattr(ml, name)().fit(X, np.empty((10, 0)))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_score_of_one_sample_is_nan_with_scikit_learns_warning(name, weighted):
    """R^2 of fewer than two samples is undefined: NaN and an UndefinedMetricWarning, as r2_score (0.0 or 1.0
    before, which cross_val_score with LeaveOneOut reported as real scores)."""
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import r2_score

    X, y = regression(n=50, d=3, seed=17)
    model = getattr(ml, name)().fit(X, y)
    weight = np.array([2.0]) if weighted else None
    for target in (y[:1], y[:1] + 1.0):
        with pytest.warns(UndefinedMetricWarning, match="less than two samples"):
            assert np.isnan(model.score(X[:1], target, sample_weight=weight))
        with pytest.warns(UndefinedMetricWarning):
            assert np.isnan(r2_score(target, model.predict(X[:1]), sample_weight=weight))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(model.score(X[:2], y[:2], sample_weight=None if weight is None else np.ones(2)))


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_target_shapes_are_scikit_learns(name, fit_intercept):
    """coef_, intercept_ and predict have scikit-learn's shapes for y of shape (n,), (n, 1) and (n, 2): Ridge flattens
    a single column target's coefficients, LinearRegression keeps them (1, d)."""
    from sklearn import linear_model

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    for target in (y, y[:, None], np.c_[y, -y]):
        ours = getattr(ml, name)(fit_intercept=fit_intercept).fit(X, target)
        theirs = getattr(linear_model, name)(fit_intercept=fit_intercept).fit(X, target)
        assert ours.coef_.shape == theirs.coef_.shape
        assert np.shape(ours.intercept_) == np.shape(theirs.intercept_)
        assert ours.predict(X).shape == theirs.predict(X).shape
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("scale", [1e155, 1e-160])
@pytest.mark.parametrize("model", ["linear", "ridge"])
def test_data_at_the_edges_of_float64_fits_as_scikit_learn(scale, model):
    """Data so large that its Gram matrix overflows (LinAlgError before) or so small that it goes subnormal (1e-4
    relative error, silently, before) takes TSQR: the coefficients of y = X w come back exactly, as from lstsq."""
    X = np.random.default_rng(1).normal(size=(50, 4)) * scale
    w = np.array([1.0, 2.0, 3.0, 4.0])
    y = X @ w / scale + 0.5
    est = ml.LinearRegression() if model == "linear" else ml.Ridge(alpha=1e-300 * scale * scale)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Gram matrix overflowing on the way to TSQR is not the caller's concern
        est.fit(X, y)
    assert rel_err(est.coef_ * scale, w) <= 1e-12 and abs(est.intercept_ - 0.5) <= 1e-12
    assert np.abs(est.predict(X) - y).max() <= 1e-12


def _weights(n, seed=5):
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[::7] = 0.0  # rows weighted 0: as if left out
    return w


@pytest.mark.parametrize("targets", [None, 2])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("make", ["linear", "ridge"])
def test_sample_weight_matches(make, fit_intercept, targets):
    """Weighted fits give scikit-learn's coefficients and intercepts (the weighted means, the rows scaled by the
    weights' square roots), and rows weighted 0 count as left out."""
    X, y = regression(n=300, d=5, seed=4, targets=targets)
    X = X + [10.0, -3.0, 0.0, 1e3, 2.0]  # means far from 0: the weighted centring matters
    w = _weights(X.shape[0])
    params = {"fit_intercept": fit_intercept} | ({"alpha": 2.0} if make == "ridge" else {})
    ours_class = ml.LinearRegression if make == "linear" else ml.Ridge
    theirs_class = sklearn_linear.LinearRegression if make == "linear" else sklearn_linear.Ridge
    ours = ours_class(**params).fit(X, y, sample_weight=w)
    _assert_close(ours, theirs_class(**params).fit(X, y, sample_weight=w), tol=1e-9)
    kept = w > 0
    _assert_close(ours, ours_class(**params).fit(X[kept], y[kept], sample_weight=w[kept]), tol=1e-12)
    assert rel_err(ours.coef_, ours_class(**params).fit(X, y).coef_) > 1e-6  # the weights changed the fit
    if make == "linear":
        theirs = theirs_class(**params).fit(X, y, sample_weight=w)
        assert ours.rank_ == theirs.rank_ and rel_err(ours.singular_, theirs.singular_) <= 1e-9


def test_integer_weights_repeat_rows():
    """A weight of 3 is the row three times: the same fit as the repeated data, to rounding."""
    X, y = regression(n=200, d=4, seed=6)
    w = np.random.default_rng(2).integers(0, 4, X.shape[0]).astype(float)
    repeat = w.astype(int)
    for make in (ml.LinearRegression, lambda: ml.Ridge(alpha=0.5)):
        _assert_close(make().fit(X, y, sample_weight=w), make().fit(np.repeat(X, repeat, 0), np.repeat(y, repeat)),
                      tol=1e-12)


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_sample_weight_on_the_tsqr_route(fit_intercept):
    """Ill-conditioned weighted data take TSQR with the rows scaled by the weights' square roots: scikit-learn's
    lstsq answer and rank."""
    X, y = _nearly_collinear()
    w = _weights(X.shape[0], seed=8) + 0.5
    ours = ml.LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    theirs = sklearn_linear.LinearRegression(fit_intercept=fit_intercept).fit(X, y, sample_weight=w)
    assert ours.rank_ == theirs.rank_
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-9 * np.abs(y).max())


def test_scalar_sample_weight_is_every_rows():
    X, y = regression(n=100, d=3, seed=7)
    _assert_close(ml.Ridge(alpha=1.0).fit(X, y, sample_weight=2.5),
                  sklearn_linear.Ridge(alpha=1.0).fit(X, y, sample_weight=2.5))


@pytest.mark.parametrize("bad, message", [
    (np.ones(99), r"sample_weight.shape == \(99,\), expected \(100,\)"),
    (np.full(100, np.nan), "sample_weight contains NaN"),
    (np.full(100, -1.0), "non-negative"),
    (np.zeros(100), "at least one non-zero"),
])
@pytest.mark.parametrize("make", [ml.LinearRegression, ml.Ridge])
def test_bad_sample_weight(make, bad, message):
    X, y = regression(n=100, d=3, seed=7)
    with pytest.raises(ValueError, match=message):
        make().fit(X, y, sample_weight=bad)


@pytest.mark.parametrize("y_scale", [1.0, "x"])
@pytest.mark.parametrize("scale", [1e-150, 1e-155, 1e-160])
def test_ridge_on_data_near_1e_minus_150_matches_scikit_learn(scale, y_scale):
    """Data whose Gram matrix goes subnormal, with a penalty that dwarfs it: the normal equations (scikit-learn's
    cholesky) are exact to alpha's rounding, where the TSQR route's least squares gave coef_ = 0."""
    from sklearn.linear_model import Ridge

    X, y = regression(n=50, d=3, seed=19)
    X, y = X * scale, y * (scale if y_scale == "x" else 1.0)
    ours, theirs = ml.Ridge(alpha=1.0).fit(X, y), Ridge(alpha=1.0).fit(X, y)
    assert np.all(ours.coef_ != 0.0)
    assert rel_err(ours.coef_, theirs.coef_) <= 1e-12
    assert rel_err(ours.intercept_, theirs.intercept_) <= 1e-12


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_score_with_weights_all_zero_is_refused(name):
    """As scikit-learn's r2_score: R^2 under weights that are all 0 had read 1.0, a perfect score."""
    X, y = regression(n=30, d=3, seed=4)
    model = getattr(ml, name)().fit(X, y)
    with pytest.raises(ValueError, match="at least one non-zero number"):
        model.score(X, y, sample_weight=np.zeros(len(y)))
