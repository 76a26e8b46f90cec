"""Bad input to a collective fit under MPI: a clear error on every rank, never a hang, and the ranks usable after.

Each test gives one rank (the last; rank 0 on one process) a bad input, or the ranks disagreeing inputs, and checks
with ``pytest.raises`` on every rank that the fit raises the expected type with a message naming the problem; the
ranks that passed good rows must also name the failing rank. After each error a small allreduce shows that the
communicator still works. Tests of a disagreement between ranks need two ranks and skip on one.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest

from hpc import ml, mpi
from hpc.mpi import _mpi

pytestmark = pytest.mark.mpi

D = 3  # features
ROWS = 12  # rows per rank

ESTIMATORS = {
    "StandardScaler": (lambda: ml.StandardScaler(), None),
    "PCA": (lambda: ml.PCA(n_components=2), None),
    "LinearRegression": (lambda: ml.LinearRegression(), "continuous"),
    "Ridge": (lambda: ml.Ridge(alpha=1.0), "continuous"),
    "LogisticRegression": (lambda: ml.LogisticRegression(), "classes"),
    "KMeans": (lambda: ml.KMeans(n_clusters=2, random_state=0), None),
}
NAMES = list(ESTIMATORS)
SUPERVISED = [name for name in NAMES if ESTIMATORS[name][1] is not None]


def _world():
    return mpi.world()


def _self():
    """Return a one-process communicator (this rank alone) for the reference fit of every rank's rows."""
    return mpi.Comm(_mpi.module().COMM_SELF)


def _bad_rank(comm):
    return comm.size - 1


def _rows(comm, rows=ROWS, d=D):
    """Return this rank's good rows and both kinds of target (classes alternate, so every rank sees both)."""
    rng = np.random.default_rng(100 + comm.rank)
    X = rng.normal(size=(rows, d))
    y_cont = X @ np.arange(1.0, d + 1.0) + rng.normal(size=rows)
    y_class = np.arange(rows) % 2
    return X, y_cont, y_class


def _fit(name, X, y_cont=None, y_class=None, **fit_kwargs):
    make, kind = ESTIMATORS[name]
    if kind is None:
        return make().fit(X, **fit_kwargs)
    return make().fit(X, y_cont if kind == "continuous" else y_class, **fit_kwargs)


def _raises_everywhere(comm, kind, pattern, fit):
    """Run ``fit`` expecting ``kind`` matching ``pattern`` on this rank; return the exception."""
    with pytest.raises(kind, match=pattern) as info:
        fit()
    return info.value


def _names_failing_rank(comm, exc, bad):
    """On the ranks whose own input was good, the message says which rank failed."""
    if comm.rank != bad:
        assert f"rank {bad}" in str(exc), str(exc)


def _still_works(comm):
    """The communicator still reduces correctly after the error (no rank left inside a collective)."""
    assert comm.allreduce(1) == comm.size
    total = comm.allreduce(np.full(4, comm.rank + 1.0))
    np.testing.assert_array_equal(total, np.full(4, comm.size * (comm.size + 1) / 2))


def _with_nan(X):
    X = X.copy()
    X[3, 1] = np.nan
    return X


def _with_inf(X):
    X = X.copy()
    X[0, 0] = -np.inf
    return X


#: one rank's X spoiled: how, and the error every rank raises (type, message)
SPOILED_X = {
    "nan": (_with_nan, ValueError, "Input X contains NaN"),
    "inf": (_with_inf, ValueError, "Input X contains infinity"),
    "strings": (lambda X: np.char.add(X.astype(str), "x"), ValueError, "could not convert string to float"),
    "dates": (lambda X: (X * 1000).astype(np.int64).astype("datetime64[s]"), TypeError,
              "must hold numbers; got dtype datetime64"),
    "complex": (lambda X: X + 1j, ValueError, "Complex data not supported"),
    "one-dimensional": (lambda X: X[:, 0], ValueError, "Expected 2D array"),
}  # fmt: skip


@pytest.mark.parametrize("spoil", list(SPOILED_X))
@pytest.mark.parametrize("name", NAMES)
def test_bad_x_on_one_rank(name, spoil):
    """A bad X on one rank only (NaN, inf, strings, dates, complex, 1-D): the same error type on every rank, the
    failing rank named by the others, and the communicator usable after."""
    comm = _world()
    bad = _bad_rank(comm)
    X, y_cont, y_class = _rows(comm)
    change, kind, pattern = SPOILED_X[spoil]
    if comm.rank == bad:
        X = change(X)
    exc = _raises_everywhere(comm, kind, pattern, lambda: _fit(name, X, y_cont, y_class))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


@pytest.mark.parametrize("name", NAMES)
def test_different_feature_counts(name):
    """One rank with another number of features: ValueError naming the feature counts on every rank."""
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs two ranks to disagree")
    bad = _bad_rank(comm)
    X, y_cont, y_class = _rows(comm, d=D + 1 if comm.rank == bad else D)
    exc = _raises_everywhere(comm, ValueError, "number of features", lambda: _fit(name, X, y_cont, y_class))
    assert f"rank {bad}: {D + 1} features" in str(exc)
    _still_works(comm)


@pytest.mark.parametrize("name", NAMES)
def test_float32_and_float64(name):
    """float32 rows on one rank and float64 on the others: ValueError naming the dtypes on every rank."""
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs two ranks to disagree")
    bad = _bad_rank(comm)
    X, y_cont, y_class = _rows(comm)
    if comm.rank == bad:
        X = X.astype(np.float32)
    exc = _raises_everywhere(comm, ValueError, "dtype", lambda: _fit(name, X, y_cont, y_class))
    assert "float32" in str(exc) and "float64" in str(exc)
    _still_works(comm)


def _y_with_nan(y_cont, y_class):
    y_cont = y_cont.copy()
    y_cont[5] = np.nan
    return y_cont, y_class


#: one rank's y spoiled: how, the estimators it concerns, and the error every rank raises (type, message)
SPOILED_Y = {
    "nan": (_y_with_nan, ["LinearRegression", "Ridge"], "Input y contains NaN"),
    "short": (lambda y_cont, y_class: (y_cont[:-1], y_class[:-1]), SUPERVISED,
              re.escape(f"inconsistent numbers of samples: [{ROWS}, {ROWS - 1}]")),
}  # fmt: skip


@pytest.mark.parametrize("name, spoil", [(n, s) for s, (_, names, _) in SPOILED_Y.items() for n in names])
def test_bad_y_on_one_rank(name, spoil):
    """A bad y on one rank only (NaN in a regression target, one row short): ValueError on every rank."""
    comm = _world()
    bad = _bad_rank(comm)
    X, y_cont, y_class = _rows(comm)
    change, _, pattern = SPOILED_Y[spoil]
    if comm.rank == bad:
        y_cont, y_class = change(y_cont, y_class)
    exc = _raises_everywhere(comm, ValueError, pattern, lambda: _fit(name, X, y_cont, y_class))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_single_class_everywhere():
    """Every rank holds only class 0: ValueError "only one class" on every rank."""
    comm = _world()
    X, _, _ = _rows(comm)
    _raises_everywhere(comm, ValueError, "only one class", lambda: ml.LogisticRegression().fit(X, np.zeros(ROWS, int)))
    _still_works(comm)


def test_one_class_per_rank_but_two_overall():
    """Each rank sees one class but the union has two: the fit succeeds and equals the one-process fit of all rows."""
    comm = _world()
    X, _, _ = _rows(comm)
    y = np.full(ROWS, comm.rank % 2)
    if comm.size == 1:  # one process: it holds both classes itself
        y = np.arange(ROWS) % 2
    X = X + 2.0 * y[:, None]
    model = ml.LogisticRegression(C=0.5).fit(X, y)
    assert model.classes_.tolist() == [0, 1]
    every_X = np.concatenate(comm.mpi.allgather(X))
    every_y = np.concatenate(comm.mpi.allgather(y))
    alone = ml.LogisticRegression(C=0.5).fit(every_X, every_y, comm=_self())
    np.testing.assert_allclose(model.coef_, alone.coef_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(model.intercept_, alone.intercept_, rtol=1e-12, atol=1e-14)
    _still_works(comm)


def test_string_classes_split_over_ranks():
    """String labels, each rank holding a different one: classes_ is the sorted union on every rank."""
    comm = _world()
    X, _, _ = _rows(comm)
    names = np.array(["ant", "bee", "cat"])
    y = names[(np.arange(ROWS) % 3) if comm.size == 1 else np.full(ROWS, comm.rank % 3)]
    model = ml.LogisticRegression().fit(X + np.arange(ROWS)[:, None] % 3, y)
    expected = sorted(set(names[: min(comm.size, 3)].tolist())) if comm.size > 1 else names.tolist()
    assert model.classes_.tolist() == expected
    assert comm.mpi.allgather(model.classes_.tolist()) == [expected] * comm.size


def test_label_types_disagree():
    """String labels on one rank and integers on the others: ValueError naming the label types on every rank (a
    ValueError, as scikit-learn raises for labels of mixed types)."""
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs two ranks to disagree")
    X, _, y_class = _rows(comm)
    y = y_class.astype(str) if comm.rank == _bad_rank(comm) else y_class
    _raises_everywhere(comm, ValueError, "labels of different types", lambda: ml.LogisticRegression().fit(X, y))
    _still_works(comm)


def test_continuous_labels_on_one_rank():
    """Continuous labels on one rank: ValueError "Unknown label type" on every rank."""
    comm = _world()
    bad = _bad_rank(comm)
    X, y_cont, y_class = _rows(comm)
    y = y_cont if comm.rank == bad else y_class
    exc = _raises_everywhere(comm, ValueError, "Unknown label type", lambda: ml.LogisticRegression().fit(X, y))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_bad_sample_weight_on_one_rank():
    """A negative sample weight on one rank: ValueError naming sample_weight on every rank."""
    comm = _world()
    bad = _bad_rank(comm)
    X, _, y_class = _rows(comm)
    weight = np.ones(ROWS)
    if comm.rank == bad:
        weight[2] = -1.0
    exc = _raises_everywhere(comm, ValueError, "sample_weight",
                             lambda: ml.LogisticRegression().fit(X, y_class, sample_weight=weight))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_all_zero_sample_weights():
    """Zero sample weights on every rank: scikit-learn's "at least one non-zero" ValueError on every rank."""
    comm = _world()
    X, _, y_class = _rows(comm)
    _raises_everywhere(comm, ValueError, "Sample weights must contain at least one non-zero number",
                       lambda: ml.LogisticRegression().fit(X, y_class, sample_weight=np.zeros(ROWS)))
    _still_works(comm)


def test_zero_weights_on_one_rank_only():
    """Zero sample weights on one rank only are no error: the fit equals the one without that rank's rows."""
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs another rank to hold the weight")
    bad = _bad_rank(comm)
    X, _, y_class = _rows(comm)
    weight = np.zeros(ROWS) if comm.rank == bad else np.ones(ROWS)
    model = ml.LogisticRegression(C=0.5, tol=1e-10).fit(X, y_class, sample_weight=weight)
    keep = comm.rank != bad
    every_X = np.concatenate([a for a, k in zip(comm.mpi.allgather(X), comm.mpi.allgather(keep)) if k])
    every_y = np.concatenate([a for a, k in zip(comm.mpi.allgather(y_class), comm.mpi.allgather(keep)) if k])
    alone = ml.LogisticRegression(C=0.5, tol=1e-10).fit(every_X, every_y, comm=_self())
    np.testing.assert_allclose(model.coef_, alone.coef_, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_target_shapes_disagree(name):
    """A 1-D y on one rank and a 2-D y on the others: ValueError naming y's shape on every rank."""
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs two ranks to disagree")
    X, y_cont, _ = _rows(comm)
    y = y_cont if comm.rank == _bad_rank(comm) else np.stack([y_cont, -y_cont], axis=1)
    _raises_everywhere(comm, ValueError, "y's shape", lambda: _fit(name, X, y))
    _still_works(comm)


@pytest.mark.parametrize("empty_rank", [False, True])
def test_fewer_rows_than_clusters(empty_rank):
    """Fewer rows over all ranks than n_clusters (rank 0 holding none, or one): sklearn's message with the total."""
    comm = _world()
    X, _, _ = _rows(comm, rows=1)
    empty_rank = empty_rank and comm.size > 1  # one process: its one row is all there is
    if empty_rank and comm.rank == 0:
        X = X[:0]
    total = comm.size - (1 if empty_rank else 0)
    k = comm.size + 1
    pattern = re.escape(f"n_samples={total} should be >= n_clusters={k}")
    _raises_everywhere(comm, ValueError, pattern, lambda: ml.KMeans(n_clusters=k).fit(X))
    _still_works(comm)


def test_no_rows_anywhere():
    """Zero rows on every rank: ValueError naming the minimum of one sample on every rank."""
    comm = _world()
    X = np.empty((0, D))
    _raises_everywhere(comm, ValueError, "minimum of 1 is required", lambda: ml.StandardScaler().fit(X))
    _still_works(comm)


@pytest.mark.parametrize("name", NAMES)
def test_clean_fit_after_errors(name):
    """After a bad fit on one rank, a good fit on the same ranks works and equals the one-process fit of all rows."""
    comm = _world()
    X, y_cont, y_class = _rows(comm)
    broken = X.copy()
    if comm.rank == _bad_rank(comm):
        broken[0, 0] = np.nan
    with pytest.raises(ValueError):
        _fit(name, broken, y_cont, y_class)
    model = _fit(name, X, y_cont, y_class)
    gather = comm.mpi.allgather
    every = [np.concatenate(gather(a)) for a in (X, y_cont, y_class)]
    alone = _fit(name, *every, comm=_self())
    for attribute in ("mean_", "components_", "coef_", "cluster_centers_"):
        if hasattr(alone, attribute):
            np.testing.assert_array_equal(getattr(model, attribute), getattr(alone, attribute))


SCORED = {"PCA": None, "LinearRegression": "continuous", "Ridge": "continuous",
          "LogisticRegression": "classes", "KMeans": None}  # fmt: skip


@pytest.mark.parametrize("name", list(SCORED))
def test_score_with_nan_on_one_rank(name):
    """score is collective: NaN in one rank's X raises on every rank (the others name it) instead of a hang."""
    comm = _world()
    bad = _bad_rank(comm)
    X, y_cont, y_class = _rows(comm)
    model = _fit(name, X, y_cont, y_class)
    if comm.rank == bad:
        X = X.copy()
        X[2, 0] = np.nan
    kind = SCORED[name]
    args = (X,) if kind is None else (X, y_cont if kind == "continuous" else y_class)
    exc = _raises_everywhere(comm, ValueError, "Input X contains NaN", lambda: model.score(*args))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


#: a parameter given another value on one rank: (estimator, parameter, value on the other ranks, value there)
DIFFERENT_PARAMS = {
    "StandardScaler": ("with_mean", True, False),
    "PCA": ("n_components", 2, 3),
    "LinearRegression": ("fit_intercept", True, False),
    "Ridge": ("alpha", 1.0, 2.0),
    "LogisticRegression": ("C", 1.0, 0.5),
    "KMeans": ("n_clusters", 2, 3),
}


@pytest.mark.parametrize("name", NAMES)
def test_parameters_disagree(name):
    """One rank's estimator built with another parameter value: ValueError naming the parameter and each rank's
    value on every rank (before, PCA(n_components) differing hung and a differing alpha fit a model per rank)."""
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs two ranks to disagree")
    param, usual, other = DIFFERENT_PARAMS[name]
    value = other if comm.rank == _bad_rank(comm) else usual
    make, kind = ESTIMATORS[name]
    X, y_cont, y_class = _rows(comm)
    model = make().set_params(**{param: value})
    y = None if kind is None else (y_cont if kind == "continuous" else y_class)
    exc = _raises_everywhere(comm, ValueError, f"ranks disagree on the parameters \\['{param}'\\]",
                             lambda: model.fit(X, y))
    assert f"rank {_bad_rank(comm)}: {param}={other!r}" in str(exc), str(exc)
    _still_works(comm)


def test_rank_local_parameters_may_differ():
    """verbose, random_state and the copy flags may differ by rank (rank 0's seed is everyone's); 1 and 1.0 and
    numpy.float64(1) are one alpha: the fits run and give every rank the one-process model."""
    comm = _world()
    X, y_cont, _ = _rows(comm)
    alpha = [1, 1.0, np.float64(1.0)][comm.rank % 3]
    ridge = ml.Ridge(alpha=alpha, copy_X=comm.rank == 0).fit(X, y_cont)
    every = [np.concatenate(comm.mpi.allgather(a)) for a in (X, y_cont)]
    np.testing.assert_array_equal(ridge.coef_, ml.Ridge(alpha=1.0).fit(*every, comm=_self()).coef_)
    seeds = ml.KMeans(n_clusters=2, n_init=1, random_state=np.random.RandomState(comm.rank), verbose=0).fit(X)
    centres = comm.mpi.allgather(seeds.cluster_centers_)
    assert all(np.array_equal(c, centres[0]) for c in centres)


def test_parameter_bad_on_one_rank_only():
    """A parameter that is invalid on one rank only (a negative alpha): that rank's own ValueError, the others name
    it; before, that rank raised before the first collective and the others waited in it forever."""
    comm = _world()
    bad = _bad_rank(comm)
    X, y_cont, _ = _rows(comm)
    alpha = -1.0 if comm.rank == bad else 1.0
    exc = _raises_everywhere(comm, ValueError, "alpha must be finite and non-negative|bad input on 1 of",
                             lambda: ml.Ridge(alpha=alpha).fit(X, y_cont))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_random_state_bad_on_one_rank_only():
    """random_state may differ by rank, so an invalid one on a single rank is checked with the input, before any
    collective: that rank's own ValueError, the others name it (before, that rank raised in fit and the others
    waited in the seed's broadcast forever)."""
    comm = _world()
    bad = _bad_rank(comm)
    X, _, _ = _rows(comm)
    seed = -1 if comm.rank == bad else 0
    exc = _raises_everywhere(comm, ValueError, "random_state must be|bad input on 1 of",
                             lambda: ml.KMeans(n_clusters=2, n_init=1, random_state=seed).fit(X))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_equal_values_in_other_containers_agree():
    """An init given as nested lists on one rank and as an ndarray on another is one init (it compares by its
    values); the same string labels as an object array (pandas) on one rank and as a str array on another are one
    set of classes. Both fit as on one process (before: "ranks disagree on the parameters ['init']", and
    "ranks pass labels of different types")."""
    comm = _world()
    X, _, y_class = _rows(comm)
    init = [[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]]
    mine = init if comm.rank % 2 == 0 else np.array(init)
    model = ml.KMeans(n_clusters=2, init=mine).fit(X)
    every = np.concatenate(comm.mpi.allgather(X))
    alone = ml.KMeans(n_clusters=2, init=np.array(init)).fit(every, comm=_self())
    np.testing.assert_array_equal(model.cluster_centers_, alone.cluster_centers_)
    names = np.array(["neg", "pos"])[y_class]
    labels = names.astype(object) if comm.rank % 2 == 0 else names
    fitted = ml.LogisticRegression().fit(X, labels)
    assert fitted.classes_.tolist() == ["neg", "pos"]
    assert comm.mpi.allgather(fitted.classes_.dtype.str) == [fitted.classes_.dtype.str] * comm.size
    _still_works(comm)


def test_init_array_bad_on_one_rank():
    """KMeans init built from the local rows on a rank that holds none (shape (0, d)): its own ValueError there,
    the others name it (before, the others hung in the fit's first sum)."""
    comm = _world()
    bad = _bad_rank(comm)
    X, _, _ = _rows(comm)
    if comm.rank == bad:
        X = X[:0]
    exc = _raises_everywhere(comm, ValueError, "shape of the initial centers|bad input on 1 of",
                             lambda: ml.KMeans(n_clusters=2, init=X[:2]).fit(X))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_feature_names_disagree():
    """DataFrames whose columns come in another order on one rank: ValueError naming each rank's columns on every
    rank (before, the columns were mixed up silently: the coefficients of a and b came out averaged)."""
    pd = pytest.importorskip("pandas")
    comm = _world()
    if comm.size < 2:
        pytest.skip("needs two ranks to disagree")
    X, y_cont, _ = _rows(comm)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    if comm.rank == _bad_rank(comm):
        frame = frame[["b", "a", "c"]]
    exc = _raises_everywhere(comm, ValueError, "ranks disagree on the feature names",
                             lambda: ml.LinearRegression().fit(frame, y_cont))
    assert "['b', 'a', 'c']" in str(exc) and "['a', 'b', 'c']" in str(exc)
    _still_works(comm)


@pytest.mark.parametrize("name", ["LinearRegression", "Ridge"])
def test_score_with_weights_on_some_ranks_only(name):
    """A rank passing sample_weight=None to score while others pass weights (as fit allows) scores with weight 1
    there, the same on every rank, and equals the score with explicit ones: it hung (two different reductions)."""
    comm = _world()
    X, y_cont, _ = _rows(comm)
    model = getattr(ml, name)().fit(X, y_cont)
    weights = np.ones(X.shape[0]) if comm.rank % 2 == 0 else None
    got = model.score(X, y_cont, sample_weight=weights)
    assert got == model.score(X, y_cont, sample_weight=np.ones(X.shape[0]))
    assert len(set(comm.mpi.allgather(got))) == 1


def test_failures_outside_value_and_type_errors_raise_on_every_rank():
    """Labels that do not sort on one rank (all None there) and an integer too large for a float in one rank's
    object X raise on every rank: they escaped the agreement (a TypeError in np.unique after the check, an
    OverflowError the check did not catch) and the other ranks hung."""
    comm = _world()
    bad = _bad_rank(comm)
    X, _, y_class = _rows(comm)
    labels = y_class.astype(object)
    if comm.rank == bad:
        labels[:] = None  # one type, so the check passes them; np.unique cannot sort them
    _raises_everywhere(comm, TypeError, "", lambda: ml.LogisticRegression().fit(X, labels))
    huge = X.astype(object)
    if comm.rank == bad:
        huge[0, 0] = 10**400
    exc = _raises_everywhere(comm, (OverflowError, ValueError, TypeError), "",
                             lambda: ml.StandardScaler().fit(huge))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


def test_a_continued_fit_needs_the_same_state_on_every_rank():
    """A warm start from coefficients that differ by rank, and a partial_fit batch merged into running moments that
    differ by rank, raise a ValueError on every rank naming the state: the warm start hung in L-BFGS, the batch gave
    each rank another scaler. The same state everywhere (the usual case, after a collective fit) continues."""
    comm = _world()
    X, _, y_class = _rows(comm)
    model = ml.LogisticRegression(warm_start=True, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=5: a convergence warning
        model.fit(X, y_class).fit(X, y_class)
    if comm.size > 1:
        if comm.rank == 1:
            model.coef_ = model.coef_ + 1.0
        _raises_everywhere(comm, ValueError, "fitted state continued from",
                           lambda: model.fit(X, y_class))
        scaler = ml.StandardScaler().partial_fit(X)
        if comm.rank == 1:
            scaler.partial_fit(X, comm=_self())  # a batch this rank alone has seen
        _raises_everywhere(comm, ValueError, "fitted state continued from", lambda: scaler.partial_fit(X, comm=comm))
    _still_works(comm)


@pytest.mark.parametrize("name", ["LinearRegression", "LogisticRegression", "KMeans"])
def test_score_weights_zero_everywhere_or_on_one_rank(name):
    """Weights that are 0 on every rank raise scikit-learn's error on every rank (R^2 had read 1.0, the inertia
    -0.0, the accuracy NaN); 0 on one rank only is no error, the same score on every rank, and equals the score
    without that rank's rows."""
    comm = _world()
    X, y_cont, y_class = _rows(comm)
    y = {"LinearRegression": y_cont, "LogisticRegression": y_class, "KMeans": None}[name]
    model = _fit(name, X, y_cont, y_class)
    args = (X,) if y is None else (X, y)
    _raises_everywhere(comm, ValueError, "Sample weights must contain at least one non-zero number",
                       lambda: model.score(*args, sample_weight=np.zeros(ROWS)))
    if comm.size < 2:
        return
    bad = _bad_rank(comm)
    got = model.score(*args, sample_weight=np.zeros(ROWS) if comm.rank == bad else np.ones(ROWS))
    assert len(set(comm.mpi.allgather(got))) == 1
    keep = comm.rank != bad
    rows = [a for a, k in zip(comm.mpi.allgather(args), comm.mpi.allgather(keep)) if k]
    alone = model.score(*(np.concatenate(parts) for parts in zip(*rows)), comm=_self())
    assert got == pytest.approx(alone, rel=1e-12)
    _still_works(comm)


@pytest.mark.timeout(120)
def test_pca_components_int_and_float_on_different_ranks_raise_everywhere():
    """Parameters agree by value, so n_components=2.0 on one rank beside 2 passed the agreement; 2.0 was refused
    after it, on that rank alone, and the others waited in the next (unwatched) collective: a hang. The kind is
    checked where every rank agrees now: ValueError on every rank."""
    comm = _world()
    X, _, _ = _rows(comm)
    bad = _bad_rank(comm)
    components = 2.0 if comm.rank == bad else 2
    exc = _raises_everywhere(comm, ValueError, "n_components must be an int", lambda: ml.PCA(components).fit(X))
    _names_failing_rank(comm, exc, bad)
    _still_works(comm)


@pytest.mark.timeout(120)
def test_ranks_may_pass_one_init_or_label_kind_in_different_containers():
    """A KMeans init as a DataFrame on one rank and an array on the others was refused as differing; integer labels
    in an object array (a pandas object column) beside int64 labels were "labels of different types"."""
    pd = pytest.importorskip("pandas")
    comm = _world()
    X, _, y = _rows(comm)
    init = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    mine = pd.DataFrame(init, columns=list("abc")) if comm.rank == _bad_rank(comm) else init
    a = ml.KMeans(2, init=mine, n_init=1).fit(X)
    b = ml.KMeans(2, init=init, n_init=1).fit(X)
    assert np.array_equal(a.cluster_centers_, b.cluster_centers_)
    labels = y.astype(object) if comm.rank == _bad_rank(comm) else y
    assert ml.LogisticRegression().fit(X, labels).classes_.tolist() == [0, 1]
