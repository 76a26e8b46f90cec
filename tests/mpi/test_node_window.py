"""The shared-memory window of a communicator: streaming writes, one window per communicator, freed with it."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import mpi
from hpc.mpi import _node_window

from .conftest import one_process_sum


def _rows(comm, n: int) -> np.ndarray:
    """Every rank's row: magnitudes over 16 decades, the same on every rank."""
    rng = np.random.default_rng(29)
    return rng.standard_normal((comm.size, n)) * 10.0 ** rng.integers(-8, 9, (comm.size, n))


def test_write_copies_every_bit_at_every_alignment():
    """Streaming stores from the first 64-byte boundary, ordinary ones around it: the bits land exactly, NaN
    payloads included (a signaling NaN stays signaling: no float operation touches the values)."""
    source = np.random.default_rng(3).standard_normal(1100)
    source.view(np.int64)[5] = 0x7FF0000000000001  # signaling NaN
    source.view(np.int64)[6] = -1  # a NaN with every payload bit set
    for offset in range(9):
        for n in (0, 1, 7, 8, 9, 15, 16, 17, 100, 1001):
            target = np.zeros(n + 20)
            _node_window.write(target[offset : offset + n], source[:n])
            assert target[offset : offset + n].tobytes() == source[:n].tobytes()
            assert not target[:offset].any() and not target[offset + n :].any()


@pytest.mark.mpi
def test_freeing_a_communicator_frees_its_window(comm):
    """The window is an attribute of the mpi4py communicator: every wrapper shares it, Free() frees it, and a
    wrapper used after Free() gets MPI's error (it segfaulted on the unmapped slots once)."""
    if comm.size == 1:
        assert _node_window.node_window(comm._engine) is None
        return
    MPI = pytest.importorskip("mpi4py.MPI")
    # a new communicator of the ranks on this node (all of them on one host): only they can share a window
    dup = comm.mpi.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)
    first, second = mpi.Comm(dup), mpi.Comm(dup)
    rows = _rows(first, 300)
    assert first.allreduce(rows[first.rank], reproducible=True).tobytes() == one_process_sum(rows).tobytes()
    if first.size == 1:  # alone on its node
        assert _node_window.node_window(first._engine) is None
        return dup.Free()
    window = _node_window.node_window(first._engine)
    assert window is not None and _node_window.node_window(second._engine) is window
    dup.Free()
    assert window.win == MPI.WIN_NULL and window.slots is None
    with pytest.raises(MPI.Exception) as error:  # MPI's error, not a touch of unmapped memory
        first.allreduce(rows[first.rank], reproducible=True)
    # the class, not the text: MPICH says "Invalid communicator", Open MPI "MPI_ERR_COMM: invalid communicator"
    assert error.value.Get_error_class() == MPI.ERR_COMM, error.value


@pytest.mark.mpi
def test_ranks_fall_back_together_when_one_has_no_room(comm, monkeypatch):
    """If /dev/shm lacks room on one rank, no rank uses a window (they must agree), and the sum is the same."""
    MPI = pytest.importorskip("mpi4py.MPI")
    dup = comm.mpi.Split_type(MPI.COMM_TYPE_SHARED, key=comm.rank)  # this node's ranks: they would share one
    try:
        other = mpi.Comm(dup)
        monkeypatch.setattr(_node_window, "_shm_has_room", lambda nbytes: other.rank != other.size - 1)
        rows = _rows(other, 300)
        got = other.allreduce(rows[other.rank], reproducible=True)
        assert _node_window.node_window(other._engine) is None
        assert got.tobytes() == one_process_sum(rows).tobytes()
    finally:
        dup.Free()


@pytest.mark.mpi
def test_back_to_back_calls_never_read_a_slot_being_rewritten(node_comm, monkeypatch):
    """Small calls (one barrier, two sets of slots in turn) and chunked ones (two barriers per chunk), back to back
    with ranks running at different speeds: every result has the bits of one process's sum."""
    import time

    comm = node_comm
    window = _node_window.node_window(comm._engine)
    if window is not None:
        monkeypatch.setattr(window, "chunk", 700)  # 1500 columns: three chunks
    rng = np.random.default_rng(31 + comm.rank)
    for call in range(40):
        n = (3, _node_window.SMALL, 1500, 7)[call % 4]
        rows = np.random.default_rng(call).standard_normal((comm.size, n)) * 10.0 ** (call % 9 - 4)
        if rng.random() < 0.3:
            time.sleep(rng.random() * 0.002)  # this rank comes late: the others must wait, not read ahead
        got = comm.allreduce(rows[comm.rank], reproducible=True)
        assert got.tobytes() == one_process_sum(rows).tobytes(), f"call {call}, {n} columns"
