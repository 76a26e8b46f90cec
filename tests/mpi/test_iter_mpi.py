"""Parallel iterators across ranks: with_backend('mpi')."""

from __future__ import annotations

import pytest

from hpc import par_iter, par_range

pytestmark = pytest.mark.mpi


def test_mpi_sum_equals_single_process_bits(comm):
    """A float sum across ranks equals the serial one-process sum bit for bit, on every rank."""
    xs = [((i * 7919) % 1000) * 1e-3 + 10.0 ** (i % 9 - 4) for i in range(20_011)]
    got = par_iter(xs).map(lambda x: x * 1.1).with_backend("mpi").sum()
    assert got.hex() == par_iter(xs).map(lambda x: x * 1.1).with_backend("serial").sum().hex()
    assert comm.mpi.allgather(got.hex()) == [got.hex()] * comm.size


def test_mpi_collect_keeps_order_and_every_rank_gets_it(comm):
    """collect() gathers in input order, on every rank; filters and positional terminals work."""
    assert par_range(1000).filter(lambda x: x % 3 == 0).with_backend("mpi").collect() == list(range(0, 1000, 3))
    assert par_range(1000).with_backend("mpi").find_first(lambda x: x > 500) == 501
    assert par_range(1000).with_backend("mpi").count() == 1000


def test_mpi_failure_on_one_rank_raises_on_every_rank(comm):
    """An exception in the share of one rank is raised on every rank, with the failing item's note."""

    def f(x):
        if x == 999:
            raise ValueError("item 999 is bad")
        return x

    with pytest.raises(ValueError, match="item 999 is bad") as info:
        par_range(1000).map(f).with_backend("mpi").sum()
    assert "item 999" in " ".join(info.value.__notes__)
