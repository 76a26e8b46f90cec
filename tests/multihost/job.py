"""An MPI job for the multi-host tests: the bits of reproducible sums and fits, and where each rank found itself.

Run as ``mpiexec -n 4 python tests/multihost/job.py OUT.json`` (or through ``scripts/multihost.sh``). Every rank
builds the same data and takes its share, so nothing may depend on how the ranks sit on hosts. Rank 0 writes
``{"bits": {case: sha256}, "ranks": [{"host": ..., "local_rank": ..., ...} per rank]}``.
"""

from __future__ import annotations

import hashlib
import json
import socket
import sys

import numpy as np

from hpc import cuda, ml, mpi

#: row lengths of the reproducible sums: the window's small slots, one chunk, several chunks, and beyond the plain
#: lane's blocking threshold (16 MiB), where one host cuts the message lane into blocks and two hosts do not
LENGTHS = (3, 5_000, 300_000, (16 << 20) // 8 + 5)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes() + str(a.dtype).encode() + str(a.shape).encode())
    return h.hexdigest()


def _hard_row(seed: int, n: int) -> np.ndarray:
    """One row of badly conditioned terms: 19 decades, signs mixed."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n) * 10.0 ** rng.integers(-9, 10, n)


def bits(comm: mpi.Comm) -> dict[str, str]:
    """Return a digest per case; the same on any layout of the ranks."""
    out = {}
    for n in LENGTHS:
        out[f"allreduce(reproducible) of {n} per rank"] = _digest(
            comm.allreduce(_hard_row(100 * n + comm.rank, n), reproducible=True)
        )
    rows = np.stack([_hard_row(7 + r, 1000) for r in range(13)])  # 13 rows: uneven shares
    lo, hi = ml.shard(len(rows), comm)
    out["mpi.sum(reproducible) of 13 rows"] = _digest(mpi.sum(comm, rows[lo:hi], reproducible=True))
    exact = np.arange((16 << 20) // 8 + 5, dtype=np.int64) * (comm.rank + 1)  # blocked on one host only
    out["allreduce of int64 beyond the blocking threshold"] = _digest(comm.allreduce(exact))

    rng = np.random.default_rng(0)
    middles = rng.normal(scale=4.0, size=(5, 6))
    X = middles[rng.integers(0, 5, 3001)] + rng.normal(size=(3001, 6)) + 50.0
    mine = X[slice(*ml.shard(len(X), comm))]
    km = ml.KMeans(5, init=middles + 50.0 + 0.5, n_init=1).fit(mine)
    out["KMeans(init=array)"] = _digest(km.cluster_centers_, np.float64(km.inertia_), np.int64(km.n_iter_))
    scaler = ml.StandardScaler().fit(mine)
    out["StandardScaler"] = _digest(scaler.mean_, scaler.var_, scaler.scale_)
    return out


def where(comm: mpi.Comm) -> dict[str, object]:
    """Return what this rank knows of its node: host name, and its local rank as hpc.mpi and hpc.cuda see it."""
    cuda_local = cuda.local_rank(comm)
    binding = cuda.bind_rank(comm)
    return {
        "host": socket.gethostname(),
        "rank": comm.rank,
        "local_rank": comm.local_rank,
        "one_node": comm._engine.one_node,
        "cuda_local_rank": list(cuda_local),
        "bind_rank": [binding.local_rank, binding.local_size, binding.source, binding.host],
    }


def main(path: str) -> None:
    comm = mpi.world()
    report = {"bits": bits(comm), "ranks": comm.mpi.gather(where(comm), root=0)}
    if comm.rank == 0:
        with open(path, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
