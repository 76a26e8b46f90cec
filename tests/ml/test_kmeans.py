"""hpc.ml.KMeans against scikit-learn 1.9's KMeans (lloyd) on one process: answers, attributes, messages."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from hpc import ml

from .conftest import blobs, rel_err

sklearn_cluster = pytest.importorskip("sklearn.cluster")
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402

SkKMeans = sklearn_cluster.KMeans


def _separated(n=600, d=3, k=6, seed=0):
    """Return blobs whose centres are far apart compared with their spread: every good init finds the optimum."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=40.0, size=(k, d))
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(size=(n, d)) + 5.0


def _poor_init(X, k, seed):
    """Return ``k`` starting centres close together (rows of one corner of the data): Lloyd needs many steps."""
    rng = np.random.default_rng(seed)
    order = np.argsort(X[:, 0])
    return X[order[rng.choice(40, size=k, replace=False)]] + rng.normal(scale=0.01, size=(k, X.shape[1]))


ARRAY_CASES = [
    # (seed, n, d, k): overlapping blobs, a poor start: many Lloyd iterations to follow exactly
    (0, 500, 4, 5),
    (1, 400, 2, 7),
    (2, 300, 6, 3),
]


@pytest.mark.parametrize("seed, n, d, k", ARRAY_CASES)
def test_array_init_matches_lloyd(seed, n, d, k):
    """From the same ndarray init with tol=0, the centres, inertia, n_iter_ and labels are scikit-learn's lloyd's."""
    X, _ = blobs(n=n, d=d, centres=k + 1, seed=seed)
    init = _poor_init(X, k, seed)
    ours = ml.KMeans(n_clusters=k, init=init, n_init=1, tol=0.0).fit(X)
    theirs = SkKMeans(n_clusters=k, init=init, n_init=1, tol=0.0, algorithm="lloyd").fit(X)
    assert theirs.n_iter_ >= 3  # the case really iterates
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert rel_err(ours.cluster_centers_, theirs.cluster_centers_) <= 1e-10
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-10, atol=0)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-10, abs=0)


def _same_as_lloyd(ours, theirs):
    """Assert the fits agree: iterations, labels, centres and inertia (1e-10 relative)."""
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=1e-10, atol=0)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-10, abs=0)


def test_array_init_with_tolerance_matches_lloyd():
    """With scikit-learn's default tol the run stops at the same iteration with the same centres."""
    X, _ = blobs(n=500, d=4, centres=6, seed=3)
    init = _poor_init(X, 5, 3)
    ours = ml.KMeans(n_clusters=5, init=init, n_init=1).fit(X)
    theirs = SkKMeans(n_clusters=5, init=init, n_init=1).fit(X)
    _same_as_lloyd(ours, theirs)


def test_empty_cluster_relocated_as_sklearn():
    """A starting centre far from every row leaves its cluster empty; it moves to the farthest row, as in sklearn."""
    X, _ = blobs(n=300, d=3, centres=4, seed=4)
    init = _poor_init(X, 4, 4)
    init[2] = X.mean(axis=0) + 1e4  # nothing is nearest to it at the first step
    ours = ml.KMeans(n_clusters=4, init=init, n_init=1, tol=0.0).fit(X)
    theirs = SkKMeans(n_clusters=4, init=init, n_init=1, tol=0.0).fit(X)
    assert np.bincount(ours.labels_, minlength=4).min() > 0
    _same_as_lloyd(ours, theirs)


def test_kmeans_plusplus_inertia_close_to_sklearn():
    """k-means++ over 40 seeds reaches, on average, an inertia no worse than 1.05 times scikit-learn's (each seed
    either finds every blob or merges two: 6 seeds were too few to tell one sampler from another)."""
    X, _ = blobs(n=600, d=3, centres=8, seed=5)
    seeds = range(40)
    ours = np.mean([ml.KMeans(n_clusters=8, random_state=s).fit(X).inertia_ for s in seeds])
    theirs = np.mean([SkKMeans(n_clusters=8, random_state=s, n_init=1).fit(X).inertia_ for s in seeds])
    assert ours <= 1.05 * theirs


@pytest.mark.parametrize("init, k", [("random", 4), ("k-means||", 4), ("k-means||", 6), ("k-means++", 6)])
def test_other_inits_on_separated_blobs(init, k):
    """Each init finds well-separated blobs: inertia within 1.05x of scikit-learn's best for seeds 0, 1 and 2.

    Random starts need few blobs (k=4, where scikit-learn's own init="random" finds them for every seed 0..7).
    """
    X = _separated(k=k, seed=1)
    theirs = SkKMeans(n_clusters=k, init="k-means++", n_init=10, random_state=0).fit(X).inertia_
    assert SkKMeans(n_clusters=k, init=init if init == "random" else "k-means++", random_state=0).fit(X).inertia_ \
        <= 1.05 * theirs
    for seed in range(3):
        ours = ml.KMeans(n_clusters=k, init=init, random_state=seed).fit(X)
        assert ours.inertia_ <= 1.05 * theirs, (seed, ours.inertia_, theirs)
        assert np.bincount(ours.labels_, minlength=k).min() > 0


@pytest.mark.parametrize("init", ["random", "k-means++", "k-means||"])
def test_n_init_keeps_best_run(init):
    """With n_init=5 the lowest-inertia run is kept: never worse than the first run alone (n_init=1)."""
    X, _ = blobs(n=400, d=2, centres=9, seed=11)
    for seed in range(3):
        one = ml.KMeans(n_clusters=8, init=init, n_init=1, random_state=seed).fit(X)
        five = ml.KMeans(n_clusters=8, init=init, n_init=5, random_state=seed).fit(X)
        assert five.inertia_ <= one.inertia_


def test_random_init_draws_distinct_rows():
    """With max_iter=1 and init="random" every centre moved from k distinct rows: no two centres coincide."""
    X = _separated(n=60, k=3)
    km = ml.KMeans(n_clusters=20, init="random", n_init=1, max_iter=1, random_state=1).fit(X)
    assert np.unique(km.cluster_centers_.round(12), axis=0).shape[0] == 20


def test_random_state_repeats_and_varies():
    """The same random_state gives the same bits; different seeds give different initial draws."""
    X, _ = blobs(n=300, d=3, centres=6, seed=6)
    a = ml.KMeans(n_clusters=6, random_state=7, max_iter=1).fit(X)
    b = ml.KMeans(n_clusters=6, random_state=7, max_iter=1).fit(X)
    c = ml.KMeans(n_clusters=6, random_state=8, max_iter=1).fit(X)
    assert a.cluster_centers_.tobytes() == b.cluster_centers_.tobytes()
    assert not np.array_equal(a.cluster_centers_, c.cluster_centers_)


def test_local_methods_match_sklearn():
    """predict, transform, score and fit_predict agree with scikit-learn's on the same fitted centres."""
    X, _ = blobs(n=400, d=4, centres=5, seed=7)
    new, _ = blobs(n=50, d=4, centres=5, seed=8)
    init = _poor_init(X, 5, 7)
    ours = ml.KMeans(n_clusters=5, init=init, n_init=1, tol=0.0).fit(X)
    theirs = SkKMeans(n_clusters=5, init=init, n_init=1, tol=0.0).fit(X)
    np.testing.assert_array_equal(ours.predict(new), theirs.predict(new))
    np.testing.assert_allclose(ours.transform(new), theirs.transform(new), rtol=1e-8, atol=1e-9)
    assert ours.score(new) == pytest.approx(theirs.score(new), rel=1e-10)
    assert ours.score(X) == pytest.approx(-ours.inertia_, rel=1e-12)
    np.testing.assert_array_equal(ml.KMeans(n_clusters=5, init=init, n_init=1).fit_predict(X),
                                  ml.KMeans(n_clusters=5, init=init, n_init=1).fit(X).labels_)
    np.testing.assert_allclose(ml.KMeans(n_clusters=5, init=init, n_init=1).fit_transform(X), ours.transform(X),
                               rtol=1e-8, atol=1e-9)


def test_attribute_types_match_sklearn():
    """labels_ is int32, inertia_ a float, n_iter_ an int and cluster_centers_ keeps float32 input's dtype."""
    X, _ = blobs(n=200, d=3, centres=3, seed=9, dtype=np.float32)
    ours = ml.KMeans(n_clusters=3, random_state=0).fit(X)
    theirs = SkKMeans(n_clusters=3, random_state=0).fit(X)
    assert ours.cluster_centers_.dtype == theirs.cluster_centers_.dtype == np.float32
    assert ours.labels_.dtype == theirs.labels_.dtype
    assert isinstance(ours.inertia_, float) and isinstance(ours.n_iter_, int)
    assert ours.n_features_in_ == 3
    assert ours.predict(X).shape == (200,)


def test_inputs_not_modified():
    """fit leaves X and the init array untouched."""
    X, _ = blobs(n=200, d=3, centres=3, seed=10)
    init = X[:3].copy()
    X_before, init_before = X.copy(), init.copy()
    ml.KMeans(n_clusters=3, init=init, n_init=1).fit(X)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(init, init_before)


def test_too_few_samples_message():
    """Fewer rows than clusters raises scikit-learn's message."""
    with pytest.raises(ValueError, match=re.escape("n_samples=1 should be >= n_clusters=8")):
        ml.KMeans().fit(np.zeros((1, 4)))


@pytest.mark.parametrize("bad, message", [(np.nan, "Input X contains NaN"), (np.inf, "Input X contains infinity")])
def test_non_finite_message(bad, message):
    """NaN or infinity in X raises scikit-learn's message."""
    X, _ = blobs(n=50, d=4, centres=2)
    X[7, 2] = bad
    with pytest.raises(ValueError, match=message):
        ml.KMeans(n_clusters=2).fit(X)


def test_feature_count_message():
    """predict on rows with another feature count raises scikit-learn's message."""
    X, _ = blobs(n=50, d=4, centres=2)
    km = ml.KMeans(n_clusters=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match=re.escape("X has 3 features, but KMeans is expecting 4 features as input")):
        km.predict(X[:, :3])
    with pytest.raises(ValueError, match="X has 3 features"):
        km.transform(X[:, :3])


def test_not_fitted_and_one_dimensional():
    """predict before fit raises scikit-learn's NotFittedError; a 1-D X raises the 2D-array message."""
    with pytest.raises(NotFittedError):
        ml.KMeans().predict(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array instead"):
        ml.KMeans(n_clusters=2).fit(np.arange(10.0))


def test_wrong_dtypes():
    """Strings that are not numbers raise scikit-learn's ValueError (a TypeError before), strings of numbers
    convert as in scikit-learn, dates and durations raise a TypeError naming the dtype or the DataFrame's columns
    (a DataFrame's dates became nanoseconds since 1970 before, silently), complex numbers raise scikit-learn's
    ValueError."""
    import pandas as pd

    with pytest.raises(ValueError, match="could not convert string to float"):
        ml.KMeans(n_clusters=2).fit(np.array([["a", "b"], ["c", "d"], ["e", "f"]]))
    numbers = np.array([["1", "2"], ["3", "4"], ["5", "6"], ["7", "9"]])
    init = np.array([[1.0, 2.0], [7.0, 9.0]])
    got = ml.KMeans(n_clusters=2, init=init, n_init=1).fit(numbers)
    want = ml.KMeans(n_clusters=2, init=init, n_init=1).fit(numbers.astype(float))
    np.testing.assert_array_equal(got.cluster_centers_, want.cluster_centers_)
    with pytest.raises(TypeError, match="datetime64"):
        ml.KMeans(n_clusters=2).fit(np.arange(8).astype("datetime64[D]").reshape(4, 2))
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=4), "x": np.arange(4.0)})
    for scaler_or_model in (ml.KMeans(n_clusters=2), ml.StandardScaler()):
        with pytest.raises(TypeError, match=re.escape("dates or durations in column(s) ['day']")):
            scaler_or_model.fit(frame)
    with pytest.raises(TypeError, match=re.escape("column(s) ['wait']")):
        ml.StandardScaler().fit(pd.DataFrame({"wait": pd.to_timedelta([1, 2, 3], unit="s"), "x": [1.0, 2, 3]}))
    with pytest.raises(ValueError, match="Complex data not supported"):
        ml.KMeans(n_clusters=2).fit(np.ones((4, 2)) + 1j)


def test_init_shape_messages():
    """An init array of the wrong shape names the clusters or features it disagrees with."""
    X, _ = blobs(n=50, d=4, centres=2)
    with pytest.raises(ValueError, match=re.escape("does not match the number of clusters 2")):
        ml.KMeans(n_clusters=2, init=np.zeros((3, 4)), n_init=1).fit(X)
    with pytest.raises(ValueError, match=re.escape("does not match the number of features of the data 4")):
        ml.KMeans(n_clusters=2, init=np.zeros((2, 3)), n_init=1).fit(X)


def test_explicit_init_with_n_init_warns():
    """An init array with n_init > 1 warns, as scikit-learn does, and runs once."""
    X, _ = blobs(n=50, d=2, centres=2)
    with pytest.warns(RuntimeWarning, match="Explicit initial center position passed"):
        ml.KMeans(n_clusters=2, init=X[:2], n_init=3).fit(X)


def test_duplicate_points_warn():
    """Fewer distinct points than clusters gives scikit-learn's ConvergenceWarning."""
    X = np.repeat(np.array([[1.0, 2.0], [3.0, 4.0]]), 5, axis=0)
    with pytest.warns(ConvergenceWarning, match=re.escape("Number of distinct clusters (2) found smaller than "
                                                          "n_clusters (3)")):
        ml.KMeans(n_clusters=3, random_state=0).fit(X)


@pytest.mark.parametrize(
    "params",
    [{"n_clusters": 0}, {"n_clusters": 2.5}, {"max_iter": 0}, {"tol": -1.0}, {"init": "nope"}, {"n_init": 0},
     {"algorithm": "magic"}],
)
def test_bad_parameters(params):
    """An invalid parameter raises ValueError at fit, naming it."""
    X, _ = blobs(n=50, d=2, centres=2)
    name = next(iter(params))
    with pytest.raises(ValueError, match=name):
        ml.KMeans(**{"n_clusters": 2, **params}).fit(X)


def test_no_warning_on_clean_fit():
    """A fit of ordinary data emits no warning."""
    X, _ = blobs(n=200, d=3, centres=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ml.KMeans(n_clusters=3, random_state=0).fit(X)


def test_local_methods_far_from_the_origin():
    """At an offset of 1e8 predict gives labels_ and -score inertia_; transform gives exact distances (float32 too)."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(2000, 3)) + rng.integers(0, 3, 2000)[:, None] * 3.0 + 1e8
    km = ml.KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    assert -km.score(X) == pytest.approx(km.inertia_, rel=1e-9)
    small = (X - 1e8 + 1000.0).astype(np.float32)
    km32 = ml.KMeans(3, random_state=0).fit(small)
    exact = np.sqrt(((small[:, None, :].astype(np.float64) - km32.cluster_centers_[None].astype(np.float64)) ** 2)
                    .sum(-1))
    np.testing.assert_allclose(km32.transform(small), exact, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e-160, 1e150])
@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_seeded_inits_at_the_ends_of_float64(init, scale):
    """Well-separated blobs scaled so far that their squared distances are subnormal (1e-160: ~1e-318) or near
    the top of the range (1e150): the seeded inits still find them, as scikit-learn does at 1e-160 (before, every
    race key -log(u) / distance overflowed to inf, row 0 won every draw and 1e-160 came out with 7x the
    inertia), and with the same inertia on ordinary data scaled back."""
    X = _separated(n=240, d=2, k=4, seed=3)
    want = ml.KMeans(n_clusters=4, init=init, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in the race
        got = ml.KMeans(n_clusters=4, init=init, random_state=0).fit(X * scale)
    np.testing.assert_array_equal(got.labels_, want.labels_)
    # subnormal squared distances carry about 17 bits: the inertia to 1e-4 there
    assert got.inertia_ / scale**2 == pytest.approx(want.inertia_, rel=1e-4 if scale < 1 else 1e-9)
    if scale < 1:
        theirs = SkKMeans(n_clusters=4, random_state=0, n_init=1).fit(X * scale)
        assert got.inertia_ <= 1.0000001 * theirs.inertia_


def _weights(n, seed=9):
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[::7] = 0.0
    return w


@pytest.mark.parametrize("seed, n, d, k", ARRAY_CASES)
def test_sample_weight_matches_lloyd(seed, n, d, k):
    """From an ndarray init, weighted fits give scikit-learn's centres (weighted means), labels, n_iter_ and
    weighted inertia; score weighs the same way."""
    X, _ = blobs(n=n, d=d, centres=k + 1, seed=seed)
    w = _weights(n, seed)
    init = _poor_init(X, k, seed)
    ours = ml.KMeans(n_clusters=k, init=init, n_init=1, tol=0.0).fit(X, sample_weight=w)
    theirs = SkKMeans(n_clusters=k, init=init, n_init=1, tol=0.0).fit(X, sample_weight=w)
    assert theirs.n_iter_ >= 3
    _same_as_lloyd(ours, theirs)
    assert ours.score(X, sample_weight=w) == pytest.approx(theirs.score(X, sample_weight=w), rel=1e-12)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
    assert rel_err(ours.cluster_centers_, ml.KMeans(k, init=init, n_init=1, tol=0.0).fit(X).cluster_centers_) > 1e-6


def test_weights_as_repeated_and_removed_rows():
    """From a given init, integer weights fit as the rows repeated, zero weights as the rows left out."""
    X, _ = blobs(n=400, d=3, centres=5, seed=11)
    w = np.random.default_rng(4).integers(0, 4, X.shape[0]).astype(float)
    init = _poor_init(X, 4, 11)
    weighted = ml.KMeans(4, init=init, n_init=1, tol=0.0).fit(X, sample_weight=w)
    repeated = ml.KMeans(4, init=init, n_init=1, tol=0.0).fit(np.repeat(X, w.astype(int), axis=0))
    np.testing.assert_allclose(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-12)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-12)
    assert weighted.n_iter_ == repeated.n_iter_


def test_empty_cluster_relocated_with_weights_as_sklearn():
    """The farthest row moves into an empty cluster with its weight, as in scikit-learn."""
    X, _ = blobs(n=300, d=3, centres=4, seed=4)
    w = _weights(300, 4) + 0.25
    init = _poor_init(X, 4, 4)
    init[2] = X.mean(axis=0) + 1e4
    ours = ml.KMeans(n_clusters=4, init=init, n_init=1, tol=0.0).fit(X, sample_weight=w)
    theirs = SkKMeans(n_clusters=4, init=init, n_init=1, tol=0.0).fit(X, sample_weight=w)
    _same_as_lloyd(ours, theirs)


@pytest.mark.parametrize("init", ["k-means++", "random", "k-means||"])
def test_inits_never_draw_rows_of_weight_zero(init):
    """A far-off group of rows weighted 0 never receives an initial centre (its rows would win every distance
    draw if weights were ignored), and the fit is as good as scikit-learn's on the weighted rows."""
    X = _separated(n=400, d=3, k=4, seed=3)
    far = np.full((40, 3), 1e4) + np.random.default_rng(0).normal(size=(40, 3))
    data = np.vstack([X, far])
    w = np.concatenate([np.ones(400), np.zeros(40)])
    for seed in range(8):
        fitted = ml.KMeans(4, init=init, random_state=seed, max_iter=1).fit(data, sample_weight=w)
        assert np.abs(fitted.cluster_centers_).max() < 1e3, seed
    ours = np.mean([ml.KMeans(4, init=init, random_state=s).fit(data, sample_weight=w).inertia_ for s in range(6)])
    alone = np.mean([ml.KMeans(4, init=init, random_state=s).fit(X).inertia_ for s in range(6)])
    assert ours == pytest.approx(alone, rel=0.05)


def test_random_init_needs_k_rows_of_positive_weight():
    X = _separated(n=60, d=2, k=3)
    w = np.zeros(60)
    w[:2] = 1.0
    with pytest.raises(ValueError, match="only 2 rows have a positive weight"):
        ml.KMeans(3, init="random", random_state=0).fit(X, sample_weight=w)


@pytest.mark.parametrize("init", ["k-means++", "random", "k-means||"])
def test_subnormal_weights_fit_as_unit_weights(init):
    """Weights of 1e-310 everywhere (subnormal) draw the rows that weights of 1 draw (the race keys are scaled by
    the largest weight's power of two; before, every key overflowed and the first centre was garbage)."""
    X = _separated(n=300, d=3, k=4, seed=6)
    tiny = ml.KMeans(4, init=init, random_state=2).fit(X, sample_weight=np.full(300, 1e-310))
    unit = ml.KMeans(4, init=init, random_state=2).fit(X, sample_weight=np.ones(300))
    assert np.isfinite(tiny.cluster_centers_).all()
    # the same clusters (k-means||'s recluster weighs its candidates by sums of weights, whose subnormal products
    # may order its picks differently): the same centres, up to their order
    order = lambda c: c[np.lexsort(c.T[::-1])]  # noqa: E731
    np.testing.assert_allclose(order(tiny.cluster_centers_), order(unit.cluster_centers_), rtol=1e-9)
    assert tiny.inertia_ == pytest.approx(unit.inertia_ * 1e-310, rel=1e-6)


def test_weighted_score_on_device_rows():
    """score with sample_weight on a DeviceArray (the host fallback here) is the host's weighted score."""
    from hpc import cuda

    X, _ = blobs(n=300, d=3, centres=4, seed=2)
    w = _weights(300, 2)
    model = ml.KMeans(4, random_state=0).fit(X)
    assert model.score(cuda.to_device(X), sample_weight=w) == pytest.approx(model.score(X, sample_weight=w),
                                                                             rel=1e-12)
    assert model.score(X, sample_weight=w) != pytest.approx(model.score(X), rel=1e-6)


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_verbose_fit_is_the_same_fit(init, capsys):
    """A verbose fit computes every iteration's inertia (the others skip those distances): the same bits, and an
    empty cluster's relocation too (it recomputes the distances it needs)."""
    X, _ = blobs(n=600, d=3, centres=5, seed=7)
    quiet = ml.KMeans(5, init=init, random_state=1, n_init=2).fit(X)
    loud = ml.KMeans(5, init=init, random_state=1, n_init=2, verbose=2).fit(X)
    capsys.readouterr()  # the iterations' report
    np.testing.assert_array_equal(quiet.cluster_centers_, loud.cluster_centers_)
    assert quiet.inertia_ == loud.inertia_ and quiet.n_iter_ == loud.n_iter_
    np.testing.assert_array_equal(quiet.labels_, loud.labels_)
    init_far = _poor_init(X, 4, 4)
    init_far[2] = X.mean(axis=0) + 1e4  # an empty cluster at the first step
    a = ml.KMeans(4, init=init_far, n_init=1, tol=0.0).fit(X)
    b = ml.KMeans(4, init=init_far, n_init=1, tol=0.0, verbose=2).fit(X)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert a.inertia_ == b.inertia_


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bounded_lloyd_fits_the_bits_of_full_steps(monkeypatch, weighted, dtype):
    """Lloyd's steps with per-row bounds (k x d >= 256, float32 1000) skip rows and give the fit of full steps, bit
    for bit: centres, labels, inertia, n_iter_ (k-means++ with n_init=2, tol=0; verbose, whose per-iteration inertia
    takes the distances, too)."""
    from hpc import kernels
    from hpc.ml import _kmeans_init

    rng = np.random.default_rng(11)
    d = 16 if dtype == np.float64 else 48
    middles = rng.normal(scale=5.0, size=(24, d))
    X = (middles[rng.integers(0, 24, 3000)] + rng.standard_normal((3000, d))).astype(dtype)
    w = rng.random(3000) if weighted else None
    skipped = []
    step = kernels.kmeans_step_bounded

    def counted(x, *args, **kwargs):
        out = step(x, *args, **kwargs)
        skipped.append(x.shape[0] - out[2])
        return out

    monkeypatch.setattr(kernels, "kmeans_step_bounded", counted)
    fits = {}
    for name in ("bounded", "full"):
        if name == "full":
            monkeypatch.setattr(_kmeans_init.Points, "_bounds_pay", lambda self, c: False)
        for verbose in (0, 1):
            km = ml.KMeans(24, n_init=2, tol=0.0, random_state=4, verbose=verbose).fit(X, sample_weight=w)
            fits[name, verbose] = (km.cluster_centers_.tobytes(), km.labels_.tobytes(), km.inertia_, km.n_iter_)
    assert sum(skipped) > 0  # the bounded steps ran and skipped rows
    for verbose in (0, 1):
        assert fits["bounded", verbose] == fits["full", verbose]


def test_bounded_lloyd_refills_an_empty_cluster_from_its_own_labels(monkeypatch):
    """A centre far from every row empties at the first step: the farthest rows are found from that step's labels
    (their distances, not a second labelling), so a quiet fit equals a verbose one, and both equal full steps'."""
    from hpc.ml import _kmeans_init

    rng = np.random.default_rng(5)
    X = np.round(rng.normal(scale=3.0, size=(2500, 16)))  # integers: many ties to rounding
    init = X[rng.choice(2500, 20, replace=False)].copy()
    init[7] = 1e3  # far from every row: empty after the first step
    fits = {}
    for name in ("bounded", "full"):
        if name == "full":
            monkeypatch.setattr(_kmeans_init.Points, "_bounds_pay", lambda self, c: False)
        for verbose in (0, 1):
            km = ml.KMeans(20, init=init, n_init=1, max_iter=30, tol=0.0, verbose=verbose).fit(X)
            assert np.isfinite(km.cluster_centers_).all() and np.abs(km.cluster_centers_).max() < 50
            fits[name, verbose] = (km.cluster_centers_.tobytes(), km.labels_.tobytes(), km.inertia_, km.n_iter_)
    assert fits["bounded", 0] == fits["bounded", 1]
    assert fits["full", 0] == fits["full", 1]


def test_score_with_weights_all_zero_is_refused_and_weights_count():
    """As scikit-learn: weights that are all 0 raise (score had returned -0.0); otherwise the weighted inertia."""
    X = blobs(n=60, d=2, centres=3, seed=5)[0]
    model = ml.KMeans(3, n_init=1, random_state=0).fit(X)
    with pytest.raises(ValueError, match="at least one non-zero number"):
        model.score(X, sample_weight=np.zeros(len(X)))
    w = np.linspace(0.0, 2.0, len(X))
    theirs = sklearn_cluster.KMeans(3, init=model.cluster_centers_, n_init=1, max_iter=1).fit(X)
    theirs.cluster_centers_ = model.cluster_centers_
    assert model.score(X, sample_weight=w) == pytest.approx(theirs.score(X, sample_weight=w), rel=1e-12)
    assert model.score(X) == pytest.approx(theirs.score(X), rel=1e-12)
