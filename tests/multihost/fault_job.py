"""An MPI job for the fault tests: every rank sums an array in a loop until something from outside ends the job.

Run as ``python fault_job.py READY`` under ``scripts/multihost.sh --when READY``: rank 0 creates the file READY once
50 sums have gone through every rank, and the harness counts its fault's delay from then, so the fault lands in a
running loop of collectives, not in start-up. With ``HPC_MPI_TIMEOUT`` each sum is a watched non-blocking allreduce;
with ``HPC_MPI_CHECK=1`` too, about half the time goes to check mode's pickled allgather, a step MPI has no
non-blocking form of.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

from hpc import mpi


def main(ready: pathlib.Path) -> None:
    comm = mpi.world()
    x = np.ones(1000)
    done = 0
    while True:
        comm.allreduce(x)
        done += 1
        if done == 50 and comm.rank == 0:
            ready.touch()


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
