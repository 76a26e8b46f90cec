"""scikit-learn's ``n_jobs`` on joblib's backends: loky, threading and hpc on five everyday workloads.

Each workload runs under ``joblib.parallel_config(backend=...)`` with the same data, the same ``n_jobs`` and the
same random seeds for every backend; its answer (predictions, scores, the chosen parameters) is compared across the
backends, and its time is the median of ``repeats`` runs after one untimed warm-up per backend (loky's workers and
our pool started, numba and scikit-learn's code loaded). Nothing asserts a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hpc.bench._timing import measure

__all__ = ["BACKENDS", "run_workloads"]

#: the backends compared, in the table's order
BACKENDS = ("loky", "threading", "hpc")


def _workloads(scale: float, workers: int) -> dict[str, tuple[str, Callable[[], Any]]]:
    """Return ``name -> (description, run)``; each ``run`` returns something comparable across backends."""
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rows = max(200, int(4000 * scale))
    X, y = make_classification(n_samples=rows, n_features=20, n_informative=8, random_state=0)
    trees = max(8, int(100 * scale))
    forest = RandomForestClassifier(n_estimators=trees, n_jobs=workers, random_state=0).fit(X, y)
    queries = np.tile(X, (max(1, int(5 * scale)), 1))

    def random_forest() -> Any:
        model = RandomForestClassifier(n_estimators=trees, n_jobs=workers, random_state=0).fit(X, y)
        return model.predict_proba(X)

    def grid_search() -> Any:
        grid = {"C": [0.01, 0.1, 1.0, 10.0], "fit_intercept": [True, False]}
        search = GridSearchCV(LogisticRegression(max_iter=200), grid, cv=3, n_jobs=workers).fit(X, y)
        return search.best_params_, search.cv_results_["mean_test_score"]

    def hist_gradient_boosting() -> Any:
        model = HistGradientBoostingClassifier(max_iter=max(10, int(50 * scale)), random_state=0)
        return cross_val_score(model, X, y, cv=4, n_jobs=workers)

    def knn() -> Any:
        model = KNeighborsClassifier(n_neighbors=5, algorithm="brute", n_jobs=workers).fit(X, y)
        return model.kneighbors(queries, return_distance=False)

    def importance() -> Any:
        result = permutation_importance(forest, X, y, n_repeats=max(2, int(5 * scale)), n_jobs=workers,
                                        random_state=0)
        return result.importances

    return {
        "RandomForest": (f"RandomForestClassifier({trees} trees) fit + predict_proba, {rows} x 20", random_forest),
        "GridSearchCV": (f"GridSearchCV(LogisticRegression), 8 candidates x 3 folds, {rows} x 20", grid_search),
        "HistGradientBoosting": ("cross_val_score(HistGradientBoostingClassifier), 4 folds", hist_gradient_boosting),
        "KNN": (f"KNeighborsClassifier(brute).kneighbors of {queries.shape[0]} rows", knn),
        "permutation_importance": ("permutation_importance(RandomForest)", importance),
    }


def _same(a: Any, b: Any) -> bool:
    import numpy as np

    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a == b
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


def run_workloads(scale: float, repeats: int, workers: int, say: Callable[[str], None]) -> dict[str, Any]:
    """Run every workload on every backend; return ``{workload: {"about", "rows": {backend: {...}}}}``.

    Each backend row holds ``seconds`` (the median), ``timing`` (:func:`hpc.bench._timing.measure`'s numbers) and
    ``same`` (its answer equals loky's).
    """
    import joblib

    import hpc.iter.joblib_backend  # noqa: F401 - registers "hpc"

    results: dict[str, Any] = {}
    for name, (about, work) in _workloads(scale, workers).items():
        rows: dict[str, Any] = {}
        reference = None
        for backend in BACKENDS:
            say(f"(d) scikit-learn {name} on {backend}")
            with joblib.parallel_config(backend=backend):
                answer = work()  # the warm-up, and the answer compared
                timing = measure(work, repeats, warmup=0)
            if reference is None:
                reference = answer
            rows[backend] = {"seconds": timing["median"], "timing": timing, "same": _same(answer, reference)}
        fastest_peer = min(rows["loky"]["seconds"], rows["threading"]["seconds"])
        rows["hpc"]["vs_fastest_peer"] = rows["hpc"]["seconds"] / fastest_peer if fastest_peer else None
        results[name] = {"about": about, "rows": rows}
    return results
