"""The communicator's fast path on one process: results are never shared with the caller's live arrays."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import mpi


def test_large_results_held_by_the_caller_are_never_overwritten():
    """A later allreduce never writes into a result (or a view of one) that the caller still holds."""
    comm = mpi.world()
    x = np.arange(1 << 18, dtype=np.float64)
    first = comm.allreduce(x)
    second = comm.allreduce(x * 2)
    assert not np.shares_memory(first, second)
    np.testing.assert_array_equal(first, x * comm.size)
    view = second[:5]
    del second
    third = comm.allreduce(x * 3)
    assert not np.shares_memory(view, third)
    np.testing.assert_array_equal(view, (x * 2)[:5] * comm.size)


@pytest.mark.parametrize("n", [1 << 11, 1 << 13, 1 << 15, 1 << 18])  # 16 KiB (the threshold), 64 KiB, 256 KiB, 2 MiB
def test_a_dropped_large_result_is_recycled(n):
    """Once the caller drops a large result, the next one of the same shape reuses its memory (no page faults)."""
    comm = mpi.world()
    x = np.ones(n)
    result = comm.allreduce(x)
    address = result.__array_interface__["data"][0]
    del result
    again = comm.allreduce(x)
    assert again.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(again, x * comm.size)


@pytest.mark.mpi
@pytest.mark.parametrize(
    ("dtype", "op"),
    [(d, o) for d in ("f8", "f4", "i8", "i2") for o in ("sum", "prod", "min", "max")]
    + [("c16", "sum"), ("c16", "prod")],
)
def test_large_arrays_reduced_in_blocks_equal_one_call(comm, monkeypatch, dtype, op):
    """On one node a large array goes in pieces (here 40 bytes, the last short): fresh, out= and in place, N-D."""
    from hpc.mpi import _engine as engine_module

    x = (np.arange(1, 64) % 5 + comm.rank).astype(dtype).reshape(7, 9)
    whole = comm.allreduce(x, op=op).copy()
    monkeypatch.setattr(engine_module, "_BLOCKED_FROM", 64)
    monkeypatch.setattr(engine_module, "BLOCK_BYTES", 40)
    monkeypatch.setattr(comm._engine, "one_node", True)
    np.testing.assert_array_equal(comm.allreduce(x, op=op), whole)
    out = np.empty_like(x)
    assert comm.allreduce(x, op=op, out=out) is out
    np.testing.assert_array_equal(out, whole)
    y = x.copy()
    comm.allreduce(y, op=op, out=y)
    np.testing.assert_array_equal(y, whole)


def test_one_node_comes_from_the_launcher(monkeypatch):
    """Blocks are used only when the launcher says every rank of the job is on this node."""
    from hpc import _launcher

    for rank_var, size_var in _launcher.LOCAL_RANK_VARIABLES:
        monkeypatch.delenv(rank_var, raising=False)
        monkeypatch.delenv(size_var, raising=False)
    assert _launcher.local_size() is None
    monkeypatch.setenv("MPI_LOCALRANKID", "0")
    assert _launcher.local_size() is None  # no size variable
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    assert _launcher.local_size() == 4
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "1")
    monkeypatch.setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2")
    assert _launcher.local_size() == 2  # Open MPI's variables come first
    assert _launcher.one_node(2) and not _launcher.one_node(4)
    for name in ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("SLURM_LOCALID", "0")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")  # what was asked for, not a count of what runs here
    assert _launcher.local_size() is None and not _launcher.one_node(4)
    monkeypatch.setenv("SLURM_STEP_NUM_NODES", "1")
    assert _launcher.one_node(4)
    assert mpi.world()._engine.one_node is False or mpi.world().size > 1  # one rank never needs blocks


@pytest.mark.parametrize("bad", ["world", 3, object()])
def test_what_is_no_communicator_raises_type_error(bad):
    """A string or a number as comm= raised AttributeError ('str' object has no attribute 'Get_rank')."""
    with pytest.raises(TypeError, match="comm must be an hpc.mpi.Comm, an mpi4py communicator or None"):
        mpi.Comm(bad)
    with pytest.raises(TypeError, match="comm must be"):
        mpi.moments(bad, np.ones(3))


def test_comm_null_is_a_clear_error():
    """A rank that a Split left out (color MPI.UNDEFINED) gets COMM_NULL: mpi4py's raw "Invalid communicator" came
    from deep inside; hpc says what it is."""
    from hpc.mpi import _mpi

    MPI = _mpi.module()
    if MPI is None:
        pytest.skip("needs mpi4py")
    with pytest.raises(ValueError, match="comm is MPI.COMM_NULL"):
        mpi.Comm(MPI.COMM_NULL)


def test_scalar_reductions_from_several_threads_return_each_threads_own_value():
    """Threads reducing scalars on one communicator (scikit-learn's n_jobs threads, a server's) each get their own
    value back: the fast path's one-element buffers are per thread (shared, a call returned another thread's)."""
    import sys
    import threading

    comm = mpi.world()
    wrong: list[tuple[str, float, float]] = []
    buffers = []
    start = threading.Barrier(4)

    def reduce_own(t: int) -> None:
        value = float(t + 1)
        vector = np.full(100, value)
        start.wait()
        for i in range(3000):
            for name, got in (
                ("sum", comm.allreduce(value)),
                ("max", comm.allreduce(np.float32(value), op="max")),
                ("norm", mpi.norm(comm, vector) if i % 10 == 0 else value * 10.0),
            ):
                expected = value * 10.0 if name == "norm" else value * comm.size
                if got != expected:
                    wrong.append((name, expected, got))
        buffers.append(id(comm._engine._scalars.values[float]))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between almost every bytecode, where the buffers were shared
    try:
        threads = [threading.Thread(target=reduce_own, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []
    assert len(set(buffers)) == 4


def test_results_and_scratch_above_the_keep_limit_are_not_held_after_the_call(monkeypatch):
    """Recycling keeps one result and the scratch of min/max up to KEEP_MAX_BYTES: above, the caller's dropping a
    result frees it (a 512 MiB allreduce held its 512 MiB for good), and the small ones are still reused."""
    import weakref

    from hpc.mpi import _engine

    monkeypatch.setattr(_engine, "KEEP_MAX_BYTES", 1 << 20)
    comm = mpi.world()
    comm._engine._recycled.__dict__.clear()  # what earlier tests left, kept under the real limit
    comm._engine._scratch.__dict__.clear()
    big = np.ones(1 << 18)  # 2 MiB
    for op in ("sum", "max"):
        result = comm.allreduce(big, op=op)
        gone = weakref.ref(result)
        np.testing.assert_array_equal(result, big if op == "max" else big * comm.size)
        del result
        assert gone() is None, op
    assert "keys" not in comm._engine._scratch.__dict__
    small = np.ones(1 << 12)  # 32 KiB: recycled
    address = comm.allreduce(small).__array_interface__["data"][0]
    assert comm.allreduce(small).__array_interface__["data"][0] == address
