"""Indexed nodes: sources and the adapters that keep every item's position known.

An indexed node has a ``length`` and yields the items at positions ``range(start, stop, step)`` on demand, so any
chunk can be produced on any worker without touching the rest of the input. ``restricted(start, stop)`` returns an
equivalent node that holds only what positions ``start..stop`` need, re-indexed from 0: the processes backend ships
that to a worker instead of the whole input.
"""

from __future__ import annotations

import itertools as _itertools
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hpc.iter.plumbing.context import ExecContext

_keys = _itertools.count()

__all__ = [
    "Indexed",
    "SequenceSource",
    "RangeSource",
    "ArraySource",
    "ArrayChunksSource",
    "Map",
    "MapInit",
    "Inspect",
    "Enumerate",
    "Zip",
    "Chain",
    "StepBy",
    "Skip",
    "Take",
    "Chunks",
]


class Indexed:
    """Base of indexed nodes."""

    length: int = 0
    #: whether the node calls a Python function per item (decides the ``auto`` backend)
    per_item_python = False
    #: whether the node exists for its side effects (``inspect``), which only threads and serial make visible
    side_effects = False

    def children(self) -> tuple[Indexed, ...]:
        return ()

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        raise NotImplementedError

    def restricted(self, start: int, stop: int) -> Indexed:
        raise NotImplementedError

    def walk(self) -> Iterable[Indexed]:
        """Yield this node and every node below it."""
        yield self
        for child in self.children():
            yield from child.walk()


# ----------------------------------------------------------------------------------------------- sources


class SequenceSource(Indexed):
    """A list, tuple or other sliceable sequence."""

    def __init__(self, seq: Sequence[Any]) -> None:
        self.seq = seq
        self.length = len(seq)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.seq[start:stop:step]

    def restricted(self, start: int, stop: int) -> Indexed:
        return SequenceSource(self.seq[start:stop])


class RangeSource(Indexed):
    """A ``range``: items are computed, never stored."""

    def __init__(self, rng: range) -> None:
        self.rng = rng
        try:
            self.length = len(rng)
        except OverflowError:  # more than sys.maxsize items: len() refuses, slicing and take/skip still work
            start, stop, step = rng.start, rng.stop, rng.step
            self.length = max(0, (stop - start + step - (1 if step > 0 else -1)) // step)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.rng[start:stop:step]

    def restricted(self, start: int, stop: int) -> Indexed:
        return RangeSource(self.rng[start:stop])


def _restrict_array(array: Any, start: int, stop: int) -> Any:
    # a shared (memory-mapped) array restricts without reading its data; see plumbing/processes.py
    restrict = getattr(array, "restricted", None)
    return restrict(start, stop) if restrict is not None else array[start:stop]


class ArraySource(Indexed):
    """A NumPy array; items are its entries along axis 0, and a chunk is a view (no copy)."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.length = len(array)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.array[start:stop:step]

    def restricted(self, start: int, stop: int) -> Indexed:
        return ArraySource(_restrict_array(self.array, start, stop))


class ArrayChunksSource(Indexed):
    """``par_chunks(array, size)``: item ``i`` is the view ``array[i*size:(i+1)*size]``."""

    def __init__(self, array: Any, size: int) -> None:
        self.array = array
        self.size = size
        self.length = -(-len(array) // size)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        a, n = self.array, self.size
        return [a[i * n : (i + 1) * n] for i in range(start, stop, step)]

    def restricted(self, start: int, stop: int) -> Indexed:
        return ArrayChunksSource(_restrict_array(self.array, start * self.size, stop * self.size), self.size)


# ----------------------------------------------------------------------------------------------- adapters


class Map(Indexed):
    """Created by ``ParIter.map()`` on an indexed iterator."""

    per_item_python = True

    def __init__(self, base: Indexed, fn: Callable[[Any], Any]) -> None:
        self.base, self.fn, self.length = base, fn, base.length

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return map(self.fn, self.base.items(start, stop, step, ctx))

    def restricted(self, start: int, stop: int) -> Indexed:
        return Map(self.base.restricted(start, stop), self.fn)


class MapInit(Indexed):
    """Created by ``ParIter.map_init()``: ``fn(state, item)`` with ``state = init()`` once per worker per call.

    A worker is a pool thread or a worker process; ``auto``'s probe of the first chunk runs on a pool thread, so a
    run it moves to processes calls ``init`` once more there (``ParIter.map_init`` states the bound).
    """

    per_item_python = True

    def __init__(
        self, base: Indexed, init: Callable[[], Any], fn: Callable[[Any, Any], Any], key: int | None = None
    ) -> None:
        self.base, self.init, self.fn, self.length = base, init, fn, base.length
        # a key that survives pickling, so a worker process finds the state of "this" adapter for the call
        self.key = next(_keys) if key is None else key

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        state = ctx.worker_state(self.key, self.init)
        return map(self.fn, _itertools.repeat(state), self.base.items(start, stop, step, ctx))

    def restricted(self, start: int, stop: int) -> Indexed:
        return MapInit(self.base.restricted(start, stop), self.init, self.fn, self.key)


class Inspect(Indexed):
    """Created by ``ParIter.inspect()``: calls ``fn(item)`` and passes the item on unchanged."""

    per_item_python = True
    side_effects = True

    def __init__(self, base: Indexed, fn: Callable[[Any], Any]) -> None:
        self.base, self.fn, self.length = base, fn, base.length

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        fn = self.fn
        for item in self.base.items(start, stop, step, ctx):
            fn(item)
            yield item

    def restricted(self, start: int, stop: int) -> Indexed:
        return Inspect(self.base.restricted(start, stop), self.fn)


class Enumerate(Indexed):
    """Created by ``ParIter.enumerate()``: items become ``(index, item)``."""

    def __init__(self, base: Indexed, offset: int = 0) -> None:
        self.base, self.offset, self.length = base, offset, base.length

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        o = self.offset
        return zip(range(start + o, stop + o, step), self.base.items(start, stop, step, ctx))

    def restricted(self, start: int, stop: int) -> Indexed:
        return Enumerate(self.base.restricted(start, stop), self.offset + start)


class Zip(Indexed):
    """Created by ``ParIter.zip()``: pairs items by position; as long as the shorter side."""

    def __init__(self, a: Indexed, b: Indexed) -> None:
        self.a, self.b, self.length = a, b, min(a.length, b.length)

    def children(self) -> tuple[Indexed, ...]:
        return (self.a, self.b)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return zip(self.a.items(start, stop, step, ctx), self.b.items(start, stop, step, ctx))

    def restricted(self, start: int, stop: int) -> Indexed:
        return Zip(self.a.restricted(start, stop), self.b.restricted(start, stop))


class Chain(Indexed):
    """Created by ``ParIter.chain()``: the items of ``a``, then those of ``b``."""

    def __init__(self, a: Indexed, b: Indexed) -> None:
        self.a, self.b, self.length = a, b, a.length + b.length

    def children(self) -> tuple[Indexed, ...]:
        return (self.a, self.b)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        la = self.a.length
        first = self.a.items(start, min(stop, la), step, ctx) if start < la else ()
        s2 = start if start >= la else start + -(-(la - start) // step) * step
        second = self.b.items(s2 - la, stop - la, step, ctx) if s2 < stop else ()
        return _itertools.chain(first, second)

    def restricted(self, start: int, stop: int) -> Indexed:
        la = self.a.length
        a = self.a.restricted(min(start, la), min(stop, la))
        b = self.b.restricted(max(start - la, 0), max(stop - la, 0))
        return Chain(a, b)


class StepBy(Indexed):
    """Created by ``ParIter.step_by()``: every ``k``-th item, starting with the first."""

    def __init__(self, base: Indexed, k: int) -> None:
        self.base, self.k = base, k
        self.length = -(-base.length // k)

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        if stop <= start:
            return ()
        k = self.k
        return self.base.items(start * k, (stop - 1) * k + 1, step * k, ctx)

    def restricted(self, start: int, stop: int) -> Indexed:
        k = self.k
        if stop <= start:
            return StepBy(self.base.restricted(0, 0), k)
        return StepBy(self.base.restricted(start * k, (stop - 1) * k + 1), k)


class Skip(Indexed):
    """Created by ``ParIter.skip()``: all but the first ``n`` items."""

    def __init__(self, base: Indexed, n: int) -> None:
        self.base, self.n = base, min(n, base.length)
        self.length = base.length - self.n

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.base.items(start + self.n, stop + self.n, step, ctx)

    def restricted(self, start: int, stop: int) -> Indexed:
        return self.base.restricted(start + self.n, stop + self.n)


class Take(Indexed):
    """Created by ``ParIter.take()``: the first ``n`` items."""

    def __init__(self, base: Indexed, n: int) -> None:
        self.base = base
        self.length = min(n, base.length)

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.base.items(start, stop, step, ctx)

    def restricted(self, start: int, stop: int) -> Indexed:
        return self.base.restricted(start, stop)


class Chunks(Indexed):
    """Created by ``ParIter.chunks()``: lists of ``n`` consecutive items (the last may be shorter)."""

    def __init__(self, base: Indexed, n: int) -> None:
        self.base, self.n = base, n
        self.length = -(-base.length // n)

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        n, total, base = self.n, self.base.length, self.base
        return [list(base.items(i * n, min(i * n + n, total), 1, ctx)) for i in range(start, stop, step)]

    def restricted(self, start: int, stop: int) -> Indexed:
        n = self.n
        return Chunks(self.base.restricted(start * n, min(stop * n, self.base.length)), n)
