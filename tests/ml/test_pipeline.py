"""hpc.ml estimators inside scikit-learn's machinery on one process: clone, Pipeline, GridSearchCV, pickle, params."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from hpc import ml

from .conftest import blobs, classification, regression, rel_err

sklearn = pytest.importorskip("sklearn")
from sklearn import cluster, decomposition, linear_model, preprocessing  # noqa: E402
from sklearn.base import clone, is_classifier, is_clusterer, is_regressor  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

PAIRS = [
    (ml.StandardScaler, preprocessing.StandardScaler, {"with_mean": False}),
    (ml.PCA, decomposition.PCA, {"n_components": 3, "whiten": True}),
    (ml.LinearRegression, linear_model.LinearRegression, {"fit_intercept": False}),
    (ml.Ridge, linear_model.Ridge, {"alpha": 2.5}),
    (ml.LogisticRegression, linear_model.LogisticRegression, {"C": 0.25, "max_iter": 50}),
    (ml.KMeans, cluster.KMeans, {"n_clusters": 3, "init": "random", "random_state": 4}),
]
IDS = [p[0].__name__ for p in PAIRS]


def _fit_data(estimator):
    """Return the arguments ``fit`` takes for this kind of estimator."""
    if isinstance(estimator, ml.LogisticRegression):
        return classification(n=120, d=4, classes=3, seed=1)
    if isinstance(estimator, (ml.LinearRegression, ml.Ridge)):
        return regression(n=120, d=4, seed=2)
    return (blobs(n=120, d=4, centres=3, seed=3)[0],)


@pytest.mark.parametrize("ours, theirs, params", PAIRS, ids=IDS)
def test_params_and_repr_as_sklearn(ours, theirs, params):
    """get_params (names and defaults) and repr equal scikit-learn's, set_params sets and returns the estimator."""
    assert ours().get_params() == theirs().get_params()
    assert ours(**params).get_params() == theirs(**params).get_params()
    assert repr(ours()) == repr(theirs())
    assert repr(ours(**params)) == repr(theirs(**params))
    estimator = ours()
    assert estimator.set_params(**params) is estimator
    assert estimator.get_params() == theirs(**params).get_params()
    with pytest.raises(ValueError, match="Invalid parameter 'nonsense'"):
        estimator.set_params(nonsense=1)


@pytest.mark.parametrize("ours, theirs, params", PAIRS, ids=IDS)
def test_clone(ours, theirs, params):
    """sklearn.base.clone copies the parameters of a fitted estimator into an unfitted one."""
    fitted = ours(**params).fit(*_fit_data(ours(**params)))
    copy = clone(fitted)
    assert type(copy) is ours
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "n_features_in_")
    assert hasattr(fitted, "n_features_in_")


@pytest.mark.parametrize("ours, theirs, params", PAIRS, ids=IDS)
def test_kind_tags(ours, theirs, params):
    """scikit-learn sees the same kind of estimator (classifier, regressor, clusterer) as its own."""
    assert is_classifier(ours()) == is_classifier(theirs())
    assert is_regressor(ours()) == is_regressor(theirs())
    assert is_clusterer(ours()) == is_clusterer(theirs())


@pytest.mark.parametrize("ours, theirs, params", PAIRS, ids=IDS)
def test_pickle_fitted(ours, theirs, params):
    """A fitted estimator pickles and unpickles to the same fitted attributes and answers, score included."""
    estimator = ours(**params)
    data = _fit_data(estimator)
    fitted = estimator.fit(*data)
    restored = pickle.loads(pickle.dumps(fitted))
    assert restored.get_params() == fitted.get_params()
    for name, value in vars(fitted).items():
        if name.endswith("_") and not name.startswith("_"):
            np.testing.assert_array_equal(np.asarray(getattr(restored, name)), np.asarray(value), err_msg=name)
    X = data[0]
    method = "predict" if hasattr(fitted, "predict") else "transform"
    np.testing.assert_array_equal(getattr(restored, method)(X), getattr(fitted, method)(X))
    if hasattr(fitted, "score"):
        assert restored.score(*data) == fitted.score(*data)


def test_pipeline_matches_sklearn_pipeline():
    """Pipeline(StandardScaler, PCA, LogisticRegression) fits and predicts as the same pipeline of sklearn's own."""
    X, y = classification(n=300, d=6, classes=3, seed=4)
    X_new, _ = classification(n=60, d=6, classes=3, seed=5)
    params = {"tol": 1e-10, "max_iter": 10_000}
    ours = make_pipeline(ml.StandardScaler(), ml.PCA(n_components=4), ml.LogisticRegression(**params)).fit(X, y)
    theirs = make_pipeline(preprocessing.StandardScaler(),
                           decomposition.PCA(n_components=4, svd_solver="covariance_eigh"),
                           linear_model.LogisticRegression(**params)).fit(X, y)
    assert ours.predict(X_new).shape == (60,)
    ours_p, theirs_p = ours.predict_proba(X_new), theirs.predict_proba(X_new)
    np.testing.assert_allclose(ours_p, theirs_p, atol=1e-4)
    clear = np.diff(np.sort(theirs_p, axis=1)[:, -2:], axis=1)[:, 0] > 1e-3
    np.testing.assert_array_equal(ours.predict(X_new)[clear], theirs.predict(X_new)[clear])
    assert ours.score(X, y) == pytest.approx(theirs.score(X, y), abs=1.5 / len(y))


def test_grid_search_over_each_pipeline_step():
    """GridSearchCV over a parameter of each step picks the same parameters with the same scores as sklearn's."""
    X, y = classification(n=240, d=5, classes=2, seed=6)
    grid = {"standardscaler__with_mean": [True, False], "pca__n_components": [2, 4],
            "logisticregression__C": [0.01, 1.0]}
    cv = KFold(n_splits=2, shuffle=True, random_state=0)
    params = {"tol": 1e-10, "max_iter": 10_000}
    ours = GridSearchCV(make_pipeline(ml.StandardScaler(), ml.PCA(), ml.LogisticRegression(**params)), grid, cv=cv)
    theirs = GridSearchCV(make_pipeline(preprocessing.StandardScaler(), decomposition.PCA(svd_solver="covariance_eigh"),
                                        linear_model.LogisticRegression(**params)), grid, cv=cv)
    ours.fit(X, y)
    theirs.fit(X, y)
    assert len(ours.cv_results_["params"]) == 8
    np.testing.assert_allclose(ours.cv_results_["mean_test_score"], theirs.cv_results_["mean_test_score"], atol=0.02)
    assert ours.best_params_ == theirs.best_params_ or (
        ours.cv_results_["mean_test_score"].max() - theirs.cv_results_["mean_test_score"][ours.best_index_] < 0.02)
    assert isinstance(ours.best_estimator_.steps[-1][1], ml.LogisticRegression)
    assert ours.predict(X).shape == (240,)


@pytest.mark.parametrize(
    "ours, theirs, grid, data",
    [
        (ml.Ridge(), linear_model.Ridge(), {"alpha": [1e-3, 10.0, 1e3]}, "reg"),
        (ml.LinearRegression(), linear_model.LinearRegression(), {"fit_intercept": [True, False]}, "reg"),
        (ml.KMeans(n_init=3, random_state=0), cluster.KMeans(n_init=3, random_state=0), {"n_clusters": [2, 3, 4]},
         "blobs"),
        (ml.PCA(), decomposition.PCA(svd_solver="covariance_eigh"), {"n_components": [1, 2, 3]}, "blobs"),
    ],
    ids=["Ridge", "LinearRegression", "KMeans", "PCA"],
)
def test_grid_search_single_estimator(ours, theirs, grid, data):
    """GridSearchCV over one parameter of an estimator gives scikit-learn's scores (the estimator's own score)."""
    if data == "reg":
        X, y = regression(n=150, d=4, seed=7)
        y = y + np.random.default_rng(0).normal(scale=3.0, size=y.shape)  # noisy: the alphas score differently
        args = (X, y)
    else:
        X = blobs(n=150, d=4, centres=3, seed=8)[0]
        args = (X,)
    cv = KFold(n_splits=3, shuffle=True, random_state=1)
    ours_search = GridSearchCV(ours, grid, cv=cv).fit(*args)
    theirs_search = GridSearchCV(theirs, grid, cv=cv).fit(*args)
    ours_scores = ours_search.cv_results_["mean_test_score"]
    theirs_scores = theirs_search.cv_results_["mean_test_score"]
    if isinstance(ours, ml.KMeans):  # k-means++ draws differ from sklearn's: the score (minus the inertia) within 5%
        assert (ours_scores >= 1.05 * theirs_scores).all()
    else:
        assert rel_err(ours_scores, theirs_scores) <= 1e-8
    assert ours_search.best_params_ == theirs_search.best_params_


def test_import_does_not_load_sklearn():
    """import hpc.ml leaves scikit-learn unimported (a second of start-up) until one of its classes is needed."""
    import subprocess
    import sys

    code = "import sys, hpc.ml; print('sklearn' in sys.modules); hpc.ml.NotFittedError; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]


def test_fit_caps_every_blas_at_one_thread():
    """Inside a fit every loaded BLAS runs one thread, SciPy's included (loaded after the cap was first set)."""
    import subprocess
    import sys

    code = """
import numpy as np
from hpc import config, par_range
from hpc.ml import _base
par_range(4).map(float).sum()   # the iterators set the cap first, before SciPy's BLAS is loaded

class Probe:
    @_base.one_blas_thread
    def fit(self):
        from threadpoolctl import threadpool_info
        return sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})

print(config.available_cpus(), Probe().fit())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = proc.stdout.split(maxsplit=1)
    if int(out[0]) < 2:
        pytest.skip("one CPU: the cap has nothing to do")
    assert out[1].strip() == "[1]"


def test_an_estimators_own_default_output_holds_inside_a_pandas_config():
    """set_output(transform="default") and "never set" were read alike, so a global transform_output="pandas"
    overrode an estimator's own "default": scikit-learn keeps the estimator's choice."""
    pytest.importorskip("pandas")
    X = regression(40, 3)[0]
    with sklearn.config_context(transform_output="pandas"):
        for estimator in (ml.StandardScaler(), ml.PCA(2)):
            assert type(estimator.set_output(transform="default").fit_transform(X)) is np.ndarray
        assert type(make_pipeline(ml.StandardScaler(), ml.PCA(2)).set_output(transform="default")
                    .fit_transform(X)) is np.ndarray
        assert type(ml.StandardScaler().fit_transform(X)).__name__ == "DataFrame"  # never set: the global one


def test_pipelines_score_with_metadata_routing_on():
    """With enable_metadata_routing=True, Pipeline.score forwards sample_weight=None, which an estimator without
    get_metadata_routing refused ("not routed to any object"): every cross_val_score and GridSearchCV over a
    Pipeline of hpc estimators failed."""
    from sklearn.model_selection import cross_val_score

    X, y = regression(150, 4)
    with sklearn.config_context(enable_metadata_routing=True):
        ours = make_pipeline(ml.StandardScaler(), ml.Ridge()).fit(X, y)
        theirs = make_pipeline(preprocessing.StandardScaler(), linear_model.Ridge()).fit(X, y)
        assert ours.score(X, y) == pytest.approx(theirs.score(X, y), rel=1e-10)
        scores = cross_val_score(make_pipeline(ml.StandardScaler(), ml.Ridge()), X, y, cv=3, error_score="raise")
        assert np.isfinite(scores).all()
    assert set(ml.Ridge().get_metadata_routing().score.requests) == {"sample_weight"}


def test_set_fit_request_routes_sample_weight_as_scikit_learn():
    """With routing on, a weight reaches hpc estimators that asked for it (set_fit_request / set_score_request),
    with scikit-learn's answer; clone keeps the requests; unknown names and routing off raise scikit-learn's errors."""
    X, y = regression(150, 4)
    w = np.random.default_rng(3).uniform(0.5, 2.0, 150)

    def pipeline(scaler, ridge):
        return make_pipeline(scaler.set_fit_request(sample_weight=True),
                             ridge.set_fit_request(sample_weight=True).set_score_request(sample_weight=True))

    with sklearn.config_context(enable_metadata_routing=True):
        ours = pipeline(ml.StandardScaler(), ml.Ridge()).fit(X, y, sample_weight=w)
        theirs = pipeline(preprocessing.StandardScaler(), linear_model.Ridge()).fit(X, y, sample_weight=w)
        np.testing.assert_allclose(ours[-1].coef_, theirs[-1].coef_, rtol=1e-10)
        assert ours.score(X, y, sample_weight=w) == pytest.approx(theirs.score(X, y, sample_weight=w), rel=1e-10)
        assert clone(ours[-1]).get_metadata_routing().fit.requests == {"sample_weight": True}
        with pytest.raises(TypeError, match="Unexpected args: {'bogus'} in fit"):
            ml.Ridge().set_fit_request(bogus=True)
    with pytest.raises(RuntimeError, match="only available when metadata routing is enabled"):
        ml.Ridge().set_fit_request(sample_weight=True)
