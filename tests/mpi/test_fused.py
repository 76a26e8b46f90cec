"""Fused collectives: one MPI call for many small reductions, with the call order checked."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
from mpi4py import MPI

from hpc import mpi
from hpc.mpi import guard

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
    return lambda comm: module.Fused(comm._engine)


class _CountingMPI:
    """Stands in for ``comm.mpi`` and records every method called on the mpi4py communicator.

    The watchdog's own messages (a stalled rank asking where the others are, which a loaded machine can trigger in
    any call) are left out: they travel on the watchdog's tag and are not the reduction's calls.
    """

    def __init__(self, real):
        self._real, self.calls = real, []
        self._watchdog_tag = guard._watchdog_tag(real)

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            if kwargs.get("tag") != self._watchdog_tag:
                self.calls.append(name)
            return attr(*args, **kwargs)

        return counted


def _counting(comm, monkeypatch):
    """Count the engine's MPI calls from now on; return the counter and the calls of one array allreduce."""
    counting = _CountingMPI(comm.mpi)
    monkeypatch.setattr(comm._engine, "mpi", counting)
    comm.allreduce(np.arange(3.0))  # first: what a communicator does once (the watchdog gathers host names)
    counting.calls.clear()
    comm.allreduce(np.arange(3.0))
    one_allreduce = list(counting.calls)
    counting.calls.clear()
    return counting, one_allreduce


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
    counting, one_allreduce = _counting(comm, monkeypatch)
    with fused(comm) as f:
        results = [f.allreduce(float(i)) for i in range(100)]
    assert counting.calls == one_allreduce
    assert [r.value for r in results] == [float(i * comm.size) for i in range(100)]


def test_fused_uses_one_mpi_call_per_dtype(comm, fused, monkeypatch):
    """Small float64, float32, int64 and int32 sums, interleaved, cost one Allreduce per dtype (the float64 one
    carrying the checksum), in the fast lane of both twins."""
    counting, one_allreduce = _counting(comm, monkeypatch)
    with fused(comm) as f:
        results = []
        for i in range(25):
            results += [f.allreduce(float(i)), f.allreduce(np.float32(i)), f.allreduce(np.full(2, i, np.float32)),
                        f.allreduce(np.full(3, i, np.int64)), f.allreduce(np.full((1, 2), i, np.int32))]
    assert counting.calls == one_allreduce * 4
    for i in range(25):
        got = [r.value for r in results[5 * i : 5 * i + 5]]
        assert got[0] == i * comm.size and type(got[1]) is np.float32 and got[1] == i * comm.size
        assert got[2].dtype == np.float32 and got[3].dtype == np.int64 and got[4].shape == (1, 2)
        assert (got[2] == i * comm.size).all() and (got[3] == i * comm.size).all() and (got[4] == i * comm.size).all()


def test_fused_interleaving_other_dtypes_is_harmless(comm, fused):
    """Entries of different lanes (float64 sums, int32 sums) are matched within their own lane: interleaving them
    in another order on some ranks gives the same results."""
    with fused(comm) as f:
        if comm.rank % 2 == 0:
            a = f.allreduce(1.0)
            b = f.allreduce(np.arange(2, dtype=np.int32))
        else:
            b = f.allreduce(np.arange(2, dtype=np.int32))
            a = f.allreduce(1.0)
    assert a.value == comm.size
    np.testing.assert_array_equal(b.value, np.arange(2) * comm.size)


def test_fused_detects_different_sequences(comm, fused):
    """Ranks that queue different sequences of as many values (other shapes, another order of floats and float64
    arrays, another dtype) get RankMismatchError on every rank."""
    if comm.size == 1:
        pytest.skip("needs two ranks to disagree")
    odd = comm.rank == 0
    cases = [
        lambda f: (f.allreduce(1.0), f.allreduce(np.zeros((2, 3) if odd else (3, 2)))),
        lambda f: (f.allreduce(np.zeros(2)), f.allreduce(1.0)) if odd else (f.allreduce(1.0), f.allreduce(np.zeros(2))),
        lambda f: (f.allreduce(1.0), f.allreduce(np.arange(2.0 + odd, dtype=np.float32))),
        # another lane of as many elements: the checksum's top bits had kept a low-bit difference out (a float32 and
        # an int32 array were reduced together, each rank reading garbage)
        # (a float64 array against an int64 one changes the float64 buffer's length: MPI's error, docs/mpi.md)
        lambda f: f.allreduce(np.ones(2, np.float32 if odd else np.int32)),
        lambda f: f.allreduce(np.ones(2, np.float32 if odd else np.int64)),
        lambda f: f.allreduce(np.ones(3, np.int32 if odd else np.int64)),
    ]
    for queue in cases:
        with pytest.raises(mpi.RankMismatchError, match="different sequences"):
            with fused(comm) as f:
                queue(f)


def test_a_rank_that_queued_nothing_meets_the_others(comm, fused):
    """A block where one rank queued nothing still exchanges its checksum: RankMismatchError on every rank (before,
    that rank skipped the flush: the others hung in check mode, or without it read its checksum as their result)."""
    if comm.size == 1:
        pytest.skip("needs two ranks to disagree")
    with pytest.raises(mpi.RankMismatchError, match="different sequences"):
        with fused(comm) as f:
            if comm.rank != 0:
                f.allreduce(5)
    with fused(comm) as f:  # nothing queued anywhere: a block that ends at once, and the ranks still agree
        pass
    assert comm.allreduce(np.arange(3, dtype=np.int64)).tolist() == [0, comm.size, 2 * comm.size]


def test_a_block_ended_in_c_agrees_with_one_ended_in_python(comm, fused):
    """Where the engine is plain, a block of fast-lane entries ends in C (Queue.__exit__); a rank whose block ends in
    Python (Fused.flush) sends the same checksum: right sums when the blocks match, RankMismatchError on every rank
    when they do not."""

    def block(differ):
        f = fused(comm)
        f.__enter__()
        results = [f.allreduce(1.5), f.allreduce(np.float32(2.0)), f.allreduce(np.arange(3, dtype=np.int32))]
        results.append(f.allreduce(np.zeros(1) if differ else 0.5))  # as many values, another shape
        if comm.rank == 0:
            f.__exit__(None, None, None)
        else:
            type(f).flush(f)
        return results

    results = block(0)
    assert [results[0].value, results[1].value] == [1.5 * comm.size, 2.0 * comm.size]
    assert results[2].value.tolist() == [0, comm.size, 2 * comm.size]
    if comm.size > 1:
        with pytest.raises(mpi.RankMismatchError, match="different sequences"):
            block(comm.rank == 0)
    assert comm.allreduce(2.0) == 2.0 * comm.size  # the ranks are in step again


def test_a_plain_engine_ends_a_fast_lane_block_in_c(comm, fused, monkeypatch):
    """No check mode, no watchdog: the C lane's block end reduces the batches itself (Fused.flush is not called);
    in check mode, and in the Python twin, flush() runs."""
    f = fused(comm)
    flush, calls = type(f).flush, []
    monkeypatch.setattr(type(f), "flush", lambda self: calls.append(1) or flush(self))
    with f:
        r = f.allreduce(np.float64(3.0))
    assert r.value == 3.0 * comm.size and type(r.value) is np.float64
    in_c = comm._engine.plain and type(f).__base__.__module__ == "hpc.mpi._fused_queue"
    assert (comm._engine.fused_lane is not None) == comm._engine.plain
    assert calls == ([] if in_c else [1])


def test_a_block_that_raised_reduces_nothing(comm, fused, monkeypatch):
    """An exception inside the block leaves it without any MPI call (every rank raises alike) and goes on."""
    counting, _ = _counting(comm, monkeypatch)
    with pytest.raises(ZeroDivisionError):
        with fused(comm) as f:
            r = f.allreduce(1.0)
            raise ZeroDivisionError("inside the block")
    assert counting.calls == []
    with pytest.raises(RuntimeError, match="after the"):
        _ = r.value


def test_a_block_made_in_one_thread_and_used_in_another(comm, fused):
    """comm.fused() made on the main thread, entered and used entirely in another: that thread queues (the owner is
    the thread that enters the block; it was the one that made it)."""
    import threading

    block = fused(comm)
    out = {}

    def worker():
        with block as f:
            r = f.allreduce(1.0)
        out["value"] = r.value

    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert out == {"value": float(comm.size)}


def test_a_0d_array_and_a_float_are_one_shape(comm, fused):
    """A 0-d array on one rank and a float on another have one dtype and shape, as for allreduce: the block sums
    them (it raised RankMismatchError), and each rank gets its own type back."""
    x = np.array(1.5) if comm.rank % 2 == 0 else 1.5
    with fused(comm) as f:
        r = f.allreduce(x)
    assert r.value == 1.5 * comm.size
    assert type(r.value) is (np.ndarray if comm.rank % 2 == 0 else float)


SHAPES = [(), (1,), (5,), (2, 3), (0, 3), (8192,)]


def test_fused_gives_back_the_callers_types_shapes_and_dtypes(comm, fused):
    """Python floats, NumPy scalars and arrays of every shape, dtype and layout, mixed in one block, come back as
    separate calls give them: the same type, dtype, shape and value."""
    r = comm.rank + 1
    entries = [1.5 * r, np.float64(2.5 * r), np.float32(r), np.int64(r), 3 * r]
    entries += [np.full(shape, 0.25 * r) for shape in SHAPES]
    entries += [np.arange(12.0).reshape(3, 4)[:, ::2] * r, np.ones(8193) * r, np.ones(3, np.float32) * r,
                np.arange(4, dtype=np.int64) * r, np.ones(2, dtype=">f8") * r]
    with fused(comm) as f:
        results = [f.allreduce(x) for x in entries]
    for x, result in zip(entries, results):
        got, want = result.value, comm.allreduce(x)
        assert type(got) is type(want), (x, got, want)
        if isinstance(want, np.ndarray):
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)
        else:
            assert got == want


def test_fused_results_are_independent_arrays(comm, fused):
    """Array results of the fast lane may be views of one buffer: writing to one never changes another."""
    with fused(comm) as f:
        a, b = f.allreduce(np.ones(2)), f.allreduce(np.ones(2))
    a.value[:] = -1.0
    np.testing.assert_array_equal(b.value, np.full(2, float(comm.size)))


class _RecordingSums:
    """Stands in for ``comm.mpi`` and records each buffer summed by ``Allreduce``/``Iallreduce`` as (format, length):
    the fused block's batches, whether its end runs in C (``Queue.__exit__``) or in Python (``Fused.flush``)."""

    def __init__(self, real):
        self._real, self.sums = real, []

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if name not in ("Allreduce", "Iallreduce"):
            return attr

        def recorded(send, receive, op):
            if op == MPI.SUM:
                view = memoryview(receive)
                self.sums.append((view.format, len(view)))
            return attr(send, receive, op)

        return recorded


def _recording_sums(comm, monkeypatch):
    recording = _RecordingSums(comm.mpi)
    monkeypatch.setattr(comm._engine, "mpi", recording)
    return recording.sums


def test_a_full_batch_is_reduced_inside_the_block(comm, fused, monkeypatch):
    """Past 4 MiB of queued float64 values a batch is reduced at once (fusion's memory stays bounded), and every
    result is still right."""
    sums = _recording_sums(comm, monkeypatch)
    with fused(comm) as f:
        results = [f.allreduce(np.full(8192, float(i))) for i in range(66)]  # 540,672 values: past 2**19
        assert len(sums) == 1 and sums[0][1] >= 1 << 19
    assert len(sums) == 2
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result.value, np.full(8192, float(i) * comm.size))


def test_a_full_float32_batch_flushes_every_batch_inside_the_block(comm, fused, monkeypatch):
    """When the float32 batch reaches 4 MiB, the float64 and int32 batches queued so far go with it (after the
    float64 one, which carries their checksum), and every result, before and after, is right."""
    sums = _recording_sums(comm, monkeypatch)
    with fused(comm) as f:
        first = [f.allreduce(1.5), f.allreduce(np.arange(3, dtype=np.int32))]
        blocks = [f.allreduce(np.full(8192, float(i), np.float32)) for i in range(128)]  # 128 x 32 KiB: 4 MiB
        assert [fmt for fmt, _ in sums] == ["d", "f", "i"]
        last = [f.allreduce(np.float32(2.0)), f.allreduce(2.5)]
    assert [fmt for fmt, _ in sums] == ["d", "f", "i", "d", "f"]
    assert first[0].value == 1.5 * comm.size and first[1].value.tolist() == [0, comm.size, 2 * comm.size]
    for i, result in enumerate(blocks):
        assert result.value.dtype == np.float32 and (result.value == i * comm.size).all()
    assert type(last[0].value) is np.float32 and last[0].value == 2 * comm.size and last[1].value == 2.5 * comm.size


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
    if comm.size == 1 or not comm.check:
        pytest.skip("needs two ranks to disagree, and HPC_MPI_CHECK=1")
    with pytest.raises(mpi.RankMismatchError, match="disagree"):
        with fused(comm) as f:
            for _ in range(3 + comm.rank):
                f.allreduce(1.0)


def test_the_same_array_in_another_layout_on_each_rank(comm, fused):
    """A Fortran-ordered, strided or byte-swapped array on one rank and a C-ordered native one on another: the fast
    lane takes a native C-ordered copy of the others, so every rank queues the same structure (the other layouts went
    to the slow lane, the buffers differed in length, and MPI ended the job with "Message truncated")."""
    m = np.arange(6.0).reshape(2, 3)
    odd = comm.rank % 2 == 1
    cases = [
        np.asfortranarray(m) if odd else m,
        m.astype(">f8") if odd else m,
        m[:, ::2] if odd else np.ascontiguousarray(m[:, ::2]),
        np.arange(4, dtype=np.int32)[::2] if odd else np.arange(4, dtype=np.int32)[::2].copy(),
    ]
    with fused(comm) as block:
        results = [block.allreduce(x) for x in cases]
    for x, result in zip(cases, results):
        want = np.asarray(x, dtype=x.dtype.newbyteorder("=")) * comm.size
        assert result.value.shape == x.shape and result.value.dtype == want.dtype
        np.testing.assert_array_equal(result.value, want)


def test_a_block_that_raised_leaves_nothing_for_the_next_block(comm, fused):
    """The same object entered again after a block that raised reduces only the new block's entries: the old ones
    had been summed with them (a = 2.0, an int16 entry back too), or, where ranks raised at different points,
    made the next block mismatch."""
    block = fused(comm)
    with pytest.raises(KeyError):
        with block as f:
            f.allreduce(1.0)
            f.allreduce(np.int16(1))
            f.allreduce(np.arange(3.0), op="max")
            raise KeyError("inside the block")
    with block as f:
        b = f.allreduce(2.0)
    assert b.value == 2.0 * comm.size


def test_queueing_after_the_block_ended_raises(comm, fused):
    """f.allreduce after the with block was queued into nothing (its value then said "available only after the
    block ends" of a block that had ended)."""
    with fused(comm) as f:
        r = f.allreduce(1.0)
    with pytest.raises(RuntimeError, match="this block has ended"):
        f.allreduce(1.0)
    with pytest.raises(RuntimeError, match="this block has ended"):
        f.allreduce(np.ones(3), op="max")
    assert r.value == float(comm.size)
    with f:  # entered again, it queues again
        again = f.allreduce(2.0)
    assert again.value == 2.0 * comm.size
