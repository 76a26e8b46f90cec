"""Column names, as scikit-learn keeps and checks them: feature_names_in_, get_feature_names_out, set_output."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import cluster, decomposition, preprocessing
from sklearn.base import clone
from sklearn.pipeline import make_pipeline

from hpc import ml

rng = np.random.default_rng(0)
FRAME = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"], index=range(100, 160))
TARGET = 2.0 * FRAME.a - FRAME.c

ESTIMATORS = [
    (lambda: ml.LinearRegression(), "reg"),
    (lambda: ml.Ridge(alpha=1.0), "reg"),
    (lambda: ml.LogisticRegression(), "cls"),
    (lambda: ml.StandardScaler(), None),
    (lambda: ml.PCA(2), None),
    (lambda: ml.KMeans(2, random_state=0), None),
]


def _fit(make, kind, X):
    y = {"reg": TARGET, "cls": (TARGET > 0).astype(int), None: None}[kind]
    return make().fit(X) if y is None else make().fit(X, y)


def _local(estimator):
    return getattr(estimator, "predict", None) or estimator.transform


@pytest.mark.parametrize("make, kind", ESTIMATORS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_columns_in_another_order_are_refused(make, kind):
    """A DataFrame's columns are remembered (feature_names_in_) and a predict/transform with them reordered raises
    scikit-learn's ValueError instead of giving answers for the wrong columns."""
    fitted = _fit(make, kind, FRAME)
    assert list(fitted.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="The feature names should match those that were passed during fit"):
        _local(fitted)(FRAME[["b", "a", "c"]])
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- d"):
        _local(fitted)(FRAME.rename(columns={"c": "d"}))


@pytest.mark.parametrize("make, kind", ESTIMATORS, ids=lambda v: getattr(v, "__name__", str(v)))
def test_names_on_one_side_only_warn_as_in_scikit_learn(make, kind):
    """Fitted with names and given an array, or the reverse: scikit-learn's UserWarning; a refit on an array drops
    the names."""
    fitted = _fit(make, kind, FRAME)
    with pytest.warns(UserWarning, match="X does not have valid feature names, but .* was fitted with feature names"):
        _local(fitted)(FRAME.to_numpy())
    plain = _fit(make, kind, FRAME.to_numpy())
    assert not hasattr(plain, "feature_names_in_")
    with pytest.warns(UserWarning, match="X has feature names, but .* was fitted without feature names"):
        _local(plain)(FRAME)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _local(fitted)(FRAME)  # the same names: no warning


def test_column_names_of_mixed_types_are_refused():
    """Names that are partly strings raise scikit-learn's TypeError."""
    frame = pd.DataFrame(np.ones((3, 2)), columns=["a", 1])
    with pytest.raises(TypeError, match="Feature names are only supported if all input features have string names"):
        ml.StandardScaler().fit(frame)


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: ml.StandardScaler(), lambda: preprocessing.StandardScaler()),
        (lambda: ml.PCA(2), lambda: decomposition.PCA(2)),
        (lambda: ml.KMeans(3, random_state=0), lambda: cluster.KMeans(3, random_state=0, n_init=1)),
    ],
    ids=["StandardScaler", "PCA", "KMeans"],
)
@pytest.mark.parametrize("frame", [True, False], ids=["DataFrame", "array"])
def test_feature_names_out_are_scikit_learns(ours, theirs, frame):
    X = FRAME if frame else FRAME.to_numpy()
    got, want = ours().fit(X).get_feature_names_out(), theirs().fit(X).get_feature_names_out()
    assert got.dtype == want.dtype and list(got) == list(want)


def test_set_output_pandas_in_a_pipeline():
    """Pipeline.set_output(transform="pandas") gives a DataFrame with the last step's names and the input's index;
    clone keeps the choice; the default stays NumPy."""
    pipe = make_pipeline(ml.StandardScaler(), ml.PCA(2)).set_output(transform="pandas")
    out = pipe.fit_transform(FRAME)
    assert isinstance(out, pd.DataFrame) and list(out.columns) == ["pca0", "pca1"]
    assert out.index.equals(FRAME.index)
    reference = make_pipeline(preprocessing.StandardScaler(), decomposition.PCA(2)).fit_transform(FRAME)
    np.testing.assert_allclose(np.abs(out.to_numpy()), np.abs(reference), rtol=1e-10, atol=1e-12)
    scaler = clone(ml.StandardScaler().set_output(transform="pandas"))
    assert isinstance(scaler.fit(FRAME).transform(FRAME), pd.DataFrame)
    assert isinstance(ml.StandardScaler().fit_transform(FRAME), np.ndarray)
    with pytest.raises(ValueError, match="output config must be"):
        ml.StandardScaler().set_output(transform="arrow")



@pytest.mark.parametrize("make", [ml.StandardScaler, lambda: ml.PCA(1), ml.LinearRegression])
def test_nullable_pandas_columns(make):
    """pandas' nullable Int64/Float64/boolean columns: pd.NA is NaN, refused as scikit-learn refuses NaN ("Input X
    contains NaN"; it raised "float() argument must be ... NAType"); without missing values they fit as numbers."""
    X = pd.DataFrame(
        {"a": pd.array([1, None, 3, 4], dtype="Int64"), "b": pd.array([1.0, 2.0, 3.5, 5.0], dtype="Float64")}
    )
    y = pd.Series([1.0, 2.0, 3.0, 4.0])
    estimator = make()
    supervised = isinstance(estimator, ml.LinearRegression)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        estimator.fit(X, y) if supervised else estimator.fit(X)
    full = X.fillna(2)
    plain = full.astype("float64")
    if supervised:
        np.testing.assert_array_equal(make().fit(full, y).coef_, make().fit(plain, y).coef_)
        with pytest.raises(ValueError, match="Input y contains NaN"):
            make().fit(full, pd.Series(pd.array([1, None, 3, 4], dtype="Int64")))
    else:
        np.testing.assert_array_equal(make().fit(full).transform(plain), make().fit(plain).transform(plain))


def test_polars_output_without_polars_says_what_to_install(monkeypatch):
    """A bare ModuleNotFoundError came from inside the transform: scikit-learn names the package and the setting."""
    import sys

    monkeypatch.setitem(sys.modules, "polars", None)  # import polars fails, installed or not
    with pytest.raises(ImportError, match=r"set_output\(transform='polars'\) needs polars"):
        ml.StandardScaler().set_output(transform="polars").fit_transform(np.ones((3, 2)))
