"""hpc.ml against scikit-learn on small data: 200, 2000 and 20000 rows, where a fit's fixed costs show.

``hpc bench ml`` times fits of 1e5-1e6 rows. Many fits are far smaller (a grid search's folds, a pipeline on a
sample), and there a library's Python around its kernels decides. Each estimator here is fitted on standard normal
rows (10 features; KMeans on 8 shifted blobs), the two libraries alternating fit by fit, after one untimed fit each;
the time is the best of ``--repeats`` fits. KMeans is timed twice: from the default ``init="k-means++"`` (each
library its own draws, so the iterations differ: they are reported) and from one init array shared by both
(``tol=0``, so both run the same iterations: the per-iteration time compares the loops). Nothing here asserts a time.

    python scripts/bench_ml_small.py [--repeats 15] [--json docs/bench/ml-small-MACHINE-DATE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np

ROWS = (200, 2000, 20000)
FEATURES = 10
CLUSTERS = 8


def _data(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, FEATURES)) + rng.integers(0, CLUSTERS, (n, 1))
    y_reg = X @ rng.standard_normal(FEATURES) + 0.1 * rng.standard_normal(n)
    y_cls = (X[:, 0] + 0.5 * rng.standard_normal(n) > np.median(X[:, 0])).astype(np.int64)
    return X, y_reg, y_cls


def _estimators(X: np.ndarray) -> list[tuple[str, Callable[[Any], Any], str]]:
    """(name, make(module) -> estimator, which target) for each fit; ``module`` is hpc.ml or a sklearn namespace."""
    init = X[:: max(1, X.shape[0] // CLUSTERS)][:CLUSTERS].copy()
    return [
        ("StandardScaler", lambda m: m.StandardScaler(), "none"),
        ("PCA(3)", lambda m: m.PCA(n_components=3), "none"),
        ("Ridge", lambda m: m.Ridge(alpha=1.0), "reg"),
        ("LogisticRegression", lambda m: m.LogisticRegression(), "cls"),
        ("KMeans(8), k-means++", lambda m: m.KMeans(n_clusters=CLUSTERS, n_init=1, random_state=0), "none"),
        ("KMeans(8), one init array, tol=0, 20 iterations",
         lambda m: m.KMeans(n_clusters=CLUSTERS, init=init, n_init=1, max_iter=20, tol=0.0), "none"),
    ]


class _Sklearn:
    """scikit-learn's estimators under the names hpc.ml uses."""

    def __getattr__(self, name: str) -> Any:
        from sklearn import cluster, decomposition, linear_model, preprocessing

        for module in (preprocessing, decomposition, linear_model, cluster):
            if hasattr(module, name):
                return getattr(module, name)
        raise AttributeError(name)


def _fit(make: Callable[[Any], Any], module: Any, X: np.ndarray, y: np.ndarray | None) -> tuple[float, Any]:
    est = make(module)
    start = time.perf_counter()
    est.fit(X) if y is None else est.fit(X, y)
    return time.perf_counter() - start, est


def run(repeats: int) -> dict[str, Any]:
    from hpc import ml
    from hpc.bench._machine import describe

    libraries = {"hpc.ml": ml, "scikit-learn": _Sklearn()}
    rows = []
    for n in ROWS:
        X, y_reg, y_cls = _data(n)
        for name, make, target in _estimators(X):
            y = {"none": None, "reg": y_reg, "cls": y_cls}[target]
            times: dict[str, list[float]] = {lib: [] for lib in libraries}
            fitted: dict[str, Any] = {}
            for module in libraries.values():  # untimed: compilation, imports, caches
                _fit(make, module, X, y)
            for r in range(repeats):
                order = list(libraries.items())
                for lib, module in order if r % 2 == 0 else order[::-1]:
                    seconds, fitted[lib] = _fit(make, module, X, y)
                    times[lib].append(seconds)
            row: dict[str, Any] = {"fit": name, "rows": n}
            for lib in libraries:
                row[lib] = {"seconds": min(times[lib]), "n_iter": getattr(fitted[lib], "n_iter_", None)}
                n_iter = row[lib]["n_iter"]
                if isinstance(n_iter, int | np.integer):
                    row[lib]["n_iter"] = int(n_iter)
                    row[lib]["per_iter_s"] = row[lib]["seconds"] / max(1, int(n_iter))
                else:
                    row[lib]["n_iter"] = None
            row["ratio"] = row["hpc.ml"]["seconds"] / row["scikit-learn"]["seconds"]
            rows.append(row)
            print(f"{name:>50} {n:>6} rows: hpc.ml {row['hpc.ml']['seconds'] * 1e3:8.2f} ms, scikit-learn "
                  f"{row['scikit-learn']['seconds'] * 1e3:8.2f} ms ({row['ratio']:.2f}x)", flush=True)
    return {
        "machine": describe(("hpc-substrate", "numpy", "scipy", "numba", "scikit-learn")),
        "settings": {"rows": ROWS, "features": FEATURES, "repeats": repeats},
        "results": rows,
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown table: hpc.ml's time over scikit-learn's per fit and size (KMeans: with the iterations)."""
    fits = list(dict.fromkeys(r["fit"] for r in result["results"]))
    lines = ["| fit | " + " | ".join(f"{n} rows" for n in ROWS) + " |", "|---|" + "---:|" * len(ROWS)]
    for fit in fits:
        cells = []
        for n in ROWS:
            r = next(x for x in result["results"] if x["fit"] == fit and x["rows"] == n)
            cell = f"{r['ratio']:.2f}x"
            ours, theirs = r["hpc.ml"], r["scikit-learn"]
            if fit.startswith("KMeans"):
                cell += f" ({ours['n_iter']} / {theirs['n_iter']} it., {ours['per_iter_s'] * 1e6:.0f} / " \
                        f"{theirs['per_iter_s'] * 1e6:.0f} us each)"
            cells.append(cell)
        lines.append(f"| {fit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    from hpc.bench._args import positive_int, writable_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=positive_int, default=15, help="timed fits per library (the best is kept)")
    parser.add_argument("--json", metavar="FILE", type=writable_path,
                        help="also write the numbers, with the machine, as JSON")
    args = parser.parse_args()
    result = run(args.repeats)
    from hpc.info import cpu_line

    print(f"\n{cpu_line()}\n" + table(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)


if __name__ == "__main__":
    main()
