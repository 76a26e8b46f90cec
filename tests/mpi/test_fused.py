"""Fused collectives: one MPI call for many small reductions, with the call order checked."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import mpi

pytestmark = pytest.mark.mpi


def test_fused_results_equal_separate_calls(comm):
    """Each fused result equals the same allreduce called on its own."""
    values = [float(i * (comm.rank + 1)) for i in range(100)]
    with comm.fused() as f:
        results = [f.allreduce(v) for v in values]
        vec = f.allreduce(np.arange(3) + comm.rank)
        biggest = f.allreduce(comm.rank, op="max")
        with pytest.raises(RuntimeError, match="after the"):
            _ = results[0].value
    assert [r.value for r in results] == [comm.allreduce(v) for v in values]
    np.testing.assert_array_equal(vec.value, comm.allreduce(np.arange(3) + comm.rank))
    assert biggest.result() == comm.size - 1


def test_fused_uses_one_mpi_call_for_same_op_and_dtype(comm, monkeypatch):
    """100 scalar float sums go out as a single Allreduce."""
    calls = []
    real = comm.allreduce

    def counting(x, *args, **kwargs):
        calls.append(np.shape(x))
        return real(x, *args, **kwargs)

    monkeypatch.setattr(comm, "allreduce", counting)
    with comm.fused() as f:
        for i in range(100):
            f.allreduce(float(i))
    assert len(calls) == 1


def test_fused_interleaving_floats_and_arrays_is_harmless(comm):
    """Python-float sums and array sums are matched within their own kind, so interleaving them differs safely."""
    with comm.fused() as f:
        if comm.rank % 2 == 0:
            a = f.allreduce(1.0)
            b = f.allreduce(np.arange(2.0))
        else:
            b = f.allreduce(np.arange(2.0))
            a = f.allreduce(1.0)
    assert a.value == comm.size
    np.testing.assert_array_equal(b.value, np.arange(2.0) * comm.size)


def test_fused_detects_different_sequences(comm):
    """Ranks that queue different sequences (here: different shapes) get RankMismatchError on every rank."""
    if comm.size == 1:
        pytest.skip("needs two ranks to disagree")
    with pytest.raises(mpi.RankMismatchError, match="different sequences"):
        with comm.fused() as f:
            f.allreduce(1.0)
            f.allreduce(np.arange(2.0 + (comm.rank == 0)))


def test_fused_user_ops_equal_separate_calls(comm):
    """A numba user op queued in a fused block (twice, as two ops of one name) gives what separate calls give."""
    absmax = mpi.op(lambda a, b: max(abs(a), abs(b)), name="mine")
    absmin = mpi.op(lambda a, b: min(abs(a), abs(b)), name="mine")
    x = np.array([-3.0, 2.0 * comm.rank, -float(comm.rank)])
    with comm.fused() as f:
        big = f.allreduce(x, op=absmax)
        small = f.allreduce(x, op=absmin)
        total = f.allreduce(x)
    np.testing.assert_array_equal(big.value, comm.allreduce(x, op=absmax))
    np.testing.assert_array_equal(small.value, comm.allreduce(x, op=absmin))
    np.testing.assert_array_equal(total.value, comm.allreduce(x))


def test_fused_reduces_the_value_an_array_had_when_queued(comm):
    """Changing an array after queuing it does not change its result: every dtype and layout is taken by value."""
    v = np.ones(3)
    ints = np.ones(2, np.int32)
    with comm.fused() as f:
        a = f.allreduce(v)
        b = f.allreduce(ints[:], op="max")
        v[:] = 5.0
        ints[:] = 7
    np.testing.assert_array_equal(a.value, np.full(3, float(comm.size)))
    np.testing.assert_array_equal(b.value, [1, 1])
