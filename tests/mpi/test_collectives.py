"""Array collectives against NumPy references computed from the gathered data (run under mpiexec -n 1..4)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from hpc import mpi

from .conftest import gathered

pytestmark = pytest.mark.mpi

NUMERIC = [
    "bool",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "float16",
    "float32",
    "float64",
    "complex64",
    "complex128",
]
REDUCE = {
    "sum": np.sum,
    "prod": np.prod,
    "min": np.min,
    "max": np.max,
    "land": np.logical_and.reduce,
    "lor": np.logical_or.reduce,
    "band": np.bitwise_and.reduce,
    "bor": np.bitwise_or.reduce,
}


def _data(comm, dtype, shape=(3, 4)):
    rng = np.random.default_rng(100 + comm.rank)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(0, 5, shape).astype(dtype)
    x = rng.integers(-3, 4, shape).astype(dtype)  # small integers: sums are exact in every float dtype
    if np.dtype(dtype).kind == "c":
        x = x + 1j * rng.integers(-3, 4, shape)
    return x.astype(dtype)


def _valid(op, dtype):
    kind = np.dtype(dtype).kind
    if op in ("band", "bor", "land", "lor"):
        return kind in "biu"
    if op in ("min", "max"):
        return kind != "c"
    return True


@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("op", sorted(REDUCE))
def test_allreduce_every_dtype_and_op_matches_numpy(comm, dtype, op):
    """allreduce gives numpy's reduction of the stacked contributions, for every dtype and op it accepts."""
    x = _data(comm, dtype)
    if not _valid(op, dtype):
        with pytest.raises(TypeError, match=op):
            comm.allreduce(x, op=op)
        return
    got = comm.allreduce(x, op=op)
    stack = np.stack(gathered(comm, x))
    want = REDUCE[op](stack, axis=0)
    if not (dtype == "bool" and op in ("sum", "prod")):
        want = want.astype(dtype)
    assert got.shape == x.shape
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_allreduce_handles_non_contiguous_zero_d_and_empty(comm):
    """Strided views, 0-d arrays and empty arrays reduce correctly and keep their shapes."""
    base = np.arange(24, dtype=np.float64).reshape(4, 6) * (comm.rank + 1)
    view = base[::2, 1::3]
    np.testing.assert_array_equal(comm.allreduce(view), np.sum(gathered(comm, view), axis=0))
    fortran = np.asfortranarray(base)
    np.testing.assert_array_equal(comm.allreduce(fortran, op="max"), np.max(gathered(comm, fortran), axis=0))
    zero_d = np.array(2.5 + comm.rank)
    assert comm.allreduce(zero_d).shape == ()
    assert float(comm.allreduce(zero_d)) == sum(2.5 + r for r in range(comm.size))
    empty = np.zeros((0, 3), np.int32)
    assert comm.allreduce(empty).shape == (0, 3)


def test_allreduce_python_scalars_return_python_scalars(comm):
    """Python scalars in, Python scalars out, with numpy's arithmetic."""
    assert comm.allreduce(comm.rank + 1) == sum(range(1, comm.size + 1))
    assert isinstance(comm.allreduce(1), int)
    assert comm.allreduce(0.5) == 0.5 * comm.size
    assert comm.allreduce(True, op="land") is True
    assert comm.allreduce(1 + 2j) == (1 + 2j) * comm.size


def test_allreduce_out_and_in_place(comm):
    """out= receives the result; out=x reduces in place."""
    x = np.full(5, comm.rank, dtype=np.int64)
    out = np.empty_like(x)
    assert comm.allreduce(x, out=out) is out
    assert (out == sum(range(comm.size))).all()
    assert comm.allreduce(x, out=x) is x
    assert (x == sum(range(comm.size))).all()


@pytest.mark.parametrize("op", ["sum", "prod", "max"])
def test_allreduce_in_place_takes_no_result_of_its_size_in_any_mode(comm, op):
    """out=x is MPI's IN_PLACE with check mode or the watchdog on too (there a result of x's size was made and
    copied back: 1.5x the array per rank, and a held copy), and gives the out-of-place answer."""
    import tracemalloc

    x = np.full(1 << 18, 1.0 + comm.rank % 3, dtype=np.float64)  # 2 MiB
    want = comm.allreduce(x.copy(), op=op)
    tracemalloc.start()
    try:
        got = comm.allreduce(x, op=op, out=x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got is x
    np.testing.assert_array_equal(x, want)
    if op != "max":  # float max travels as integer keys, an array of its own (docs/mpi.md)
        assert peak < x.nbytes // 8, peak


@pytest.mark.parametrize("op,pick", [("argmin", np.argmin), ("argmax", np.argmax)])
def test_argmin_argmax_give_value_and_global_index_ties_lowest(comm, op, pick):
    """argmin/argmax return the value and its index in the concatenated array; ties go to the lowest index."""
    local = np.array([5.0, 1.0, 9.0, 1.0][: 1 + comm.rank % 4]) + (comm.rank % 2)
    value, index = comm.allreduce(local, op=op)
    whole = np.concatenate(gathered(comm, local))
    assert index == pick(whole) and value == whole[index]
    v, rank = comm.allreduce(float(comm.rank % 2), op=op)
    assert rank == pick([r % 2 for r in range(comm.size)])


def test_argmin_propagates_nan_like_numpy(comm):
    """A NaN anywhere wins argmin, as numpy.argmin returns the first NaN."""
    local = np.array([1.0, np.nan]) if comm.rank == comm.size - 1 else np.array([0.0])
    value, index = comm.allreduce(local, op="argmin")
    assert np.isnan(value) and index == comm.size  # the NaN is the last element of the concatenation


def test_user_op_compiled_with_numba(comm):
    """A user op from a Python function reduces like the function applied across ranks."""
    absmax = mpi.op(lambda a, b: max(abs(a), abs(b)))
    x = np.array([-(comm.rank + 1.0), comm.rank * 0.5])
    got = comm.allreduce(x, op=absmax)
    # a reduction of one contribution is that contribution: the op combines pairs, as in functools.reduce
    want = functools.reduce(lambda a, b: np.maximum(np.abs(a), np.abs(b)), gathered(comm, x))
    np.testing.assert_array_equal(got, want)


def test_user_ops_run_without_the_gil_and_keep_rank_order_when_not_commutative(comm):
    """The combine loop is compiled nogil; commute=False combines in rank order (MPI: in (op) inout)."""
    first = mpi.op(lambda a, b: a, commute=False)
    last = mpi.op(lambda a, b: b, commute=False)
    x = np.array([float(comm.rank), 10.0 + comm.rank])
    np.testing.assert_array_equal(comm.allreduce(x, op=first), [0.0, 10.0])
    np.testing.assert_array_equal(comm.allreduce(x, op=last), [comm.size - 1.0, 9.0 + comm.size])
    assert first.kernel.targetoptions["nogil"] and last.kernel.targetoptions["nogil"]


def test_reduce_bcast_allgather(comm):
    """reduce delivers on the root only; bcast copies the root's value; allgather concatenates unequal parts."""
    x = np.arange(4.0) + comm.rank
    root = comm.size - 1
    want = np.max(gathered(comm, x), axis=0)  # every rank takes part in the reference gather
    got = comm.reduce(x, op="max", root=root)
    if comm.rank == root:
        np.testing.assert_array_equal(got, want)
    else:
        assert got is None
    arr = comm.bcast(np.arange(6).reshape(2, 3) if comm.rank == 0 else None)
    np.testing.assert_array_equal(arr, np.arange(6).reshape(2, 3))
    assert comm.bcast({"k": comm.rank}) == {"k": 0}
    assert comm.bcast(3.5 if comm.rank == 0 else None) == 3.5
    part = np.full((comm.rank + 1, 2), comm.rank, dtype=np.int16)
    whole = comm.allgather(part)
    assert whole.dtype == np.int16
    np.testing.assert_array_equal(whole, np.concatenate(gathered(comm, part)))


def test_reduce_scatter_scan_exscan_iallreduce(comm):
    """reduce_scatter gives this rank's block; scan/exscan are prefix reductions; iallreduce is a future."""
    x = np.arange(10, dtype=np.int64) * (comm.rank + 1)
    mine = comm.reduce_scatter(x)
    full = np.sum(gathered(comm, x), axis=0)
    np.testing.assert_array_equal(mine, np.array_split(full, comm.size)[comm.rank])
    assert comm.scan(comm.rank + 1) == sum(range(1, comm.rank + 2))
    assert comm.exscan(comm.rank + 1) == sum(range(1, comm.rank + 1))
    fut = comm.iallreduce(np.ones(3))
    np.testing.assert_array_equal(fut.result(), np.full(3, float(comm.size)))
    assert fut.done()


@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([object(), 1], dtype=object)])
def test_unsupported_dtypes_raise_type_error_naming_what_is_supported(comm, bad):
    """str and object arrays raise TypeError on every rank, saying which dtypes are supported."""
    with pytest.raises(TypeError, match="bool, integer, floating and complex"):
        comm.allreduce(bad)


def test_bad_op_and_root_are_refused(comm):
    """An unknown op or an out-of-range root gives a ValueError that lists what is accepted."""
    with pytest.raises(ValueError, match="op must be one of"):
        comm.allreduce(1.0, op="mean")
    with pytest.raises(ValueError, match="root must be an int"):
        comm.reduce(1.0, root=comm.size)
    with pytest.raises(ValueError, match="root must be an int"):
        comm.bcast(1.0, root=True)
    with pytest.raises(ValueError, match="takes no out="):
        comm.allreduce(np.arange(3.0), op="argmin", out=np.empty(3))


def test_numpy_integer_roots_are_accepted(comm):
    """A root given as a NumPy integer (from an array of ranks, say) works like the same Python int."""
    last = np.int64(comm.size - 1)
    assert comm.bcast(float(comm.rank), root=last) == comm.size - 1
    total = comm.reduce(1, root=last)
    assert total == (comm.size if comm.rank == comm.size - 1 else None)


def test_comm_wraps_raw_mpi4py_and_reports_local_rank(comm):
    """mpi.Comm accepts a raw mpi4py communicator; local_rank is within the node's ranks."""
    wrapped = mpi.Comm(comm.mpi)
    assert (wrapped.rank, wrapped.size) == (comm.rank, comm.size)
    assert mpi.as_comm(comm.mpi).allreduce(1) == comm.size
    assert 0 <= comm.local_rank < comm.size


def test_allreduce_out_non_contiguous_aliased_or_for_a_python_float(comm):
    """out= may be strided or a view of x (not only x itself); a Python float with out= writes into out too."""
    x = np.arange(6.0) + comm.rank
    want = np.sum(gathered(comm, x), axis=0)
    strided = np.zeros(12)[::2]
    assert comm.allreduce(x, out=strided) is strided
    np.testing.assert_array_equal(strided, want)
    view = x[:]
    assert comm.allreduce(x, out=view) is view
    np.testing.assert_array_equal(x, want)
    zero_d = np.zeros(())
    assert comm.allreduce(1.5, out=zero_d) is zero_d
    assert zero_d == 1.5 * comm.size


def test_allreduce_out_of_a_narrower_kind_is_refused(comm):
    """A float result is not truncated into an integer out (numpy's same_kind rule); x's own dtype is accepted."""
    with pytest.raises(TypeError, match="same_kind"):
        comm.allreduce(np.array([0.4, 0.4]), out=np.zeros(2, np.int64))
    counts = np.zeros(2, bool)  # bool sum counts in int64, but an out of x's dtype is what the docstring promises
    comm.allreduce(np.array([True, False]), out=counts)
    np.testing.assert_array_equal(counts, [True, False])


def test_non_native_byte_order_travels_and_reduces(comm):
    """Big-endian arrays reduce, broadcast and gather correctly and keep their dtype (mpi4py refuses them raw)."""
    x = (np.arange(4) + comm.rank).astype(">f8")
    got = comm.allreduce(x)
    assert got.dtype == np.dtype(">f8")
    np.testing.assert_array_equal(got, np.sum([np.asarray(p, "<f8") for p in gathered(comm, x)], axis=0))
    i = comm.allreduce(np.array([comm.rank], ">i4"), op="max")
    assert i.dtype == np.dtype(">i4") and i[0] == comm.size - 1
    b = comm.bcast(np.arange(3, dtype=">i8") if comm.rank == 0 else None)
    assert b.dtype == np.dtype(">i8") and b.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(comm.allgather(x), np.concatenate(gathered(comm, x)))


@pytest.mark.parametrize("call", ["scan", "exscan", "reduce_scatter", "iallreduce"])
@pytest.mark.parametrize("op", ["argmin", "argmax"])
def test_collectives_without_arg_ops_say_so(comm, call, op):
    """argmin/argmax in a collective that cannot carry them raise a ValueError naming the op, not an mpi4py error."""
    with pytest.raises(ValueError, match=f"{call} does not support op='{op}'"):
        getattr(comm, call)(np.arange(3.0), op=op)


def test_numpy_scalars_come_back_as_numpy_scalars(comm):
    """numpy.float64 and numpy.complex128 (subclasses of float and complex) come back as NumPy scalars, like float32."""
    for value in (np.float64(1.5), np.complex128(1 + 2j), np.float32(1.5), np.int64(2)):
        got = comm.allreduce(value)
        assert type(got) is type(value) and got == value * comm.size
    v, i = comm.allreduce(np.float64(comm.rank), op="argmax")
    assert type(v) is np.float64 and i == comm.size - 1


@pytest.mark.parametrize("op", ["sum", "prod", "min", "max"])
def test_float32_scalars_reduce_in_float32_for_every_op(comm, op):
    """A numpy.float32 scalar (its own fast path) gives what a one-element float32 array gives, as a float32."""
    value = np.float32(comm.rank + 1.5)
    got = comm.allreduce(value, op=op)
    assert type(got) is np.float32 and got == comm.allreduce(np.array([value]), op=op)[0]


@pytest.mark.parametrize("bad", [np.array(["a"]), np.array([object()], dtype=object)])
def test_bcast_of_an_unsupported_value_raises_on_every_rank(comm, bad):
    """When the root's value cannot travel, every rank raises TypeError (the others used to wait forever)."""
    with pytest.raises(TypeError, match="bcast supports"):
        comm.bcast(bad if comm.rank == 0 else None)
    assert comm.bcast(1.0) == 1.0  # still in step


def test_python_int_sums_are_exact(comm):
    """allreduce of Python ints sums exactly, past int64 and past the two-word range, whatever the rank count."""
    assert comm.allreduce(2**62) == comm.size * 2**62
    assert comm.allreduce(-(2**62) - comm.rank) == -comm.size * 2**62 - sum(range(comm.size))
    assert comm.allreduce(2**100 if comm.rank == 0 else -1) == 2**100 - (comm.size - 1)
    total = comm.allreduce(comm.rank)
    assert type(total) is int and total == sum(range(comm.size))


def test_bcast_sends_python_ints_of_any_size(comm):
    """A Python int beyond int64 is pickled, exact (it raised TypeError); 2**63 no longer turns into a uint64."""
    for value in (2**63, 2**70, -(2**100), 2**62):
        got = comm.bcast(value if comm.rank == 0 else None)
        assert type(got) is int and got == value


def test_reduce_and_iallreduce_sum_integer_scalars_exactly(comm):
    """op='sum' of reduce and iallreduce is exact for integer scalars, as allreduce's is (both wrapped as int64)."""
    root = comm.size - 1
    mine = comm.rank == root
    assert comm.reduce(2**62, root=root) == (comm.size * 2**62 if mine else None)
    assert comm.reduce(2**100 if comm.rank == 0 else -1, root=root) == (2**100 - comm.size + 1 if mine else None)
    total = comm.reduce(np.int8(100), root=root)  # a NumPy scalar wraps to its dtype, as in allreduce
    assert total == (np.int8((100 * comm.size + 128) % 256 - 128) if mine else None)
    future = comm.iallreduce(2**62)
    assert future.result() == comm.size * 2**62 and future.done()
    assert comm.iallreduce(-(2**79) + comm.rank).result() == -comm.size * 2**79 + sum(range(comm.size))
    kind = [int, np.int64, np.array][comm.rank % 3]  # the kinds mix, as in allreduce
    got = comm.iallreduce(kind(comm.rank + 1)).result()
    assert got == comm.size * (comm.size + 1) // 2 and type(got) is type(kind(1))
    assert comm.allreduce(2**62, reproducible=True) == comm.size * 2**62  # integer sums are reproducible anyway


def test_iallreduce_of_an_int_beyond_its_words_raises_on_every_rank(comm):
    """iallreduce has no pickled fallback: an int of 2**80 or more on any rank gives OverflowError on every rank."""
    future = comm.iallreduce(2**80 if comm.rank == 0 else 1)
    with pytest.raises(OverflowError, match="allreduce sums any size"):
        future.result()
    assert comm.allreduce(1.0) == comm.size  # still in step


PYTHON_INT_AS_INT64 = {
    "allreduce max": lambda comm, x: comm.allreduce(x, op="max"),
    "allreduce prod": lambda comm, x: comm.allreduce(x, op="prod"),
    "allreduce argmin": lambda comm, x: comm.allreduce(x, op="argmin"),
    "reduce band": lambda comm, x: comm.reduce(x, op="band"),
    "iallreduce min": lambda comm, x: comm.iallreduce(x, op="min").result(),
    "scan max": lambda comm, x: comm.scan(x, op="max"),
    "exscan bor": lambda comm, x: comm.exscan(x, op="bor"),
    "allgather": lambda comm, x: comm.allgather(x),
    "fused min": lambda comm, x: _fused(comm, x, "min"),
}


def _fused(comm, x, op="sum"):
    with comm.fused() as f:
        result = f.allreduce(x, op=op)
    return result.value


@pytest.mark.parametrize("call", sorted(PYTHON_INT_AS_INT64))
def test_python_ints_beyond_int64_raise_overflow_error_where_they_travel_as_int64(comm, call):
    """Outside op='sum', Python ints are int64: beyond it, a clear OverflowError (docs/differences.md, the rule).

    max of 2**70 raised a TypeError saying Python scalars were supported; 2**63 became a uint64 on its rank.
    """
    run = PYTHON_INT_AS_INT64[call]
    for value in (2**63, -(2**63) - 1, 2**70):
        with pytest.raises(OverflowError, match=r"as int64 \(-2\*\*63 to 2\*\*63-1\).*Only op='sum' sums Python"):
            run(comm, value)
    assert comm.allreduce(1.0) == comm.size  # every rank raised before any message: still in step


@pytest.mark.parametrize("value", [3, 2**62, 2**70, -(2**100), True])
def test_python_int_sums_are_exact_in_every_collective(comm, value):
    """One rule: op='sum' of Python ints is exact, any size, in every collective (iallreduce below 2**80); other ops
    take them as int64, wrapping like NumPy (docs/differences.md). scan and fused sums wrapped at int64 once."""
    mine = value * (comm.rank + 1) if not isinstance(value, bool) else value
    everyone = [value * (r + 1) if not isinstance(value, bool) else int(value) for r in range(comm.size)]
    assert comm.allreduce(mine) == sum(everyone)
    assert comm.reduce(mine, root=comm.size - 1) == (sum(everyone) if comm.rank == comm.size - 1 else None)
    assert comm.scan(mine) == sum(everyone[: comm.rank + 1])
    assert comm.exscan(mine) == sum(everyone[: comm.rank])
    assert _fused(comm, mine) == sum(everyone)
    if abs(value) * comm.size < 2**79:
        assert comm.iallreduce(mine).result() == sum(everyone)
    for result in (comm.allreduce(mine), comm.scan(mine), comm.exscan(mine), _fused(comm, mine)):
        assert type(result) is int
    assert comm.allreduce(2**62, op="prod") == (2**62 if comm.size == 1 else 0)  # other ops: int64, wrapping
    assert comm.allreduce(2**62 + comm.rank, op="max") == 2**62 + comm.size - 1  # in range: exact, as int


def test_integer_scalar_sums_mix_kinds_in_scan_and_fused(comm):
    """A Python int on one rank and a NumPy integer on another take the same exact route in scan and fused."""
    mine = (3, np.int64(3), np.int8(3), np.array(3, np.int32), True)[comm.rank % 5]
    assert comm.scan(mine) == sum(int((3, 3, 3, 3, 1)[r % 5]) for r in range(comm.rank + 1))
    total = sum(int((3, 3, 3, 3, 1)[r % 5]) for r in range(comm.size))
    assert _fused(comm, mine) == total
    assert type(_fused(comm, mine)) is type(comm.allreduce(mine))


def test_integer_scalars_of_every_kind_mix_across_ranks(comm):
    """A Python int on one rank and a NumPy integer or a bool on another sum correctly, each in its own type.

    They travel alike; a Python int used to go as three words where a numpy.int64 went as one, which left rank 0
    waiting forever and gave rank 1 its own value.
    """
    kinds = [int, np.int64, np.uint8, bool, np.int32, np.bool_]
    kind = kinds[comm.rank % len(kinds)]
    x = kind(1) if kind in (bool, np.bool_) else kind(comm.rank + 1)
    values = gathered(comm, int(x))
    total = comm.allreduce(x)
    assert total == sum(values)
    expected_type = {bool: int, np.bool_: np.int64}.get(kind, kind)
    assert type(total) is expected_type
    # a NumPy scalar wraps as NumPy does; a Python int stays exact
    big = 2**70 if comm.rank == 0 else np.int64(-(2**62))
    got = comm.allreduce(big)
    exact = 2**70 - (comm.size - 1) * 2**62
    if comm.rank == 0:
        assert got == exact and type(got) is int
    else:
        assert type(got) is np.int64 and int(got) == (exact + 2**63) % 2**64 - 2**63
    small = np.uint8(200) if comm.rank == 0 else 100
    wrapped = comm.allreduce(small)
    exact = 200 + 100 * (comm.size - 1)
    assert wrapped == (exact % 256 if comm.rank == 0 else exact)


def test_zero_d_arrays_and_numpy_scalars_sum_alike(comm):
    """A 0-d array on one rank and a NumPy or Python scalar on another travel alike; each gets its own type back.

    Scalars went as three exact words while a 0-d array went as one: the ranks paired different messages (a hang,
    or RankMismatchError in check mode). The same for np.bool_ scalars against 0-d bool arrays.
    """
    kind = comm.rank % 3
    x = [np.int64(comm.rank + 1), np.array(comm.rank + 1, dtype=np.int64), comm.rank + 1][kind]
    total = comm.allreduce(x)
    exact = comm.size * (comm.size + 1) // 2
    assert total == exact
    assert type(total) is [np.int64, np.ndarray, int][kind]
    if kind == 1:
        assert total.shape == () and total.dtype == np.int64
    flag = [np.bool_(True), np.array(True), True][kind]
    count = comm.allreduce(flag)
    assert count == comm.size and type(count) is [np.int64, np.ndarray, int][kind]
    if kind == 1:
        assert count.dtype == np.int64
    small = np.array(np.uint8(200)) if comm.rank == 0 else np.int8(-100)
    got = comm.allreduce(small)
    exact = 200 - 100 * (comm.size - 1)
    if comm.rank == 0:
        assert type(got) is np.ndarray and got.dtype == np.uint8 and int(got) == exact % 256
    else:
        assert type(got) is np.int8 and int(got) == (exact + 128) % 256 - 128


def test_integer_scalar_sums_with_and_without_out_travel_alike(comm):
    """``out=`` (or a 0-d array summed in place) on one rank and a plain scalar sum on another pair up."""
    x = np.int32(comm.rank + 1)
    exact = comm.size * (comm.size + 1) // 2
    if comm.rank % 3 == 0:
        got = comm.allreduce(x)
        assert type(got) is np.int32 and got == exact
    elif comm.rank % 3 == 1:
        out = np.empty((), np.int32)
        assert comm.allreduce(x, out=out) is out and int(out) == exact
    else:
        y = np.array(comm.rank + 1, dtype=np.int32)
        assert comm.allreduce(y, out=y) is y and int(y) == exact


def test_integer_scalar_against_an_array_is_a_mismatch_in_check_mode(comm):
    """The scalar's three words are not a 3-element int64 array: check mode reports it instead of mixing them."""
    from hpc.mpi.guard import RankMismatchError

    if comm.check and comm.size > 1:
        x = np.int64(5) if comm.rank == 0 else np.arange(3, dtype=np.int64)
        with pytest.raises(RankMismatchError):
            comm.allreduce(x)
    assert comm.allreduce(np.int64(5)) == 5 * comm.size  # and the ranks are still in step


def test_a_user_op_named_sum_is_not_the_exact_integer_sum(comm):
    """Only the built-in sum takes the exact scalar path; a user op that happens to be named "sum" is applied."""
    biggest = mpi.op(lambda a, b: max(a, b), name="sum")
    assert comm.allreduce(np.int64(comm.rank + 1), op=biggest) == comm.size


def test_integer_words_carry_what_the_rank_count_allows():
    """Below 2**80 on up to 8191 ranks (iallreduce(1) on 4096 ranks claimed a rank passed a huge int); fewer bits
    beyond, so the hi words of every rank still sum within int64."""
    from hpc.mpi.collectives import _integer_words

    class Ranks:
        def __init__(self, size):
            self.size = size

    assert _integer_words(Ranks(4096), 1).tolist() == [0, 1, 0]
    assert _integer_words(Ranks(4096), 2**80 - 1)[2] == 0 and _integer_words(Ranks(4096), -(2**80))[2] == 1
    assert _integer_words(Ranks(1 << 20), 2**72 - 1)[2] == 0 and _integer_words(Ranks(1 << 20), 2**72)[2] == 1
    hi = _integer_words(Ranks(1 << 20), 2**72 - 1)[0]
    assert (1 << 20) * int(hi) < 2**63  # every rank at the bound: the hi words' sum fits


def test_a_user_op_named_like_a_built_in_is_still_the_users(comm):
    """Code paths decide on the op, not its name: a function called land is not made to see 0/1, one called prod
    has no identity for exscan, one called max takes complex numbers, one called sum is not reproducible's sum."""

    def land(a, b):
        return a + b

    def sum(a, b):  # noqa: A001 - the point of the test
        return max(a, b)

    assert comm.allreduce(np.array([5]), op=mpi.op(land)).tolist() == [5 * comm.size]
    with pytest.raises(ValueError, match="needs op='sum'; got the user op 'sum'"):
        comm.allreduce(np.array([1.0]), op=mpi.op(sum), reproducible=True)
    prefix = comm.exscan(np.array([5.0]), op=mpi.op(lambda a, b: a + b, name="prod"))
    assert prefix is None if comm.rank == 0 else prefix.tolist() == [5.0 * comm.rank]
    total = comm.allreduce(np.array([1 + 2j]), op=mpi.op(lambda a, b: a + b, name="max"))
    assert total.tolist() == [comm.size * (1 + 2j)]


def test_zero_d_float_arrays_take_the_scalars_way(comm, monkeypatch):
    """A 0-d float array sums with floats and NumPy float scalars on other ranks, each rank getting its own type;
    without checks it is one Allreduce on the fast path (it went the general way, 3-5x a 1-element array's time)."""
    from hpc.mpi import collectives

    general = []
    real = collectives.allreduce
    monkeypatch.setattr(collectives, "allreduce", lambda *a, **k: general.append(a[1]) or real(*a, **k))
    kind = comm.rank % 3
    x = [np.array(0.5 + comm.rank), np.float64(0.5 + comm.rank), 0.5 + comm.rank][kind]
    total = comm.allreduce(x)
    assert total == sum(0.5 + r for r in range(comm.size)) and type(total) is [np.ndarray, np.float64, float][kind]
    single = comm.allreduce(np.array(1.5, np.float32) if comm.rank % 2 else np.float32(1.5))
    assert single == 1.5 * comm.size and single.dtype == np.float32
    if not comm._engine.check and not comm._engine.watchdog:
        assert not [a for a in general if isinstance(a, np.ndarray) and a.dtype.kind == "f"]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("op", ["min", "max"])
def test_min_max_propagate_nan_alike_on_every_rank(comm, op, dtype):
    """A NaN on any rank makes that element NaN on every rank, as numpy.minimum/maximum, through allreduce, reduce,
    iallreduce, scan, exscan, a fused block and Python scalars: MPI's MIN/MAX had dropped or kept it by the order
    the ranks met in (rank 0 got 1.0 and rank 1 NaN; [1, 1, nan] for an array whose every element saw a NaN)."""
    ufunc = np.minimum if op == "min" else np.maximum
    nan_rank = comm.size // 2
    local = np.array([1.0, 2.0, -3.0, np.inf, -0.0, 0.0], dtype) + comm.rank
    if comm.rank == nan_rank:
        local[:3] = np.nan
    parts = gathered(comm, local)
    want = functools.reduce(ufunc, parts)
    for got in (comm.allreduce(local, op=op), comm.iallreduce(local, op=op).result()):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == np.dtype(dtype)
    assert len({g.tobytes() for g in gathered(comm, comm.allreduce(local, op=op))}) == 1  # the same on every rank
    reduced = comm.reduce(local, op=op, root=0)
    if comm.rank == 0:
        np.testing.assert_array_equal(reduced, want)
    np.testing.assert_array_equal(comm.scan(local, op=op), functools.reduce(ufunc, parts[: comm.rank + 1]))
    before = comm.exscan(local, op=op)
    if comm.rank:
        np.testing.assert_array_equal(before, functools.reduce(ufunc, parts[: comm.rank]))
    else:
        assert (before == (np.inf if op == "min" else -np.inf)).all()
    with comm.fused() as f:
        fused = f.allreduce(local, op=op)
    np.testing.assert_array_equal(fused.value, want)
    scalar = float("nan") if comm.rank == nan_rank else float(comm.rank)
    for kind in (float, np.dtype(dtype).type):
        got = comm.allreduce(kind(scalar), op=op)
        assert type(got) is kind and np.isnan(got)
    out = np.empty_like(local)
    assert comm.allreduce(local, op=op, out=out) is out
    np.testing.assert_array_equal(out, want)
    big = np.repeat(local, 3000)  # past the recycling of large results
    np.testing.assert_array_equal(comm.allreduce(big, op=op), np.repeat(want, 3000))


@pytest.mark.parametrize("op", ["min", "max"])
def test_min_max_order_signed_zeros_alike_on_every_rank(comm, op):
    """-0.0 counts below +0.0, so every rank gets the same zero whichever rank holds which."""
    local = np.array([-0.0 if comm.rank % 2 else 0.0, 0.0 if comm.rank % 2 else -0.0])
    got = comm.allreduce(local, op=op)
    results = gathered(comm, got)
    assert len({r.tobytes() for r in results}) == 1
    if comm.size > 1:
        assert np.signbit(got).tolist() == ([True, True] if op == "min" else [False, False])


def test_a_value_refused_on_one_rank_raises_on_every_rank_when_guarded(comm):
    """A Python int beyond int64 on one rank raised there before the collective, while the others entered it (and
    paired with that rank's next call: 1.0's bits read as an int64). Guarded, every rank raises; the ranks that
    passed good values get RankMismatchError."""
    if comm.size < 2 or not comm._engine.check:
        pytest.skip("needs two ranks and HPC_MPI_CHECK=1")
    bad = comm.rank == comm.size - 1
    for call in (lambda v: comm.allreduce(v, op="max"), lambda v: comm.reduce(v, op="max"),
                 lambda v: comm.scan(v, op="max"), comm.allgather):
        with pytest.raises(OverflowError if bad else mpi.RankMismatchError):
            call(2**63 if bad else 1)
    assert comm.allreduce(1.0) == float(comm.size)


def test_small_argument_defects(comm):
    """reduce_scatter of a scalar raises its own error (it had returned [2.] on one rank and [] on another); an op
    given as a list raises the op error; bcast's root gets new memory, as every other rank does."""
    with pytest.raises(ValueError, match="at least one dimension"):
        comm.reduce_scatter(np.float64(1.0))
    with pytest.raises(ValueError, match="op must be one of"):
        comm.allreduce(1.0, op=["sum"])
    x = np.arange(4.0)
    y = comm.bcast(x, root=0)
    assert not np.shares_memory(x, y)
    y[0] = 99.0
    assert x[0] == 0.0


def test_a_user_op_numba_cannot_compile_raises_type_error_on_every_rank(comm):
    """numba compiled the op inside MPI's reduction callback, where its error cannot be caught: the job aborted
    ("exception in user-defined reduction operation"). It is compiled before any rank enters MPI now."""
    bad = mpi.op(lambda a, b: str(a) + b)
    with pytest.raises(TypeError, match=r"cannot combine float64 values: numba could not compile"):
        comm.allreduce(np.arange(3.0), op=bad)
    assert comm.allreduce(1.0) == float(comm.size)
    good = mpi.op(lambda a, b: max(abs(a), abs(b)))
    want = [2.0, 1.0] if comm.size > 1 else [-2.0, 1.0]  # one rank: MPI combines nothing
    np.testing.assert_array_equal(comm.allreduce(np.array([-2.0, 1.0]), op=good), want)


def test_iallreduce_result_called_twice_returns_the_same_value(comm):
    """A float min/max future decoded its integer keys in place on every result() call: the second call returned
    other numbers (-1.5 for -3.0) and changed the array the first call had returned."""
    future = comm.iallreduce(np.array([-1.5 * (comm.rank + 1), 0.0]), op="min")
    first = future.result()
    second = future.result()
    assert second is first and first.tolist() == [-1.5 * comm.size, 0.0]
    scalar = comm.iallreduce(-2.0, op="max")
    assert scalar.result() == scalar.result() == -2.0


def test_bcast_of_an_ndarray_subclass_keeps_it(comm):
    """A masked array or a matrix went through the buffer path as a plain ndarray: the mask was dropped (the masked
    value came back), the matrix became an array. They are pickled, as mpi4py's bcast sends them."""
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    got = comm.bcast(masked if comm.rank == 0 else None)
    assert isinstance(got, np.ma.MaskedArray) and got.mask.tolist() == [False, True, False]
    assert got.filled(0.0).tolist() == [1.0, 0.0, 3.0]
    matrix = comm.bcast(np.matrix([[1, 2]]) if comm.rank == 0 else None)
    assert type(matrix) is np.matrix and matrix.tolist() == [[1, 2]]


def test_bcast_of_a_memmap_goes_as_a_buffer(comm, tmp_path_factory):
    """A memmap (a dataset read on the root with mmap_mode) is data, sent as a buffer: it had been pickled whole
    (ten times slower) once subclasses were pickled for their masks."""
    path = comm.bcast(str(tmp_path_factory.mktemp("bcast") / "x.npy") if comm.rank == 0 else None)
    if comm.rank == 0:
        np.save(path, np.arange(6.0))
    comm.barrier()
    got = comm.bcast(np.load(path, mmap_mode="r") if comm.rank == 0 else None)
    assert type(got) is np.ndarray and got.tolist() == list(range(6))


def test_byte_orders_may_differ_between_ranks_in_check_mode_too(comm):
    """A '>f8' rank and a '<f8' rank send the same native values and sum right without check mode; check mode
    compared the dtypes as written and raised RankMismatchError."""
    x = np.arange(3.0)
    mine = x.astype(">f8") if comm.rank % 2 else x
    assert comm.allreduce(mine).tolist() == (x * comm.size).tolist()
    assert comm.allgather(mine).tolist() == np.tile(x, comm.size).tolist()
    assert comm.allreduce(mine, op="argmax") == (2.0, 2)


def test_a_user_op_on_a_dtype_numba_lacks_is_a_type_error_naming_it(comm):
    """numba has no long double type: its NumbaNotImplementedError escaped instead of the TypeError naming the op."""
    absmax = mpi.op(lambda a, b: max(abs(a), abs(b)), name="absmax")
    with pytest.raises(TypeError, match="op 'absmax' cannot combine float128 values.*numba has no type for float128"):
        comm.allreduce(np.array([-3.0], np.longdouble), op=absmax)
    assert abs(comm.allreduce(np.array([-3.0]), op=absmax)[0]) == 3.0  # one rank: its value, no combining
