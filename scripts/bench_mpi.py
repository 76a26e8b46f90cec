"""Benchmark hpc's allreduce against raw mpi4py on 2 ranks, OSU-style (8 B to 64 MiB).

Usage: python scripts/bench_mpi.py [--quick] [--json FILE]   (the same as ``hpc bench mpi``)

Run it as a plain process: it starts ``mpiexec -n 2`` itself. Under ``mpiexec -n 2`` (or more) it measures in place
and rank 0 prints.
"""

from __future__ import annotations

import sys

from hpc.bench import main

if __name__ == "__main__":
    sys.exit(main(["mpi", *sys.argv[1:]]))
