"""Parallel iterators across ranks: with_backend('mpi')."""

from __future__ import annotations

import threading

import pytest

from hpc import mpi, par_iter, par_range
from hpc.iter.plumbing.shipping import RemoteTraceback

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


def test_mpi_results_that_do_not_pickle_raise_on_every_rank(comm):
    """A result that cannot be pickled on one rank's share is a TypeError on every rank, naming that rank (before,
    that rank raised inside mpi4py's allgather and the others waited for it forever)."""
    with pytest.raises(TypeError, match=f"rank {comm.size - 1}: .*pickle") as info:
        par_range(1000).map(lambda x: threading.Lock() if x == 999 else x).with_backend("mpi").collect()
    assert "with_backend('threads')" in str(info.value)


def test_mpi_exceptions_that_do_not_pickle_raise_on_every_rank(comm):
    """An exception holding something that cannot be pickled is raised as itself on its rank and rebuilt from its
    text on the others, with the failing rank's traceback as the cause."""

    class Held(Exception):
        def __init__(self, message):
            super().__init__(message)
            self.lock = threading.Lock()

    def f(x):
        if x == 999:
            raise Held("item 999 holds a lock")
        return x

    with pytest.raises(Exception, match="item 999 holds a lock") as info:
        par_range(1000).map(f).with_backend("mpi").sum()
    if comm.rank == comm.size - 1:
        assert type(info.value) is Held
    else:
        assert type(info.value) is RuntimeError
        assert isinstance(info.value.__cause__, RemoteTraceback) and "in f" in info.value.__cause__.text


def test_mpi_results_may_be_closures(comm):
    """Results travel with cloudpickle, as the processes backend's do: closures made on another rank work here."""
    made = par_range(8).map(lambda i: (lambda: i * i)).with_backend("mpi").collect()
    assert [g() for g in made] == [i * i for i in range(8)]


@pytest.mark.parametrize("outer", ["mpi", "threads"])
def test_mpi_nested_in_a_worker_runs_on_threads(comm, outer):
    """An mpi-backend iterator inside another parallel iterator's map gives each outer item its own result (before,
    each rank's workers met the other ranks' workers at different outer items, and summed those items' shares
    together: silently wrong when the inner lengths agree)."""
    with_inner = par_range(16).map(lambda i: par_range(i * 10, i * 10 + 10).with_backend("mpi").sum())
    assert with_inner.with_backend(outer).collect() == [sum(range(i * 10, i * 10 + 10)) for i in range(16)]


def test_an_empty_input_on_one_rank_is_a_mismatch_on_every_rank_not_a_hang():
    """The empty rank returned at once and left the others in the exchange (a hang, or collectives pairing across
    calls under the watchdog); it joins the exchange now, and every rank raises. Empty everywhere: the empty sum."""
    comm = mpi.world()
    assert par_iter([]).with_backend("mpi").sum() == 0
    if comm.size < 2:
        return
    data = [] if comm.rank == 0 else [1.0, 2.0, 3.0]
    with pytest.raises(mpi.RankMismatchError, match="needs the same iterator on every rank"):
        par_iter(data).with_backend("mpi").sum()
    assert comm.allreduce(1.0) == float(comm.size)
