"""Why the shared-memory window is written with streaming stores: the cost of writing lines another rank just read.

Run: ``mpiexec -n 2 python scripts/bench_shm_stores.py [BYTES]`` (default 1 MiB). Each rank, 40 times: writes its
slot of a shared window (an ordinary copy, ``numpy.copyto``, or a streaming one, ``hpc.mpi._node_window.write``),
barrier, copies the other rank's slot out, barrier. Medians of rank 0's write and read times are printed, then a
raw 1 MiB ``Allreduce`` for reference. On a machine whose cores share cache lines cheaply the two writes cost
about the same; where taking a line back from another core's cache is slow (the dev VM in some phases,
cross-socket ranks), the ordinary write pays it for every line and the streaming one does not.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from mpi4py import MPI

from hpc.bench._args import float64_bytes
from hpc.mpi import _node_window


def main(nbytes: int) -> None:
    comm = MPI.COMM_WORLD
    rank, other = comm.Get_rank(), 1 - comm.Get_rank()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED)
    n = nbytes // 8
    win = MPI.Win.Allocate_shared(2 * n * 8 if node.Get_rank() == 0 else 0, 8, comm=node)
    buffer, _ = win.Shared_query(0)
    slots = np.frombuffer(buffer, np.float64, 2 * n).reshape(2, n)
    win.Lock_all()
    mine = np.random.default_rng(rank).standard_normal(n)
    copy = np.empty(n)

    def sync() -> None:
        win.Sync()
        comm.Barrier()
        win.Sync()

    writers = {"ordinary (numpy.copyto)": np.copyto, "streaming (_node_window.write)": _node_window.write}
    for label, write in writers.items():
        write(slots[rank], mine)  # compiles the streaming copy, warms the slot
        sync()
        writes, reads = [], []
        for _ in range(40):
            t0 = time.perf_counter()
            write(slots[rank], mine)
            writes.append(time.perf_counter() - t0)
            sync()
            t0 = time.perf_counter()
            np.copyto(copy, slots[other])
            reads.append(time.perf_counter() - t0)
            sync()
        if rank == 0:
            write_us, read_us = statistics.median(writes) * 1e6, statistics.median(reads) * 1e6
            print(f"{label:32s} write own slot {write_us:7.1f} us   read the other's {read_us:7.1f} us")
    x, y = np.ones(1 << 17), np.empty(1 << 17)
    times = []
    for _ in range(7):
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(20):
            comm.Allreduce(x, y)
        times.append((time.perf_counter() - t0) / 20)
    if rank == 0:
        print(f"raw 1 MiB Allreduce {statistics.median(times) * 1e6:.1f} us (the VM's phase: ~160 fast, ~600 slow)")
    win.Unlock_all()
    win.Free()
    node.Free()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="ordinary vs streaming stores into a shared-memory slot")
    parser.add_argument("bytes", nargs="?", type=float64_bytes, default=1 << 20, help="bytes per slot (default 1 MiB)")
    args = parser.parse_args()  # every rank alike, before any collective: a bad size ends them all
    if MPI.COMM_WORLD.Get_size() != 2:
        sys.exit("run with mpiexec -n 2")
    main(args.bytes)
