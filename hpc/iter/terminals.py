"""Terminals: how each consuming method folds one chunk, combines two partial results, and finishes.

A terminal sees each chunk's items once (``fold``), in order within the chunk. Partials are combined in the
fixed tree of :func:`~hpc.iter.plumbing.chunking.tree_reduce`, keyed by chunk index, so the result never depends
on which worker ran which chunk. ``SKIPPED`` marks a chunk that a short-circuiting terminal did not need.
"""

from __future__ import annotations

import functools as _functools
import itertools as _itertools
import math as _math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as _np

from hpc.iter import indexed as _ix
from hpc.iter.indexed import RangeSource as _RangeSource
from hpc.iter.plumbing.chunking import tree_reduce
from hpc.iter.plumbing.context import ExecContext
from hpc.iter.plumbing.plan import stop_iteration_error

__all__ = ["SKIPPED", "Terminal"]


class _Skipped:
    def __repr__(self) -> str:
        return "SKIPPED"

    def __reduce__(self) -> str:
        return "SKIPPED"  # pickles as the module-level singleton


SKIPPED: Any = _Skipped()


class _NoItem:
    """No item yet in a min/max partial: not ``None``, which is an item (``min([3, None])`` raises, as the builtin)."""

    def __repr__(self) -> str:
        return "_NO_ITEM"

    def __reduce__(self) -> str:
        return "_NO_ITEM"  # pickles as the module-level singleton (partials come back from worker processes)


_NO_ITEM: Any = _NoItem()

#: NumPy's sum and prod accumulate these in 64 bits (np.sum of uint8 data is a uint64): the per-item path does too
_WIDENED = {"b": _np.int64, "i": _np.int64, "u": _np.uint64}


def _count(items: Iterable[Any]) -> int:
    if isinstance(items, range):
        return _RangeSource(items).length  # len() of a range stops at sys.maxsize
    if hasattr(items, "__len__"):
        return len(items)  # type: ignore[arg-type]
    n = 0
    for _ in items:
        n += 1
    return n


def _is_vector(items: Any) -> bool:
    return isinstance(items, _np.ndarray) and items.ndim == 1


def _is_ordered_vector(items: Any) -> bool:
    # NumPy's minimum/maximum have no loop for strings and bytes (builtins.min has), and on object arrays they
    # handle NaN otherwise than the builtins (np.max of [2.0, nan, 5.0] is 2.0): those go item by item
    return _is_vector(items) and items.dtype.kind in "biufmM"


class Terminal:
    """Base of terminals. Subclasses set ``fold``, ``combine`` and ``empty``, and optionally ``final``."""

    #: stop starting chunks once ``ctx.cancelled`` is set (any, all, find_any)
    short_circuit = False
    #: skip chunks after the lowest chunk known to hold a match (find_first, position_first)
    positional_first = False
    #: whether the terminal exists for its side effects (for_each)
    side_effects = False
    per_item_python = False

    def fold(self, items: Iterable[Any], ctx: ExecContext, chunk: int) -> Any:
        raise NotImplementedError

    def combine(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def empty(self) -> Any:
        return None

    def final(self, value: Any) -> Any:
        return value

    def finish(self, partials: list[Any]) -> Any:
        kept = [p for p in partials if p is not SKIPPED]
        try:  # empty() and combine() may call the user's functions too (reduce's identity and op)
            if not kept:
                return self.empty()
            return self.final(tree_reduce(kept, self.combine))
        except StopIteration as stop:
            raise stop_iteration_error(stop) from stop


class Collect(Terminal):
    def fold(self, items, ctx, chunk):
        return list(items)

    def finish(self, partials):
        return list(_itertools.chain.from_iterable(partials))


class ToNumpy(Terminal):
    def __init__(self, dtype: Any = None, row: tuple[tuple[int, ...], Any] | None = None) -> None:
        #: ``row``: the shape and dtype of one item, where known without running anything (see :func:`array_row`)
        self.dtype, self.row = dtype, row

    def fold(self, items, ctx, chunk):
        return items if isinstance(items, _np.ndarray) else list(items)

    def finish(self, partials):
        if not partials and self.row is not None:
            shape, dtype = self.row
            return _np.empty((0, *shape), dtype=dtype if self.dtype is None else self.dtype)
        if partials and all(isinstance(p, _np.ndarray) for p in partials):
            return _np.concatenate(partials).astype(self.dtype, copy=False) if self.dtype else _np.concatenate(partials)
        return _np.asarray(list(_itertools.chain.from_iterable(partials)), dtype=self.dtype)


def array_row(plan: Any) -> tuple[tuple[int, ...], Any] | None:
    """The shape and dtype of an item when the plan's items are an array's rows unchanged (an array source, maybe
    through take, skip or step_by), else None: after a user's function they are unknown without calling it."""
    node = plan.node
    if plan.stages:
        return None
    while isinstance(node, _ix.Skip | _ix.Take | _ix.StepBy):
        node = node.base
    if isinstance(node, _ix.ArraySource):
        return tuple(node.array.shape[1:]), node.array.dtype
    return None


class ForEach(Terminal):
    side_effects = True
    per_item_python = True

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def fold(self, items, ctx, chunk):
        fn = self.fn
        for item in items:
            fn(item)
        return None

    def finish(self, partials):
        return None


class Reduce(Terminal):
    per_item_python = True

    def __init__(self, identity: Any, op: Callable[[Any, Any], Any]) -> None:
        self.identity, self.op = identity, op

    def _start(self) -> Any:
        return self.identity() if callable(self.identity) else self.identity

    def fold(self, items, ctx, chunk):
        return _functools.reduce(self.op, items, self._start())

    def combine(self, a, b):
        return self.op(a, b)

    def empty(self):
        return self._start()


class ReduceWith(Terminal):
    per_item_python = True

    def __init__(self, op: Callable[[Any, Any], Any]) -> None:
        self.op = op

    def fold(self, items, ctx, chunk):
        return _reduce_or_skip(self.op, items)

    def combine(self, a, b):
        return self.op(a, b)


def _reduce_or_skip(op: Callable[[Any, Any], Any], items: Iterable[Any]) -> Any:
    it = iter(items)
    for first in it:
        return _functools.reduce(op, it, first)
    return SKIPPED


def _narrow_numpy_int(value: Any) -> bool:
    """Whether ``value`` is a NumPy integer or bool scalar of fewer than 64 bits (one that np.sum would widen)."""
    return isinstance(value, _np.generic) and value.dtype.kind in _WIDENED and value.dtype.itemsize < 8


def _widened(fold: Callable[..., Any], items: Any, start: int) -> Any:
    """``fold(items, start)`` (the builtin sum or math.prod), widened as ``np.sum``/``np.prod`` widen where the result
    came out a NumPy integer of fewer than 64 bits: summed again from a 64-bit start (int64, uint64 for unsigned),
    before anything wrapped. The test is on the result, which is narrow whenever any item is (Python ints beside
    them are weak), so every chunking of the same items widens alike: an identity ``map`` before ``sum`` had changed a
    uint8 array's sum from 200000 to a wrapped 64."""
    if not isinstance(items, list | tuple):
        items = list(items)  # read twice where it must be widened
    try:
        with _np.errstate(over="raise"):  # a narrow sum that wraps says nothing; one of floats warns, below
            total = fold(items, start)
    except FloatingPointError:
        with _np.errstate(over="ignore"):
            total = fold(items, start)  # only its type
        if not _narrow_numpy_int(total):
            return fold(items, start)  # floats that overflowed: NumPy's warning, as the caller's errstate says
    if _narrow_numpy_int(total):
        return fold(items, _WIDENED[total.dtype.kind](start))
    return total


class Sum(Terminal):
    def fold(self, items, ctx, chunk):
        if _is_vector(items):
            return items.sum()
        return _widened(sum, items, 0)

    def combine(self, a, b):
        return a + b

    def empty(self):
        return 0


class Product(Terminal):
    def fold(self, items, ctx, chunk):
        if _is_vector(items):
            return items.prod()
        return _widened(lambda values, start: _math.prod(values, start=start), items, 1)

    def combine(self, a, b):
        return a * b

    def empty(self):
        return 1


class _Extreme(Terminal):
    """min/max with the builtins' answer for any chunking, NaN included.

    ``builtins.min`` keeps a NaN that comes first and passes over any later one (every comparison with NaN is
    False), so its answer is "the first item if it is NaN, else the least of the other non-NaN items". That splits
    into an associative partial per chunk: ``(the chunk's first item if NaN, else _NO_ITEM; the chunk's best non-NaN
    item or _NO_ITEM)``. Combining keeps the left NaN and the better best (the left one on ties, as the builtins).
    ``None`` is an item like any other (compared, so ``min([3, None])`` raises ``TypeError`` as the builtin does).
    Items must be totally ordered (numbers, strings): for sets, whose ``<`` is a partial order, the answer can differ
    from the builtins' left-to-right one.
    """

    _nan_skipping: Any = None  # np.fmin / np.fmax: a vectorized reduction that passes over NaNs
    _plain: Any = None  # np.min / np.max

    def _better(self, a: Any, b: Any) -> bool:
        raise NotImplementedError

    def _rank(self, entry: Any) -> Any:
        """What a partial's entry is compared by: the item itself here, its key in :class:`MinByKey`."""
        return entry

    def _answer(self, entry: Any) -> Any:
        """What the entry the reduction picked gives back: the item itself here, the item of a (key, item) pair in
        :class:`MinByKey`."""
        return entry

    def _builtin(self, items: Any) -> Any:
        raise NotImplementedError

    def fold(self, items, ctx, chunk):
        if _is_ordered_vector(items):
            if not items.size:
                return SKIPPED
            if items.dtype.kind not in "fmM":  # NaN and NaT (datetimes, timedeltas) are unordered, as in builtins
                return (_NO_ITEM, self._plain(items))
            first = items[0]
            best = self._nan_skipping.reduce(items)  # NaN only when every item is NaN
            return (first if first != first else _NO_ITEM, _NO_ITEM if best != best else best)
        it = iter(items)
        first = next(it, SKIPPED)
        if first is SKIPPED:
            return SKIPPED
        if first == first:  # the usual case: one C-level pass, later NaNs passed over by the builtin itself
            return (_NO_ITEM, self._builtin(_itertools.chain((first,), it)))
        return (first, self._builtin((v for v in it if v == v), default=_NO_ITEM))

    def combine(self, a, b):
        if b[1] is _NO_ITEM or (a[1] is not _NO_ITEM and not self._better(self._rank(b[1]), self._rank(a[1]))):
            return a
        return (a[0], b[1])

    def final(self, value):
        head, best = value
        return self._answer(head if head is not _NO_ITEM else best)


class Min(_Extreme):
    _nan_skipping, _plain = _np.fmin, staticmethod(_np.min)
    _builtin = staticmethod(min)

    def _better(self, a, b):
        return a < b


class Max(_Extreme):
    _nan_skipping, _plain = _np.fmax, staticmethod(_np.max)
    _builtin = staticmethod(max)

    def _better(self, a, b):
        return a > b


class MinByKey(_Extreme):
    """The item of the smallest key, as ``builtins.min(items, key=key)``, for any chunking.

    The builtin compares each key with the best so far: an unordered key (NaN, NaT) is never better, and one on the
    very first item is never beaten. Each chunk gives ``((key, item) of its first item if that key is unordered, else
    _NO_ITEM; (key, item) of its best ordered key or _NO_ITEM)``: :class:`_Extreme`'s partial, of (key, item) pairs
    compared by their keys, combined as there.
    """

    per_item_python = True

    def __init__(self, key: Callable[[Any], Any]) -> None:
        self.key = key

    def _better(self, a: Any, b: Any) -> bool:
        return a < b

    def fold(self, items, ctx, chunk):
        key, better = self.key, self._better
        it = iter(items)
        first = next(it, SKIPPED)
        if first is SKIPPED:
            return SKIPPED
        k = key(first)
        head = (k, first) if _unordered(k) else _NO_ITEM
        best = _NO_ITEM if head is not _NO_ITEM else (k, first)
        for item in it:
            k = key(item)
            if best is _NO_ITEM:
                if not _unordered(k):
                    best = (k, item)
            elif better(k, best[0]):
                best = (k, item)
        return (head, best)

    def _rank(self, entry: Any) -> Any:
        return entry[0]

    def _answer(self, entry: Any) -> Any:
        return entry[1]


class MaxByKey(MinByKey):
    """The item of the largest key, as ``builtins.max(items, key=key)``, for any chunking (see :class:`MinByKey`)."""

    def _better(self, a: Any, b: Any) -> bool:
        return a > b


def _unordered(key: Any) -> bool:
    """Whether ``key`` compares false with itself (NaN, NaT): the builtins never pick it unless it comes first."""
    try:
        return bool(key != key)
    except Exception:  # keys whose comparison gives no truth value (arrays) are ordered as far as we can tell
        return False


class Count(Terminal):
    def fold(self, items, ctx, chunk):
        return _count(items)

    def combine(self, a, b):
        return a + b

    def empty(self):
        return 0


class _Predicate(Terminal):
    per_item_python = True

    def __init__(self, predicate: Callable[[Any], Any]) -> None:
        self.predicate = predicate


class Any_(_Predicate):
    short_circuit = True

    def fold(self, items, ctx, chunk):
        predicate = self.predicate
        hit = any(predicate(item) for item in items)  # not map(): a StopIteration from it would read as "no more"
        if hit:
            ctx.cancelled = True
        return hit

    def combine(self, a, b):
        return a or b

    def empty(self):
        return False


class All(_Predicate):
    short_circuit = True

    def fold(self, items, ctx, chunk):
        predicate = self.predicate
        ok = all(predicate(item) for item in items)
        if not ok:
            ctx.cancelled = True
        return ok

    def combine(self, a, b):
        return a and b

    def empty(self):
        return True


class FindAny(_Predicate):
    short_circuit = True

    def fold(self, items, ctx, chunk):
        predicate = self.predicate
        for item in items:
            if predicate(item):
                ctx.cancelled = True
                return item
        return SKIPPED

    def combine(self, a, b):
        return a


class FindFirst(_Predicate):
    positional_first = True

    def fold(self, items, ctx, chunk):
        predicate = self.predicate
        for item in items:
            if predicate(item):
                ctx.note_found(chunk)
                return item
        return SKIPPED

    def combine(self, a, b):
        return a


class FindLast(_Predicate):
    def fold(self, items, ctx, chunk):
        last, predicate = SKIPPED, self.predicate
        for item in items:
            if predicate(item):
                last = item
        return last

    def combine(self, a, b):
        return b


class PositionFirst(_Predicate):
    positional_first = True

    def fold(self, items, ctx, chunk):
        n = 0
        predicate = self.predicate
        for item in items:
            if predicate(item):
                ctx.note_found(chunk)
                return (n, n)
            n += 1
        return (n, None)

    def combine(self, a, b):
        if a[1] is not None:
            return a
        return (a[0] + b[0], None if b[1] is None else a[0] + b[1])

    def final(self, value):
        return value[1]


class Partition(_Predicate):
    def fold(self, items, ctx, chunk):
        yes: list[Any] = []
        no: list[Any] = []
        predicate = self.predicate
        for item in items:
            (yes if predicate(item) else no).append(item)
        return yes, no

    def finish(self, partials):
        yes = list(_itertools.chain.from_iterable(p[0] for p in partials))
        no = list(_itertools.chain.from_iterable(p[1] for p in partials))
        return yes, no


class Unzip(Terminal):
    def fold(self, items, ctx, chunk):
        a: list[Any] = []
        b: list[Any] = []
        for x, y in items:
            a.append(x)
            b.append(y)
        return a, b

    def finish(self, partials):
        a = list(_itertools.chain.from_iterable(p[0] for p in partials))
        b = list(_itertools.chain.from_iterable(p[1] for p in partials))
        return a, b
