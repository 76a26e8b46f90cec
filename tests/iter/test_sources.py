"""Sources: par_iter, par_range, par_chunks, par_bridge."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import par_bridge, par_chunks, par_iter, par_range


def test_par_iter_accepts_list_tuple_range_array_set_and_dict(backend):
    """par_iter takes every kind of input the contract names and keeps its order."""
    assert par_iter([3, 1, 2]).with_backend(backend).collect() == [3, 1, 2]
    assert par_iter((3, 1, 2)).with_backend(backend).collect() == [3, 1, 2]
    assert par_iter(range(2, 9, 3)).with_backend(backend).collect() == [2, 5, 8]
    assert par_iter({"a": 1, "b": 2}).with_backend(backend).collect() == ["a", "b"]
    assert sorted(par_iter({5, 6}).with_backend(backend).collect()) == [5, 6]
    assert par_iter("abc").with_backend(backend).collect() == ["a", "b", "c"]


def test_par_iter_over_2d_array_yields_rows(backend):
    """An array is iterated along axis 0, like iterating it in Python."""
    a = np.arange(12).reshape(4, 3)
    rows = par_iter(a).with_backend(backend).collect()
    assert len(rows) == 4 and all((r == a[i]).all() for i, r in enumerate(rows))
    assert (par_iter(a).with_backend(backend).sum() == a.sum(axis=0)).all()


def test_par_range_matches_range(backend):
    """par_range has range's three forms."""
    assert par_range(5).with_backend(backend).collect() == list(range(5))
    assert par_range(2, 7).with_backend(backend).collect() == list(range(2, 7))
    assert par_range(10, 0, -3).with_backend(backend).collect() == list(range(10, 0, -3))


def test_par_chunks_gives_views_of_size_rows(backend):
    """par_chunks yields consecutive row blocks; the last one may be shorter."""
    a = np.arange(10.0)
    sums = par_chunks(a, 4).with_backend(backend).map(lambda v: float(v.sum())).collect()
    assert sums == [6.0, 22.0, 17.0]


def test_par_chunks_views_share_memory_on_threads():
    """On threads the chunks are views of the input (no copy), so a kernel may write through them."""
    a = np.zeros(1000)

    def fill(view):
        view[:] = 1.0
        return None

    par_chunks(a, 64).with_backend("threads").for_each(fill)
    assert a.sum() == 1000.0


def test_par_bridge_over_a_generator_keeps_order(backend):
    """par_bridge reads any iterable (a generator here) and collect keeps its order."""
    it = par_bridge(x * x for x in range(1000)).with_backend(backend)
    assert it.collect() == [x * x for x in range(1000)]
    assert it.sum() == sum(x * x for x in range(1000))  # a second terminal reuses what was read


@pytest.mark.parametrize("bad", [5, None, 3.5])
def test_par_iter_rejects_non_iterables(bad):
    """A non-iterable input gives a TypeError that names its type."""
    with pytest.raises(TypeError, match=type(bad).__name__):
        par_iter(bad)


def test_bad_sizes_raise_clear_errors():
    """Sizes that make no sense are refused when the adapter is built, naming the value."""
    with pytest.raises(ValueError, match="size must be a positive int; got 0"):
        par_chunks(np.arange(3), 0)
    with pytest.raises(ValueError, match="step must be a positive int; got 0"):
        par_range(3).step_by(0)
    with pytest.raises(ValueError, match="chunk size must be a positive int"):
        par_range(3).chunks(-1)
    with pytest.raises(ValueError, match="n must be a non-negative int; got -2"):
        par_range(3).skip(-2)
    with pytest.raises(ValueError, match="backend must be one of"):
        par_range(3).with_backend("gpu")
    with pytest.raises(ValueError, match="0-d"):
        par_iter(np.zeros(()))


def test_empty_and_single_inputs(backend):
    """Empty and one-element inputs give the documented results on every terminal."""
    e = par_iter([]).with_backend(backend)
    assert e.collect() == [] and e.sum() == 0 and e.product() == 1 and e.count() == 0
    assert e.min() is None and e.max() is None and e.reduce_with(max) is None
    assert e.reduce(0, lambda a, b: a + b) == 0
    assert e.any(bool) is False and e.all(bool) is True
    assert e.find_first(bool) is None and e.position_first(bool) is None
    assert e.partition(bool) == ([], []) and e.unzip() == ([], [])
    assert e.to_numpy().shape == (0,)
    one = par_iter([7]).with_backend(backend)
    assert one.collect() == [7] and one.sum() == 7 and one.min() == 7 and one.reduce_with(max) == 7
    assert one.find_last(lambda x: x == 7) == 7 and one.position_first(lambda x: x == 7) == 0


def test_sequences_without_slicing_are_read_into_a_list(backend):
    """A Sequence that cannot be sliced (collections.deque) works like list(xs)."""
    import collections

    d = collections.deque(range(1000))
    assert par_iter(d).map(lambda x: x * 2).with_backend(backend).collect() == [x * 2 for x in d]


def test_ranges_longer_than_sys_maxsize():
    """par_range of more than sys.maxsize items works where the adapters only touch a few of them."""
    n = 2**64
    assert par_range(n).take(3).collect() == [0, 1, 2]
    assert par_range(n).skip(n - 2).collect() == [n - 2, n - 1]
    assert par_range(n, 0, -(2**62)).collect() == list(range(n, 0, -(2**62)))
    assert par_range(10**30).step_by(10**28).count() == 100
    assert par_iter(range(n)).enumerate().skip(n - 1).collect() == [(n - 1, n - 1)]
    assert par_range(2**80).count() == 2**80  # each chunk holds more than sys.maxsize items


def test_min_and_max_of_string_and_bytes_arrays_match_builtins(backend):
    """min/max of a 1-D str or bytes array give what builtins.min/max give (NumPy has no loop for them)."""
    for a in (np.array(["b", "a", "c"] * 100), np.array([b"x", b"a", b"q"] * 100)):
        it = par_iter(a).with_backend(backend)
        assert it.min() == min(a) and it.max() == max(a)


def _fails_at_five():
    for i in range(10):
        if i == 5:
            raise OSError("transient")
        yield i


def test_par_bridge_whose_read_failed_raises_again_never_a_truncated_result():
    """The first terminal raises the read's error; later ones raise a RuntimeError caused by it, where they used to
    read on from the half-read iterable and return a truncated (here empty) result."""
    it = par_bridge(_fails_at_five())
    with pytest.raises(OSError, match="transient"):
        it.count()
    for again in (it.collect, it.count, lambda: it.map(str).collect()):
        with pytest.raises(RuntimeError, match="earlier terminal") as info:
            again()
        assert isinstance(info.value.__cause__, OSError)


def test_an_empty_array_gives_to_numpy_its_row_shape_and_dtype():
    """With nothing run, to_numpy still knows the items are the array's rows: the empty result has their shape and
    the array's dtype (it was shape (0,) float64); after a function they are unknown and it stays (0,) float64."""
    empty = par_iter(np.zeros((0, 3), dtype=np.int32))
    assert empty.to_numpy().shape == (0, 3) and empty.to_numpy().dtype == np.int32
    assert empty.to_numpy(np.float32).shape == (0, 3) and empty.to_numpy(np.float32).dtype == np.float32
    assert par_iter(np.zeros(0, dtype=np.int32)).to_numpy().dtype == np.int32
    full = par_iter(np.ones((6, 3), dtype=np.int32))
    for run in (full.take(0), full.skip(6), full.step_by(2).take(0)):
        out = run.to_numpy()
        assert out.shape == (0, 3) and out.dtype == full.to_numpy().dtype == np.int32
    for run in (empty.map(lambda r: r), empty.map_chunks(lambda c: c), full.filter(lambda r: False)):
        assert run.to_numpy().shape == (0,) and run.to_numpy().dtype == np.float64


def test_numpy_ints_are_counts_as_range_takes_them():
    """np.int64(2) is a positive int: step_by, take, skip, chunks, with_min_len and par_chunks refused it."""
    two = np.int64(2)
    assert par_range(8).step_by(two).collect() == [0, 2, 4, 6]
    assert par_range(8).take(two).collect() == [0, 1] and par_range(4).skip(two).collect() == [2, 3]
    assert par_range(5).chunks(two).collect() == [[0, 1], [2, 3], [4]]
    assert par_range(5).with_min_len(two).with_max_len(np.int32(3)).sum() == 10
    assert [c.tolist() for c in par_chunks(np.arange(3), two).collect()] == [[0, 1], [2]]
    for bad in (True, 2.0, np.float64(2)):
        with pytest.raises(ValueError, match="step must be a positive int"):
            par_range(8).step_by(bad)


def test_masked_arrays_are_refused_and_old_style_sequences_taken():
    """A masked array's chunks gave masked or the right value depending on where the mask fell; a class iterable
    only through __getitem__ (which list() and sum() take) was refused."""
    masked = np.ma.masked_array(np.ones(10), mask=[True] * 4 + [False] * 6)
    with pytest.raises(TypeError, match=r"masked array.*compressed\(\)"):
        par_iter(masked)
    with pytest.raises(TypeError, match="masked array"):
        par_chunks(masked, 2)

    class Old:
        def __getitem__(self, i):
            if i >= 3:
                raise IndexError
            return i * 10

    assert par_iter(Old()).collect() == [0, 10, 20] and par_bridge(Old()).sum() == 30


class _Storage:
    def __init__(self, values: list[int]) -> None:
        self.values = values


class _TensorLike:
    """What par_iter sees of a torch tensor: views share one storage, and a view pickles all of it (plain pickling
    of the reference, as torch's tensors do); ``clone`` copies the view's own elements."""

    ndim = 1
    layout = "torch.strided"

    def __init__(self, storage: _Storage, lo: int, hi: int) -> None:
        self.storage, self.lo, self.hi = storage, lo, hi

    def untyped_storage(self) -> _Storage:
        return self.storage

    def clone(self) -> _TensorLike:
        return _TensorLike(_Storage(self.storage.values[self.lo : self.hi]), 0, self.hi - self.lo)

    def __len__(self) -> int:
        return self.hi - self.lo

    def __getitem__(self, key: int | slice) -> _TensorLike | list[_TensorLike]:
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return _TensorLike(self.storage, self.lo + start, self.lo + max(start, stop))
            return [self[i] for i in range(start, stop, step)]
        return _TensorLike(self.storage, self.lo + key, self.lo + key + 1)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def value(self) -> int:
        return self.storage.values[self.lo]


def test_a_tensor_source_sends_worker_processes_its_rows_not_its_whole_storage(backend):
    """par_iter(torch tensor) took it as an iterable of views, each pickling the whole storage: a processes run sent
    the input once per item (20,000 float32 took 14 s and 1.2 GB, 100,000 were killed at 17 GB). Items are still the
    tensor's own views, in order, on every backend."""
    n = 3000
    tensor = _TensorLike(_Storage(list(range(n))), 0, n)
    run = par_iter(tensor).with_backend(backend)
    assert run.map(lambda v: v.value()).collect() == list(range(n))
    assert run.step_by(7).map(lambda v: v.value()).collect() == list(range(0, n, 7))
    assert run.map(lambda v: type(v).__name__).collect() == ["_TensorLike"] * n
    largest = run.map(lambda v: len(v.untyped_storage().values)).max()
    assert largest == n if backend in ("serial", "threads") else largest < n  # in place here, each group's rows there


class _SparseLike(_TensorLike):
    """A sparse torch tensor: iterating it works, slicing it does not (torch: "Sparse CSR tensors do not have
    strides")."""

    layout = "torch.sparse_csr"

    def __getitem__(self, key: int | slice) -> _TensorLike | list[_TensorLike]:
        if isinstance(key, slice):
            raise NotImplementedError("sparse tensors cannot be sliced")
        return super().__getitem__(key)


def test_a_sparse_tensor_is_read_into_a_list_as_other_iterables(backend):
    """Only dense tensors are sliced in place: par_iter(sparse tensor) raised NotImplementedError on every backend."""
    sparse = _SparseLike(_Storage([5, 6, 7]), 0, 3)
    assert par_iter(sparse).with_backend(backend).map(lambda v: v.value()).collect() == [5, 6, 7]
