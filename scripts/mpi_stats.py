"""Distributed statistics: each rank holds part of a data set; every rank gets the global figures.

Run with:  mpiexec -n 4 python scripts/mpi_stats.py
"""

from __future__ import annotations

import numpy as np

from hpc import mpi


def main() -> None:
    comm = mpi.world()
    # Each rank "loads" its own part: a different size on each rank, values around 1e9 with small noise.
    rng = np.random.default_rng(1234 + comm.rank)
    part = 1e9 + rng.standard_normal((100_000 + 5_000 * comm.rank, 3)) * 1e-3

    count, mean, var = mpi.moments(comm, part)  # one collective, Chan's merge: stable at a 1e9 offset
    counts, edges = mpi.histogram(comm, part[:, 0] - 1e9, bins=8)
    total = mpi.sum(comm, part, reproducible=True)  # the same bits for any number of ranks
    norm = mpi.norm(comm, part[:, 1] - 1e9)
    value, where = comm.allreduce(part[:, 2], op="argmax")  # value and index in the global row order

    if comm.rank == 0:
        print(f"ranks: {comm.size}, rows: {int(count[0])}")
        print(f"mean - 1e9: {mean - 1e9}")
        print(f"std:        {np.sqrt(var)}")
        print(f"reproducible column sums: {total}")
        print(f"norm of column 1 - 1e9: {norm:.6f}")
        print(f"largest in column 2: {value - 1e9:.6f} at global row {where}")
        print("histogram of column 0 - 1e9:")
        for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
            print(f"  [{lo:+.5f}, {hi:+.5f})  {'#' * int(60 * c / counts.max())} {c}")


if __name__ == "__main__":
    main()
