"""ml.shard and ml.load_rows: which rows are a rank's, on one process with stand-in communicators of any size."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import ml, mpi


class FakeComm(mpi.Comm):
    """A communicator that only knows its rank and size: all that shard and load_rows read (no MPI calls)."""

    def __init__(self, rank, size):  # no super().__init__: nothing is wrapped, nothing is installed
        self.rank = rank
        self.size = size


def _ranges(n, size):
    return [ml.shard(n, FakeComm(rank, size)) for rank in range(size)]


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 16])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 15, 16, 17, 100, 1001])
def test_shard_covers_every_row_once(n, size):
    """The ranks' ranges are contiguous, in rank order, cover 0..n exactly once and differ in size by at most 1."""
    ranges = _ranges(n, size)
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (_, hi), (lo, _) in zip(ranges, ranges[1:]):
        assert hi == lo
    sizes = [hi - lo for lo, hi in ranges]
    assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in ranges])
    np.testing.assert_array_equal(covered, np.arange(n))
    assert all(isinstance(v, int) for r in ranges for v in r)


@pytest.mark.parametrize("n, size", [(10, 3), (5, 4), (1, 3), (0, 2), (33, 8)])
def test_shard_matches_array_split(n, size):
    """The first n % size ranks take one row more, as numpy.array_split does (ranks past n get empty ranges)."""
    parts = np.array_split(np.arange(n), size)
    for rank, (lo, hi) in enumerate(_ranges(n, size)):
        np.testing.assert_array_equal(np.arange(lo, hi), parts[rank])


def test_shard_fewer_rows_than_ranks():
    """With n < size the first n ranks get one row each and the rest get empty ranges at n."""
    assert _ranges(2, 5) == [(0, 1), (1, 2), (2, 2), (2, 2), (2, 2)]


def test_shard_one_process_and_errors():
    """On one process (comm=None) a rank holds every row; a negative count raises ValueError."""
    assert ml.shard(10) == (0, 10)
    assert ml.shard(0) == (0, 0)
    assert ml.shard(np.int64(7), mpi.world()) == (0, 7)
    with pytest.raises(ValueError, match="non-negative"):
        ml.shard(-1)


@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("shape", [(23, 3), (23,), (5, 2, 2), (2, 4)])
def test_load_rows_reads_this_ranks_rows(tmp_path, shape, mmap):
    """Every rank gets exactly its shard's rows of the .npy file, and together they make the whole array."""
    data = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) * 0.5
    path = tmp_path / "X.npy"
    np.save(path, data)
    size = 3
    parts = []
    for rank in range(size):
        comm = FakeComm(rank, size)
        rows = ml.load_rows(path, comm, mmap=mmap)
        lo, hi = ml.shard(shape[0], comm)
        np.testing.assert_array_equal(rows, data[lo:hi])
        assert rows.dtype == data.dtype and rows.shape[1:] == data.shape[1:]
        parts.append(np.asarray(rows))
    np.testing.assert_array_equal(np.concatenate(parts), data)


def test_load_rows_memory_map_or_copy(tmp_path):
    """mmap=True gives a read-only memory map of the file; mmap=False an ordinary writable array."""
    data = np.arange(40.0).reshape(10, 4)
    path = tmp_path / "X.npy"
    np.save(path, data)
    mapped = ml.load_rows(str(path), FakeComm(1, 2))
    assert isinstance(mapped, np.memmap)
    assert not mapped.flags.writeable
    with pytest.raises(ValueError):
        mapped[0, 0] = 1.0
    copied = ml.load_rows(path, FakeComm(1, 2), mmap=False)
    assert not isinstance(copied, np.memmap)
    assert copied.flags.writeable
    copied[0, 0] = -1.0
    np.testing.assert_array_equal(np.load(path), data)
    np.testing.assert_array_equal(ml.load_rows(path), data)  # one process: every row


def test_load_rows_fewer_rows_than_ranks(tmp_path):
    """A rank beyond the last row gets an empty array with the file's trailing shape and dtype."""
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = tmp_path / "X.npy"
    np.save(path, data)
    rows = ml.load_rows(path, FakeComm(3, 4))
    assert rows.shape == (0, 3) and rows.dtype == np.float32


def test_load_rows_zero_dimensional(tmp_path):
    """A 0-d array has no rows: ValueError naming the file."""
    path = tmp_path / "scalar.npy"
    np.save(path, np.float64(3.0))
    with pytest.raises(ValueError, match="0-d array has no rows"):
        ml.load_rows(path)
    with pytest.raises(ValueError, match="scalar.npy"):
        ml.load_rows(path, FakeComm(0, 2), mmap=False)


def test_load_rows_feeds_a_fit(tmp_path):
    """The rows load_rows returns (a read-only memory map) fit an estimator like the array itself."""
    rng = np.random.default_rng(0)
    data = rng.normal(size=(50, 3))
    path = tmp_path / "X.npy"
    np.save(path, data)
    ours = ml.StandardScaler().fit(ml.load_rows(path))
    np.testing.assert_array_equal(ours.mean_, ml.StandardScaler().fit(data).mean_)


def test_load_rows_refuses_what_is_not_one_npy_array(tmp_path):
    """An .npz archive raised an AttributeError about 'ndim', a text file NumPy's advice about pickles."""
    archive = tmp_path / "rows.npz"
    np.savez(archive, rows=np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"numpy.save \(\.npy\); got a NpzFile"):
        ml.load_rows(archive)
    text = tmp_path / "rows.csv"
    text.write_text("1,2\n3,4\n")
    with pytest.raises(ValueError, match=r"this file is not one"):
        ml.load_rows(text)


def test_load_rows_of_python_objects_says_so(tmp_path):
    """A .npy of dtype object was called "not one [.npy]"."""
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="holds Python objects"):
        ml.load_rows(str(path))
