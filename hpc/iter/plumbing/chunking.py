"""Chunk boundaries and the fixed combination tree: the two rules that make results deterministic."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["TARGET_CHUNKS", "chunk_len", "chunk_ranges", "guided_groups", "tree_reduce"]

T = TypeVar("T")

#: How many chunks a long input is cut into. A constant, not a function of the worker count: that is the rule
#: that makes float reductions give the same bits on 1, 2 or 16 threads. 256 chunks keep 16 workers balanced
#: while per-chunk dispatch (a few microseconds on threads, ~100 us on processes) stays negligible.
TARGET_CHUNKS = 256


def chunk_len(length: int, min_len: int = 1, max_len: int | None = None) -> int:
    """Return the number of items per chunk for an input of ``length`` items.

    Depends only on ``length`` and the ``with_min_len``/``with_max_len`` bounds, never on the number of workers.
    """
    size = max(1, -(-length // TARGET_CHUNKS), min_len)
    if max_len is not None:
        size = min(size, max_len)
    return max(1, size)


def chunk_ranges(length: int, min_len: int = 1, max_len: int | None = None) -> list[tuple[int, int]]:
    """Return ``[(start, stop), ...]`` covering ``range(length)`` in chunks of :func:`chunk_len` items."""
    size = chunk_len(length, min_len, max_len)
    return [(s, min(s + size, length)) for s in range(0, length, size)]


def tree_reduce(partials: Sequence[T], combine: Callable[[T, T], T]) -> T:
    """Combine ``partials`` pairwise, level by level: ``((p0 p1) (p2 p3)) ...``, an odd last one carried up.

    The shape depends only on ``len(partials)``, so the same partials always combine in the same order.
    """
    if not partials:
        raise ValueError("tree_reduce needs at least one partial")
    level = list(partials)
    while len(level) > 1:
        nxt = [combine(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def guided_groups(spans: Sequence[T], workers: int) -> list[list[T]]:
    """Split ``spans`` into consecutive groups that shrink as they go (guided scheduling).

    Each group takes a third of the remaining spans per worker: few dispatches for the bulk, single chunks at the
    end so uneven work still balances. Grouping changes only who runs which chunk, never the results.
    """
    groups, i, n = [], 0, len(spans)
    while i < n:
        size = max(1, -(-(n - i) // (3 * workers)))
        groups.append(list(spans[i : i + size]))
        i += size
    return groups
