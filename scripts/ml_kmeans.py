"""Distributed k-means: each rank reads only its rows of one data file; every rank ends with the same model.

Run with:  mpiexec -n 4 python scripts/ml_kmeans.py [--rows N] [--features D] [--clusters K] [--init NAME]

Rank 0 writes a blob data set to a .npy file (the job's "input"), every rank memory-maps its own rows of it
(``ml.load_rows``), and ``KMeans.fit`` runs collectively. Rank 0 shows the progress (iteration, inertia, time).
The fitted centres are the same bits for any number of ranks: the script prints a fingerprint to compare runs
(``mpiexec -n 1`` and ``-n 4`` print the same one).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time

import numpy as np

from hpc import ml, mpi
from hpc.bench._args import positive_int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=positive_int, default=200_000)
    parser.add_argument("--features", type=positive_int, default=10)
    parser.add_argument("--clusters", type=positive_int, default=8)
    parser.add_argument("--init", default="k-means++", choices=["k-means++", "k-means||", "random"])
    args = parser.parse_args()
    if args.rows < args.clusters:  # every rank alike, before any collective
        parser.error(f"--rows ({args.rows}) must be at least --clusters ({args.clusters})")
    comm = mpi.world()

    folder = comm.bcast(tempfile.mkdtemp(prefix="hpc-kmeans-") if comm.rank == 0 else None)
    try:
        run(comm, args, os.path.join(folder, "X.npy"))
    finally:  # the data file goes, whatever happened (a failed fit, Ctrl-C)
        if comm.rank == 0:
            shutil.rmtree(folder, ignore_errors=True)


def run(comm: mpi.Comm, args: argparse.Namespace, path: str) -> None:
    """Write the data (rank 0), fit on every rank's share of the rows, print the model's summary (rank 0)."""
    if comm.rank == 0:
        rng = np.random.default_rng(0)
        middles = rng.normal(scale=2.5, size=(args.clusters, args.features))
        X = middles[rng.integers(0, args.clusters, args.rows)] + rng.normal(size=(args.rows, args.features))
        np.save(path, X)
        ranks = f"{comm.size} rank{'s' * (comm.size > 1)}"
        print(f"{ranks}, {args.rows} rows x {args.features} features, k={args.clusters}, init={args.init}")
    comm.barrier()

    mine = ml.load_rows(path, comm)  # only this rank's rows are read from disk
    started = time.perf_counter()
    km = ml.KMeans(args.clusters, init=args.init, random_state=0, verbose=1).fit(mine)
    elapsed = time.perf_counter() - started
    sizes = np.bincount(km.labels_, minlength=args.clusters)
    sizes = comm.allreduce(sizes)  # labels_ are this rank's rows' labels
    if comm.rank == 0:
        print(f"fit: {elapsed:.2f} s, {km.n_iter_} iterations, inertia {km.inertia_:.10g}")
        print(f"cluster sizes: {sizes.tolist()}")
        print(f"centres fingerprint: {hashlib.sha256(km.cluster_centers_.tobytes()).hexdigest()[:16]}")


if __name__ == "__main__":
    main()
