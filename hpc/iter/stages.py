"""Stages: adapters after which an item's position is no longer known (filter, flat_map, map_chunks, ...).

A stage turns the items of one chunk into other items, in order. Chunks still follow the indexed node below
the first stage, so results keep their order and their determinism; only positional adapters (enumerate, zip,
skip, ...) need positions, and those first collect what comes before them (see ``ParIter._indexed``).
"""

from __future__ import annotations

import functools as _functools
import itertools as _itertools
import operator as _operator
from collections.abc import Callable, Iterable
from typing import Any

import numpy as _np

from hpc.iter.plumbing.context import ExecContext

__all__ = [
    "Stage",
    "MapStage",
    "MapInitStage",
    "InspectStage",
    "FilterStage",
    "FilterMapStage",
    "FlatMapStage",
    "MapChunksStage",
    "FoldStage",
]

_not_none = _functools.partial(_operator.is_not, None)
_keys = _itertools.count(1 << 40)  # distinct from the indexed MapInit keys


class Stage:
    """Base of stages."""

    per_item_python = True
    side_effects = False

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        raise NotImplementedError


class MapStage(Stage):
    """Created by ``ParIter.map()`` after a stage."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        return map(self.fn, items)


class MapInitStage(Stage):
    """Created by ``ParIter.map_init()`` after a stage."""

    def __init__(self, init: Callable[[], Any], fn: Callable[[Any, Any], Any]) -> None:
        self.init, self.fn, self.key = init, fn, next(_keys)

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        return map(self.fn, _itertools.repeat(ctx.worker_state(self.key, self.init)), items)


class InspectStage(Stage):
    """Created by ``ParIter.inspect()`` after a stage."""

    side_effects = True

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        fn = self.fn
        for item in items:
            fn(item)
            yield item


class FilterStage(Stage):
    """Created by ``ParIter.filter()``: keeps the items for which ``predicate(item)`` is true."""

    def __init__(self, predicate: Callable[[Any], Any]) -> None:
        self.predicate = predicate

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        return filter(self.predicate, items)


class FilterMapStage(Stage):
    """Created by ``ParIter.filter_map()``: ``fn(item)``, dropping ``None`` results."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        return filter(_not_none, map(self.fn, items))


class FlatMapStage(Stage):
    """Created by ``ParIter.flat_map()``: the items of each ``fn(item)``, in order."""

    def __init__(self, fn: Callable[[Any], Iterable[Any]]) -> None:
        self.fn = fn

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        return _itertools.chain.from_iterable(map(self.fn, items))


class MapChunksStage(Stage):
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


class FoldStage(Stage):
    """Created by ``ParIter.fold()``: one accumulator per chunk, ``functools.reduce(op, chunk, identity())``."""

    def __init__(self, identity: Callable[[], Any], op: Callable[[Any, Any], Any]) -> None:
        self.identity, self.op = identity, op

    def apply(self, items: Iterable[Any], ctx: ExecContext) -> Iterable[Any]:
        return [_functools.reduce(self.op, items, self.identity())]
