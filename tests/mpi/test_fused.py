"""Fused collectives: one MPI call for many small reductions, with the call order checked."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from hpc import mpi

pytestmark = pytest.mark.mpi


@pytest.fixture(params=["c", "python"])
def fused(request, monkeypatch):
    """``comm.fused`` twice: with the C fast lane (hpc/mpi/_fused_queue.c) and with its pure-Python twin."""
    if request.param == "c":
        return lambda comm: comm.fused()
    monkeypatch.setitem(sys.modules, "hpc.mpi._fused_queue", None)  # the import fails: fused.py takes the twin
    spec = importlib.util.find_spec("hpc.mpi.fused")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.Queue.__module__ == "hpc.mpi._fused_queue_py"
    return module.Fused


class _CountingMPI:
    """Stands in for ``comm.mpi`` and records every method called on the mpi4py communicator."""

    def __init__(self, real):
        self._real, self.calls = real, []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls.append(name)
            return attr(*args, **kwargs)

        return counted


def test_fused_results_equal_separate_calls(comm, fused):
    """Each fused result equals the same allreduce called on its own."""
    values = [float(i * (comm.rank + 1)) for i in range(100)]
    with fused(comm) as f:
        results = [f.allreduce(v) for v in values]
        vec = f.allreduce(np.arange(3) + comm.rank)
        biggest = f.allreduce(comm.rank, op="max")
        with pytest.raises(RuntimeError, match="after the"):
            _ = results[0].value
    assert [r.value for r in results] == [comm.allreduce(v) for v in values]
    np.testing.assert_array_equal(vec.value, comm.allreduce(np.arange(3) + comm.rank))
    assert biggest.result() == comm.size - 1


def test_fused_uses_one_mpi_call_for_same_op_and_dtype(comm, fused, monkeypatch):
    """100 scalar float sums cost the MPI calls of one array allreduce (one Allreduce, plus the checks if on)."""
    counting = _CountingMPI(comm.mpi)
    monkeypatch.setattr(comm, "mpi", counting)
    comm.allreduce(np.arange(3.0))
    one_allreduce = list(counting.calls)
    counting.calls.clear()
    with fused(comm) as f:
        results = [f.allreduce(float(i)) for i in range(100)]
    assert counting.calls == one_allreduce
    assert [r.value for r in results] == [float(i * comm.size) for i in range(100)]


def test_fused_interleaving_floats_and_arrays_is_harmless(comm, fused):
    """Python-float sums and array sums are matched within their own kind, so interleaving them differs safely."""
    with fused(comm) as f:
        if comm.rank % 2 == 0:
            a = f.allreduce(1.0)
            b = f.allreduce(np.arange(2.0))
        else:
            b = f.allreduce(np.arange(2.0))
            a = f.allreduce(1.0)
    assert a.value == comm.size
    np.testing.assert_array_equal(b.value, np.arange(2.0) * comm.size)


def test_fused_detects_different_sequences(comm, fused):
    """Ranks that queue different sequences (here: different shapes) get RankMismatchError on every rank."""
    if comm.size == 1:
        pytest.skip("needs two ranks to disagree")
    with pytest.raises(mpi.RankMismatchError, match="different sequences"):
        with fused(comm) as f:
            f.allreduce(1.0)
            f.allreduce(np.arange(2.0 + (comm.rank == 0)))


def test_fused_user_ops_equal_separate_calls(comm, fused):
    """A numba user op queued in a fused block (twice, as two ops of one name) gives what separate calls give."""
    absmax = mpi.op(lambda a, b: max(abs(a), abs(b)), name="mine")
    absmin = mpi.op(lambda a, b: min(abs(a), abs(b)), name="mine")
    x = np.array([-3.0, 2.0 * comm.rank, -float(comm.rank)])
    with fused(comm) as f:
        big = f.allreduce(x, op=absmax)
        small = f.allreduce(x, op=absmin)
        total = f.allreduce(x)
    np.testing.assert_array_equal(big.value, comm.allreduce(x, op=absmax))
    np.testing.assert_array_equal(small.value, comm.allreduce(x, op=absmin))
    np.testing.assert_array_equal(total.value, comm.allreduce(x))


def test_fused_reduces_the_value_an_array_had_when_queued(comm, fused):
    """Changing an array after queuing it does not change its result: every dtype and layout is taken by value."""
    v = np.ones(3)
    ints = np.ones(2, np.int32)
    with fused(comm) as f:
        a = f.allreduce(v)
        b = f.allreduce(ints[:], op="max")
        v[:] = 5.0
        ints[:] = 7
    np.testing.assert_array_equal(a.value, np.full(3, float(comm.size)))
    np.testing.assert_array_equal(b.value, [1, 1])


def test_fused_float_counts_that_differ_raise_on_every_rank_in_check_mode(comm, fused):
    """Queuing a different number of float sums is caught by the check mode (without it MPI ends the job)."""
    if comm.size == 1 or not comm._check:
        pytest.skip("needs two ranks to disagree, and HPC_MPI_CHECK=1")
    with pytest.raises(mpi.RankMismatchError, match="disagree"):
        with fused(comm) as f:
            for _ in range(3 + comm.rank):
                f.allreduce(1.0)
