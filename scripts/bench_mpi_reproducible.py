"""A/B of ``allreduce(x, reproducible=True)`` against the plain ``allreduce`` and raw mpi4py, sizes in bytes.

Run: ``mpiexec -n 2 python scripts/bench_mpi_reproducible.py [BYTES ...]`` (default 1 MiB, 4 MiB, 16 MiB).
Fifteen blocks per contestant, interleaved (the order rotated each round), each the max over ranks of the per-call
average; the median is printed.
``hpc bench mpi`` measures the same contestants among others; this script isolates the three for a quick ratio.
"""

from __future__ import annotations

import argparse

import numpy as np

from hpc import mpi
from hpc.bench._args import float64_bytes
from hpc.bench._timing import interleaved_medians


def main(sizes: list[int]) -> None:
    comm = mpi.world()
    raw = comm.mpi
    for nbytes in sizes:
        n = nbytes // 8
        x = np.random.default_rng(comm.rank).standard_normal(n)
        recv = np.empty(n)
        cases = {
            "raw": lambda x=x, recv=recv: raw.Allreduce(x, recv),
            "plain": lambda x=x: comm.allreduce(x),
            "reproducible": lambda x=x: comm.allreduce(x, reproducible=True),
        }
        calls = max(3, 3 * (8 << 20) // nbytes)
        us = {label: t * 1e6 for label, t in interleaved_medians(comm, cases, calls, 15).items()}
        if comm.rank == 0:
            line = "  ".join(f"{label} {t:9.1f} us" for label, t in us.items())
            print(f"{nbytes / 2**20:6.2f} MiB  {line}  reproducible/plain {us['reproducible'] / us['plain']:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="reproducible against plain and raw allreduce")
    parser.add_argument("sizes", nargs="*", type=float64_bytes, default=[1 << 20, 4 << 20, 16 << 20],
                        help="message sizes in bytes (default 1, 4 and 16 MiB)")
    main(parser.parse_args().sizes)  # every rank alike, before any collective
