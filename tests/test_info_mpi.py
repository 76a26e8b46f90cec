"""Tests for gathering machine reports across MPI ranks (run under ``mpiexec -n N pytest -m mpi``)."""

from __future__ import annotations

import os

import pytest

from hpc import info


@pytest.mark.mpi
def test_gather_reports_reaches_rank_zero() -> None:
    """Rank 0 receives one report per rank, in rank order with distinct pids; other ranks receive None."""
    mpi = pytest.importorskip("mpi4py.MPI")
    comm = mpi.COMM_WORLD
    report = info.collect()
    # Every rank makes the same collective calls before any assertion, so a failure cannot strand a peer.
    explicit = info.gather_reports(report, comm)
    default = info.gather_reports(report) if info.detect_launcher() is not None else explicit
    assert report["process"]["rank"] == comm.Get_rank()
    assert report["process"]["size"] == comm.Get_size()
    assert report["process"]["pid"] == os.getpid()
    if comm.Get_rank() == 0:
        assert explicit is not None and default is not None
        assert [r["process"]["rank"] for r in explicit] == list(range(comm.Get_size()))
        assert len({r["process"]["pid"] for r in explicit}) == comm.Get_size()
        assert [r["process"]["rank"] for r in default] == list(range(comm.Get_size()))
        assert "machine report" in info.format_report(explicit)
    else:
        assert explicit is None
        assert default is None
