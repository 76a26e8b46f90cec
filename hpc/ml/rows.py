"""Which rows are this rank's: ``shard`` gives the range, ``load_rows`` reads only those rows of a ``.npy`` file."""

from __future__ import annotations

import os as _os
from typing import Any

import numpy as _np

__all__ = ["load_rows", "shard"]


def shard(n_rows: int, comm: Any = None) -> tuple[int, int]:
    """Return ``(lo, hi)``: this rank's rows of ``n_rows``, contiguous, in rank order, sizes differing by at most 1.

    Local; no communication. The first ``n_rows % size`` ranks take one row more, as ``numpy.array_split`` does.

    Example:
        >>> from hpc import ml
        >>> ml.shard(10)          # one process: every row
        (0, 10)
    """
    from hpc import mpi

    comm = mpi.as_comm(comm)
    n = int(n_rows)
    if n < 0:
        raise ValueError(f"n_rows must be non-negative; got {n_rows}")
    base, extra = divmod(n, comm.size)
    lo = comm.rank * base + min(comm.rank, extra)
    return lo, lo + base + (comm.rank < extra)


def load_rows(path: str | _os.PathLike[str], comm: Any = None, *, mmap: bool = True) -> _np.ndarray:
    """Return this rank's rows (:func:`shard` of axis 0) of the ``.npy`` array at ``path``, memory-mapped.

    Only the pages of this rank's rows are read from disk (copy the result to pin it in memory). Local; every rank
    opens the file itself.

    Args:
        path: a ``.npy`` file (``numpy.save``), at least 1-D.
        comm: the ranks among which the rows are split (default ``mpi.world()``).
        mmap (bool): return a read-only memory map (True) or an in-memory copy of the rows (False).
    """
    try:
        array = _np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:  # NumPy's message speaks of pickles for any file that is not .npy or .npz
        if "Python objects" in str(exc):  # a .npy of objects: the rows must be numbers
            raise ValueError(f"{path}: load_rows reads rows of numbers; this .npy holds Python objects (dtype "
                             "object): save a numeric array") from None
        raise ValueError(f"{path}: load_rows reads one array written by numpy.save (.npy); this file is not one "
                         f"({exc})") from None
    if not isinstance(array, _np.ndarray):  # an .npz archive holds several arrays: which one is the rows?
        raise ValueError(f"{path}: load_rows reads one array written by numpy.save (.npy); got a "
                         f"{type(array).__name__} (an .npz archive: save the rows with numpy.save)")
    if array.ndim == 0:
        raise ValueError(f"{path}: a 0-d array has no rows")
    lo, hi = shard(array.shape[0], comm)
    rows = array[lo:hi]
    return rows if mmap else _np.array(rows)
