"""Where parallel iterators start: ``par_iter``, ``par_range``, ``par_chunks``, ``par_bridge``."""

from __future__ import annotations

import threading as _threading
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as _np

from hpc import config as _config
from hpc.iter import indexed as _ix
from hpc.iter.par_iter import ParIter
from hpc.iter.plumbing.plan import Plan

__all__ = ["par_bridge", "par_chunks", "par_iter", "par_range"]

T = TypeVar("T")


def _source(node: _ix.Indexed) -> ParIter[Any]:
    return ParIter(lambda it: Plan(node))


def par_iter(xs: Iterable[T] | ParIter[T]) -> ParIter[T]:
    """Return a parallel iterator over ``xs``.

    Args:
        xs (list, tuple, range, numpy.ndarray or iterable): a list, tuple, range or other sequence is used in
            place (indexed: any chunk is reached without reading the rest); an array yields its entries along axis 0
            and chunks are views; a torch tensor yields its entries along axis 0 too (worker processes get a copy
            of their rows, not the whole storage each view would pickle); any other iterable (set, dict, generator)
            is read into a list first; a ``ParIter`` is returned as it is.

    Example:
        >>> from hpc import par_iter
        >>> par_iter([1, 2, 3]).map(lambda x: x + 1).collect()
        [2, 3, 4]
    """
    if isinstance(xs, ParIter):
        return xs
    if isinstance(xs, _np.ma.MaskedArray):  # its chunks' sums and mins would follow the mask where it falls
        raise TypeError("par_iter of a masked array, whose mask the chunks cannot honour alike: pass xs.compressed() "
                        "or xs.filled(value)")
    if isinstance(xs, _np.ndarray):
        if xs.ndim == 0:
            raise ValueError("par_iter needs an array with at least one dimension; got a 0-d array")
        return _source(_ix.ArraySource(xs))
    if isinstance(xs, range):
        return _source(_ix.RangeSource(xs))
    if _is_tensor(xs):
        if xs.ndim == 0:
            raise ValueError("par_iter needs a tensor with at least one dimension; got a 0-d tensor")
        return _source(_ix.TensorSource(xs))
    if isinstance(xs, Sequence) and _sliceable(xs):
        return _source(_ix.SequenceSource(xs))
    if isinstance(xs, Iterable) or _iterable(xs):  # also the old protocol: __getitem__ from 0 until IndexError
        return _source(_ix.SequenceSource(list(iter(xs))))  # iter: torch's nested tensors refuse len()
    raise TypeError(
        f"par_iter needs a list, tuple, range, numpy array or other iterable; got {type(xs).__name__} {xs!r}"
    )


def _is_tensor(xs: Any) -> bool:
    """Whether ``xs`` is a dense torch tensor (duck-typed: hpc does not import torch), whose views pickle the whole
    storage. Sparse and nested tensors, which slicing or ``len`` refuse, are read into a list as other iterables."""
    return (hasattr(xs, "untyped_storage") and hasattr(xs, "clone") and hasattr(xs, "ndim")
            and str(getattr(xs, "layout", "")) == "torch.strided" and not getattr(xs, "is_nested", False))


def _iterable(xs: Any) -> bool:
    """Whether ``iter(xs)`` works (``collections.abc.Iterable`` misses classes with ``__getitem__`` alone)."""
    try:
        iter(xs)
    except TypeError:
        return False
    return True


def _sliceable(xs: Sequence[Any]) -> bool:
    # a Sequence need not support slices (collections.deque does not): those are read into a list
    if isinstance(xs, list | tuple | str | bytes):
        return True
    try:
        xs[0:0]
    except TypeError:
        return False
    return True


def par_range(start: int, stop: int | None = None, step: int = 1) -> ParIter[int]:
    """Return a parallel iterator over ``range(start, stop, step)`` (``par_range(n)`` counts ``0..n-1``).

    Example:
        >>> from hpc import par_range
        >>> par_range(5).sum(), par_range(10, 0, -3).collect()
        (10, [10, 7, 4, 1])
    """
    rng = range(start) if stop is None else range(start, stop, step)
    return _source(_ix.RangeSource(rng))


def par_chunks(array: Any, size: int) -> ParIter[Any]:
    """Return a parallel iterator of NumPy views of ``size`` rows each (the last may be shorter).

    The numeric fast path: pass the views to an ``@njit(nogil=True)`` kernel with ``.map(kernel)`` and the kernels
    run on pool threads in parallel, with no copy and no per-item Python.

    Example:
        >>> import numpy as np
        >>> from hpc import par_chunks
        >>> par_chunks(np.arange(10.0), 4).map(lambda v: float(v.sum())).collect()
        [6.0, 22.0, 17.0]
    """
    count = _config.whole_number(size)  # a NumPy int too
    if count is None or count < 1:
        raise ValueError(f"size must be a positive int; got {size!r}")
    size = count
    if isinstance(array, _np.ma.MaskedArray):  # asarray would drop the mask without a word
        raise TypeError("par_chunks of a masked array, whose mask the chunks would lose: pass array.compressed() "
                        "or array.filled(value)")
    arr = _np.asarray(array)
    if arr.ndim == 0:
        raise ValueError("par_chunks needs an array with at least one dimension; got a 0-d array")
    return _source(_ix.ArrayChunksSource(arr, size))


def par_bridge(iterable: Iterable[T]) -> ParIter[T]:
    """Return a parallel iterator over any iterable (a generator, a file, a queue reader).

    The iterable is read on the calling thread when the first terminal runs (once; later terminals reuse what was
    read), then processed in parallel. ``collect()`` keeps the order in which the iterable produced the items. If
    reading it raised, that terminal raises the error, and every later one raises ``RuntimeError`` (caused by that
    error): the items read before it are not a complete input, and the iterable cannot be read again.

    Note:
        Unlike Rayon's ``par_bridge``, which pulls items lazily from worker threads, the whole iterable is read
        first: it must be finite.

    Example:
        >>> from hpc import par_bridge
        >>> par_bridge(x * x for x in range(5)).collect()
        [0, 1, 4, 9, 16]
    """
    if not (isinstance(iterable, Iterable) or _iterable(iterable)):
        raise TypeError(f"par_bridge needs an iterable; got {type(iterable).__name__} {iterable!r}")
    lock = _threading.Lock()
    read: list[list[T]] = []
    failed: list[BaseException] = []

    def build(it: ParIter[T]) -> Plan:
        with lock:
            if failed:
                raise RuntimeError(
                    "par_bridge: reading the iterable failed in an earlier terminal, and it cannot be read again"
                ) from failed[0]
            if not read:
                try:
                    read.append(list(iterable))
                except BaseException as exc:
                    failed.append(exc)
                    raise
        return Plan(_ix.SequenceSource(read[0]))

    return ParIter(build)
