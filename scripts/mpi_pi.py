"""Estimate pi by Monte Carlo: every rank throws darts, one fused collective adds them up.

Run with:  mpiexec -n 4 python scripts/mpi_pi.py [darts per rank]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from numba import njit

from hpc import mpi, par_chunks
from hpc.bench._args import positive_int


@njit(nogil=True, cache=True)
def hits_in_circle(xy):
    hits = 0
    for i in range(xy.shape[0]):
        if xy[i, 0] * xy[i, 0] + xy[i, 1] * xy[i, 1] <= 1.0:
            hits += 1
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description="Estimate pi by Monte Carlo on every rank.")
    parser.add_argument("darts", nargs="?", type=positive_int, default=4_000_000, help="darts per rank")
    darts = parser.parse_args().darts  # on every rank alike, before any collective
    comm = mpi.world()
    t0 = time.perf_counter()
    xy = np.random.default_rng(comm.rank).random((darts, 2))
    local_hits = par_chunks(xy, 1 << 16).map(hits_in_circle).sum()  # numba kernel on this rank's threads
    with comm.fused() as f:  # two reductions, one MPI call
        hits = f.allreduce(int(local_hits))
        thrown = f.allreduce(darts)
    estimate = 4.0 * hits.value / thrown.value
    if comm.rank == 0:
        error = abs(estimate - np.pi)
        print(f"pi ~ {estimate:.6f} (error {error:.2e}) from {thrown.value:,} darts on {comm.size} ranks")
        print(f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
