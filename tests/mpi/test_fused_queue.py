"""The fast lane of fused blocks: the C module and its pure-Python twin behave the same (no MPI needed)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from hpc.mpi import _fused_queue_py

try:
    from hpc.mpi import _fused_queue
except ImportError:  # reported by test_the_c_lane_is_compiled
    _fused_queue = None

LANES = [pytest.param(_fused_queue, id="c"), pytest.param(_fused_queue_py, id="python")]


def test_the_c_lane_is_compiled():
    """`pip install` built hpc/mpi/_fused_queue.c (it is optional, so a failed build would go unnoticed)."""
    assert _fused_queue is not None, "hpc.mpi._fused_queue is missing: reinstall with a C compiler (gcc)"


@pytest.fixture(params=LANES)
def lane(request):
    if request.param is None:
        pytest.skip("the C lane is not compiled")
    return request.param


@pytest.fixture
def queue(lane):
    class Recording(lane.Queue):
        """A Queue whose slow lane records what it was given."""

        def __init__(self):
            self.slow = []

        def _queue(self, x, op):
            self.slow.append((x, op))
            return lane.FusedResult()

    return Recording()


def test_float_sums_go_to_the_batch_in_order(queue, lane):
    results = [queue.allreduce(v) for v in (1.5, -2.0, float("nan"))]
    results.append(queue.allreduce(4.0, "sum"))
    results.append(queue.allreduce(5.0, op="sum"))
    (batch,) = queue._take()
    assert isinstance(batch, lane.Batch) and queue.slow == []
    assert len(batch) == 5 and batch[0] == 1.5 and batch[-1] == 5.0 and np.isnan(batch[2])
    assert queue._take() == ()  # taken: the next float starts a new batch
    with pytest.raises(RuntimeError, match="after the"):
        _ = results[0].value
    assert repr(results[0]) == "<hpc.mpi FusedResult pending>"
    values = np.frombuffer(batch, dtype=np.float64)
    values *= 2.0  # what the in-place Allreduce does
    batch.set_ready()
    assert [r.value for r in results[:2]] == [3.0, -4.0] and np.isnan(results[2].result())
    assert [r.value for r in results[3:]] == [8.0, 10.0]
    assert repr(results[1]) == "<hpc.mpi FusedResult -4.0>"


def test_everything_else_goes_to_the_slow_lane(queue):
    """Other ops, integer scalars (exact sums), other dtypes, large, strided, byte-swapped or subclassed arrays go to
    ``_queue``."""
    others = [np.arange(2.0), 2, np.int64(3), np.int32(3), np.array(4), np.ones(2, np.float16), np.ones(2, np.int8),
              np.ones(2, complex), np.ones(2, bool), np.float16(1.0), np.ones(8193), np.ones(8193, np.float32),
              np.arange(4.0)[::2], np.ones(2, ">f8"), np.ones(2, ">f4"), np.ma.masked_array(np.ones(2))]
    queue.allreduce(1.0, "max")
    queue.allreduce(others[0], op="prod")
    for x in others[1:]:
        queue.allreduce(x)
    assert [op for _, op in queue.slow] == ["max", "prod"] + ["sum"] * (len(others) - 1)
    assert all(got is want for (got, _), want in zip(queue.slow[1:], others))
    assert queue._take() == ()


def test_float64_scalars_and_small_arrays_take_the_batch(queue, lane):
    """NumPy float64 scalars and small C-contiguous float64 arrays are copied into the batch; after the reduction
    each result has its caller's type and shape."""
    source = np.arange(6.0).reshape(2, 3)
    results = [queue.allreduce(np.float64(3.0)), queue.allreduce(source), queue.allreduce(np.zeros(0)),
               queue.allreduce(np.float64(-1.0)), queue.allreduce(np.array(7.0))]
    source[:] = -9.0  # queued by value
    (batch,) = queue._take()
    assert queue.slow == [] and len(batch) == 1 + 6 + 0 + 1 + 1
    values = np.frombuffer(batch, dtype=np.float64)
    values *= 2.0
    batch.set_ready()
    got = [r.value for r in results]
    assert type(got[0]) is np.float64 and got[0] == 6.0 and type(got[3]) is np.float64 and got[3] == -2.0
    np.testing.assert_array_equal(got[1], np.arange(6.0).reshape(2, 3) * 2.0)
    assert got[2].shape == (0,) and got[4].shape == () and got[4] == 14.0


def test_float32_and_integer_arrays_take_a_batch_of_their_dtype(queue, lane):
    """float32 scalars and arrays, int64 and int32 arrays each go to their own batch (float64 first, then float32,
    int64, int32, whatever the order queued); after the reduction each result has its caller's type, dtype and
    shape."""
    entries = [np.full((2, 2), 3, np.int32), np.float32(1.5), np.arange(3, dtype=np.int64), 2.5,
               np.full(2, 0.25, np.float32), np.array(-1.0, np.float32), np.zeros(0, np.int64)]
    results = [queue.allreduce(e) for e in entries]
    batches = queue._take()
    assert queue.slow == [] and [b.kind for b in batches] == ["d", "f", "l", "i"]
    assert [len(b) for b in batches] == [1, 1 + 2 + 1, 3, 4]
    for batch in batches:
        values = np.frombuffer(batch, dtype=batch.kind)
        assert values.dtype == {"d": np.float64, "f": np.float32, "l": np.int64, "i": np.int32}[batch.kind]
        values *= 2  # what the in-place Allreduce does
        batch.set_ready()
    got = [r.value for r in results]
    assert got[0].dtype == np.int32 and got[0].shape == (2, 2) and (got[0] == 6).all()
    assert type(got[1]) is np.float32 and got[1] == 3.0
    assert got[2].dtype == np.int64 and got[2].tolist() == [0, 2, 4]
    assert type(got[3]) is float and got[3] == 5.0
    assert got[4].dtype == np.float32 and got[4].tolist() == [0.5, 0.5]
    assert got[5].dtype == np.float32 and got[5].shape == () and got[5] == -2.0
    assert got[6].dtype == np.int64 and got[6].shape == (0,)
    assert batches[2][1] == 2 and type(batches[2][1]) is int and batches[1][0] == 3.0


def test_long_long_and_unaligned_int64_arrays_share_the_int64_batch(queue, lane):
    """An int64 array is one kind whatever spells it: numpy.longlong where it is 8 bytes, and an unaligned array
    (exported as "=q"), take the int64 batch with the structure an aligned int64 array gives, in both lanes (ranks
    holding one and the other must not disagree)."""
    aligned = np.arange(3, dtype=np.int64)
    unaligned = np.frombuffer(b"\0" + aligned.tobytes(), np.int64, offset=1)
    assert not unaligned.flags.aligned
    entries = [aligned, unaligned] + ([aligned.astype(np.longlong)] if np.dtype(np.longlong).itemsize == 8 else [])
    results = [queue.allreduce(e) for e in entries]
    (batch,) = queue._take()
    assert queue.slow == [] and batch.kind == "l" and list(batch) == [0, 1, 2] * len(entries)
    batch.set_ready()
    for entry, result in zip(entries, results):
        assert result.value.dtype == entry.dtype and result.value.tolist() == [0, 1, 2]

    def structure(module, x):
        class Plain(module.Queue):
            def _queue(self, x, op):
                raise AssertionError("no slow lane here")

        q = Plain()
        q.allreduce(x)
        return q._take()[0].structure

    assert {structure(m, e) for m in (lane, _fused_queue_py) for e in entries} == {structure(lane, aligned)}


def test_a_float32_subclass_comes_back_as_itself(queue):
    """A subclass of numpy.float32 is reduced in the float32 batch and given back as an instance of its type."""

    class Single(np.float32):
        pass

    result = queue.allreduce(Single(1.5))
    (batch,) = queue._take()
    assert queue.slow == [] and batch.kind == "f"
    np.frombuffer(batch, dtype=np.float32)[0] = 3.0
    batch.set_ready()
    assert type(result.value) is Single and result.value == 3.0


def test_a_value_set_while_the_result_is_made_stands(queue):
    """Making a float32 subclass's result calls its constructor (Python code); a value set on the placeholder
    meanwhile stands, and nothing it held is used after it let go (the C lane once read a cleared batch there)."""
    holder = []

    class Meddling(np.float32):
        def __new__(cls, value):
            if holder:
                holder[0]._value = "set meanwhile"
            return super().__new__(cls, value)

    result = queue.allreduce(Meddling(1.0))
    (batch,) = queue._take()
    batch.set_ready()
    holder.append(result)
    assert result.value == "set meanwhile"


def test_array_results_are_views_of_the_reduced_batch(queue, lane):
    """An array result is a writable, aligned, C-contiguous view of its own values in the batch (no copy): writing one
    result changes no other, and results outlive the queue and batch they came from."""
    results = [queue.allreduce(np.full((2, 3), 1.0)), queue.allreduce(np.ones(4, np.int32)),
               queue.allreduce(np.full(2, 5.0))]
    batches = queue._take()
    for batch in batches:
        np.frombuffer(batch, batch.kind)[:] *= 2
        batch.set_ready()
    a, b, c = (r.value for r in results)
    assert a.flags.writeable and a.flags.aligned and a.flags.c_contiguous and a.dtype.isnative
    assert np.shares_memory(a, np.frombuffer(batches[0], "d")) and not np.shares_memory(a, c)
    a[:] = -1.0
    assert c.tolist() == [10.0, 10.0] and b.tolist() == [2] * 4
    del batches, queue
    assert a.tolist() == [[-1.0] * 3] * 2 and results[0].value is a


def test_only_float64_batches_take_floats(lane):
    """A batch's append takes floats into a float64 batch only; a batch of an unknown kind is refused."""
    with pytest.raises(TypeError, match="kind 'd'"):
        lane.Batch("f").append(1.0)
    for kind in ("q", "", "df"):
        with pytest.raises(ValueError, match="kind must be one of"):
            lane.Batch(kind)
    with pytest.raises(ValueError, match="got 'x'"):
        lane.Batch(kind="x")
    assert memoryview(lane.Batch("i")).format == "i" and lane.Batch().kind == "d"


def test_a_full_batch_flushes_every_batch_at_once(lane):
    """When one batch reaches 4 MiB, every batch of the lane goes to ``_flush_batches`` together (so the float64
    batch's checksum covers them); later entries start new batches."""

    class Flushing(lane.Queue):
        def __init__(self):
            self.flushed = []

        def _queue(self, x, op):
            raise AssertionError("no slow lane here")

        def _flush_batches(self, batches):
            self.flushed.append([(b.kind, len(b)) for b in batches])

    queue = Flushing()
    queue.allreduce(1.0)
    queue.allreduce(np.ones(3, np.int32))
    block = np.ones(8192, np.float32)  # 32 KiB: the 128th fills 4 MiB
    for _ in range(128):
        queue.allreduce(block)
    assert queue.flushed == [[("d", 1), ("f", 128 * 8192), ("i", 3)]]
    queue.allreduce(np.float32(2.0))
    assert [(b.kind, len(b)) for b in queue._take()] == [("f", 1)]


def test_a_float_subclass_comes_back_as_itself(queue):
    """Any float subclass (numpy.float64 is one) is reduced in the batch and given back as an instance of its type."""

    class Celsius(float):
        pass

    result = queue.allreduce(Celsius(21.5))
    (batch,) = queue._take()
    assert queue.slow == [] and len(batch) == 1
    np.frombuffer(batch, dtype=np.float64)[0] = 43.0
    batch.set_ready()
    assert type(result.value) is Celsius and result.value == 43.0


def test_both_lanes_hash_the_same_structure(lane):
    """The structure hash (entry kinds and shapes, in order) is the same in C and in Python, and tells shapes and
    orders apart."""

    def structure(module, entries):
        class Plain(module.Queue):
            def _queue(self, x, op):
                raise AssertionError("no slow lane here")

        q = Plain()
        for e in entries:
            q.allreduce(e)
        return q._take()[0].structure

    entries = [1.0, np.zeros((2, 3)), np.float64(1.0), np.zeros(1)]
    assert structure(lane, entries) == structure(_fused_queue_py, entries)
    assert structure(lane, entries) != structure(lane, [1.0, np.zeros((3, 2)), np.float64(1.0), np.zeros(1)])
    assert structure(lane, entries) != structure(lane, [np.zeros((2, 3)), 1.0, np.float64(1.0), np.zeros(1)])
    # shape () alike: a 0-d array on one rank and a float (or NumPy scalar) on another agree, as in allreduce
    assert structure(lane, [np.array(1.5), 2.0]) == structure(lane, [1.5, np.float64(2.0)])
    assert structure(lane, [np.array(1.5)]) != structure(lane, [np.zeros(1)])


def test_only_the_thread_that_made_the_queue_may_queue(queue):
    """Entries from two threads would interleave in another order on each rank and pair up wrong sums (72% of
    100,000 were wrong on 2 ranks): another thread gets RuntimeError, for the fast lane, the slow lane and _take."""
    import threading

    queue.allreduce(1.0)
    errors = []

    def other():
        for call in (lambda: queue.allreduce(2.0), lambda: queue.allreduce(3, "max"), queue._take):
            try:
                call()
            except RuntimeError as exc:
                errors.append(str(exc))

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 3 and all("thread that opened it" in e for e in errors), errors
    assert queue.slow == []
    (batch,) = queue._take()  # the owner's entry alone
    assert list(batch) == [1.0]

    def claims():  # entering the block in another thread makes that thread the owner (a block made here, used there)
        queue._claim()
        queue.allreduce(4.0)

    t = threading.Thread(target=claims)
    t.start()
    t.join()
    with pytest.raises(RuntimeError, match="thread that opened it"):
        queue.allreduce(5.0)  # this thread no longer owns it
    queue._claim()
    (batch,) = queue._take()
    assert list(batch) == [4.0]


def test_bad_arguments_raise_type_error(queue):
    with pytest.raises(TypeError):
        queue.allreduce()
    with pytest.raises(TypeError):
        queue.allreduce(1.0, "sum", 3)
    with pytest.raises(TypeError, match="unexpected keyword|oops"):
        queue.allreduce(1.0, oops="sum")


def test_x_and_op_by_keyword_as_in_python(queue):
    """``allreduce(x=..., op=...)`` is accepted as Python would (Comm.allreduce and the old Fused took it); a
    duplicate or missing argument is a TypeError, never a silent misparse."""
    results = [queue.allreduce(x=1.5), queue.allreduce(op="sum", x=2.5), queue.allreduce(3.5, op="sum")]
    queue.allreduce(x=4, op="max")
    queue.allreduce(op="min", x=5.0)
    assert queue.slow == [(4, "max"), (5.0, "min")]
    (batch,) = queue._take()
    assert list(batch) == [1.5, 2.5, 3.5]
    batch.set_ready()
    assert [r.value for r in results] == [1.5, 2.5, 3.5]
    for args, kwargs in [
        ((1.0, "sum"), {"op": "sum"}),
        ((1.0,), {"x": 1.0}),
        ((), {"op": "sum"}),
        ((), {"x": 1.0, "oops": 1}),
        ((1.0, "sum", 3), {}),
    ]:
        with pytest.raises(TypeError):
            queue.allreduce(*args, **kwargs)
    assert queue._take() == () and len(queue.slow) == 2


def test_results_set_by_the_slow_lane(lane):
    result = lane.FusedResult()
    with pytest.raises(AttributeError):
        _ = result._value
    with pytest.raises(RuntimeError, match="after the"):
        result.result()
    result._value = np.arange(3)
    np.testing.assert_array_equal(result.value, np.arange(3))


def test_a_result_value_cannot_be_deleted(queue):
    """``del r._value`` raises in both lanes (the C lane used to clear it: the result was pending forever)."""
    result = queue.allreduce(1.0)
    queue._take()[0].set_ready()
    with pytest.raises(AttributeError):
        del result._value
    assert result.value == 1.0


def test_ops_whose_comparison_raises_go_to_the_slow_lane(queue):
    """The fast lane checks the op's type before comparing it, so an op whose ``==`` raises still reaches _queue."""

    class Touchy:
        def __eq__(self, other):
            raise AssertionError("compared")

        __hash__ = object.__hash__

    op = Touchy()
    queue.allreduce(1.0, op=op)
    assert queue.slow == [(1.0, op)] and queue._take() == ()


def test_a_batch_refuses_floats_while_exported_or_reduced(queue):
    queue.allreduce(1.0)
    (batch,) = queue._take()
    view = memoryview(batch)
    assert view.format == "d" and view.shape == (1,) and not view.readonly
    with pytest.raises(BufferError):
        batch.append(2.0)
    view.release()
    batch.append(2.0)
    batch.set_ready()
    with pytest.raises(BufferError):
        batch.append(3.0)


def test_an_empty_batch_exports_an_empty_buffer(lane):
    batch = lane.Batch()
    assert len(batch) == 0 and np.frombuffer(batch, dtype=np.float64).size == 0
    with pytest.raises(IndexError):
        batch[0]


def test_many_floats_grow_the_batch(queue):
    results = [queue.allreduce(float(i)) for i in range(10_000)]
    (batch,) = queue._take()
    batch.set_ready()
    assert [r.value for r in results] == [float(i) for i in range(10_000)]
    del batch  # the results keep their batch alive; values read before stay readable
    assert results[-1].value == 9999.0


def test_an_array_resized_while_it_is_queued_is_refused():
    """Queuing allocates (the placeholder, the shape tuple), which can run a garbage collection's callbacks; one
    that resizes the array in place must not leave a result shaped for more values than the batch holds (the C lane
    read the shape after those allocations and made a view past the batch's end: a crash). Refused with an error,
    or, where the collection runs later (newer CPythons), queued as it was."""
    if _fused_queue is None:
        pytest.skip("the C lane is not compiled")
    import gc

    shape = (8192,) + (1,) * 24  # 25 dims: the shape tuple is a fresh allocation, not one from the free list
    x = np.full(shape, 1.0)
    fired = []

    def resize(phase, info):
        if phase == "start" and not fired:
            fired.append(1)
            x.resize((1 << 20,) + (1,) * 24, refcheck=False)

    class Plain(_fused_queue.Queue):
        def _queue(self, x, op):
            raise AssertionError("no slow lane here")

    queue = Plain()
    threshold = gc.get_threshold()
    gc.callbacks.append(resize)
    gc.set_threshold(1)
    try:
        result = queue.allreduce(x)
    except RuntimeError as error:
        assert fired and "changed while it was being queued" in str(error)
        assert all(len(batch) == 0 for batch in queue._take())  # nothing was queued
        return
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(resize)
    (batch,) = queue._take()
    batch.set_ready()
    assert len(batch) == 8192 and result.value.shape == shape and (result.value == 1.0).all()


def test_a_queue_holds_its_engine_and_the_slow_lanes_lists(lane):
    """Queue(engine) keeps the engine and starts the slow lane's two lists, fresh for each queue."""
    engine = SimpleNamespace(size=2, fused_lane=None)  # what the queue reads of an Engine
    a, b = lane.Queue(engine), lane.Queue()
    assert a._engine is engine and b._engine is None
    assert a._entries == [] and a._integers == [] and a._entries is not b._entries
    a._entries = ["x"]  # the subclass reassigns them when it flushes
    assert a._entries == ["x"]


def test_the_block_end_calls_flush_unless_the_block_raised(lane):
    """Without an engine that lets C call MPI, ``__exit__`` hands the block to the subclass's flush(); after an
    exception in the block it reduces nothing. ``__enter__`` returns the queue, claimed by the entering thread."""

    class Flushing(lane.Queue):
        def flush(self):
            self.flushed = getattr(self, "flushed", 0) + 1

    q = Flushing()
    with q as entered:
        assert entered is q
        q.allreduce(1.0)
    assert q.flushed == 1
    with pytest.raises(KeyError):
        with q:
            raise KeyError("x")
    assert q.flushed == 1


def test_a_queue_in_a_reference_cycle_is_collected(lane):
    """A block that refers to itself (through its engine, its slow lane's lists, or an attribute) is freed by the
    collector."""
    import gc
    import weakref

    class Cyclic(lane.Queue):
        pass

    engine = SimpleNamespace(size=1, fused_lane=None)
    q = Cyclic(engine)
    engine.block = q  # a cycle through each reference the C queue holds, and one through its __dict__
    q._entries.append(q)
    q._integers.append(q)
    q.me = q
    gone = weakref.ref(q)
    del q, engine
    gc.collect()
    assert gone() is None


def test_a_result_reads_value_by_any_spelling_of_the_name(queue):
    """``.value`` has a fast path in C (the interned name); the same name built at run time, the other attributes
    and an unknown one behave as the generic lookup makes them."""
    result = queue.allreduce(2.5)
    name = "".join(["va", "lue"])  # equal to "value", not the interned object
    with pytest.raises(RuntimeError, match="after the"):
        getattr(result, name)
    (batch,) = queue._take()
    batch.set_ready()
    assert result.value == getattr(result, name) == result._value == result.result() == 2.5
    with pytest.raises(AttributeError):
        _ = result.nope
    assert "value" in dir(result)


def test_the_checksum_finalizer_is_murmurs():
    """The Python twin of the C lane's fmix64 (the two must agree bit for bit: a rank may end its block in either):
    MurmurHash3's published finalizer values, and one bit of difference reaching the top 20 bits."""
    from hpc.mpi._fused_queue_py import fmix64

    assert fmix64(0) == 0
    assert fmix64(1) == 0xB456BCFC34C2CB2C
    assert all(fmix64(h) >> 44 != fmix64(h ^ 2) >> 44 for h in (328252, 1 << 40, 12345678901234))
