"""Do hpc.mpi's three pieces of cleverness pay? Each measured against the plain way, in one run, under mpiexec.

- the C queue of fused blocks (``hpc/mpi/_fused_queue.c``) against its Python twin (``_fused_queue_py.py``): 100
  fused entries of floats, ``np.float64`` scalars and 1-element float64 arrays, every value read after the block;
- result recycling (a fresh result from 16 KiB up reuses the last one nobody holds) against a fresh array each call:
  ``comm.allreduce(x)`` of 64 KiB, 256 KiB and 1 MiB;
- large arrays in 2 MiB pieces (every rank on one node) against one ``Allreduce``: 32 and 64 MiB.

Run it on one host and across the harness's test hosts (docs/cluster.md) and compare::

    mpiexec -n 2 python scripts/bench_mpi_choices.py --json one-host.json
    sudo scripts/multihost.sh --hosts 2 --ppn 1 -- python scripts/bench_mpi_choices.py --json two-hosts.json

Each figure: the median of 7 rounds of the maximum over ranks of the per-call average; the two ways interleaved,
their order alternating round by round. Prints a table (rank 0) and writes JSON with --json.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import socket
import sys
import time

import numpy as np

from hpc import mpi
from hpc.bench._machine import describe
from hpc.bench._timing import interleaved_medians, per_call_max
from hpc.mpi import _engine

ROUNDS = 7


def _compare(comm, ours, plain, calls):
    """Median seconds per call of ``ours`` and ``plain``, interleaved, order alternating."""
    medians = interleaved_medians(comm, {"ours": ours, "plain": plain}, calls, ROUNDS)
    return medians["ours"], medians["plain"]


def _python_fused():
    """hpc.mpi.fused loaded again with the C queue unimportable: the Python twin's Fused."""
    saved = sys.modules.get("hpc.mpi._fused_queue")
    sys.modules["hpc.mpi._fused_queue"] = None  # type: ignore[assignment]
    try:
        spec = importlib.util.find_spec("hpc.mpi.fused")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["hpc.mpi._fused_queue"]
        else:
            sys.modules["hpc.mpi._fused_queue"] = saved
    assert module.Queue.__module__ == "hpc.mpi._fused_queue_py"
    return module.Fused


def fused_lanes(comm):
    python_fused = _python_fused()
    kinds = {"floats": 1.5, "np.float64": np.float64(1.5), "1-element arrays": np.ones(1)}
    rows = []
    for kind, value in kinds.items():

        def block(make, value=value):
            with make() as f:
                results = [f.allreduce(value) for _ in range(100)]
            for r in results:
                r.value  # noqa: B018 - every value read, as callers do

        def separate(value=value):
            for _ in range(100):
                comm.allreduce(value)

        in_c = lambda: block(comm.fused)  # noqa: E731
        in_python = lambda: block(lambda: python_fused(comm._engine))  # noqa: E731
        c_lane, py_lane = _compare(comm, in_c, in_python, 200)
        sep = per_call_max(comm, separate, 20)
        rows.append({"kind": kind, "c_us": c_lane * 1e6, "python_us": py_lane * 1e6, "separate_us": sep * 1e6})
    return rows


def recycling(comm):
    rows = []
    for nbytes in (64 << 10, 256 << 10, 1 << 20):
        x = np.ones(nbytes // 8)
        recycled = lambda x=x: comm.allreduce(x)  # noqa: E731

        def fresh(x=x):
            saved = _engine._RECYCLE_BYTES
            _engine._RECYCLE_BYTES = 1 << 62
            try:
                comm.allreduce(x)
            finally:
                _engine._RECYCLE_BYTES = saved

        calls = max(20, int(2e5 // (nbytes >> 10)) // 10)
        ours, plain = _compare(comm, recycled, fresh, calls)
        rows.append({"bytes": nbytes, "recycled_us": ours * 1e6, "fresh_us": plain * 1e6})
    return rows


def blocking(comm):
    rows = []
    engine = comm._engine
    for nbytes in (32 << 20, 64 << 20):
        x = np.ones(nbytes // 8)
        out = np.empty_like(x)

        def pieces(x=x, out=out):
            engine._allreduce_in_blocks(x, out, mpi._mpi.builtin_op("sum"))

        def one_call(x=x, out=out):
            comm.mpi.Allreduce(x, out, mpi._mpi.builtin_op("sum"))

        ours, plain = _compare(comm, pieces, one_call, 3)
        rows.append({"bytes": nbytes, "pieces_us": ours * 1e6, "one_call_us": plain * 1e6})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the figures here (rank 0)")
    args = parser.parse_args()
    comm = mpi.world()
    hosts = sorted(set(comm.mpi.allgather(socket.gethostname())))
    report = {
        "machine": describe(),
        "ranks": comm.size,
        "hosts": hosts,
        "one_node": comm._engine.one_node,
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "fused_lanes": fused_lanes(comm),
        "recycling": recycling(comm),
        "blocking": blocking(comm),
    }
    if comm.rank:
        return
    print(f"{comm.size} ranks on {len(hosts)} host(s) {', '.join(hosts)}; one node: {report['one_node']}")
    print(f"cpu: {report['machine'].get('cpu', '?')}")
    print("\n100 fused entries, values read (us per block): C queue | Python queue | Python/C | 100 separate calls")
    for r in report["fused_lanes"]:
        ratio = r["python_us"] / r["c_us"]
        print(f"  {r['kind']:18s} {r['c_us']:8.1f} {r['python_us']:8.1f} {ratio:6.2f}x {r['separate_us']:9.1f}")
    print("\nallreduce(x), a new result each call (us): recycled | fresh | fresh/recycled")
    for r in report["recycling"]:
        ratio = r["fresh_us"] / r["recycled_us"]
        print(f"  {r['bytes'] >> 10:6d} KiB {r['recycled_us']:9.1f} {r['fresh_us']:9.1f} {ratio:6.2f}x")
    print("\nlarge arrays (us): 2 MiB pieces | one Allreduce | one call/pieces")
    for r in report["blocking"]:
        ratio = r["one_call_us"] / r["pieces_us"]
        print(f"  {r['bytes'] >> 20:6d} MiB {r['pieces_us']:10.0f} {r['one_call_us']:10.0f} {ratio:6.2f}x")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


if __name__ == "__main__":
    main()
