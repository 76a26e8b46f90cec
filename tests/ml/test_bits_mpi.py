"""Fitted attributes are the same bits on 1..N ranks, any split of the rows (a rank with none) and any thread count.

Each test fits the whole data on one process (``COMM_SELF``), then on every rank of the job with the rows split
unevenly (rank 1 holding no rows), with blocks of 64 rows so blocks span ranks, and compares the bytes.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpc import ThreadPool, ml, mpi
from hpc.mpi import _mpi

from .conftest import bits, blobs, regression, uneven_counts

pytestmark = pytest.mark.mpi

MPI = _mpi.module()


def _split(comm, *arrays):
    counts = uneven_counts(arrays[0].shape[0], comm.size)
    lo = sum(counts[: comm.rank])
    hi = lo + counts[comm.rank]
    return [a[lo:hi] for a in arrays]


def _same_everywhere(comm, estimator):
    """Return whether every rank holds the same fitted bits."""
    digest = b"".join(bits(estimator).values())
    return len(set(comm.mpi.allgather(digest))) == 1


CASES = [
    ("StandardScaler", lambda: ml.StandardScaler(), "x"),
    ("PCA", lambda: ml.PCA(n_components=3), "x"),
    ("PCA-whiten-fraction", lambda: ml.PCA(n_components=0.9, whiten=True), "x"),
    ("LinearRegression", lambda: ml.LinearRegression(), "reg"),
    ("Ridge", lambda: ml.Ridge(alpha=2.0), "reg"),
    ("Ridge-no-intercept", lambda: ml.Ridge(alpha=0.5, fit_intercept=False), "reg"),
    ("LogisticRegression-binary", lambda: ml.LogisticRegression(C=0.5), "bin"),
    ("LogisticRegression-multinomial", lambda: ml.LogisticRegression(max_iter=50), "multi"),
    ("KMeans-k-means++", lambda: ml.KMeans(5, random_state=3), "x"),
    ("KMeans-random", lambda: ml.KMeans(5, init="random", n_init=3, random_state=4), "x"),
    ("KMeans-k-means||", lambda: ml.KMeans(5, init="k-means||", random_state=5), "x"),
    ("KMeans-float32", lambda: ml.KMeans(4, random_state=6), "x32"),
    # k x d >= 256 (float32: 1000): Lloyd's steps keep per-row bounds and skip rows (kernels.kmeans_step_bounded)
    ("KMeans-bounded", lambda: ml.KMeans(20, n_init=2, random_state=8), "x-wide"),
    ("KMeans-bounded-float32", lambda: ml.KMeans(20, tol=0.0, random_state=9), "x-wide32"),
    # clusters that overlap: most rows take the products, so the steps rest the bounds (the same turns on any split)
    ("KMeans-bounded-overlap", lambda: ml.KMeans(20, tol=0.0, max_iter=40, random_state=10), "x-overlap"),
    ("PCA-float32", lambda: ml.PCA(n_components=2), "x32"),
    # data whose Gram or covariance matrix overflows: the TSQR routes
    ("PCA-huge", lambda: ml.PCA(n_components=3), "x-huge"),
    ("LinearRegression-huge", lambda: ml.LinearRegression(), "reg-huge"),
]


def _data(kind):
    if kind.endswith("-huge"):
        X, y = _data(kind[: -len("-huge")])
        return X * 1e155, y
    if kind == "x":
        return blobs(n=700)[0], None
    if kind == "x32":
        return blobs(n=500, dtype=np.float32)[0], None
    if kind == "x-overlap":
        rng = np.random.default_rng(12)
        return rng.standard_normal((900, 50)) + rng.integers(0, 5, (900, 1)), None
    if kind.startswith("x-wide"):
        if kind.endswith("32"):
            return blobs(n=900, d=50, centres=12, dtype=np.float32)[0], None
        return blobs(n=900, d=16, centres=12)[0], None
    if kind == "reg":
        return regression(n=650)
    X, labels = blobs(n=640, centres=4)
    return X - 100.0, (labels % 2 if kind == "bin" else labels)


@pytest.mark.parametrize("name, make, kind", CASES, ids=[c[0] for c in CASES])
def test_bits_across_ranks_and_threads(small_blocks, name, make, kind):
    """The fit on every rank (uneven split, an empty rank) equals the one-process fit of all rows, bit for bit."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = _data(kind)
    args = (X,) if y is None else (X, y)
    with ThreadPool(1):
        alone = make().fit(*args, comm=mpi.Comm(MPI.COMM_SELF))
    with ThreadPool(3):
        threaded = make().fit(*args, comm=mpi.Comm(MPI.COMM_SELF))
    assert bits(threaded) == bits(alone)
    local = _split(world, *args)
    spread = make().fit(*local, comm=world)
    assert bits(spread) == bits(alone)
    assert _same_everywhere(world, spread)
    if hasattr(spread, "labels_"):
        lo = sum(uneven_counts(X.shape[0], world.size)[: world.rank])
        assert np.array_equal(spread.labels_, alone.labels_[lo : lo + local[0].shape[0]])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("init", ["k-means++", "k-means||"])
def test_device_fit_bits_across_ranks(small_blocks, init, dtype):
    """A KMeans fit on device rows (the GPU twins; the host fallback here) is the same bits on every rank count and
    split (an empty rank, blocks assembled on the device from several ranks' rows) as on one process."""
    from hpc import cuda

    world = mpi.Comm(MPI.COMM_WORLD)
    X = blobs(n=600, d=4, dtype=dtype)[0]
    make = lambda: ml.KMeans(5, init=init, random_state=7)  # noqa: E731
    alone = make().fit(cuda.to_device(X), comm=mpi.Comm(MPI.COMM_SELF))
    (local,) = _split(world, X)
    spread = make().fit(cuda.to_device(local), comm=world)
    assert bits(spread) == bits(alone)
    lo = sum(uneven_counts(X.shape[0], world.size)[: world.rank])
    assert np.array_equal(spread.labels_, alone.labels_[lo : lo + local.shape[0]])


MOMENT_CASES = [c for c in CASES if c[0] in ("StandardScaler", "PCA", "Ridge", "Ridge-no-intercept", "PCA-float32")]


@pytest.mark.parametrize("name, make, kind", MOMENT_CASES, ids=[c[0] for c in MOMENT_CASES])
def test_device_moment_fits_bits_across_ranks(small_blocks, name, make, kind):
    """StandardScaler, PCA and Ridge fits on device rows are the same bits on every rank count and split."""
    from hpc import cuda

    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = _data(kind)
    args = (X,) if y is None else (X, y)
    alone = make().fit(cuda.to_device(X), *args[1:], comm=mpi.Comm(MPI.COMM_SELF))
    local = _split(world, *args)
    spread = make().fit(cuda.to_device(local[0]), *local[1:], comm=world)
    assert bits(spread) == bits(alone)


@pytest.mark.parametrize("kind", ["bin", "multi"])
def test_device_logistic_fit_bits_across_ranks(small_blocks, kind):
    """A LogisticRegression fit on device rows (targets and weights on the device too) is the same bits on every
    rank count and split as on one process."""
    from hpc import cuda

    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = _data(kind)
    weight = np.linspace(0.5, 2.0, X.shape[0])
    make = lambda: ml.LogisticRegression(C=0.5, max_iter=40)  # noqa: E731
    alone = make().fit(cuda.to_device(X), y, sample_weight=weight, comm=mpi.Comm(MPI.COMM_SELF))
    local_x, local_y, local_w = _split(world, X, y, weight)
    spread = make().fit(cuda.to_device(local_x), local_y, sample_weight=local_w, comm=world)
    assert bits(spread) == bits(alone)


@pytest.mark.parametrize("layout", ["fortran", "strided"])
@pytest.mark.parametrize("make", [lambda: ml.StandardScaler(), lambda: ml.PCA(n_components=3),
                                  lambda: ml.KMeans(4, random_state=1)], ids=["scaler", "pca", "kmeans"])
def test_bits_for_any_memory_layout(small_blocks, make, layout):
    """Fortran-ordered or strided rows give the bits of C-ordered ones, however the rows are split."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X = blobs(n=300, d=7)[0]
    alone = make().fit(X, comm=mpi.Comm(MPI.COMM_SELF))
    (local,) = _split(world, X)
    local = np.asfortranarray(local) if layout == "fortran" else np.repeat(local, 2, axis=1)[:, ::2]
    assert bits(make().fit(local, comm=world)) == bits(alone)


WEIGHTED_CASES = [c for c in CASES if c[0] in (
    "StandardScaler", "LinearRegression", "Ridge", "Ridge-no-intercept", "LinearRegression-huge", "KMeans-k-means++",
    "KMeans-random", "KMeans-k-means||", "KMeans-float32")]


@pytest.mark.parametrize("device", [False, True], ids=["host", "device"])
@pytest.mark.parametrize("name, make, kind", WEIGHTED_CASES, ids=[c[0] for c in WEIGHTED_CASES])
def test_weighted_bits_across_ranks_and_threads(small_blocks, name, make, kind, device):
    """Weighted fits (some weights 0) are the same bits on every split, thread count and memory (the TSQR route
    too), as the one-process fit of all rows."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = _data(kind)
    w = np.random.default_rng(12).uniform(0.0, 2.0, X.shape[0])
    w[::9] = 0.0
    place = (lambda a: __import__("hpc").cuda.to_device(a)) if device else (lambda a: a)

    def fit(X, y, w, comm):
        args = (place(X),) if y is None else (place(X), y)
        return make().fit(*args, sample_weight=w, comm=comm)

    with ThreadPool(1):
        alone = fit(X, y, w, mpi.Comm(MPI.COMM_SELF))
    with ThreadPool(3):
        assert bits(fit(X, y, w, mpi.Comm(MPI.COMM_SELF))) == bits(alone)
    local = _split(world, *[a for a in (X, y, w) if a is not None])
    spread = fit(local[0], local[1] if y is not None else None, local[-1], world)
    assert bits(spread) == bits(alone)
    assert bits(alone) != bits(make().fit(*((X,) if y is None else (X, y)), comm=mpi.Comm(MPI.COMM_SELF)))
    if hasattr(spread, "labels_"):
        lo = sum(uneven_counts(X.shape[0], world.size)[: world.rank])
        assert np.array_equal(spread.labels_, alone.labels_[lo : lo + local[0].shape[0]])
        assert spread.score(local[0], sample_weight=local[-1], comm=world) == alone.score(
            X, sample_weight=w, comm=mpi.Comm(MPI.COMM_SELF))


@pytest.mark.parametrize("make", [lambda: ml.Ridge(alpha=1.0), lambda: ml.StandardScaler()], ids=["ridge", "scaler"])
def test_moment_fits_with_sample_weight_on_some_ranks_only(make):
    """A rank passing sample_weight=None beside ranks with weights takes weights of 1 (no hang, the same model)."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = regression(n=300)
    counts = uneven_counts(X.shape[0], world.size)
    lo = sum(counts[: world.rank])
    hi = lo + counts[world.rank]
    weights = np.ones(X.shape[0])
    weights[: counts[0]] = np.linspace(0.5, 2.0, counts[0])  # rank 0's rows weighted, the others' not passed
    args = (X, y) if isinstance(make(), ml.Ridge) else (X,)
    mine = weights[lo:hi] if world.rank == 0 else None
    spread = make().fit(*[a[lo:hi] for a in args], sample_weight=mine, comm=world)
    alone = make().fit(*args, sample_weight=weights, comm=mpi.Comm(MPI.COMM_SELF))
    assert bits(spread) == bits(alone)


@pytest.mark.parametrize("weighted", [False, True])
def test_partial_fit_bits_across_ranks(small_blocks, weighted):
    """StandardScaler.partial_fit over three batches, each split over the ranks (unevenly, a rank with none), is
    the same bits as the same batches on one process."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X = blobs(n=900, d=4)[0] + 1e5
    w = np.random.default_rng(13).uniform(0.0, 2.0, X.shape[0]) if weighted else None
    alone, spread = ml.StandardScaler(), ml.StandardScaler()
    for lo, hi in [(0, 300), (300, 430), (430, 900)]:
        batch = [X[lo:hi]] + ([w[lo:hi]] if weighted else [])
        alone.partial_fit(batch[0], sample_weight=batch[1] if weighted else None, comm=mpi.Comm(MPI.COMM_SELF))
        local = _split(world, *batch)
        spread.partial_fit(local[0], sample_weight=local[1] if weighted else None, comm=world)
    assert bits(spread) == bits(alone)
    assert _same_everywhere(world, spread)


def test_verbose_on_rank_0_only_reports_every_ranks_inertia(small_blocks, capsys):
    """verbose is rank-local (only rank 0 reports): with it set on rank 0 alone, the reported objectives are the
    whole inertia (every rank computes its distances), the same as a one-process verbose fit reports, and the model
    is the quiet fit's."""
    import re

    world = mpi.Comm(MPI.COMM_WORLD)
    X = blobs(n=700)[0]
    make = lambda verbose: ml.KMeans(5, random_state=3, verbose=verbose)  # noqa: E731
    alone = make(2).fit(X, comm=mpi.Comm(MPI.COMM_SELF))
    wanted = re.findall(r"objective ([0-9.eE+-]+)", capsys.readouterr().out)
    (local,) = _split(world, X)
    spread = make(2 if world.rank == 0 else 0).fit(local, comm=world)
    reported = re.findall(r"objective ([0-9.eE+-]+)", capsys.readouterr().out)
    assert bits(spread) == bits(alone) == bits(make(0).fit(X, comm=mpi.Comm(MPI.COMM_SELF)))
    if world.rank == 0:
        assert wanted and reported == wanted
    else:
        assert reported == []


def test_sample_weight_on_some_ranks_only():
    """Ranks passing sample_weight=None beside ranks with weights take weights of 1 (no hang, the same model)."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, labels = blobs(n=240, centres=4)
    X, y = X - 100.0, labels % 2
    weights = np.ones(X.shape[0])
    (lo, hi), rows = (0, 0), _split(world, X, y)
    lo = sum(uneven_counts(X.shape[0], world.size)[: world.rank])
    hi = lo + rows[0].shape[0]
    if world.rank == 0:
        weights[lo:hi] = np.linspace(0.5, 2.0, hi - lo)
    mine = weights[lo:hi] if world.rank == 0 else None
    weights = np.concatenate(world.mpi.allgather(weights[lo:hi]))
    spread = ml.LogisticRegression().fit(*rows, sample_weight=mine, comm=world)
    alone = ml.LogisticRegression().fit(X, y, sample_weight=weights, comm=mpi.Comm(MPI.COMM_SELF))
    assert bits(spread) == bits(alone)


def test_bits_with_default_blocks():
    """With the default block size the split of a few thousand rows does not change the bits either."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, _ = blobs(n=9000, d=4)
    alone = ml.KMeans(6, random_state=0).fit(X, comm=mpi.Comm(MPI.COMM_SELF))
    spread = ml.KMeans(6, random_state=0).fit(*_split(world, X), comm=world)
    assert bits(spread) == bits(alone)


def test_score_is_collective():
    """score over the split rows equals score over all rows on one process."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = regression(n=300)
    model = ml.Ridge().fit(X, y, comm=mpi.Comm(MPI.COMM_SELF))
    Xl, yl = _split(world, X, y)
    assert model.score(Xl, yl, comm=world) == pytest.approx(model.score(X, y, comm=mpi.Comm(MPI.COMM_SELF)),
                                                           rel=1e-12)


def test_weighted_score_is_collective_and_the_same_bits():
    """score with sample_weight over the split rows: the same bits as over all rows on one process (two
    reproducible sums), for one target and two."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, y = regression(n=300)
    Y = np.stack([y, y * y], axis=1)
    w = np.random.default_rng(3).uniform(0.0, 2.0, len(y))
    for target in (y, Y):
        model = ml.Ridge().fit(X, target, comm=mpi.Comm(MPI.COMM_SELF))
        Xl, tl, wl = _split(world, X, target, w)
        assert model.score(Xl, tl, sample_weight=wl, comm=world) == model.score(
            X, target, sample_weight=w, comm=mpi.Comm(MPI.COMM_SELF))


def test_raw_mpi4py_communicator():
    """fit takes an mpi4py communicator as it is (here COMM_WORLD), and score defaults to the fit's communicator."""
    X, y = regression(n=200)
    local = _split(mpi.Comm(MPI.COMM_WORLD), X, y)
    model = ml.Ridge().fit(*local, comm=MPI.COMM_WORLD)
    alone = ml.Ridge().fit(X, y, comm=mpi.Comm(MPI.COMM_SELF))
    assert bits(model) == bits(alone)
    assert model.score(*local) == pytest.approx(alone.score(X, y, comm=mpi.Comm(MPI.COMM_SELF)), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_balanced_class_weight_with_sample_weight_across_ranks(small_blocks, dtype):
    """class_weight="balanced" with sample_weight: each class's weight total is one reproducible sum over every
    rank's rows, so the fit is the same bits however the rows are split (per-rank totals added in float were not)."""
    world = mpi.Comm(MPI.COMM_WORLD)
    X, labels = blobs(n=3000, centres=3)
    X = (X - 100.0).astype(dtype)
    weight = np.random.default_rng(11).uniform(0.0, 2.0, X.shape[0])

    def fit(comm, X, y, w):
        return ml.LogisticRegression(class_weight="balanced", max_iter=50).fit(X, y, sample_weight=w, comm=comm)

    alone = fit(mpi.Comm(MPI.COMM_SELF), X, labels, weight)
    edges = [0, *(1237 * (r + 1) // world.size + 700 * r for r in range(world.size - 1)), X.shape[0]]  # all non-empty
    lo, hi = edges[world.rank], edges[world.rank + 1]
    spread = fit(world, X[lo:hi], labels[lo:hi], weight[lo:hi])
    assert bits(spread) == bits(alone)
    assert _same_everywhere(world, spread)


@pytest.mark.parametrize("name", ["Ridge", "KMeans", "StandardScaler"])
def test_a_refit_without_comm_runs_on_world_not_the_last_fits_comm(name):
    """fit(comm=None) is over every rank even after a fit on COMM_SELF: the refit took the last fit's communicator
    and fitted each rank's rows alone again, a different model on each rank. score still takes the fit's."""
    comm = mpi.world()
    X, y = regression(n=300, d=4, seed=21)
    lo, hi = 300 * comm.rank // comm.size, 300 * (comm.rank + 1) // comm.size  # every rank some rows: COMM_SELF fits
    mine = [X[lo:hi], y[lo:hi]]
    make = {"Ridge": lambda: ml.Ridge(alpha=1.0), "KMeans": lambda: ml.KMeans(3, n_init=1, random_state=1),
            "StandardScaler": lambda: ml.StandardScaler()}[name]
    reference = make().fit(*mine) if name == "Ridge" else make().fit(mine[0])
    model = make()
    args = mine if name == "Ridge" else mine[:1]
    model.fit(*args, comm=MPI.COMM_SELF)
    model.fit(*args)
    assert bits(model) == bits(reference)
    assert _same_everywhere(comm, model)
