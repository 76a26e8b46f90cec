"""What would agreement checking cost if it were on by default? Under mpiexec, per allreduce size:

- ``plain``: ``comm.allreduce(x)`` as it runs by default (no check, no watchdog);
- ``header step``: the same with ``HPC_MPI_TIMEOUT`` set, where every collective begins with one small watched
  ``MAX`` allreduce of a checksum of (collective, op, dtype, shape) (what a default check would add, plus the
  watchdog's polling);
- ``check mode``: ``HPC_MPI_CHECK=1``, a pickled allgather of every call's signature;
- ``words in the data``: a prototype of the cheapest alternative, raw mpi4py: the value copied into a buffer with two
  checksum words ``h, h*h`` after it, one ``Allreduce``, the words compared, the values copied out.

Targets (issue "MPI beyond one host", part 7): at most 0.5 us per small call, 2% from 64 KiB.

    mpiexec -n 2 python scripts/bench_mpi_check_cost.py [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from hpc import mpi
from hpc.bench._machine import describe
from hpc.mpi import _mpi

ROUNDS = 7
SIZES = (8, 32, 1 << 10, 64 << 10, 1 << 20)


def _per_call(comm, fn, calls):
    comm.barrier()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return comm.allreduce((time.perf_counter() - start) / calls, op="max")


def _words_in_the_data(raw, nbytes):
    """The prototype: [values..., h, h*h] summed in one Allreduce; every rank checks size*sum(h*h) == sum(h)**2."""
    n = nbytes // 8
    x = np.ones(n) if n > 1 else None
    send, recv = np.empty(n + 2), np.empty(n + 2)
    h = 123457.0
    size = raw.Get_size()
    op = _mpi.builtin_op("sum")

    def call():
        if x is None:
            send[0] = 1.5
        else:
            send[:n] = x
        send[n], send[n + 1] = h, h * h
        raw.Allreduce(send, recv, op)
        if recv[n + 1] * size != recv[n] * recv[n]:
            raise RuntimeError("mismatch")
        return float(recv[0]) if x is None else recv[:n].copy()

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here (rank 0)")
    args = parser.parse_args()
    raw = _mpi.world_comm()
    os.environ.pop("HPC_MPI_CHECK", None)
    os.environ.pop("HPC_MPI_TIMEOUT", None)
    plain = mpi.Comm(raw)
    os.environ["HPC_MPI_TIMEOUT"] = "600"
    watched = mpi.Comm(raw)
    del os.environ["HPC_MPI_TIMEOUT"]
    os.environ["HPC_MPI_CHECK"] = "1"
    checked = mpi.Comm(raw)
    del os.environ["HPC_MPI_CHECK"]
    rows = []
    for nbytes in SIZES:
        x = 1.5 if nbytes == 8 else np.ones(nbytes // 8)
        ways = {
            "plain": lambda c=plain, x=x: c.allreduce(x),
            "header step": lambda c=watched, x=x: c.allreduce(x),
            "check mode": lambda c=checked, x=x: c.allreduce(x),
            "words in the data": _words_in_the_data(raw, nbytes),
        }
        calls = 3000 if nbytes <= 1 << 10 else (600 if nbytes <= 64 << 10 else 60)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for fn in ways.values():
            fn()
        for r in range(ROUNDS):
            order = list(ways.items())
            order = order[r % len(order) :] + order[: r % len(order)]
            for name, fn in order:
                times[name].append(_per_call(plain, fn, calls))
        row = {"bytes": nbytes, **{name: float(np.median(t)) * 1e6 for name, t in times.items()}}
        rows.append(row)
    if plain.rank:
        return
    print(f"{plain.size} ranks; cpu: {describe()['cpu']}")
    print("us per allreduce; then the added cost over plain (us, and %)")
    print(f"{'size':>9} {'plain':>8} {'header':>8} {'check':>8} {'words':>8} | header+ words+ check+")
    for r in rows:
        p = r["plain"]
        extra = [(r[k] - p, 100 * (r[k] - p) / p) for k in ("header step", "words in the data", "check mode")]
        size = f"{r['bytes']} B" if r["bytes"] < 1024 else f"{r['bytes'] >> 10} KiB"
        cells = " ".join(f"{a:+.2f} ({b:+.0f}%)" for a, b in extra)
        cols = " ".join(f"{r[k]:8.2f}" for k in ("header step", "check mode", "words in the data"))
        print(f"{size:>9} {p:8.2f} {cols} | {cells}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": describe(), "ranks": plain.size, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
