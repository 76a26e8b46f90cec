"""Fixtures for the MPI tests: the world communicator and the reference data every rank can rebuild."""

from __future__ import annotations

import pytest

from hpc import mpi


@pytest.fixture(params=["fast", "checked"])
def comm(request, monkeypatch):
    """The world communicator twice: without checks (the fast path) and with HPC_MPI_CHECK=1."""
    monkeypatch.setenv("HPC_MPI_CHECK", "1" if request.param == "checked" else "0")
    return mpi.Comm(mpi.world().mpi)


def gathered(comm, x):
    """Return every rank's x as a list (pickle path): the reference the buffer path is checked against."""
    return comm.mpi.allgather(x)
