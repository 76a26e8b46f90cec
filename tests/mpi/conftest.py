"""Fixtures for the MPI tests: the world communicator and the reference data every rank can rebuild."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import mpi
from hpc.mpi import _mpi
from hpc.mpi.comm import Comm, LocalComm
from hpc.mpi.reproducible import reproducible_sum


@pytest.fixture(params=["fast", "checked"])
def comm(request, monkeypatch):
    """The world communicator twice: without checks (the fast path) and with HPC_MPI_CHECK=1."""
    monkeypatch.setenv("HPC_MPI_CHECK", "1" if request.param == "checked" else "0")
    return mpi.Comm(mpi.world().mpi)


@pytest.fixture
def node_comm(comm):
    """``comm`` where all its ranks share one node, else the communicator of the ranks on this rank's node.

    Collective. A shared-memory window exists only among the ranks of one node, so across hosts (``make
    test-multihost``) the window's tests run on each node's ranks; on one host they run on every rank as before.
    """
    MPI = _mpi.module()
    if MPI is None or comm.size == 1:
        yield comm
        return
    node = comm.mpi.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    try:
        yield comm if node.Get_size() == comm.size else mpi.Comm(node)
    finally:
        node.Free()


def gathered(comm, x):
    """Return every rank's x as a list (pickle path): the reference the buffer path is checked against."""
    return comm.mpi.allgather(x)


def one_process_sum(rows):
    """The reproducible sum of ``rows`` (k, ...) in one process: the bits every rank count must give."""
    return reproducible_sum(Comm(LocalComm())._engine, rows)


def nan_with_bits(bits: int) -> float:
    """The float64 whose IEEE bits are ``bits`` (NaN payloads, signs)."""
    return float(np.array([bits], np.int64).view(np.float64)[0])


#: columns of terms with inf or NaN, and the bits of their sum whatever the order of the terms (0x7FF8...: NAN_BITS)
NONFINITE_COLUMNS = [
    ([1e308, 0.0, 1e308, -np.inf], -np.inf),  # a plain sum in this order gives NaN (inf - inf)
    ([np.inf, 1e308, 1e308, -1e308], np.inf),
    ([-np.nan, np.nan, 1.0, 2.0], nan_with_bits(0x7FF8000000000000)),  # a plain sum keeps one operand's sign
    ([np.inf, -np.inf, 0.0, 0.0], nan_with_bits(0x7FF8000000000000)),
    ([nan_with_bits(0x7FF0000000000001), 1.0, 2.0, 3.0], nan_with_bits(0x7FF8000000000000)),  # signaling, payload
    ([nan_with_bits(-1), np.inf, 0.0, 0.0], nan_with_bits(0x7FF8000000000000)),
]
