"""hpc.ml.StandardScaler against scikit-learn 1.9's StandardScaler on one process."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from hpc import ml

sklearn_preprocessing = pytest.importorskip("sklearn.preprocessing")
from sklearn.exceptions import NotFittedError  # noqa: E402

#: the issue's target for mean_, var_ and scale_
TOL = 1e-12


def _data(n=300, d=4, seed=0, offset=0.0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.uniform(0.1, 5.0, d) + rng.normal(size=d) * 3 + offset).astype(dtype)


def _assert_same_stats(ours, theirs):
    assert ours.n_samples_seen_ == theirs.n_samples_seen_
    assert ours.n_features_in_ == theirs.n_features_in_
    for name in ("mean_", "var_", "scale_"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=TOL, atol=TOL * np.abs(b).max(), err_msg=name)


def test_matches_sklearn():
    """mean_, var_, scale_ and n_samples_seen_ match scikit-learn's within 1e-12, and so do transform's rows."""
    X = _data()
    ours = ml.StandardScaler().fit(X)
    theirs = sklearn_preprocessing.StandardScaler().fit(X)
    _assert_same_stats(ours, theirs)
    new = _data(n=30, seed=1)
    np.testing.assert_allclose(ours.transform(new), theirs.transform(new), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.inverse_transform(new), theirs.inverse_transform(new), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.inverse_transform(ours.transform(new)), new, rtol=TOL, atol=TOL)
    Z = ours.fit_transform(X)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-13)
    np.testing.assert_allclose(Z.std(axis=0), 1.0, rtol=1e-12)


def test_constant_column():
    """A constant column has var_ 0 (to 1e-12) and scale_ exactly 1, as scikit-learn's, and transforms to zero."""
    X = _data(seed=2)
    X[:, 2] = 3.7
    ours = ml.StandardScaler().fit(X)
    theirs = sklearn_preprocessing.StandardScaler().fit(X)
    _assert_same_stats(ours, theirs)
    assert ours.scale_[2] == 1.0
    assert ours.var_[2] <= 1e-12 * theirs.var_.max()
    np.testing.assert_allclose(ours.transform(X)[:, 2], 0.0, atol=1e-12)


def test_large_offset():
    """Data offset by 1e9 keep their variance: mean_, var_ and scale_ within 1e-12 of scikit-learn's."""
    X = _data(seed=3, offset=1e9)
    ours = ml.StandardScaler().fit(X)
    theirs = sklearn_preprocessing.StandardScaler().fit(X)
    _assert_same_stats(ours, theirs)
    assert theirs.var_.min() > 1e-3  # the columns vary: a naive E[x^2] - E[x]^2 would give garbage here


@pytest.mark.parametrize("n", [50, 10_000])  # one block; several, whose means differ in their last units
def test_offset_of_1e16_keeps_every_digit_of_the_variance(n):
    """A column 1e16 + 150 * N(0, 1), where float64 spaces values 2 apart: var_ is the exact variance of the values
    to 1e-12, as scikit-learn's is (its corrected two-pass formula); before, each block was centred on its rounded
    mean with nothing to correct it, and var_ was off by up to 5e-4 (1e-6 to 8e-3 at offsets 1e9 to 1e16)."""
    from fractions import Fraction

    col = 1e16 + np.random.default_rng(246).normal(size=n) * 150.0
    exact = [Fraction(v) for v in col.tolist()]
    mean = sum(exact) / n
    exact_var = float(sum((v - mean) ** 2 for v in exact) / n)
    ours = ml.StandardScaler().fit(col[:, None])
    theirs = sklearn_preprocessing.StandardScaler().fit(col[:, None])
    assert ours.var_[0] == pytest.approx(exact_var, rel=1e-12)
    assert ours.var_[0] == pytest.approx(theirs.var_[0], rel=1e-12)
    assert abs(ours.mean_[0] - float(mean)) <= 2.0  # one unit of float64 there


@pytest.mark.parametrize("with_mean, with_std", [(False, True), (True, False), (False, False)])
def test_with_mean_with_std(with_mean, with_std):
    """with_mean=False and with_std=False set the same attributes (None or values) and transform as scikit-learn's."""
    X = _data(seed=4)
    ours = ml.StandardScaler(with_mean=with_mean, with_std=with_std).fit(X)
    theirs = sklearn_preprocessing.StandardScaler(with_mean=with_mean, with_std=with_std).fit(X)
    _assert_same_stats(ours, theirs)
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=TOL, atol=TOL)
    np.testing.assert_allclose(ours.inverse_transform(X), theirs.inverse_transform(X), rtol=TOL, atol=TOL)


def test_copy_false_transforms_in_place():
    """copy=False transforms a float64 array in place; the default copy leaves the input untouched."""
    X = _data(seed=5)
    before = X.copy()
    scaler = ml.StandardScaler().fit(X)
    out = scaler.transform(X)
    np.testing.assert_array_equal(X, before)
    assert not np.shares_memory(out, X)
    in_place = scaler.transform(X, copy=False)
    assert np.shares_memory(in_place, X)
    np.testing.assert_allclose(X, out, rtol=0, atol=0)
    X = before.copy()
    ml.StandardScaler(copy=False).fit(X).transform(X)
    np.testing.assert_array_equal(X, out)


def test_float32_preserved():
    """float32 rows transform to float32, close to scikit-learn's float32 result."""
    X = _data(seed=6, dtype=np.float32)
    ours = ml.StandardScaler().fit(X)
    theirs = sklearn_preprocessing.StandardScaler().fit(X)
    assert ours.transform(X).dtype == theirs.transform(X).dtype == np.float32
    assert ours.inverse_transform(X).dtype == np.float32
    np.testing.assert_allclose(ours.transform(X), theirs.transform(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.mean_, theirs.mean_, rtol=1e-6)
    np.testing.assert_allclose(ours.var_, theirs.var_, rtol=1e-5)


def test_read_only_input():
    """A read-only input (a memory map, say) transforms without error, into a new array."""
    X = _data(seed=7)
    X.setflags(write=False)
    scaler = ml.StandardScaler().fit(X)
    out = scaler.transform(X, copy=False)
    assert out.flags.writeable and not np.shares_memory(out, X)


def test_integer_input_converts():
    """Integer rows are converted to float64 as scikit-learn's check_array does."""
    X = np.arange(24).reshape(8, 3)
    ours = ml.StandardScaler().fit(X)
    theirs = sklearn_preprocessing.StandardScaler().fit(X.astype(float))
    _assert_same_stats(ours, theirs)
    assert ours.transform(X).dtype == np.float64


def test_input_messages():
    """NaN in X, another feature count and a 1-D X raise scikit-learn's messages."""
    X = _data(n=20)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ml.StandardScaler().fit(bad)
    scaler = ml.StandardScaler().fit(X)
    with pytest.raises(ValueError, match=re.escape("X has 3 features, but StandardScaler is expecting 4 features "
                                                   "as input")):
        scaler.transform(X[:, :3])
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array instead"):
        ml.StandardScaler().fit(X[:, 0])
    with pytest.raises(NotFittedError):
        ml.StandardScaler().transform(X)


@pytest.mark.parametrize("with_mean, with_std", [(True, True), (False, True), (True, False), (False, False)])
def test_sample_weight_matches_sklearn(with_mean, with_std):
    """Weighted fits give scikit-learn's weighted mean_, var_, scale_ and n_samples_seen_ (the weights' total), and
    rows weighted 0 count as left out."""
    X = _data(n=500, seed=4, offset=50.0)
    w = np.random.default_rng(3).uniform(0.0, 2.0, X.shape[0])
    w[::5] = 0.0
    params = {"with_mean": with_mean, "with_std": with_std}
    ours = ml.StandardScaler(**params).fit(X, sample_weight=w)
    theirs = sklearn_preprocessing.StandardScaler(**params).fit(X, sample_weight=w)
    assert ours.n_samples_seen_ == pytest.approx(theirs.n_samples_seen_, rel=1e-14)
    assert isinstance(ours.n_samples_seen_, float)
    for name in ("mean_", "var_", "scale_"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=TOL, err_msg=name)
    kept = w > 0
    again = ml.StandardScaler(**params).fit(X[kept], sample_weight=w[kept])
    if with_mean or with_std:
        np.testing.assert_allclose(again.mean_, ours.mean_, rtol=1e-14)
    if with_std:
        assert not np.allclose(ours.var_, ml.StandardScaler().fit(X).var_, rtol=1e-6)  # the weights counted
    np.testing.assert_allclose(ours.fit_transform(X, sample_weight=w), theirs.transform(X), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("n", [50, 10_000])
def test_weighted_offset_of_1e16_keeps_every_digit_of_the_variance(n):
    """The weighted variance of 1e16 + 150 * N(0, 1) to 1e-12 of the exact one: each block's weighted deviations'
    sum corrects its rounded mean, as without weights. Weights 0, 1, 2 and 4 keep the exact products exact."""
    from fractions import Fraction

    rng = np.random.default_rng(247)
    col = 1e16 + rng.normal(size=n) * 150.0
    w = rng.choice([0.0, 1.0, 2.0, 4.0], size=n)
    exact = [Fraction(v) for v in col.tolist()]
    weights = [Fraction(v) for v in w.tolist()]
    total = sum(weights)
    mean = sum(a * b for a, b in zip(weights, exact)) / total
    exact_var = float(sum(a * (v - mean) ** 2 for a, v in zip(weights, exact)) / total)
    ours = ml.StandardScaler().fit(col[:, None], sample_weight=w)
    assert ours.var_[0] == pytest.approx(exact_var, rel=1e-12)
    assert abs(ours.mean_[0] - float(mean)) <= 2.0


def test_bad_sample_weight():
    X = _data(n=40)
    with pytest.raises(ValueError, match="at least one non-zero"):
        ml.StandardScaler().fit(X, sample_weight=np.zeros(40))
    with pytest.raises(ValueError, match="non-negative"):
        ml.StandardScaler().fit(X, sample_weight=-np.ones(40))
    with pytest.raises(ValueError, match=r"expected \(40,\)"):
        ml.StandardScaler().fit(X, sample_weight=np.ones(4))


BATCHES = [(0, 700), (700, 1100), (1100, 2000)]


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("with_mean, with_std", [(True, True), (False, True), (True, False), (False, False)])
def test_partial_fit_matches_sklearn_and_fit(with_mean, with_std, weighted):
    """Batches through partial_fit give scikit-learn's statistics, and fit's on all the rows (to 1e-11: the merge
    of a batch's mean with the running one loses a few digits on a column offset by 1e6), as do their transforms."""
    X = _data(n=2000, seed=8, offset=0.0)
    X[:, 1] += 1e6
    w = np.random.default_rng(8).uniform(0.0, 2.0, X.shape[0]) if weighted else None
    params = {"with_mean": with_mean, "with_std": with_std}
    ours, theirs = ml.StandardScaler(**params), sklearn_preprocessing.StandardScaler(**params)
    for lo, hi in BATCHES:
        part = None if w is None else w[lo:hi]
        assert ours.partial_fit(X[lo:hi], sample_weight=part) is ours
        theirs.partial_fit(X[lo:hi], sample_weight=part)
    whole = ml.StandardScaler(**params).fit(X, sample_weight=w)
    assert ours.n_samples_seen_ == pytest.approx(theirs.n_samples_seen_, rel=1e-14)
    assert ours.n_samples_seen_ == pytest.approx(whole.n_samples_seen_, rel=1e-14)
    for name in ("mean_", "var_", "scale_"):
        a, b, c = getattr(ours, name), getattr(theirs, name), getattr(whole, name)
        assert (a is None) == (b is None) == (c is None), name
        if b is not None:
            np.testing.assert_allclose(a, b, rtol=1e-10, err_msg=name)
            np.testing.assert_allclose(a, c, rtol=1e-11, err_msg=name)
    np.testing.assert_allclose(ours.transform(X[:50]), whole.transform(X[:50]), rtol=1e-9, atol=1e-9)


def test_partial_fit_variance_is_more_exact_than_the_naive_merge():
    """The merged variance of a column 1e6 + 2 N(0, 1) over three batches is within 1e-12 of the exact one
    (scikit-learn's incremental update: 5e-12 on this column)."""
    from fractions import Fraction

    col = 1e6 + np.random.default_rng(0).normal(size=3000) * 2.0
    exact = [Fraction(v) for v in col.tolist()]
    mean = sum(exact) / len(exact)
    exact_var = float(sum((v - mean) ** 2 for v in exact) / len(exact))
    scaler = ml.StandardScaler()
    for lo, hi in [(0, 1000), (1000, 1700), (1700, 3000)]:
        scaler.partial_fit(col[lo:hi, None])
    assert scaler.var_[0] == pytest.approx(exact_var, rel=1e-12)


def test_fit_forgets_partial_fits():
    X = _data(n=300, seed=9)
    scaler = ml.StandardScaler().partial_fit(X[:100] + 50.0)
    np.testing.assert_array_equal(scaler.fit(X).mean_, ml.StandardScaler().fit(X).mean_)
    assert scaler.n_samples_seen_ == 300


def test_partial_fit_refuses_other_features():
    X = _data(n=100, d=4, seed=10)
    scaler = ml.StandardScaler().partial_fit(X)
    with pytest.raises(ValueError, match="X has 3 features, but StandardScaler is expecting 4 features"):
        scaler.partial_fit(X[:, :3])
    pd = pytest.importorskip("pandas")
    named = ml.StandardScaler().partial_fit(pd.DataFrame(X, columns=list("abcd")))
    with pytest.raises(ValueError, match="feature names should match"):
        named.partial_fit(pd.DataFrame(X, columns=list("abdc")))
    assert named.n_samples_seen_ == 100  # the refused batch left the statistics alone


def test_weighted_constant_column_has_variance_zero():
    """A constant column's weighted variance is never below 0 (its weighted deviations could round below it) and
    its scale is 1, without a warning from the square root."""
    rng = np.random.default_rng(12)
    for _ in range(40):
        X = _data(n=50, d=3, seed=int(rng.integers(1 << 30)))
        X[:, 1] = rng.normal() * 10 ** rng.uniform(-3, 3)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            scaler = ml.StandardScaler().fit(X, sample_weight=rng.uniform(0.1, 3.0, 50))
        assert scaler.var_[1] >= 0.0 and scaler.scale_[1] == 1.0


def test_partial_fit_batch_of_weight_zero_is_refused():
    """A batch whose weights are all 0 raises scikit-learn 1.9's ValueError, first or later (a later one was
    skipped before), and a refused batch leaves the scaler as it was."""
    from sklearn.preprocessing import StandardScaler

    X = _data(n=100, seed=13)
    scaler = ml.StandardScaler().partial_fit(X[:60], sample_weight=np.ones(60))
    theirs = StandardScaler().partial_fit(X[:60], sample_weight=np.ones(60))
    before = (scaler.n_samples_seen_, scaler.mean_.copy(), scaler.var_.copy())
    for model in (scaler, theirs):
        with pytest.raises(ValueError, match="at least one non-zero"):
            model.partial_fit(X[60:], sample_weight=np.zeros(40))
    assert scaler.n_samples_seen_ == before[0]
    np.testing.assert_array_equal(scaler.mean_, before[1])
    np.testing.assert_array_equal(scaler.var_, before[2])
    with pytest.raises(ValueError, match="at least one non-zero"):
        ml.StandardScaler().partial_fit(X, sample_weight=np.zeros(100))


def test_inverse_transform_does_not_check_column_names():
    """As scikit-learn's, inverse_transform takes scaled rows whatever their column names: a fit on a DataFrame then
    an ndarray warned on every call, and other names raised; the width and the dimensions are still checked."""
    import pandas as pd

    X = _data(n=30, seed=21)[:, :2]
    scaler = ml.StandardScaler().fit(pd.DataFrame(X, columns=["a", "b"]))
    scaled = scaler.transform(pd.DataFrame(X, columns=["a", "b"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(scaler.inverse_transform(scaled), X, rtol=1e-12)
        np.testing.assert_allclose(scaler.inverse_transform(pd.DataFrame(scaled, columns=["x", "y"])), X, rtol=1e-12)
    with pytest.raises(ValueError, match="expecting 2 features"):
        scaler.inverse_transform(scaled[:, :1])
    with pytest.raises(ValueError, match="Expected 2D array"):
        scaler.inverse_transform(scaled[0])


def test_weights_all_zero_are_refused_without_mean_or_std_too():
    """The early return of with_mean=False, with_std=False came before the check: n_samples_seen_ was 20."""
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="at least one non-zero number"):
        ml.StandardScaler(with_mean=False, with_std=False).fit(X, sample_weight=np.zeros(20))
