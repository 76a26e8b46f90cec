"""Distributed logistic regression: each rank holds its own rows; every rank runs the same L-BFGS.

Run with:  mpiexec -n 4 python scripts/ml_logistic.py [--rows N] [--features D] [--classes K] [--C C]

Each rank generates its share of a synthetic classification problem (rows keyed by global index, so the data
set is the same whatever the number of ranks), ``LogisticRegression.fit`` runs collectively (one reproducible
reduction per loss and gradient evaluation), rank 0 shows the progress, and the collective ``score`` gives the
training accuracy. The coefficients are the same bits for any number of ranks: compare the printed fingerprint.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import numpy as np

from hpc import ml, mpi
from hpc.bench._args import positive_float, positive_int


def rows(lo: int, hi: int, features: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return rows ``lo..hi`` of the data set: each row drawn from its own seed, so any split gives the same set."""
    truth = np.random.default_rng(12345).normal(size=(classes, features))
    X = np.empty((hi - lo, features))
    for i in range(lo, hi):
        X[i - lo] = np.random.default_rng([7, i]).normal(size=features)
    noise = np.array([np.random.default_rng([9, i]).gumbel(size=classes) for i in range(lo, hi)])
    return X, np.argmax(X @ truth.T + noise.reshape(hi - lo, classes), axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=40_000)
    parser.add_argument("--features", type=positive_int, default=20)
    parser.add_argument("--classes", type=positive_int, default=3)
    parser.add_argument("--C", type=positive_float, default=1.0)
    args = parser.parse_args()
    comm = mpi.world()
    lo, hi = ml.shard(args.rows, comm)
    X, y = rows(lo, hi, args.features, args.classes)
    if comm.rank == 0:
        ranks = f"{comm.size} rank{'s' * (comm.size > 1)}"
        print(f"{ranks}, {args.rows} rows x {args.features} features, {args.classes} classes, C={args.C}")

    started = time.perf_counter()
    model = ml.LogisticRegression(C=args.C, max_iter=200, verbose=1).fit(X, y)
    elapsed = time.perf_counter() - started
    accuracy = model.score(X, y)  # collective: every rank's rows
    if comm.rank == 0:
        print(f"fit: {elapsed:.2f} s, {model.n_iter_[0]} L-BFGS iterations, training accuracy {accuracy:.4f}")
        print(f"coefficients fingerprint: {hashlib.sha256(model.coef_.tobytes()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
