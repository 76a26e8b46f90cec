"""Would a hierarchical reproducible lane pay? A prototype against the message lane, across hosts.

Run on the harness: ``scripts/multihost.sh --hosts 2 --ppn 2 -- .venv/bin/python scripts/bench_mpi_hierarchical.py``
(or any launch with several ranks per node on several nodes). Sizes in bytes as arguments (default 1, 4, 16 MiB);
``--json FILE`` also writes the medians, with the rank layout.

``allreduce(x, reproducible=True)`` across nodes takes the message lane (:mod:`hpc.mpi.reproducible`): a MAX
collective of the exponent fields over every rank, the quantizing pass, a SUM collective of the int64 words over
every rank, the scaling pass. The hierarchical lane the issue proposed meets each node's terms first and lets only
one leader per node cross the network. The prototype here does that with the same passes and MPI's node-level
collectives: each collective becomes a ``Reduce`` to the node leader, an ``Allreduce`` among the leaders and a
``Bcast`` on the node. It gives the same bits (checked), and what it saves is what a real lane could save at most,
less what the node window would add. Printed: plain allreduce, the message lane, the prototype, medians of
interleaved blocks, their order rotated each round (each the maximum over ranks of the per-call average). Every
array here holds finite values, at most 7 ranks (one int64 word per term): the prototype leaves the other cases out.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

import numpy as np

from hpc import mpi
from hpc.bench._timing import interleaved_medians
from hpc.mpi import _binned


def hierarchical(node, leaders, x: np.ndarray, fields: np.ndarray, words: np.ndarray) -> np.ndarray:
    """The reproducible sum of every rank's ``x``: node collectives, then the leaders', then the node again."""
    from mpi4py import MPI

    rows = x.reshape(1, -1)
    _binned.exponents(rows, fields)
    for buf, op in ((fields, MPI.MAX), (None, MPI.SUM)):
        if buf is None:  # the second round: the words of the quantized terms, on the agreed fields
            _binned.quantize(rows, fields, words)
            buf = words
        if node.rank == 0:
            node.Reduce(MPI.IN_PLACE, buf, op, root=0)
            leaders.Allreduce(MPI.IN_PLACE, buf, op)
        else:
            node.Reduce(buf, None, op, root=0)
        node.Bcast(buf, root=0)
    _binned.to_float(words, fields, np.zeros(0))
    return words.view(np.float64)


def main(sizes: list[int], json_path: str | None = None) -> None:
    from mpi4py import MPI

    comm = mpi.world()
    node = comm.mpi.Split_type(MPI.COMM_TYPE_SHARED)
    leaders = comm.mpi.Split(0 if node.rank == 0 else MPI.UNDEFINED, comm.rank)
    nodes = comm.mpi.allreduce(1 if node.rank == 0 else 0)
    if comm.size > 7:
        raise SystemExit("bench_mpi_hierarchical: at most 7 ranks (the prototype uses one int64 word per term)")
    if comm.rank == 0:
        print(f"{comm.size} ranks on {nodes} nodes ({node.size} on this one)")
    record: dict = {"ranks": comm.size, "nodes": nodes, "rank_hosts": comm.mpi.allgather(socket.gethostname()),
                    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sizes": []}
    for nbytes in sizes:
        n = nbytes // 8
        x = np.random.default_rng(comm.rank).standard_normal(n)
        fields, words = np.empty(n, np.int16), np.empty(n, np.int64)
        want = comm.allreduce(x, reproducible=True)
        got = hierarchical(node, leaders, x, fields, words)
        same = comm.mpi.allreduce(bool(np.array_equal(got.view(np.int64), want.view(np.int64))), op=MPI.LAND)
        cases = {
            "plain": lambda x=x: comm.allreduce(x),
            "message lane": lambda x=x: comm.allreduce(x, reproducible=True),
            "hierarchical": lambda x=x, f=fields, w=words: hierarchical(node, leaders, x, f, w),
        }
        calls = max(3, (8 << 20) // nbytes)
        us = {label: t * 1e6 for label, t in interleaved_medians(comm, cases, calls, 9).items()}
        record["sizes"].append({"bytes": nbytes, "median_us": us, "same_bits": same})
        if comm.rank == 0:
            line = "  ".join(f"{label} {t:9.1f} us" for label, t in us.items())
            ratio = us["hierarchical"] / us["message lane"]
            print(f"{nbytes / 2**20:6.2f} MiB  {line}  hierarchical/message {ratio:.2f}x  same bits: {same}")


    if json_path and comm.rank == 0:
        with open(json_path, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1 << 20, 4 << 20, 16 << 20], help="bytes per rank")
    parser.add_argument("--json", help="also write the medians here (rank 0)")
    args = parser.parse_args()
    main(args.sizes, args.json)
