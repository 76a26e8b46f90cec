"""A plan: the indexed node that defines chunks, the stages after it, and how one chunk is run."""

from __future__ import annotations

import functools as _functools
import itertools as _itertools
import operator as _operator
from dataclasses import dataclass
from typing import Any

from hpc.iter.plumbing.chunking import chunk_ranges
from hpc.iter.plumbing.context import ExecContext

__all__ = ["ChunkFailure", "Plan", "run_chunk", "stop_iteration_error"]

_second = _operator.itemgetter(1)


@dataclass(frozen=True)
class Plan:
    """What a terminal executes: chunks of ``node`` (an ``Indexed``), each passed through ``stages``."""

    node: Any
    stages: tuple[Any, ...] = ()
    min_len: int = 1
    max_len: int | None = None

    def chunks(self) -> list[tuple[int, int]]:
        return chunk_ranges(self.node.length, self.min_len, self.max_len)

    @_functools.cached_property  # noqa: B019 - a frozen plan's answer never changes
    def _tracks(self) -> bool:
        return self.per_item_python() or bool(self.stages and not _chunk_level(self.stages[0]))

    def per_item_python(self) -> bool:
        return any(n.per_item_python for n in self.node.walk()) or any(s.per_item_python for s in self.stages)

    def numeric(self) -> bool:
        """Whether the per-item functions see NumPy arrays or are numba kernels (chunk-level numeric work)."""
        from hpc.iter.indexed import ArrayChunksSource, ArraySource

        for n in self.node.walk():
            if isinstance(n, ArrayChunksSource) or (isinstance(n, ArraySource) and getattr(n.array, "ndim", 1) > 1):
                return True
        stages = [getattr(n, "stage", None) for n in self.node.walk()] + list(self.stages)  # OneToOne nodes hold one
        fns = [getattr(s, "fn", None) for s in stages]
        fns = [f for f in fns if f is not None]
        return bool(fns) and all(_is_numba(f) for f in fns)

    def worker_states(self) -> bool:
        """Whether a stage keeps a state per worker (``map_init``)."""
        stages = [getattr(n, "stage", None) for n in self.node.walk()] + list(self.stages)
        return any(getattr(s, "worker_state", False) for s in stages)

    def side_effects(self) -> bool:
        return any(n.side_effects for n in self.node.walk()) or any(s.side_effects for s in self.stages)

    def tracks_items(self) -> bool:
        """Whether chunks are run item by item (and so a failure can name its item)."""
        return self._tracks


def _is_numba(fn: Any) -> bool:
    return type(fn).__module__.startswith("numba.")


def _chunk_level(stage: Any) -> bool:
    return not stage.per_item_python


class ChunkFailure(Exception):
    """Carries an exception raised inside a chunk, with where it happened, to the driver."""

    def __init__(self, error: BaseException, chunk: int, item: int | None, span: tuple[int, int]) -> None:
        super().__init__(error, chunk, item, span)
        self.error, self.chunk, self.item, self.span = error, chunk, item, span

    def note(self, ran_on: str) -> str:
        """The note added to the error: which item (or chunk) raised, and where it ran (``"threads backend"``)."""
        start, stop = self.span
        where = f"item {self.item}" if self.item is not None else f"the chunk of items {start}..{stop - 1}"
        return f"hpc: raised by {where} (chunk {self.chunk}) of a parallel iterator on the {ran_on}"


def stop_iteration_error(stop: StopIteration) -> RuntimeError:
    """The error a ``StopIteration`` raised by a user's function becomes, as a generator turns it (PEP 479).

    Nothing in a run is an iterator it could legitimately end; raised on as it is, it would read as "no more items"
    to an iterator the terminal runs in (a ``map`` or ``__next__`` of the caller's), which would stop silently.
    """
    error = RuntimeError("a function of a parallel iterator raised StopIteration")
    error.__cause__ = stop
    return error


def run_chunk(plan: Plan, terminal: Any, chunk: int, start: int, stop: int, ctx: ExecContext) -> Any:
    """Run one chunk through the plan and the terminal's fold; wrap any exception in :class:`ChunkFailure`."""
    track = plan.tracks_items()
    counter = _itertools.count(start) if track else None
    try:
        items = plan.node.items(start, stop, 1, ctx)
        if counter is not None:
            items = map(_second, zip(counter, items))
        for stage in plan.stages:
            items = stage.apply(items, ctx)
        return terminal.fold(items, ctx, chunk)
    except Exception as exc:
        error = stop_iteration_error(exc) if isinstance(exc, StopIteration) else exc
        item = None
        if counter is not None:
            item = next(counter) - 1
            if not start <= item < stop:  # raised before the first item or after the last (a chunk-level stage)
                item = None
        raise ChunkFailure(error, chunk, item, (start, stop)) from None
