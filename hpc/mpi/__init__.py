"""MPI distributed reductions on mpi4py: array collectives, statistics, reproducible sums, guarded collectives.

Works without a launcher (one rank) and without an MPI library (a one-process fallback with the same API).

Example:
    >>> import numpy as np
    >>> from hpc import mpi
    >>> comm = mpi.world()
    >>> total = comm.allreduce(np.ones(3))          # elementwise sum over ranks, on every rank
    >>> bool((total == comm.size).all())
    True
"""

from hpc.mpi import iter_backend as _iter_backend  # registers with_backend("mpi")
from hpc.mpi.collectives import CollectiveFuture
from hpc.mpi.comm import Comm, LocalComm, as_comm, world
from hpc.mpi.fused import Fused, FusedResult
from hpc.mpi.guard import CollectiveTimeoutError, RankMismatchError
from hpc.mpi.ops import BUILTIN_OPS, Op, op
from hpc.mpi.stats import dot, histogram, moments, norm, sum

del _iter_backend

__all__ = [
    "BUILTIN_OPS",
    "CollectiveFuture",
    "CollectiveTimeoutError",
    "Comm",
    "Fused",
    "FusedResult",
    "LocalComm",
    "Op",
    "RankMismatchError",
    "as_comm",
    "dot",
    "histogram",
    "moments",
    "norm",
    "op",
    "sum",
    "world",
]
