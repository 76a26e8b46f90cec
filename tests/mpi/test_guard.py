"""Check mode: mismatched shapes, dtypes and ops across ranks raise a clear error on every rank."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import mpi

pytestmark = pytest.mark.mpi


@pytest.fixture
def checked(comm, monkeypatch):
    """A communicator created with HPC_MPI_CHECK=1."""
    monkeypatch.setenv("HPC_MPI_CHECK", "1")
    return mpi.Comm(comm.mpi)


def _needs_two(comm):
    if comm.size == 1:
        pytest.skip("needs two ranks to disagree")


def test_mismatched_shapes_raise_on_every_rank(checked):
    """Different shapes across ranks raise RankMismatchError naming each rank's shape."""
    _needs_two(checked)
    with pytest.raises(mpi.RankMismatchError, match=r"rank 1: .*\(3,\)"):
        checked.allreduce(np.zeros(2 if checked.rank == 0 else 3))


def test_mismatched_dtypes_and_ops_raise_on_every_rank(checked):
    """Different dtypes or ops across ranks raise RankMismatchError instead of garbage or a hang."""
    _needs_two(checked)
    with pytest.raises(mpi.RankMismatchError):
        checked.allreduce(np.zeros(2, np.float32 if checked.rank == 0 else np.float64))
    with pytest.raises(mpi.RankMismatchError, match="allreduce"):
        checked.allreduce(np.zeros(2), op="sum" if checked.rank == 0 else "max")
    assert checked.allreduce(1.0) == checked.size  # still usable afterwards


def test_an_int_on_one_rank_and_a_float_on_another_raise_on_every_rank(checked):
    """`total = 0` left an int on a rank with no data while the others summed floats: a mismatch, caught."""
    _needs_two(checked)
    with pytest.raises(mpi.RankMismatchError, match="allreduce"):
        checked.allreduce(0 if checked.rank == 0 else 1.5)
    assert checked.allreduce(0.0 if checked.rank == 0 else 1.5) == 1.5 * (checked.size - 1)


def test_allgather_always_checks_trailing_shapes(comm):
    """allgather refuses parts whose trailing shapes differ, on every rank, even without check mode."""
    _needs_two(comm)
    with pytest.raises(mpi.RankMismatchError, match="trailing shape"):
        comm.allgather(np.zeros((2, 1 + comm.rank)))


def test_different_collectives_with_equal_signatures_raise(checked):
    """scan on one rank and allreduce on another, or a reproducible and a plain sum, are mismatches, not a hang."""
    _needs_two(checked)
    x = np.ones(2)
    with pytest.raises(mpi.RankMismatchError, match="scan"):
        checked.scan(x) if checked.rank == 0 else checked.allreduce(x)
    with pytest.raises(mpi.RankMismatchError, match="True"):
        checked.allreduce(x, reproducible=checked.rank == 0)
    assert checked.allreduce(1.0) == checked.size  # still in step
