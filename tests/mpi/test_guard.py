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


def test_a_reproducible_mpi_sum_is_named_as_called(checked):
    """mpi.sum(reproducible=True) on one rank and allreduce(reproducible=True) on another: the error names mpi.sum
    (it named the reproducible sum's internal exponent step, an allreduce of int16 'max' fields)."""
    _needs_two(checked)
    x = np.arange(4.0)
    with pytest.raises(mpi.RankMismatchError, match="mpi.sum"):
        if checked.rank == 0:
            mpi.sum(checked, x, reproducible=True)
        else:
            checked.allreduce(x, reproducible=True)
    np.testing.assert_array_equal(mpi.sum(checked, x[None, :], reproducible=True), x * checked.size)


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


def test_bcast_with_a_different_root_per_rank_raises(checked):
    """Each rank naming itself the root used to return each root's own data silently; the roots are compared now."""
    _needs_two(checked)
    with pytest.raises(mpi.RankMismatchError, match=r"bcast.*\n  rank 0: bcast root=0\n"):
        checked.bcast(np.full(3, float(checked.rank)), root=checked.rank)
    assert checked.bcast(float(checked.rank), root=1) == 1.0  # still in step


@pytest.mark.parametrize("call", ["allreduce", "reduce"])
def test_argmin_against_another_op_or_root_raises_on_every_rank(checked, call):
    """argmin on one rank and sum on another raised RankMismatchError on one rank and ValueError on the other."""
    _needs_two(checked)
    x = np.ones(3)
    with pytest.raises(mpi.RankMismatchError, match="argmin"):
        getattr(checked, call)(x, op="argmin" if checked.rank == 0 else "sum")
    with pytest.raises(mpi.RankMismatchError, match="argmax"):
        getattr(checked, call)(x, op="argmax" if checked.rank == 1 else "argmin")
    with pytest.raises(mpi.RankMismatchError, match="float64|<f8"):
        checked.allreduce(x if checked.rank == 0 else x.astype(np.float32), op="argmin")
    with pytest.raises(mpi.RankMismatchError, match="reduce"):
        checked.reduce(x, op="argmin", root=checked.rank)
    assert checked.allreduce(np.arange(3.0) + checked.rank, op="argmin") == (0.0, 0)  # still in step


def test_exact_integer_sums_compare_roots_and_kinds(checked):
    """reduce and iallreduce of integer scalars (the exact words) still compare roots and what the other ranks send."""
    _needs_two(checked)
    with pytest.raises(mpi.RankMismatchError, match="integer scalar"):
        checked.reduce(5, root=checked.rank)
    with pytest.raises(mpi.RankMismatchError, match="integer scalar"):
        checked.iallreduce(5 if checked.rank == 0 else 5.0)
    assert checked.iallreduce(5).result() == 5 * checked.size  # still in step


@pytest.mark.parametrize("call", ["allgather", "barrier", "bcast", "iterator"])
def test_a_pickled_step_against_another_collective_raises_on_every_rank(checked, call, monkeypatch):
    """A rank in allgather, barrier, bcast or an mpi iterator while the others are in allreduce: reported on each."""
    _needs_two(checked)
    from hpc import par_range
    from hpc.mpi import iter_backend

    monkeypatch.setattr(iter_backend, "world", lambda: checked)
    steps = {
        "allgather": lambda: checked.allgather(np.ones(3)),
        "barrier": checked.barrier,
        "bcast": lambda: checked.bcast(np.ones(3)),
        "iterator": lambda: par_range(4).with_backend("mpi").sum(),
    }
    with pytest.raises(mpi.RankMismatchError):
        steps[call]() if checked.rank == 0 else checked.allreduce(np.ones(3))
    checked.barrier()
    assert checked.allreduce(1.0) == checked.size  # still in step


#: the mpi4py calls that block until every rank joins them
_BLOCKING = {
    "allgather",
    "allreduce",
    "bcast",
    "gather",
    "Allgatherv",
    "Allreduce",
    "Barrier",
    "Bcast",
    "Exscan",
    "Reduce",
    "Reduce_scatter",
    "Scan",
    "Split_type",
}


class _Watched:
    """An mpi4py communicator that refuses a blocking call until a watched wait has completed in the same step.

    Once a watched wait (``guard.wait``) returns, every rank has reached the step, so what follows cannot stall on a
    missing rank; a blocking call before it would hang unreported under the watchdog.
    """

    def __init__(self, raw):
        self._raw = raw
        self.synced = False

    def __getattr__(self, name):
        if name in _BLOCKING and not self.synced:
            raise AssertionError(f"{name} blocks before any watched wait: a missing rank would hang it unreported")
        return getattr(self._raw, name)


@pytest.mark.parametrize("check", ["0", "1"])
def test_every_collective_is_watched_before_it_can_block(comm, check, monkeypatch):
    """With HPC_MPI_TIMEOUT set (and check mode on or off), no collective blocks before a watched wait.

    allgather, argmin/argmax, bcast, barrier, local_rank and the mpi iterator blocked in pickled or blocking calls
    first, so a missing rank hung them forever instead of being reported.
    """
    _needs_two(comm)
    from hpc import par_range
    from hpc.mpi import guard, iter_backend

    monkeypatch.setenv("HPC_MPI_TIMEOUT", "60")
    monkeypatch.setenv("HPC_MPI_CHECK", check)
    watched = mpi.Comm(_Watched(comm.mpi))
    assert watched.timeout > 0 and watched.check == (check == "1")
    real_wait = guard.wait

    def wait(c, request, what, in_order=None):
        real_wait(c, request, what, in_order)
        if isinstance(c.mpi, _Watched):
            c.mpi.synced = True

    monkeypatch.setattr(guard, "wait", wait)
    monkeypatch.setattr(iter_backend, "world", lambda: watched)
    x = np.arange(4.0) + comm.rank

    def fused():
        with watched.fused() as f:
            f.allreduce(1.5), f.allreduce(np.ones(2, np.int32))

    steps = [
        lambda: watched.allreduce(x),
        lambda: watched.allreduce(1.5),
        lambda: watched.allreduce(x, op="argmin"),
        lambda: watched.reduce(x, op="argmax", root=comm.size - 1),
        lambda: watched.allreduce(2**100 if comm.rank == 0 else 1),  # the pickled fallback
        lambda: watched.reduce(3),
        lambda: watched.iallreduce(x).result(),
        lambda: watched.iallreduce(3).result(),
        lambda: watched.reduce(x, root=comm.size - 1),
        lambda: watched.bcast(x),
        lambda: watched.bcast({"any": "object"}, root=comm.size - 1),
        lambda: watched.allgather(x),
        lambda: watched.reduce_scatter(x),
        lambda: watched.scan(x),
        lambda: watched.exscan(x),
        fused,
        watched.barrier,
        lambda: watched.local_rank,
        lambda: mpi.moments(watched, x),
        lambda: mpi.histogram(watched, x),
        lambda: mpi.norm(watched, x),
        lambda: par_range(6).with_backend("mpi").sum(),
        lambda: watched.allreduce(x, reproducible=True),  # the shared-memory window's barriers
        lambda: mpi.sum(watched, np.ones((3, 2)), reproducible=True),  # the message lane's collectives
        lambda: fresh.allreduce(x, reproducible=True),  # making a window: a node split, an agreement, an allocation
    ]
    dup = comm.mpi.Dup()
    fresh = mpi.Comm(_Watched(dup))
    try:
        for step in steps:
            watched.mpi.synced = fresh.mpi.synced = False
            step()
    finally:
        dup.Free()


def test_no_mpi_segment_keeps_a_name_in_dev_shm(comm):
    """MPICH's node segment (/dev/shm/mpich_shm_*) lost its name only in MPI_Finalize, so every killed or aborted
    job left one per host; hpc removes the name at its first communicator, once every rank of the node has it mapped.
    """
    with open("/proc/self/maps") as maps:
        named = {line.split(None, 5)[5].strip() for line in maps if "/dev/shm/mpich_shm_" in line}
    assert not [path for path in named if not path.endswith("(deleted)")]


def _fused_float(comm):
    with comm.fused() as f:
        result = f.allreduce(1.5)
    return result.value


#: one call of each collective, with arguments that differ in shape, dtype or op between some of them
CALLS = {
    "allreduce float": lambda c: c.allreduce(1.5),
    "allreduce 4 floats": lambda c: c.allreduce(np.ones(4)),
    "allreduce 6 floats": lambda c: c.allreduce(np.ones(6)),
    "allreduce 4 int32": lambda c: c.allreduce(np.ones(4, np.int32)),
    "allreduce 4 floats max": lambda c: c.allreduce(np.ones(4), op="max"),
    "allreduce 16 KiB": lambda c: c.allreduce(np.ones(2048)),
    "allreduce int": lambda c: c.allreduce(3),
    "iallreduce 4 floats": lambda c: c.iallreduce(np.ones(4)).result(),
    "reduce 4 floats": lambda c: c.reduce(np.ones(4)),
    "bcast 4 floats": lambda c: c.bcast(np.ones(4)),
    "barrier": lambda c: c.barrier(),
    "allgather 4 floats": lambda c: c.allgather(np.ones(4)),
    "scan 4 floats": lambda c: c.scan(np.ones(4)),
    "reduce_scatter 4 floats": lambda c: c.reduce_scatter(np.ones(4)),
    "fused float": _fused_float,
}


@pytest.mark.parametrize("first", sorted(CALLS))
def test_under_the_watchdog_no_two_different_collectives_match_or_hang(comm, first, monkeypatch):
    """With HPC_MPI_TIMEOUT set, rank 0 in one collective and the others in another raise RankMismatchError on every
    rank, for every pair: every watched collective begins with the same small header step, carrying a checksum of
    (collective, op, dtype, shape, root). Without it, barrier against allreduce, allreduce of 1 value against 4, or
    an allreduce against a fused block returned as if they had matched, and others hung or got MPI's errors.
    """
    _needs_two(comm)
    monkeypatch.setenv("HPC_MPI_TIMEOUT", "60")
    monkeypatch.setenv("HPC_MPI_CHECK", "0")
    watched = mpi.Comm(comm.mpi)
    for second in sorted(CALLS):
        if second == first:
            continue
        call = CALLS[first] if watched.rank == 0 else CALLS[second]
        with pytest.raises(mpi.RankMismatchError, match="ranks disagree on the collective"):
            call(watched)
    for same in sorted(CALLS):  # the same calls on every rank still agree, after all those mismatches
        CALLS[same](watched)
    assert watched.allreduce(1.0) == watched.size


def test_a_mismatch_report_names_each_field(checked):
    """The report had printed the 4th field of allreduce's signature (reproducible=) under the heading "root"."""
    _needs_two(checked)
    with pytest.raises(mpi.RankMismatchError) as caught:
        checked.allreduce(np.ones(3 + checked.rank))
    assert "rank 0: allreduce op='sum' dtype='<f8' shape=(3,) reproducible=False" in str(caught.value)
    assert "root" not in str(caught.value)
    assert checked.allreduce(1.0) == checked.size


def test_the_watchers_look_at_the_steps_keeps_no_frame_after_it(monkeypatch):
    """The watcher's look at the threads in a blocking step took every thread's frames, and its locals kept the last
    look's until a later step came: a 512 MiB allreduce result, dropped by its caller, stayed alive for good. A look
    now holds nothing once it is over."""
    import gc
    import sys
    import threading
    import types
    import weakref

    from hpc.mpi import guard

    monkeypatch.setattr(guard, "_ANSWER_AFTER_S", 1e9)  # the fake step is never old enough to ask other ranks
    inside, leave, refs = threading.Event(), threading.Event(), []

    def in_a_step():
        big = np.ones(1 << 10)  # what a collective's frame holds (its result)
        refs.append(weakref.ref(big))
        engine = types.SimpleNamespace(timeout=60.0, rank=0)  # a step of a minute's watchdog, seconds old
        guard._steps[threading.get_ident()] = guard._Step(engine, "test step", sys._getframe())
        inside.set()
        leave.wait(30)

    thread = threading.Thread(target=in_a_step)
    thread.start()
    inside.wait(30)
    guard._watch_once()  # sees the thread in its step, its frame on the stack
    leave.set()
    thread.join(30)
    guard._watch_once()  # the step is over: forgotten
    gc.collect()
    assert thread.ident not in guard._steps
    assert refs[0]() is None


def test_the_watcher_looks_at_the_threads_with_the_collector_paused(monkeypatch):
    """sys._current_frames() deadlocks CPython (3.11 before 3.11.9) when a garbage collection starts inside it
    while a thread ends (python/cpython#106883): a rank of CI's multi-host run froze in the watcher's look, the GIL
    held. The look pauses the collector, and leaves one the program turned off as it was."""
    import gc
    import sys

    from hpc.mpi import guard

    seen = []
    real = sys._current_frames

    def current_frames():
        seen.append(gc.isenabled())
        return real()

    monkeypatch.setattr(guard._sys, "_current_frames", current_frames)
    was = gc.isenabled()
    try:
        gc.enable()
        guard._watch_once()
        assert seen == [False] and gc.isenabled()
        gc.disable()
        guard._watch_once()
        assert seen == [False, False] and not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
