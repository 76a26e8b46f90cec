"""Indexed nodes: sources and the adapters that keep every item's position known.

An indexed node has a ``length`` and yields the items at positions ``range(start, stop, step)`` on demand, so any
chunk can be produced on any worker without touching the rest of the input. ``restricted(start, stop)`` returns an
equivalent node that holds only what positions ``start..stop`` need, re-indexed from 0: the processes backend ships
that to a worker instead of the whole input.
"""

from __future__ import annotations

import itertools as _itertools
from collections.abc import Iterable, Sequence
from typing import Any

from hpc.iter.plumbing.context import ExecContext

__all__ = [
    "Indexed",
    "SequenceSource",
    "RangeSource",
    "ArraySource",
    "ArrayChunksSource",
    "TensorSource",
    "OneToOne",
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


class TensorSource(Indexed):
    """A torch tensor (duck-typed: ``untyped_storage`` and ``clone``): items are its entries along axis 0, the views
    that iterating it gives. A view pickles its tensor's whole storage, so a restricted source holds a copy of its own
    rows (each item of a group sent to worker processes carried all of the input: quadratic in its length)."""

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor
        self.length = len(tensor)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.tensor[start:stop:step]

    def restricted(self, start: int, stop: int) -> Indexed:
        return TensorSource(self.tensor[start:stop].clone())


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


class OneToOne(Indexed):
    """A one-to-one stage (``Map``, ``MapInit``, ``Inspect`` of :mod:`hpc.iter.stages`) on an indexed node: the item
    at each position is the stage applied to the node's item there, so positions stay known."""

    def __init__(self, base: Indexed, stage: Any) -> None:
        if not stage.one_to_one:
            raise ValueError(f"{type(stage).__name__} does not keep positions: it cannot be an indexed node")
        self.base, self.stage, self.length = base, stage, base.length
        self.per_item_python, self.side_effects = stage.per_item_python, stage.side_effects

    def children(self) -> tuple[Indexed, ...]:
        return (self.base,)

    def items(self, start: int, stop: int, step: int, ctx: ExecContext) -> Iterable[Any]:
        return self.stage.apply(self.base.items(start, stop, step, ctx), ctx)

    def restricted(self, start: int, stop: int) -> Indexed:
        return OneToOne(self.base.restricted(start, stop), self.stage)


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
