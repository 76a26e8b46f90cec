"""Fixtures for the MPI tests: the world communicator and the reference data every rank can rebuild."""

from __future__ import annotations

import pytest

from hpc import mpi


@pytest.fixture
def comm():
    """hpc's world communicator (size 1 outside mpiexec)."""
    return mpi.world()


def gathered(comm, x):
    """Return every rank's x as a list (pickle path): the reference the buffer path is checked against."""
    return comm.mpi.allgather(x)
