"""Stages: the adapters that turn the items of one chunk into other items, in order (map, filter, flat_map, ...).

One class per concept. Chunks follow the indexed node below the first stage, so results keep their order and their
determinism. A *one-to-one* stage (``Map``, ``MapInit``, ``Inspect``: exactly one item out per item in) placed
directly on an indexed node keeps every item's position known: the plan wraps the node in
:class:`hpc.iter.indexed.OneToOne` instead of appending the stage, and positional adapters (enumerate, zip, skip,
...) can follow it. After any other stage positions are unknown, and positional adapters first collect what comes
before them (see ``ParIter._indexed``).

User functions are called from generator expressions, not through the builtin ``map`` and ``filter``: those take a
``StopIteration`` raised by the function for the end of the items and silently drop the rest of the chunk, where a
generator turns it into ``RuntimeError`` (PEP 479), which reaches the caller as any other error. It costs about
10 ns an item more than ``map``.
"""

from __future__ import annotations

import functools as _functools
import itertools as _itertools
from collections.abc import Callable, Iterable
from typing import Any

import numpy as _np

from hpc.iter.plumbing.context import ExecContext

__all__ = [
    "Stage",
    "Map",
    "MapInit",
    "Inspect",
    "Filter",
    "FilterMap",
    "FlatMap",
    "MapChunks",
    "Fold",
]

_keys = _itertools.count()


class Stage:
    """Base of stages."""

    per_item_python = True
    side_effects = False
    #: exactly one item out per item in, in order: on an indexed node, positions stay known
    one_to_one = False
    #: keeps a state per worker (``map_init``): ``auto`` then starts the run on a pool worker, not the caller
    worker_state = False

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        raise NotImplementedError


class Map(Stage):
    """Created by ``ParIter.map()``: ``fn(item)`` for every item."""

    one_to_one = True

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        fn = self.fn
        return (fn(item) for item in items)  # not map(): see the module's docstring


class MapInit(Stage):
    """Created by ``ParIter.map_init()``: ``fn(state, item)`` with ``state = init()`` once per worker per call.

    A worker is a pool thread or a worker process; ``auto``'s probe of the first chunk runs on a pool thread, so a
    run it moves to processes calls ``init`` once more there (``ParIter.map_init`` states the bound).
    """

    one_to_one = True
    worker_state = True

    def __init__(self, init: Callable[[], Any], fn: Callable[[Any, Any], Any]) -> None:
        # a key that survives pickling, so a worker process finds the state of "this" adapter for the call
        self.init, self.fn, self.key = init, fn, next(_keys)

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        fn, state = self.fn, ctx.take_state(self.key, self.init)
        try:
            for item in items:
                yield fn(state, item)
        finally:  # the chunk is done (or abandoned): the thread's next chunk may take the state
            ctx.give_state(self.key, state)


class Inspect(Stage):
    """Created by ``ParIter.inspect()``: calls ``fn(item)`` and passes the item on unchanged."""

    side_effects = True
    one_to_one = True

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        fn = self.fn
        for item in items:
            fn(item)
            yield item


class Filter(Stage):
    """Created by ``ParIter.filter()``: keeps the items for which ``predicate(item)`` is true."""

    def __init__(self, predicate: Callable[[Any], Any]) -> None:
        self.predicate = predicate

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        predicate = self.predicate
        return (item for item in items if predicate(item))


class FilterMap(Stage):
    """Created by ``ParIter.filter_map()``: ``fn(item)``, dropping ``None`` results."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        fn = self.fn
        return (value for value in (fn(item) for item in items) if value is not None)


class FlatMap(Stage):
    """Created by ``ParIter.flat_map()``: the items of each ``fn(item)``, in order."""

    def __init__(self, fn: Callable[[Any], Iterable[Any]]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        fn = self.fn
        return _itertools.chain.from_iterable(fn(item) for item in items)


class MapChunks(Stage):
    """Created by ``ParIter.map_chunks()``: ``kernel(chunk)`` once per chunk, on a NumPy array of the chunk.

    On an array source the chunk is a view (no copy); otherwise the chunk's items are packed with
    ``numpy.asarray``. The kernel's result (an array or any iterable) supplies the chunk's items downstream.
    """

    per_item_python = False

    def __init__(self, kernel: Callable[[Any], Any]) -> None:
        self.kernel = kernel

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        chunk = items if isinstance(items, _np.ndarray) else _np.asarray(list(items))
        return self.kernel(chunk)


class Fold(Stage):
    """Created by ``ParIter.fold()``: one accumulator per chunk, ``functools.reduce(op, chunk, identity())``
    (``identity`` itself when it is a value, as in ``reduce``)."""

    def __init__(self, identity: Any, op: Callable[[Any, Any], Any]) -> None:
        self.identity, self.op = identity, op

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        start = self.identity() if callable(self.identity) else self.identity
        return [_functools.reduce(self.op, items, start)]
