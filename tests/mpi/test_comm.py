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


@pytest.mark.parametrize("n", [1 << 14, 1 << 15, 1 << 18])  # 128 KiB (the threshold), 256 KiB, 2 MiB
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
