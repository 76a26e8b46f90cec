"""``hpc bench ml``: hpc.ml's estimators against scikit-learn, scikit-learn-intelex and dask-ml, and on 2 MPI ranks.

Workloads (after scikit-learn_bench's definitions; ``quick`` divides the rows by 10, never the features or ``k``):

- KMeans on ``make_blobs`` 1e6 x 10, k=10, and 1e5 x 100, k=100: exactly Lloyd's iterations from one ``init``
  array shared by every contestant (``tol=0``, ``max_iter=10``, ``n_init=1``); and 1e5 x 10, k=8, from the default
  ``init="k-means++"``, each contestant drawing its own (``random_state`` shared): the init's cost in the fit;
- LogisticRegression on ``make_classification`` 2e5 x 100, binary and 10 classes (L-BFGS; the same ``C``, ``tol``
  and ``max_iter`` for all);
- Ridge on ``make_regression`` 1e6 x 100 (``alpha=1``);
- PCA on ``make_blobs`` 1e6 x 100 float32, 5 components (``svd_solver="covariance_eigh"``).

Contestants, side by side in one run, on the same data: ours (``hpc.ml``) on one process with hpc's default thread
pool (every core); scikit-learn (every core), and for KMeans also with ``algorithm="elkan"`` (its bounds skip
distances as hpc.ml's do: the same fixed points); scikit-learn-intelex's estimators where it imports; dask-ml where it
imports; and ours under ``mpiexec -n 2`` with one thread per rank (``HPC_NUM_THREADS=1`` and every BLAS/OpenMP/numba
pool at 1), each rank passing its shard of the rows (:func:`hpc.ml.shard`, read from a ``.npy`` by
:func:`hpc.ml.load_rows`), the fit timed on rank 0 after a barrier. A contestant that cannot run here has a row that
says why.

Method: each workload's data are generated once (untimed) and shared; every in-process contestant first fits once
on the first rows (untimed: compilation, library loading), then fits ``repeats`` times, contestants interleaved and
their order rotated each round; a fit's time is the best of its repeats (a fit slower than :data:`LONG_FIT_S` is
timed once). The objective each reached is recomputed from its fitted parameters by the same code for every
contestant (KMeans inertia, the penalized logistic loss and the accuracy, Ridge's R^2 on the training rows, PCA's
explained variance ratio of its components). Nothing here asserts a time.
"""

from __future__ import annotations

import argparse as _argparse
import contextlib as _contextlib
import gc as _gc
import json as _json
import logging as _logging
import math as _math
import os as _os
import subprocess as _subprocess
import sys as _sys
import tempfile as _tempfile
import time as _time
import warnings as _warnings
from collections.abc import Callable
from importlib import util as _import_util
from pathlib import Path as _Path
from typing import Any

from hpc import _launcher
from hpc import info as _info
from hpc.bench._machine import describe as _describe
from hpc.bench._timing import loadavg as _loadavg

__all__ = ["CONTESTANTS", "WORKLOADS", "format_table", "run", "unavailable"]

#: the contestants, in the table's order
OURS, SKLEARN, SKLEARN_ELKAN, SKLEARNEX, DASK, OURS_MPI = (
    "hpc.ml",
    "scikit-learn",
    "scikit-learn elkan",
    "scikit-learn-intelex",
    "dask-ml",
    "hpc.ml mpiexec -n 2",
)
CONTESTANTS = (OURS, SKLEARN, SKLEARN_ELKAN, SKLEARNEX, DASK, OURS_MPI)
#: ranks of the MPI contestant
RANKS = 2
#: rows of the untimed warm-up fit (at most)
WARM_ROWS = 20_000
#: a fit slower than this (seconds) is timed once, not ``repeats`` times
LONG_FIT_S = 60.0
#: fits shorter than this (seconds) get no measure of other processes' load (the kernel counts in 10 ms ticks)
MIN_LOAD_WALL_S = 0.5
#: a ``scale`` below this is the tiny test configuration
TINY_BELOW = 0.1
#: rows divided by this with ``quick``
QUICK_DIVISOR = 10
SEED = 20261205

#: the hyperparameters every contestant gets, per estimator kind
PARAMS: dict[str, dict[str, Any]] = {
    "kmeans": {"tol": 0.0, "max_iter": 10, "n_init": 1, "algorithm": "lloyd"},
    "logreg": {"C": 1.0, "tol": 1e-4, "max_iter": 100},
    "ridge": {"alpha": 1.0},
    "pca": {"n_components": 5, "svd_solver": "covariance_eigh"},
}

#: a KMeans result's ``init`` where every contestant started from the same array (else the init's name)
SHARED_INIT = "one ndarray of k rows of X, shared"

#: name, kind, rows, features, dtype, extra (k for KMeans, classes for LogisticRegression), title
WORKLOADS: tuple[dict[str, Any], ...] = (
    {"name": "kmeans_1e6x10", "kind": "kmeans", "rows": 1_000_000, "features": 10, "dtype": "float64", "k": 10,
     "title": "KMeans, make_blobs, k=10"},
    {"name": "kmeans_1e5x100", "kind": "kmeans", "rows": 100_000, "features": 100, "dtype": "float64", "k": 100,
     "title": "KMeans, make_blobs, k=100"},
    {"name": "kmeans_1e5x10_pp", "kind": "kmeans", "rows": 100_000, "features": 10, "dtype": "float64", "k": 8,
     "init": "k-means++", "title": "KMeans, make_blobs, k=8, k-means++ init (the default)"},
    {"name": "logreg_binary", "kind": "logreg", "rows": 200_000, "features": 100, "dtype": "float64", "classes": 2,
     "title": "LogisticRegression, make_classification, 2 classes"},
    {"name": "logreg_10class", "kind": "logreg", "rows": 200_000, "features": 100, "dtype": "float64", "classes": 10,
     "title": "LogisticRegression, make_classification, 10 classes"},
    {"name": "ridge_1e6x100", "kind": "ridge", "rows": 1_000_000, "features": 100, "dtype": "float64",
     "title": "Ridge, make_regression"},
    {"name": "pca_1e6x100_f32", "kind": "pca", "rows": 1_000_000, "features": 100, "dtype": "float32",
     "title": "PCA, make_blobs, float32, 5 components"},
)

#: what the objective column holds, per kind
OBJECTIVE = {
    "kmeans": "inertia",
    "logreg": "loss",
    "ridge": "R^2 (train)",
    "pca": "expl. var. ratio",
}

# the single-thread variables of the MPI contestant's ranks
_ONE_THREAD = {
    "HPC_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


# ------------------------------------------------------------------------------------ entry points


def unavailable() -> str | None:
    """Return why this suite cannot run here (no scikit-learn, or already inside an MPI job), or ``None``."""
    if _import_util.find_spec("sklearn") is None:
        return "needs scikit-learn (the data generators and the baseline): pip install scikit-learn"
    from hpc.info import detect_launcher

    if detect_launcher() is not None:
        from hpc import mpi

        if mpi.world().size > 1:
            return "run it from a plain process: it starts its own mpiexec -n 2 for the MPI contestant"
    return None


def run(
    quick: bool = False,
    *,
    scale: float = 1.0,
    repeats: int | None = None,
    install_missing: bool = False,
    log: Callable[[str], None] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run every workload on every contestant and return the numbers.

    Args:
        quick (bool): rows divided by 10 and 2 repeats: a minute or two.
        scale (float): multiplies every workload's rows (the tests use 0.01; KMeans keeps at least 2k rows).
        repeats (int or None): timed fits per contestant (the best is reported); default 3, 2 if ``quick``, 1 at
            a tiny ``scale``.
        install_missing (bool): unused (nothing is installed); accepted like every suite's ``run``.
        log (callable or None): called with a line of progress before each step.
        timeout (float or None): seconds before the MPI contestant's job is killed; default 120 (tiny), 900
            (quick), 3600.

    Returns:
        A JSON-ready dict: ``machine``, ``settings``, ``contestants``, ``workloads`` (one per workload with ``rows``
        keyed by contestant: ``status`` "ok", "skipped" or "failed", and for "ok" ``seconds``, ``runs``,
        ``n_iter``, ``per_iter_s``, ``objective``, ``vs_sklearn``) and ``notes``.
    """
    del install_missing
    if not (isinstance(scale, int | float) and scale > 0):
        raise ValueError(f"scale must be a positive number; got {scale!r}")
    tiny = scale < TINY_BELOW
    if repeats is None:
        repeats = 1 if tiny else 2 if quick else 3
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    problem = unavailable()
    if problem:
        raise RuntimeError(f"hpc bench ml: {problem}")
    if timeout is None:
        timeout = 120.0 if tiny else 900.0 if quick else 3600.0
    say = log or (lambda line: None)
    from hpc import config

    started = _time.perf_counter()
    load_before = _loadavg()
    threads = config.available_cpus()
    notes: list[str] = []
    libraries = _libraries(notes)
    mpi_problem = _mpi_unavailable()
    workloads = [_sized(w, quick, scale) for w in WORKLOADS]
    results: list[dict[str, Any]] = []
    previous = config._num_threads_override
    config.set_num_threads(threads)  # ours: hpc's default pool on every core, whatever was set before
    try:
        with _tempfile.TemporaryDirectory(prefix="hpc-bench-ml-") as tmp:
            folder = _Path(tmp)
            for w in workloads:
                results.append(_run_workload(w, libraries, repeats, folder, mpi_problem is None, say))
            mpi_rss = None
            if mpi_problem is None:
                mpi_rss = _run_mpi(workloads, results, repeats, folder, timeout, say)
            else:
                for row in results:
                    row["rows"][OURS_MPI] = {"status": "skipped", "reason": mpi_problem}
    finally:
        config.set_num_threads(previous)
    for row in results:
        _ratios(row)
    return {
        "machine": _describe(
            ("hpc-substrate", "numpy", "scipy", "numba", "scikit-learn", "scikit-learn-intelex", "daal", "dask-ml",
             "mpi4py", "threadpoolctl"),
            source=_source(), threads=threads, blas=_blas(), loadavg_before=load_before, loadavg_after=_loadavg(),
        ),
        "settings": {
            "quick": quick,
            "scale": scale,
            "repeats": repeats,
            "warm_rows": WARM_ROWS,
            "long_fit_s": LONG_FIT_S,
            "threads": threads,
            "mpi_ranks": RANKS,
            "mpi_env": dict(_ONE_THREAD),
            "params": PARAMS,
            "seed": SEED,
        },
        "contestants": list(CONTESTANTS),
        "workloads": results,
        "total_s": _time.perf_counter() - started,
        "peak_rss_mib": {"self": _peak_rss_mib(), "mpi_rank": mpi_rss},
        "notes": notes,
    }


# ------------------------------------------------------------------------------------ contestants


class _Library:
    """One in-process contestant: where its four estimators come from, or why it cannot run."""

    def __init__(self, label: str, classes: dict[str, Any] | None, reason: str | None = None) -> None:
        self.label, self.classes, self.reason = label, classes, reason

    def make(self, kind: str, params: dict[str, Any]) -> Any:
        assert self.classes is not None
        return self.classes[kind](**params)


def _libraries(notes: list[str]) -> list[_Library]:
    """Return the in-process contestants: ours, scikit-learn, scikit-learn-intelex and dask-ml (or why not)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression, Ridge

    from hpc import ml

    ours = {"kmeans": ml.KMeans, "logreg": ml.LogisticRegression, "ridge": ml.Ridge, "pca": ml.PCA}
    sklearn = {"kmeans": KMeans, "logreg": LogisticRegression, "ridge": Ridge, "pca": PCA}

    def elkan(**params: Any) -> Any:
        """scikit-learn's KMeans with Elkan's bounds: its own way of skipping distances (the same fixed points)."""
        return KMeans(**{**params, "algorithm": "elkan"})

    libraries = [_Library(OURS, ours), _Library(SKLEARN, sklearn), _Library(SKLEARN_ELKAN, {"kmeans": elkan})]
    try:
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore")
            from sklearnex.cluster import KMeans as XKMeans
            from sklearnex.decomposition import PCA as XPCA  # noqa: N814
            from sklearnex.linear_model import LogisticRegression as XLogisticRegression
            from sklearnex.linear_model import Ridge as XRidge
        intelex = {"kmeans": XKMeans, "logreg": XLogisticRegression, "ridge": XRidge, "pca": XPCA}
        libraries.append(_Library(SKLEARNEX, intelex))
    except ImportError as exc:
        reason = "not installed (pip install scikit-learn-intelex)" if _missing("sklearnex") else (
            f"does not import: {type(exc).__name__}: {exc}")
        libraries.append(_Library(SKLEARNEX, None, reason))
    if _missing("dask_ml"):
        reason = "not installed (pip install dask-ml; it brings dask, distributed and pyarrow, left out here)"
    else:
        reason = "installed, but this suite has no dask-ml runner yet (dask-ml was not installed where it was built)"
    libraries.append(_Library(DASK, None, reason))
    for library in libraries:
        if library.reason:
            notes.append(f"{library.label}: skipped: {library.reason}")
    return libraries


def _missing(module: str) -> bool:
    try:
        return _import_util.find_spec(module) is None
    except (ImportError, ValueError):
        return True


def _mpi_unavailable() -> str | None:
    from hpc.bench import mpi as bench_mpi

    return bench_mpi.unavailable()


# ------------------------------------------------------------------------------------ data


def _sized(workload: dict[str, Any], quick: bool, scale: float) -> dict[str, Any]:
    """Return ``workload`` with its row count for this run (``rows``) and the full size kept (``full_rows``)."""
    w = dict(workload)
    rows = w["rows"] * scale / (QUICK_DIVISOR if quick else 1)
    floor = 2 * w.get("k", 1) if w["kind"] == "kmeans" else 100
    w["full_rows"], w["rows"] = w["rows"], max(floor, round(rows))
    return w


def _generate(w: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Return ``(X, y, init)`` of workload ``w`` (``y`` and ``init`` ``None`` where the kind has none)."""
    import numpy as np
    from sklearn.datasets import make_blobs, make_classification, make_regression

    n, d, kind = w["rows"], w["features"], w["kind"]
    y = init = None
    if kind == "kmeans":
        X, _ = make_blobs(n_samples=n, n_features=d, centers=w["k"], random_state=SEED)
        if w.get("init") is None:  # else each contestant draws its own (k-means++ from random_state=SEED)
            init = X[np.random.default_rng(SEED).choice(n, w["k"], replace=False)].copy()
    elif kind == "logreg":
        X, y = make_classification(
            n_samples=n, n_features=d, n_informative=d // 2, n_redundant=0, n_classes=w["classes"],
            random_state=SEED,
        )
    elif kind == "ridge":  # shuffle=False: no second copy of X
        X, y = make_regression(n_samples=n, n_features=d, n_informative=d // 2, noise=1.0, shuffle=False,
                               random_state=SEED)
    else:
        X, _ = make_blobs(n_samples=n, n_features=d, centers=10, random_state=SEED)
        X = X.astype(np.float32)  # the float64 original is freed on return: 1.5 arrays of 8-byte size at most
    return np.ascontiguousarray(X), y, init


def _params(w: dict[str, Any], init: Any) -> dict[str, Any]:
    params = dict(PARAMS[w["kind"]])
    if w["kind"] == "kmeans":
        params.update(n_clusters=w["k"], init=init)
        if init is None:  # a named init, drawn by each contestant: the init's cost is part of the fit
            params.update(init=w["init"], random_state=SEED)
    return params


# ------------------------------------------------------------------------------------ one workload, in process


def _run_workload(
    w: dict[str, Any], libraries: list[_Library], repeats: int, folder: _Path, save: bool, say: Callable[[str], None]
) -> dict[str, Any]:
    import numpy as np

    say(f"{w['name']}: generating {w['rows']:,} x {w['features']} {w['dtype']}")
    t0 = _time.perf_counter()
    X, y, init = _generate(w)
    generate_s = _time.perf_counter() - t0
    params = _params(w, init)
    reference = _reference(w["kind"], X, y)  # what every objective needs besides the fit (untimed)
    rows: dict[str, dict[str, Any]] = {}
    live = [lib for lib in libraries if lib.classes is not None and w["kind"] in lib.classes]
    for lib in libraries:
        if lib.classes is None:
            rows[lib.label] = {"status": "skipped", "reason": lib.reason}
        elif w["kind"] not in lib.classes:
            rows[lib.label] = {"status": "skipped", "reason": "KMeans only"}
    warm = min(w["rows"], WARM_ROWS)
    estimators: dict[str, Any] = {}
    for lib in live:
        say(f"{w['name']}: {lib.label}: warm-up fit on {warm:,} rows")
        try:
            estimator = lib.make(w["kind"], params)
            with _quiet():
                _fit(estimator, X[:warm], None if y is None else y[:warm])
            estimators[lib.label] = estimator
        except Exception as exc:  # one broken contestant must not lose the others' numbers
            rows[lib.label] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
    runs: dict[str, list[float]] = {label: [] for label in estimators}
    other: dict[str, list[float]] = {label: [] for label in estimators}
    dispatch: dict[str, set[str]] = {label: set() for label in estimators}
    fitted: dict[str, dict[str, Any]] = {}
    labels = list(estimators)
    for round_ in range(repeats):
        turn = round_ % max(1, len(labels))
        for label in labels[turn:] + labels[:turn]:  # rotated: none always runs right after the same one
            if label in rows or (runs[label] and max(runs[label]) > LONG_FIT_S):
                continue
            say(f"{w['name']}: {label}: fit {round_ + 1}/{repeats}")
            estimator = estimators[label]
            try:
                with _quiet(), _sklearnex_dispatch(dispatch[label]):
                    cpu = _CpuShare()
                    t0 = _time.perf_counter()
                    _fit(estimator, X, y)
                    seconds = _time.perf_counter() - t0
                    share = cpu.others(seconds)
                    if share is not None:
                        other[label].append(share)
            except Exception as exc:
                rows[label] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"}
                continue
            runs[label].append(seconds)
            if label not in fitted:
                fitted[label] = _fitted(w["kind"], estimator)
    for label in labels:
        if label in rows:
            continue
        row = _row(w["kind"], runs[label], fitted[label], X, y, reference)
        row["other_load_cores"] = max(other[label]) if other[label] else None
        if label == SKLEARNEX:
            row["backend"] = _backend(dispatch[label])
        rows[label] = row
    del estimators
    if save:  # the MPI contestant reads its rows from here after every workload ran in process
        target = folder / w["name"]
        target.mkdir()
        np.save(target / "X.npy", X)
        if y is not None:
            np.save(target / "y.npy", y)
        if init is not None:
            np.save(target / "init.npy", init)
        with open(target / "reference.json", "w", encoding="utf-8") as f:
            _json.dump(_jsonable(reference), f)
    del X, y
    _gc.collect()
    return {
        "name": w["name"],
        "title": w["title"],
        "kind": w["kind"],
        "rows_n": w["rows"],
        "full_rows": w["full_rows"],
        "features": w["features"],
        "dtype": w["dtype"],
        "k": w.get("k"),
        "classes": w.get("classes"),
        "generate_s": generate_s,
        "params": {key: value for key, value in params.items() if key != "init"},
        "init": SHARED_INIT if init is not None else params.get("init"),
        "rows": rows,
    }


def _fit(estimator: Any, X: Any, y: Any) -> Any:
    return estimator.fit(X) if y is None else estimator.fit(X, y)


@_contextlib.contextmanager
def _quiet():
    with _warnings.catch_warnings():
        _warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter: n_iter says so in the table
        yield


class _Capture(_logging.Handler):
    def __init__(self, seen: set[str]) -> None:
        super().__init__(_logging.INFO)
        self.seen = seen

    def emit(self, record: _logging.LogRecord) -> None:
        text = record.getMessage()
        if ".fit:" in text:
            self.seen.add(text.split(".fit:", 1)[1].strip())


@_contextlib.contextmanager
def _sklearnex_dispatch(seen: set[str]):
    """Record what scikit-learn-intelex says it ran (its logger at INFO: accelerated, or a fallback)."""
    logger = _logging.getLogger("sklearnex")
    level, propagate, handlers = logger.level, logger.propagate, logger.handlers[:]
    logger.handlers[:] = [_Capture(seen)]  # its own handler would print every dispatch line
    logger.setLevel(_logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def _backend(seen: set[str]) -> str:
    if not seen:
        return "unknown"
    if any("fallback" in s.lower() for s in seen):
        return "fallback to scikit-learn"
    return "oneDAL"


class _CpuShare:
    """CPU time that other processes took on this machine while one fit ran (Linux ``/proc/stat``)."""

    def __init__(self) -> None:
        self.busy, self.own = _busy_seconds(), _own_seconds()

    def others(self, wall: float) -> float | None:
        busy = _busy_seconds()
        if busy is None or self.busy is None or wall < MIN_LOAD_WALL_S:  # the counters tick every 10 ms
            return None
        return max(0.0, ((busy - self.busy) - (_own_seconds() - self.own)) / wall)


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:9]] + [0] * (9 - len(fields))
    busy = sum(values[i] for i in (0, 1, 2, 5, 6, 7))  # user nice system irq softirq steal (guest is in user)
    return busy / _os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    t = _os.times()
    return t.user + t.system


# ------------------------------------------------------------------------------------ objectives


def _fitted(kind: str, est: Any) -> dict[str, Any]:
    """Return what the objective needs from a fitted estimator, as arrays (and ``n_iter``)."""
    import numpy as np

    if kind == "kmeans":
        return {"centers": np.asarray(est.cluster_centers_, np.float64), "n_iter": int(est.n_iter_),
                "inertia_attr": float(est.inertia_)}
    if kind == "logreg":
        return {"coef": np.atleast_2d(np.asarray(est.coef_, np.float64)),
                "intercept": np.atleast_1d(np.asarray(est.intercept_, np.float64)),
                "n_iter": int(np.max(est.n_iter_))}
    if kind == "ridge":
        return {"coef": np.asarray(est.coef_, np.float64).ravel(), "intercept": float(np.ravel(est.intercept_)[0])}
    return {"components": np.asarray(est.components_, np.float64),
            "ratio_attr": float(np.sum(est.explained_variance_ratio_))}


_CHUNK = 1 << 16


def _reference(kind: str, X: Any, y: Any) -> dict[str, Any]:
    """Return the data's facts each objective needs (PCA: the covariance; Ridge: y's spread), untimed."""
    import numpy as np

    if kind == "pca":
        n = X.shape[0]
        mean = np.zeros(X.shape[1])
        for lo in range(0, n, _CHUNK):
            mean += X[lo : lo + _CHUNK].sum(axis=0, dtype=np.float64)
        mean /= n
        cov = np.zeros((X.shape[1], X.shape[1]))
        for lo in range(0, n, _CHUNK):
            part = X[lo : lo + _CHUNK].astype(np.float64) - mean
            cov += part.T @ part
        return {"cov": cov / (n - 1)}
    if kind == "ridge":
        return {"ss_tot": float(((y - y.mean()) ** 2).sum())}
    return {}


def _objective(kind: str, fit: dict[str, Any], X: Any, y: Any, reference: dict[str, Any]) -> dict[str, Any]:
    """Return the objective of a fit, recomputed from its parameters on the training rows (same code for all)."""
    import numpy as np

    n = X.shape[0]
    if kind == "kmeans":
        c = fit["centers"]
        half = 0.5 * (c * c).sum(axis=1)
        total = 0.0
        for lo in range(0, n, _CHUNK):
            part = X[lo : lo + _CHUNK].astype(np.float64)
            nearest = np.argmin(half - part @ c.T, axis=1)
            total += float(((part - c[nearest]) ** 2).sum())
        return {"inertia": total, "inertia_attr": fit["inertia_attr"]}
    if kind == "logreg":
        coef, intercept = fit["coef"], fit["intercept"]
        C = PARAMS["logreg"]["C"]
        loss = correct = 0.0
        for lo in range(0, n, _CHUNK):
            part, codes = X[lo : lo + _CHUNK], np.asarray(y[lo : lo + _CHUNK]).astype(np.int64)
            scores = part @ coef.T + intercept
            if coef.shape[0] == 1:
                s = scores[:, 0]
                loss += float((np.logaddexp(0.0, s) - codes * s).sum())
                correct += float(((s > 0).astype(np.int64) == codes).sum())
            else:
                top = scores.max(axis=1)
                lse = top + np.log(np.exp(scores - top[:, None]).sum(axis=1))
                loss += float((lse - scores[np.arange(codes.shape[0]), codes]).sum())
                correct += float((scores.argmax(axis=1) == codes).sum())
        penalty = float((coef * coef).sum()) / (2.0 * C * n)
        return {"loss": loss / n + penalty, "log_loss": loss / n, "accuracy": correct / n}
    if kind == "ridge":
        ss_res = 0.0
        for lo in range(0, n, _CHUNK):
            residual = y[lo : lo + _CHUNK] - (X[lo : lo + _CHUNK] @ fit["coef"] + fit["intercept"])
            ss_res += float(residual @ residual)
        return {"r2": 1.0 - ss_res / reference["ss_tot"]}
    comps, cov = fit["components"], np.asarray(reference["cov"])
    captured = float(np.trace(comps @ cov @ comps.T))
    return {"explained_variance_ratio": captured / float(np.trace(cov)), "ratio_attr": fit["ratio_attr"]}


def _row(kind: str, runs: list[float], fit: dict[str, Any], X: Any, y: Any, reference: dict[str, Any]) -> dict:
    best = min(runs)
    n_iter = fit.get("n_iter")
    return {
        "status": "ok",
        "seconds": best,
        "runs": runs,
        "n_iter": n_iter,
        "per_iter_s": best / n_iter if n_iter else None,
        "objective": _objective(kind, fit, X, y, reference),
        "fit_digest": _digest(fit),
    }


def _digest(fit: dict[str, Any]) -> str:
    """Return a hash of a fit's parameters' bits (float64), to tell whether two fits are the same bits."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for key in sorted(fit):
        h.update(key.encode())
        h.update(np.ascontiguousarray(fit[key], dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def _ratios(workload: dict[str, Any]) -> None:
    rows = workload["rows"]
    base = rows.get(SKLEARN, {})
    ref = base.get("seconds") if base.get("status") == "ok" else None
    for row in rows.values():
        if row.get("status") == "ok":
            row["vs_sklearn"] = row["seconds"] / ref if ref else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


# ------------------------------------------------------------------------------------ the MPI contestant


def _run_mpi(
    workloads: list[dict[str, Any]],
    results: list[dict[str, Any]],
    repeats: int,
    folder: _Path,
    timeout: float,
    say: Callable[[str], None],
) -> float | None:
    """Launch one ``mpiexec -n 2`` job over every workload's saved data; fill in the MPI contestant's rows.

    Returns the largest peak resident memory of a rank in MiB (``None`` if the job said nothing).
    """
    import numpy as np

    from hpc.bench import mpi as bench_mpi

    plan = [{"name": w["name"], "kind": w["kind"], "k": w.get("k"), "init": w.get("init")} for w in workloads]
    (folder / "plan.json").write_text(_json.dumps({"workloads": plan, "repeats": repeats}), encoding="utf-8")
    out = folder / "mpi-results.json"
    mpiexec = bench_mpi.find_mpiexec()
    assert mpiexec is not None
    command = [mpiexec, *bench_mpi._mpiexec_flags(mpiexec), "-n", str(RANKS), _sys.executable, "-m", "hpc.bench.ml"]
    command += ["--worker", "--data", str(folder), "--out", str(out)]
    env = _launcher.child_environment()
    env.update(_ONE_THREAD)
    say(f"{OURS_MPI}: starting {' '.join(command[:4])} ... (timeout {timeout:g} s)")
    failure = None
    started = _time.perf_counter()
    proc = _subprocess.Popen(command, env=env, stdin=_subprocess.DEVNULL, start_new_session=True)
    try:
        status = proc.wait(timeout=timeout)
        if status != 0:
            failure = f"the {RANKS}-rank job exited with status {status} (its messages are above)"
    except _subprocess.TimeoutExpired:
        bench_mpi._kill_group(proc)
        failure = f"the {RANKS}-rank job did not finish in {timeout:g} s; killed"
    except BaseException:  # Ctrl-C: take the job down with us
        bench_mpi._kill_group(proc)
        raise
    job_s = _time.perf_counter() - started
    done = _json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    for w, result in zip(workloads, results):
        got = done.get(w["name"])
        if got is None:
            result["rows"][OURS_MPI] = {"status": "failed", "reason": failure or "no result from the job"}
            continue
        if got.get("error"):
            result["rows"][OURS_MPI] = {"status": "failed", "reason": got["error"]}
            continue
        target = folder / w["name"]
        X = np.load(target / "X.npy", mmap_mode="r")
        y = np.load(target / "y.npy", mmap_mode="r") if (target / "y.npy").exists() else None
        reference = _json.loads((target / "reference.json").read_text(encoding="utf-8"))
        fit = {key: np.asarray(value) if isinstance(value, list) else value for key, value in got["fit"].items()}
        row = _row(w["kind"], got["runs"], fit, X, y, reference)
        row["other_load_cores"] = got.get("other_load_cores")
        row["ranks"] = got["ranks"]
        row["threads_per_rank"] = got["threads_per_rank"]
        row["job_s"] = job_s
        single = result["rows"].get(OURS, {})
        if single.get("status") == "ok":  # hpc.ml's promise: the same bits on any number of ranks
            row["same_bits_as_one_process"] = row["fit_digest"] == single["fit_digest"]
        result["rows"][OURS_MPI] = row
        del X, y
    return done.get("_peak_rss_mib")


def _worker(folder: _Path, out: _Path) -> int:
    """Every rank: fit each planned workload on this rank's rows; rank 0 writes the times and fits to ``out``."""
    import numpy as np

    from hpc import current_num_threads, ml, mpi

    comm = mpi.world()
    c = comm.mpi
    root = comm.rank == 0
    plan = _json.loads((folder / "plan.json").read_text(encoding="utf-8"))
    repeats = plan["repeats"]
    results: dict[str, Any] = {}
    classes = {"kmeans": ml.KMeans, "logreg": ml.LogisticRegression, "ridge": ml.Ridge, "pca": ml.PCA}
    for w in plan["workloads"]:
        target = folder / w["name"]
        if root:
            print(f"hpc bench ml: {OURS_MPI}: {w['name']}", file=_sys.stderr, flush=True)
        try:
            X = ml.load_rows(target / "X.npy", comm, mmap=False)  # in memory, like the in-process contestants
            y = ml.load_rows(target / "y.npy", comm, mmap=False) if (target / "y.npy").exists() else None
            init = np.load(target / "init.npy") if (target / "init.npy").exists() else None
            params = _params(w, init)
            estimator = classes[w["kind"]](**params)
            warm = ml.shard(min(int(c.allreduce(X.shape[0])), WARM_ROWS), comm)
            warm_rows = warm[1] - warm[0]
            with _quiet():
                estimator.fit(X[:warm_rows], None if y is None else y[:warm_rows], comm=comm)
            runs: list[float] = []
            other: list[float] = []
            for _ in range(repeats):
                c.Barrier()
                busy, own = _busy_seconds(), _own_seconds()
                t0 = _time.perf_counter()
                with _quiet():
                    estimator.fit(X, y, comm=comm)
                seconds = _time.perf_counter() - t0
                own_all = c.allreduce(_own_seconds() - own)  # the ranks' own CPU, to tell other processes' apart
                end = _busy_seconds()
                if busy is not None and end is not None and seconds >= MIN_LOAD_WALL_S:
                    other.append(max(0.0, (end - busy - own_all) / seconds))
                runs.append(seconds)
                if c.bcast(seconds > LONG_FIT_S, root=0):  # rank 0's clock decides for every rank
                    break
            if root:
                results[w["name"]] = {
                    "runs": runs,
                    "fit": _jsonable(_fitted(w["kind"], estimator)),
                    "ranks": comm.size,
                    "threads_per_rank": current_num_threads(),
                    "other_load_cores": max(other) if other else None,
                }
            del X, y, estimator
            _gc.collect()
        except Exception as exc:  # noqa: BLE001 - a failed fit is reported in its row; every rank fails alike
            if root:
                results[w["name"]] = {"error": f"{type(exc).__name__}: {exc}"}
        peak = _peak_rss_mib()
        peak = c.allreduce(peak, op=_max_op()) if peak is not None else None
        if root:  # rewritten after each workload: a killed job keeps what it finished
            results["_peak_rss_mib"] = peak
            out.write_text(_json.dumps(results), encoding="utf-8")
    return 0


def _max_op() -> Any:
    from mpi4py import MPI

    return MPI.MAX


# ------------------------------------------------------------------------------------ machine


def _peak_rss_mib() -> float | None:
    """Return the peak resident memory of this process in MiB (``None`` where the OS does not say)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (1024 * 1024) if _sys.platform == "darwin" else peak / 1024


def _source() -> dict[str, Any] | None:
    """Return the git commit of the measured code and whether hpc/ml or kernels differ from it (None outside git)."""
    root = _Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        commit = _subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                                 timeout=20, check=True).stdout.strip()
        changed = _subprocess.run(["git", "status", "--porcelain", "--", "hpc/ml", "kernels"], cwd=root,
                                  capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, _subprocess.SubprocessError):
        return None
    return {"commit": commit, "ml_or_kernels_modified": bool(changed)}


def _blas() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return sorted({f"{i.get('internal_api')} {i.get('version') or ''} ({i.get('num_threads')} threads)".replace(
        "  ", " ") for i in threadpool_info()})


# ------------------------------------------------------------------------------------ the table


def _seconds(value: float) -> str:
    return f"{value:.3f}" if value < 100 else f"{value:.1f}"


def _objective_text(kind: str, objective: dict[str, Any]) -> str:
    if kind == "kmeans":
        return f"{objective['inertia']:.8g}"
    if kind == "logreg":
        return f"{objective['loss']:.6f} (acc {objective['accuracy']:.4f})"
    if kind == "ridge":
        return f"{objective['r2']:.8f}"
    return f"{objective['explained_variance_ratio']:.6f}"


def _settings_text(w: dict[str, Any]) -> str:
    p = w["params"]
    if w["kind"] == "kmeans":
        init = "one shared init array" if w.get("init") in (None, SHARED_INIT) else (
            f"init={w['init']!r} (each its own draws, random_state={SEED})")
        return f"k={w['k']}, {init}, tol={p['tol']:g}, max_iter={p['max_iter']}, n_init={p['n_init']}"
    if w["kind"] == "logreg":
        return f"C={p['C']:g}, tol={p['tol']:g}, max_iter={p['max_iter']}, lbfgs"
    if w["kind"] == "ridge":
        return f"alpha={p['alpha']:g}"
    return f"n_components={p['n_components']}, {p['svd_solver']}"


def _rows_label(n: int) -> str:
    exponent = int(_math.floor(_math.log10(n))) if n > 0 else 0
    if n == 10**exponent:
        return f"1e{exponent}"
    mantissa = n / 10**exponent
    return f"{mantissa:g}e{exponent}" if mantissa == round(mantissa, 2) else f"{n:,}"


def format_table(results: dict[str, Any]) -> str:
    """Return ``results`` from :func:`run` as a plain-text table, the CPU line first."""
    m, s = results["machine"], results["settings"]
    v = m.get("versions", {})
    how = f"best of {s['repeats']} fit{'s' if s['repeats'] > 1 else ''}" + (" (quick)" if s["quick"] else "") + (
        f", rows x{s['scale']:g}" if s["scale"] != 1 else "")
    source = m.get("source") or {}
    revision = f" ({source['commit']}{', hpc/ml or kernels modified' if source['ml_or_kernels_modified'] else ''})" \
        if source else ""
    lines = [
        f"cpu: {_info.cpu_line(m.get('cpu'))}",
        f"hpc bench ml: {m.get('date', '?')}; Python {m.get('python', '?')}; hpc-substrate "
        f"{v.get('hpc-substrate')}{revision}, scikit-learn {v.get('scikit-learn')}, scikit-learn-intelex "
        f"{v.get('scikit-learn-intelex')}, numpy {v.get('numpy')}, numba {v.get('numba')}",
        f"{how}; each contestant warmed up by one untimed fit on the first {s['warm_rows']:,} rows (at most); "
        f"in process: {s['threads']} threads; {OURS_MPI}: 1 thread per rank; load average "
        f"{_load(m.get('loadavg_before'))} before, {_load(m.get('loadavg_after'))} after",
        "ratio: time / scikit-learn's time (< 1: faster); objective recomputed from each fit's parameters "
        "by the same code",
    ]
    for w in results["workloads"]:
        kind = w["kind"]
        extra = _settings_text(w)
        lines += [
            "",
            f"{w['title']}: {_rows_label(w['rows_n'])} x {w['features']} {w['dtype']} ({extra}); "
            f"data made in {w['generate_s']:.1f} s",
            f"  {'contestant':24}{'fit (s)':>10}{'iters':>7}{'per iter (ms)':>15}  {OBJECTIVE[kind]:<26}"
            f"{'ratio':>8}  note",
        ]
        for label in results["contestants"]:
            row = w["rows"].get(label)
            if row is None:
                continue
            if row["status"] != "ok":
                lines.append(f"  {label:24}{row['status']}: {row['reason']}")
                continue
            iters = f"{row['n_iter']}" if row["n_iter"] else "-"
            per = f"{row['per_iter_s'] * 1e3:.2f}" if row["per_iter_s"] else "-"
            ratio = f"{row['vs_sklearn']:.2f}x" if row.get("vs_sklearn") else "-"
            notes = []
            if row.get("backend"):
                notes.append(row["backend"])
            if label == OURS_MPI and "same_bits_as_one_process" in row:
                notes.append("fit: same bits as 1 process" if row["same_bits_as_one_process"]
                             else "fit: NOT the same bits as 1 process")
            if len(row["runs"]) < s["repeats"]:
                notes.append(f"{len(row['runs'])} fit(s): over {s['long_fit_s']:g} s")
            if kind == "logreg" and row["n_iter"] and row["n_iter"] >= w["params"]["max_iter"]:
                notes.append("hit max_iter")
            busy = row.get("other_load_cores")
            if busy is not None and busy > 0.25:
                notes.append(f"other processes used {busy:.1f} cores")
            lines.append(
                f"  {label:24}{_seconds(row['seconds']):>10}{iters:>7}{per:>15}  "
                f"{_objective_text(kind, row['objective']):<26}{ratio:>8}  {'; '.join(notes)}".rstrip()
            )
    total, rss = results.get("total_s"), results.get("peak_rss_mib")
    if total is not None:
        memory = ""
        if rss and rss.get("self"):
            memory = f"; peak memory {rss['self']:.0f} MiB" + (
                f", an MPI rank {rss['mpi_rank']:.0f} MiB" if rss.get("mpi_rank") else "")
        lines += ["", f"whole run: {total:.0f} s (data, warm-ups, fits, objectives, the MPI job){memory}"]
    return "\n".join(lines)


def _load(values: list[float] | None) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


# ------------------------------------------------------------------------------------ python -m hpc.bench.ml


def _main(argv: list[str] | None = None) -> int:
    parser = _argparse.ArgumentParser(
        prog="python -m hpc.bench.ml", description="hpc.ml against scikit-learn and its peers (`hpc bench ml`)."
    )
    parser.add_argument("--quick", action="store_true", help="rows divided by 10, 2 repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers, with machine info, as JSON")
    parser.add_argument("--tiny", action="store_true", help=_argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=_argparse.SUPPRESS)  # the MPI contestant's ranks
    parser.add_argument("--data", metavar="DIR", help=_argparse.SUPPRESS)
    parser.add_argument("--out", metavar="FILE", help=_argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker(_Path(args.data), _Path(args.out))
    from hpc import bench

    extra = ["--quick"] * args.quick + ["--tiny"] * args.tiny + (["--json", args.json] if args.json else [])
    return bench.main(["ml", *extra])


if __name__ == "__main__":
    _sys.exit(_main())
