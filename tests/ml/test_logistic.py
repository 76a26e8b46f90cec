"""hpc.ml.LogisticRegression against scikit-learn 1.9's LogisticRegression (lbfgs) on one process."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from hpc import ml

from .conftest import classification, rel_err

sklearn_linear = pytest.importorskip("sklearn.linear_model")
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402

SkLogistic = sklearn_linear.LogisticRegression

#: the issue's target: coefficients within 1e-4 (relative to the largest) of scikit-learn's at tol=1e-10
TOL = 1e-4
TIGHT = {"tol": 1e-10, "max_iter": 10_000}


def _both(X, y, sample_weight=None, **params):
    ours = ml.LogisticRegression(**TIGHT, **params).fit(X, y, sample_weight=sample_weight)
    theirs = SkLogistic(**TIGHT, **params).fit(X, y, sample_weight=sample_weight)
    return ours, theirs


def _assert_same_model(ours, theirs, X):
    """Coefficients within TOL, and the local methods agree (predict away from ties)."""
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    assert ours.coef_.shape == theirs.coef_.shape
    assert ours.intercept_.shape == theirs.intercept_.shape
    assert rel_err(ours.coef_, theirs.coef_) <= TOL
    assert rel_err(ours.intercept_, theirs.intercept_) <= TOL or np.abs(ours.intercept_ - theirs.intercept_).max() \
        <= TOL * np.abs(theirs.coef_).max()
    ours_df, theirs_df = ours.decision_function(X), theirs.decision_function(X)
    assert ours_df.shape == theirs_df.shape
    assert rel_err(ours_df, theirs_df) <= TOL
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=0, atol=TOL)
    np.testing.assert_allclose(ours.predict_log_proba(X), theirs.predict_log_proba(X), rtol=TOL, atol=TOL)
    margin = np.abs(theirs_df) if theirs_df.ndim == 1 else np.diff(np.sort(theirs_df, axis=1)[:, -2:], axis=1)[:, 0]
    clear = margin > 1e-3 * np.abs(theirs_df).max()
    np.testing.assert_array_equal(ours.predict(X)[clear], theirs.predict(X)[clear])


@pytest.mark.parametrize("C", [0.01, 1.0, 100.0, np.inf])
@pytest.mark.parametrize("classes", [2, 3])
def test_matches_lbfgs(classes, C):
    """coef_, intercept_ and every local method match scikit-learn's lbfgs (binary and multinomial, several C)."""
    X, y = classification(n=300, d=4, classes=classes, seed=classes)
    ours, theirs = _both(X, y, C=C)
    _assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("classes", [2, 4])
def test_no_intercept_matches(classes):
    """fit_intercept=False matches scikit-learn's and leaves intercept_ at zero."""
    X, y = classification(n=250, d=3, classes=classes, seed=10 + classes)
    ours, theirs = _both(X, y, fit_intercept=False)
    _assert_same_model(ours, theirs, X)
    assert not ours.intercept_.any()


@pytest.mark.parametrize("classes", [2, 3])
def test_class_weight_balanced(classes):
    """class_weight="balanced" on imbalanced classes matches scikit-learn's."""
    weights = [0.8, 0.2] if classes == 2 else [0.7, 0.2, 0.1]
    X, y = classification(n=300, d=4, classes=classes, seed=20, weights=weights)
    ours, theirs = _both(X, y, class_weight="balanced")
    _assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("classes", [2, 3])
def test_class_weight_dict(classes):
    """A class_weight dict (one class left out: weight 1) matches scikit-learn's."""
    X, y = classification(n=300, d=4, classes=classes, seed=21)
    ours, theirs = _both(X, y, class_weight={0: 3.0} if classes == 2 else {0: 0.5, 2: 4.0})
    _assert_same_model(ours, theirs, X)


@pytest.mark.parametrize("classes", [2, 3])
def test_string_labels(classes):
    """String labels fit, predict the same strings and match scikit-learn's model."""
    X, codes = classification(n=300, d=4, classes=classes, seed=22)
    names = np.array(["eel", "cat", "dog"])[:classes]
    y = names[codes]
    ours, theirs = _both(X, y, C=0.5)
    assert ours.classes_.tolist() == sorted(names.tolist())
    _assert_same_model(ours, theirs, X)
    assert set(ours.predict(X).tolist()) <= set(names.tolist())


@pytest.mark.parametrize("classes", [2, 3])
def test_sample_weight(classes):
    """sample_weight (some zero) matches scikit-learn's; integer weights equal repeating rows."""
    X, y = classification(n=200, d=3, classes=classes, seed=23)
    rng = np.random.default_rng(0)
    weight = rng.uniform(0.0, 2.0, size=200)
    weight[::17] = 0.0
    ours, theirs = _both(X, y, sample_weight=weight)
    _assert_same_model(ours, theirs, X)
    counts = rng.integers(1, 4, size=200)
    weighted = ml.LogisticRegression(**TIGHT).fit(X, y, sample_weight=counts.astype(float))
    repeated = ml.LogisticRegression(**TIGHT).fit(np.repeat(X, counts, axis=0), np.repeat(y, counts))
    assert rel_err(weighted.coef_, repeated.coef_) <= TOL


def test_penalty_none_equals_infinite_c():
    """penalty=None fits the same model as C=np.inf (no penalty)."""
    X, y = classification(n=200, d=3, classes=3, seed=24)
    a = ml.LogisticRegression(penalty=None, **TIGHT).fit(X, y)
    b = ml.LogisticRegression(C=np.inf, **TIGHT).fit(X, y)
    assert rel_err(a.coef_, b.coef_) <= TOL


def test_score_matches():
    """score is the accuracy, as scikit-learn's, with and without sample weights."""
    X, y = classification(n=300, d=4, classes=3, seed=25)
    ours, theirs = _both(X, y)
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=1.5 / len(y))
    w = np.linspace(0.5, 2.0, len(y))
    assert ours.score(X, y, sample_weight=w) == pytest.approx(theirs.score(X, y, sample_weight=w), abs=3.0 / len(y))
    assert ours.score(X, y) == pytest.approx(np.mean(ours.predict(X) == y), abs=1e-15)


def test_score_takes_a_column_of_labels():
    """y of shape (n, 1) scores as its ravel, as scikit-learn's accuracy (the message had said "[200, 200]")."""
    X, y = classification(n=200, d=3, classes=2, seed=25)
    model = ml.LogisticRegression().fit(X, y)
    assert model.score(X, y[:, None]) == model.score(X, y)
    with pytest.raises(ValueError, match="1d array"):
        model.score(X, np.stack([y, y], axis=1))


def test_score_refuses_true_labels_it_cannot_score_as_scikit_learn():
    """NaN, infinite and continuous y, and strings against numeric classes (or the reverse), raise scikit-learn's
    accuracy errors: score had counted them as wrong predictions (0.45, 0.0)."""
    X, y = classification(n=60, d=3, classes=2, seed=26)
    model = ml.LogisticRegression().fit(X, y)
    with_nan = y.astype(float)
    with_nan[3] = np.nan
    with pytest.raises(ValueError, match="contains NaN"):
        model.score(X, with_nan)
    with_nan[3] = np.inf
    with pytest.raises(ValueError, match="contains infinity"):
        model.score(X, with_nan)
    with pytest.raises(ValueError, match="mix of continuous and binary targets"):
        model.score(X, X[:, 0])
    with pytest.raises(ValueError, match="Mix of label input types"):
        model.score(X, np.where(y == 1, "a", "b"))
    text = ml.LogisticRegression().fit(X, np.where(y == 1, "a", "b"))
    with pytest.raises(ValueError, match="Mix of label input types"):
        text.score(X, y)
    assert model.score(X, y.astype(float)) == model.score(X, y)  # whole floats are labels


@pytest.mark.parametrize("class_weight", [None, "balanced"])
def test_weights_all_zero_are_refused_in_fit_and_score(class_weight):
    """As scikit-learn: "at least one non-zero number". With class_weight="balanced" the class weights of zero
    weights were NaN, which passed the check, and the fit ended with zero coefficients; score returned NaN."""
    X, y = classification(n=40, d=3, classes=2, seed=27)
    with pytest.raises(ValueError, match="at least one non-zero number"):
        ml.LogisticRegression(class_weight=class_weight).fit(X, y, sample_weight=np.zeros(len(y)))
    model = ml.LogisticRegression(class_weight=class_weight).fit(X, y)
    with pytest.raises(ValueError, match="at least one non-zero number"):
        model.score(X, y, sample_weight=np.zeros(len(y)))


def test_object_labels_with_nan_or_fractions():
    """Labels in an object array: NaN raises as in a float y (np.unique had kept every NaN as a class of its own:
    47 classes from 3 values), and fractional floats are not classes (scikit-learn: "Unknown label type")."""
    X, y = classification(n=60, d=3, classes=2, seed=27)
    labels = y.astype(float).astype(object)
    labels[5] = np.nan
    with pytest.raises(ValueError, match="Input y contains NaN"):
        ml.LogisticRegression().fit(X, labels)
    fractions = (y * 0.5 + 0.1).astype(object)
    with pytest.raises(ValueError, match="Unknown label type"):
        ml.LogisticRegression().fit(X, fractions)
    whole = ml.LogisticRegression().fit(X, y.astype(float).astype(object))  # whole floats are classes
    assert whole.classes_.tolist() == [0.0, 1.0]


def test_attribute_shapes_and_types():
    """classes_, coef_, intercept_ and n_iter_ have scikit-learn's shapes and dtypes."""
    X, y = classification(n=200, d=3, classes=2, seed=26)
    ours, theirs = _both(X, y)
    assert ours.coef_.shape == (1, 3) and ours.intercept_.shape == (1,)
    assert ours.n_iter_.shape == theirs.n_iter_.shape == (1,)
    assert ours.n_iter_.dtype == theirs.n_iter_.dtype
    assert ours.n_iter_[0] > 0
    assert ours.decision_function(X).shape == (200,)
    assert ours.predict_proba(X).shape == (200, 2)
    np.testing.assert_allclose(ours.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    X3, y3 = classification(n=200, d=3, classes=3, seed=26)
    multi = ml.LogisticRegression().fit(X3, y3)
    assert multi.coef_.shape == (3, 3) and multi.intercept_.shape == (3,)
    assert multi.decision_function(X3).shape == (200, 3)


def test_probabilities_saturate_without_warnings():
    """Rows far from the boundary get probabilities exactly 0 and 1 with no overflow warning, as scikit-learn's."""
    X, y = classification(n=100, d=2, classes=2, seed=29)
    far = np.array([[-1e4, -1e4], [1e4, 1e4], [0.0, 0.0]])
    ours = ml.LogisticRegression().fit(X, y)
    theirs = SkLogistic().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = ours.predict_proba(far)
        expected = theirs.predict_proba(far)
    np.testing.assert_allclose(proba, expected, atol=1e-4)
    assert set(proba[:2].ravel().tolist()) == {0.0, 1.0}


def test_warm_start_resumes():
    """warm_start=True starts from the previous coefficients: a refit takes fewer iterations to the same model."""
    X, y = classification(n=300, d=4, classes=3, seed=27)
    model = ml.LogisticRegression(warm_start=True, **TIGHT).fit(X, y)
    first, coef = int(model.n_iter_[0]), model.coef_.copy()
    model.fit(X, y)
    assert model.n_iter_[0] < first
    assert rel_err(model.coef_, coef) <= TOL


def test_convergence_warning():
    """Stopping at max_iter warns with scikit-learn's ConvergenceWarning, its status and "Increase the number of
    iterations"; a line search that fails at once (data scaled by 1e50) gives the status and the advice to scale
    the data, not to raise max_iter (which would change nothing), as scikit-learn words it."""
    X, y = classification(n=200, d=3, classes=3, seed=28)
    with pytest.warns(ConvergenceWarning, match=r"(?s)after 1 iteration\(s\) \(status=1\).*Increase the number"):
        ml.LogisticRegression(max_iter=1).fit(X, y)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) * 1e50
    with pytest.warns(ConvergenceWarning) as caught:
        ml.LogisticRegression(max_iter=10_000).fit(X, (X[:, 0] > 0).astype(int))
    with pytest.warns(ConvergenceWarning) as theirs:
        SkLogistic(max_iter=10_000).fit(X, (X[:, 0] > 0).astype(int))
    ours = str(caught[0].message)
    assert ours.splitlines()[0] == str(theirs[0].message).splitlines()[0]
    assert "scale the data" in ours and "Increase the number" not in ours


def test_labels_of_mixed_types_raise_value_error():
    """y holding None beside ints, or NaN beside strings, raises ValueError as scikit-learn does (it was a
    TypeError, which an ``except ValueError`` around a fit did not catch)."""
    X, _ = classification(n=6, d=2)
    for y in (np.array([0, 0, None, 1, 1, 1], dtype=object), np.array(["a", "a", "b", "b", "a", np.nan], dtype=object)):
        with pytest.raises(ValueError):
            SkLogistic().fit(X, y)
        with pytest.raises(ValueError, match="mixes label types"):
            ml.LogisticRegression().fit(X, y)


def test_single_class_message():
    """One class only raises scikit-learn's message."""
    X, _ = classification(n=20, d=2)
    with pytest.raises(ValueError, match="needs samples of at least 2 classes in the data, but the data contains "
                                         "only one class"):
        ml.LogisticRegression().fit(X, np.zeros(20, dtype=int))


def test_continuous_target_message():
    """A continuous y raises scikit-learn's "Unknown label type" message."""
    X, _ = classification(n=20, d=2)
    with pytest.raises(ValueError, match="Unknown label type"):
        ml.LogisticRegression().fit(X, np.linspace(0, 1, 20))


def test_input_messages():
    """NaN, a y of the wrong length and another feature count raise scikit-learn's messages."""
    X, y = classification(n=20, d=4)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ml.LogisticRegression().fit(bad, y)
    with pytest.raises(ValueError, match=re.escape("Found input variables with inconsistent numbers of samples: "
                                                   "[20, 19]")):
        ml.LogisticRegression().fit(X, y[:19])
    model = ml.LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match=re.escape("X has 3 features, but LogisticRegression is expecting 4 "
                                                   "features as input")):
        model.predict(X[:, :3])


def test_not_fitted():
    """predict before fit raises scikit-learn's NotFittedError."""
    with pytest.raises(NotFittedError):
        ml.LogisticRegression().predict(np.zeros((2, 2)))


@pytest.mark.parametrize(
    "params",
    [{"C": 0.0}, {"C": -1.0}, {"solver": "liblinear"}, {"dual": True}, {"penalty": "l1"}, {"l1_ratio": 0.5},
     {"max_iter": -1}, {"tol": -1.0}, {"class_weight": "weird"}],
)
def test_bad_parameters(params):
    """An invalid or unsupported parameter raises ValueError at fit."""
    X, y = classification(n=30, d=2)
    name = next(iter(params))
    with pytest.raises(ValueError, match=name):
        ml.LogisticRegression(**params).fit(X, y)


def test_bad_sample_weight():
    """Bad sample weights raise ValueError saying what is wrong: the shape, a NaN or an infinity in scikit-learn's
    words, a negative weight (refused here; scikit-learn takes it), all-zero weights with scikit-learn's message."""
    X, y = classification(n=30, d=2)
    with pytest.raises(ValueError, match=r"sample_weight must be non-negative"):
        ml.LogisticRegression().fit(X, y, sample_weight=-np.ones(30))
    for weight, theirs in ((np.ones(29), r"sample_weight.shape == \(29,\), expected \(30,\)!"),
                           (np.ones((30, 1)), "Sample weights must be 1D array or scalar"),
                           (np.r_[np.nan, np.ones(29)], "Input sample_weight contains NaN"),
                           (np.r_[np.inf, np.ones(29)], "Input sample_weight contains infinity")):
        with pytest.raises(ValueError, match=theirs):
            SkLogistic().fit(X, y, sample_weight=weight)
        with pytest.raises(ValueError, match=theirs):
            ml.LogisticRegression().fit(X, y, sample_weight=weight)
    with pytest.raises(ValueError, match="Sample weights must contain at least one non-zero number"):
        ml.LogisticRegression().fit(X, y, sample_weight=np.zeros(30))


def test_negative_class_weight_is_named():
    """A negative or NaN class weight raises naming class_weight (it said "Sample weights must contain at least one
    non-zero number")."""
    X, y = classification(n=30, d=2)
    for weights in ({0: -2.0}, {1: np.nan}):
        with pytest.raises(ValueError, match="class_weight must hold finite, non-negative weights"):
            ml.LogisticRegression(class_weight=weights).fit(X, y)


def test_balanced_class_weight_uses_sample_weight():
    """class_weight="balanced" with sample_weight balances weighted counts, as scikit-learn 1.9 does."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + 0.5 * rng.normal(size=300) > 0.4).astype(int)
    w = rng.uniform(0.1, 3.0, 300)
    ours = ml.LogisticRegression(class_weight="balanced", tol=1e-10, max_iter=1000).fit(X, y, sample_weight=w)
    theirs = SkLogistic(class_weight="balanced", tol=1e-10, max_iter=1000).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-5)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-5, atol=1e-8)


def test_class_weight_with_unknown_class():
    """A class_weight key that names no class raises scikit-learn's error."""
    X = np.arange(8.0).reshape(4, 2)
    with pytest.raises(ValueError, match=re.escape("The classes, [1], are not in class_weight")):
        ml.LogisticRegression(class_weight={0: 1.0, 5: 2.0}).fit(X, [0, 1, 0, 1])


def test_score_checks_sample_weight_as_ridge_and_kmeans_do():
    """LogisticRegression.score took any weights: an infinite one gave NaN, NaN and negative ones were called "all
    zero", a (n, 1) column "inconsistent numbers of samples"."""
    X, y = classification(60, 3)
    model = ml.LogisticRegression().fit(X, y)
    for weight, message in ((np.r_[np.inf, np.ones(59)], "contains infinity"), (np.full(60, np.nan), "contains NaN"),
                            (-np.ones(60), "non-negative"), (np.ones((60, 1)), "1D array or scalar")):
        with pytest.raises(ValueError, match=message):
            model.score(X, y, sample_weight=weight)
    assert model.score(X, y, sample_weight=2.0) == model.score(X, y)


def test_balanced_class_weight_names_a_class_whose_weights_sum_to_zero():
    """Its balanced weight would be infinite: the NaN it made was reported as "all weights zero"."""
    X, y = classification(40, 3)
    weight = np.where(y == y.max(), 0.0, 1.0)
    with pytest.raises(ValueError, match=f"cannot weigh class {int(y.max())}: its sample weights sum to 0"):
        ml.LogisticRegression(class_weight="balanced").fit(X, y, sample_weight=weight)


@pytest.mark.parametrize("make", [lambda: ml.LogisticRegression(), lambda: ml.Ridge(), lambda: ml.KMeans(2),
                                  lambda: ml.PCA(2)])
def test_a_score_over_no_rows_at_all_is_refused(make):
    """NaN (or 0.0 for KMeans' inertia) with a warning at most: scikit-learn's "Found array with 0 sample(s)"."""
    X, y = classification(40, 3)
    model = make().fit(X, y)
    with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\) \(on every rank\)"):
        model.score(X[:0], y[:0])


def test_warm_start_from_a_model_of_another_shape_is_refused():
    """It started from zero without a word; scikit-learn refuses it ("Initialization coef is of shape ...")."""
    X, y = classification(60, 3)
    model = ml.LogisticRegression(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match=r"warm_start: the previous fit's coef_ has shape \(1, 3\), this fit needs"):
        model.fit(X[:, :2], y)
    model.fit(X, y)  # the same shape: starts from the previous coefficients
