"""hpc.ml.PCA against scikit-learn 1.9's PCA(svd_solver="covariance_eigh") on one process."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from hpc import ml

from .conftest import rel_err

sklearn_decomposition = pytest.importorskip("sklearn.decomposition")
from sklearn.exceptions import NotFittedError  # noqa: E402

#: the issue's target: every fitted attribute within 1e-8 of scikit-learn's (relative to its largest entry)
TOL = 1e-8


def _data(n=300, d=6, seed=0, offset=10.0, dtype=np.float64):
    """Return rows with well-separated variances along random directions (no near-tie between eigenvalues)."""
    rng = np.random.default_rng(seed)
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.geomspace(8.0, 0.3, d)
    return ((rng.normal(size=(n, d)) * scales) @ rotation + offset).astype(dtype)


def _sk(**params):
    return sklearn_decomposition.PCA(svd_solver="covariance_eigh", **params)


def _signs(ours, theirs):
    """Return the sign that turns each of our components into scikit-learn's."""
    return np.sign(np.sum(ours.components_ * theirs.components_, axis=1))


def _assert_same_fit(ours, theirs, tol=TOL):
    assert ours.n_components_ == theirs.n_components_
    assert ours.n_samples_ == theirs.n_samples_
    signs = _signs(ours, theirs)
    assert rel_err(ours.components_ * signs[:, None], theirs.components_) <= tol
    for name in ("explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"):
        assert rel_err(getattr(ours, name), getattr(theirs, name)) <= tol, name
    noise = pytest.approx(theirs.noise_variance_, rel=tol, abs=tol * theirs.explained_variance_[0])
    assert ours.noise_variance_ == noise
    return signs


@pytest.mark.parametrize("n_components", [1, 3, 5, 6, None, 0.5, 0.9, 0.999])
def test_matches_covariance_eigh(n_components):
    """Every fitted attribute matches scikit-learn's covariance_eigh (components up to sign), for int, float, None."""
    X = _data()
    ours = ml.PCA(n_components=n_components).fit(X)
    theirs = _sk(n_components=n_components).fit(X)
    signs = _assert_same_fit(ours, theirs)
    new = _data(n=40, seed=1)
    np.testing.assert_allclose(ours.transform(new) * signs, theirs.transform(new), rtol=TOL,
                               atol=TOL * np.abs(theirs.transform(new)).max())
    Z = theirs.transform(new)
    np.testing.assert_allclose(ours.inverse_transform(Z * signs), theirs.inverse_transform(Z), rtol=TOL,
                               atol=TOL * np.abs(new).max())


def test_fewer_rows_than_features():
    """With fewer rows than features, None keeps n_samples components and noise_variance_ is scikit-learn's."""
    X = _data(n=5, d=8, seed=2)
    ours = ml.PCA().fit(X)
    theirs = _sk().fit(X)
    assert ours.n_components_ == theirs.n_components_ == 5
    signs = _signs(ours, theirs)
    np.testing.assert_allclose(ours.explained_variance_[:4], theirs.explained_variance_[:4], rtol=TOL)
    assert rel_err(ours.components_[:4] * signs[:4, None], theirs.components_[:4]) <= TOL
    ours3 = ml.PCA(n_components=3, svd_solver="covariance_eigh").fit(X)
    theirs3 = _sk(n_components=3).fit(X)
    assert ours3.noise_variance_ == pytest.approx(theirs3.noise_variance_, rel=TOL, abs=1e-10)
    # under "auto" scikit-learn takes its full SVD here (n < 10 d): min(n, d) eigenvalues, and so do we
    auto3, full3 = ml.PCA(n_components=3).fit(X), sklearn_decomposition.PCA(n_components=3).fit(X)
    assert auto3.noise_variance_ == pytest.approx(full3.noise_variance_, rel=TOL, abs=1e-10)
    np.testing.assert_allclose(auto3.explained_variance_ratio_, full3.explained_variance_ratio_, rtol=TOL)


@pytest.mark.parametrize("n_components", [2, 4, None])
def test_whiten_matches(n_components):
    """whiten=True: transform gives unit-variance projections and inverse_transform maps back, as scikit-learn's."""
    X = _data(seed=3)
    ours = ml.PCA(n_components=n_components, whiten=True).fit(X)
    theirs = _sk(n_components=n_components, whiten=True).fit(X)
    signs = _assert_same_fit(ours, theirs)
    projected = ours.transform(X)
    np.testing.assert_allclose(projected * signs, theirs.transform(X), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(projected.var(axis=0, ddof=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(ours.inverse_transform(projected), theirs.inverse_transform(theirs.transform(X)),
                               rtol=TOL, atol=TOL * np.abs(X).max())
    if n_components is None:
        np.testing.assert_allclose(ours.inverse_transform(projected), X, rtol=1e-10, atol=1e-10 * np.abs(X).max())


@pytest.mark.parametrize("whiten", [False, True])
@pytest.mark.parametrize("n_components", [2, 4, None])
def test_score_samples_and_score(n_components, whiten):
    """score_samples, score, get_covariance and get_precision match scikit-learn's probabilistic PCA."""
    X = _data(seed=4)
    new = _data(n=50, seed=5)
    ours = ml.PCA(n_components=n_components, whiten=whiten).fit(X)
    theirs = _sk(n_components=n_components, whiten=whiten).fit(X)
    np.testing.assert_allclose(ours.get_covariance(), theirs.get_covariance(), rtol=TOL,
                               atol=TOL * np.abs(theirs.get_covariance()).max())
    np.testing.assert_allclose(ours.get_precision(), theirs.get_precision(), rtol=1e-7,
                               atol=1e-7 * np.abs(theirs.get_precision()).max())
    np.testing.assert_allclose(ours.score_samples(new), theirs.score_samples(new), rtol=TOL)
    assert ours.score(new) == pytest.approx(theirs.score(new), rel=TOL)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=TOL)


def test_inverse_transform_refuses_nan():
    model = ml.PCA(n_components=2).fit(np.random.default_rng(5).normal(size=(30, 4)))
    with pytest.raises(ValueError, match="Input X contains NaN"):
        model.inverse_transform(np.array([[np.nan, 1.0]]))


def test_float32_keeps_float32():
    """float32 input gives float32 attributes and projections (as scikit-learn's), close to its values."""
    X = _data(seed=6, dtype=np.float32)
    ours = ml.PCA(n_components=3).fit(X)
    theirs = _sk(n_components=3).fit(X)
    for name in ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_"):
        assert getattr(ours, name).dtype == np.float32, name
        assert getattr(theirs, name).dtype == np.float32, name
    assert ours.transform(X).dtype == theirs.transform(X).dtype == np.float32
    assert ours.inverse_transform(ours.transform(X)).dtype == np.float32
    signs = _signs(ours, theirs)
    assert rel_err(ours.components_ * signs[:, None], theirs.components_) <= 1e-4
    assert rel_err(ours.explained_variance_, theirs.explained_variance_) <= 1e-4
    # the float32 fit agrees with the float64 fit of the same values to float32's precision
    exact = ml.PCA(n_components=3).fit(X.astype(np.float64))
    assert rel_err(ours.explained_variance_, exact.explained_variance_) <= 1e-6


def test_far_from_origin_keeps_digits():
    """Data offset by 1e6 keep their variance's digits: explained_variance_ matches scikit-learn's full SVD to 1e-8."""
    X = _data(seed=7, offset=1e6)
    ours = ml.PCA(n_components=4).fit(X)
    full = sklearn_decomposition.PCA(n_components=4, svd_solver="full").fit(X)
    assert rel_err(ours.explained_variance_, full.explained_variance_) <= TOL
    assert rel_err(ours.components_ * _signs(ours, full)[:, None], full.components_) <= 1e-7


def test_component_sign_convention():
    """The largest-magnitude entry of each component is positive (scikit-learn's svd_flip on V)."""
    X = _data(seed=8)
    components = ml.PCA().fit(X).components_
    biggest = components[np.arange(components.shape[0]), np.argmax(np.abs(components), axis=1)]
    assert (biggest > 0).all()
    np.testing.assert_allclose(components @ components.T, np.eye(6), atol=1e-12)


def test_fit_transform_equals_fit_then_transform():
    """fit_transform gives transform's projections of the fitted rows."""
    X = _data(seed=9)
    np.testing.assert_allclose(ml.PCA(3).fit_transform(X), ml.PCA(3).fit(X).transform(X), rtol=1e-12, atol=1e-12)


def test_too_many_components_message():
    """n_components above min(n_samples, n_features) raises scikit-learn's message."""
    X = _data(n=20, d=6)
    with pytest.raises(ValueError, match=re.escape("n_components=7 must be between 0 and min(n_samples, "
                                                   "n_features)=6 with svd_solver='full'")):
        ml.PCA(n_components=7).fit(X)


def test_input_messages():
    """NaN in X and another feature count raise scikit-learn's messages."""
    X = _data(n=20, d=6)
    bad = X.copy()
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ml.PCA().fit(bad)
    model = ml.PCA(2).fit(X)
    with pytest.raises(ValueError, match=re.escape("X has 3 features, but PCA is expecting 6 features as input")):
        model.transform(X[:, :3])


def test_not_fitted_and_bad_parameters():
    """transform before fit raises NotFittedError; unsupported parameters raise ValueError naming them."""
    with pytest.raises(NotFittedError):
        ml.PCA().transform(np.zeros((2, 2)))
    X = _data(n=20, d=4)
    with pytest.raises(ValueError, match="n_components"):
        ml.PCA(n_components="mle").fit(X)
    with pytest.raises(ValueError, match="n_components"):
        ml.PCA(n_components=1.5).fit(X)
    with pytest.raises(ValueError, match="svd_solver"):
        ml.PCA(svd_solver="arpack").fit(X)


def test_float32_far_from_the_origin():
    """float32 rows at an offset of 1e6: the explained variance is a float64 fit's to ~1e-7 (no per-block bias)."""
    rng = np.random.default_rng(11)
    X = (rng.normal(size=(20000, 3)) * np.array([2.0, 1.0, 0.5]) + 1e6).astype(np.float32)
    ours = ml.PCA().fit(X)
    exact = ml.PCA().fit(X.astype(np.float64))
    np.testing.assert_allclose(ours.explained_variance_, exact.explained_variance_, rtol=1e-6)


def test_float32_fit_returns_float32_from_every_method():
    """As scikit-learn: a float32 fit gives float32 from get_covariance, get_precision and score_samples (computed in
    float64 inside, so within float32's resolution of scikit-learn's)."""
    from sklearn import decomposition

    X = np.random.default_rng(5).normal(size=(300, 6)).astype(np.float32)
    ours, theirs = ml.PCA(3).fit(X), decomposition.PCA(3).fit(X)
    for method in ("get_covariance", "get_precision"):
        got, want = getattr(ours, method)(), getattr(theirs, method)()
        assert got.dtype == want.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    got, want = ours.score_samples(X), theirs.score_samples(X)
    assert got.dtype == want.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e155, 1e200, 1e-160, 1e-200])
def test_data_at_the_edges_of_float64_matches_scikit_learn(scale):
    """Rows so large that their covariance overflows (LinAlgError before), so small that it goes subnormal
    (projections off in the third digit before) or underflows to exactly 0 (the components were the identity's and
    the singular values 0 before) take the SVD of their TSQR factor, as scikit-learn's full SVD; the singular values
    are that SVD's own (inf from 1e154 before, 9% off at 1e-160: squared and rooted again)."""
    X = _data(n=40, d=4, offset=0.0) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the covariance overflowing on the way to TSQR is not the caller's concern
        ours = ml.PCA().fit(X)
    theirs = sklearn_decomposition.PCA(svd_solver="full").fit(X)
    assert rel_err(ours.components_, theirs.components_) <= TOL
    assert rel_err(ours.transform(X), theirs.transform(X)) <= TOL
    assert rel_err(ours.singular_values_, theirs.singular_values_) <= TOL
    if scale < 1e-190:  # exactly 0 in float64: both agree
        np.testing.assert_array_equal(ours.explained_variance_, theirs.explained_variance_)
    elif scale < 1:  # at 1e155 the variances overflow to inf in both
        assert rel_err(ours.explained_variance_, theirs.explained_variance_) <= TOL


def test_a_constant_column_beside_tiny_ones_takes_the_exact_route():
    """A column whose squared deviations sum to 0 may be constant or tiny; the factor's SVD tells them apart: the
    tiny columns keep their components, the constant one has a singular value of exactly 0."""
    X = np.column_stack([_data(n=40, d=3, offset=0.0) * 1e-200, np.full(40, 5.0)])
    ours = ml.PCA().fit(X)
    theirs = sklearn_decomposition.PCA(svd_solver="full").fit(X)
    assert rel_err(ours.components_[:3], theirs.components_[:3]) <= TOL
    assert rel_err(ours.singular_values_[:3], theirs.singular_values_[:3]) <= TOL
    assert ours.singular_values_[3] == 0.0


@pytest.mark.parametrize("whiten", [False, True])
def test_one_row_gives_scikit_learns_nan_variance(whiten):
    """One row: scikit-learn divides the zero sum of squares by n - 1 = 0 (NaN); hpc said 0 before."""
    X = np.array([[1.0, 2.0, 3.0]])
    ours, theirs = ml.PCA(whiten=whiten).fit(X), sklearn_decomposition.PCA(whiten=whiten).fit(X)
    for name in ("explained_variance_", "explained_variance_ratio_", "singular_values_", "noise_variance_"):
        np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), err_msg=name)
    np.testing.assert_array_equal(ours.transform(X), theirs.transform(X))


def test_inverse_transform_checks_its_projections():
    """Projections of another width, or not 2-D, raise a ValueError (1-D and 3-D input gave arrays of shapes (d,)
    and (3, 4, d) before); integer projections convert."""
    X = _data(n=50, d=4)
    model = ml.PCA(2).fit(X)
    with pytest.raises(ValueError, match="Expected 2D array"):
        model.inverse_transform(np.ones(2))
    with pytest.raises(ValueError, match="Found array with dim 3"):
        model.inverse_transform(np.ones((3, 4, 2)))
    with pytest.raises(ValueError, match="X has 3 components, but PCA has 2"):
        model.inverse_transform(np.ones((3, 3)))
    np.testing.assert_array_equal(model.inverse_transform(np.ones((3, 2), dtype=int)),
                                  model.inverse_transform(np.ones((3, 2))))


@pytest.mark.parametrize("solver, named", [("auto", "full"), ("full", "full"), ("covariance_eigh", "covariance_eigh")])
def test_too_many_components_names_the_solver_as_scikit_learn(solver, named):
    """The message named 'covariance_eigh' whatever the solver; scikit-learn names the route it would run."""
    X = np.random.default_rng(0).normal(size=(5, 3))
    with pytest.raises(ValueError, match=f"svd_solver='{named}'"):
        ml.PCA(10, svd_solver=solver).fit(X)
