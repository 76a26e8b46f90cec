"""Timing helpers of the benchmarks: warm-up, then the median and spread of repeated runs; the machine's load."""

from __future__ import annotations

import os as _os
import statistics as _statistics
import time as _time
from collections.abc import Callable as _Callable
from typing import Any as _Any

__all__ = ["first_call", "interleaved_medians", "measure", "measure_pair", "per_call_max"]

#: the clock's tick: a call that ends within one tick is counted as one tick, so a median is never zero
_TICK = _time.get_clock_info("perf_counter").resolution


def first_call(fn: _Callable[[], _Any]) -> float:
    """Return the seconds of one call of ``fn``: compile (or cache load) plus one run, for a kernel not yet called."""
    t0 = _time.perf_counter()
    fn()
    return _time.perf_counter() - t0


def measure(fn: _Callable[[], _Any], repeats: int, warmup: int = 1, min_seconds: float = 0.0) -> dict[str, _Any]:
    """Time ``fn()`` after ``warmup`` untimed calls; return ``median``, ``min``, ``max`` and ``spread`` seconds.

    ``repeats`` runs at least, more while the total is under ``min_seconds`` (small in-cache sizes), at most
    50 times ``repeats``. ``spread`` is ``(max - min) / median``. A run shorter than the clock's resolution counts
    as one tick, so every time is positive and a rate (bytes / median) is finite.

    Raises:
        ValueError: ``repeats`` is not a positive int.
    """
    _check_repeats(repeats)
    for _ in range(warmup):
        fn()
    runs: list[float] = []
    start = _time.perf_counter()
    while len(runs) < repeats or (_time.perf_counter() - start < min_seconds and len(runs) < 50 * repeats):
        runs.append(_time_one(fn))
    return _summary(runs)


def measure_pair(
    first: _Callable[[], _Any], second: _Callable[[], _Any], repeats: int, min_seconds: float = 0.0
) -> tuple[dict[str, _Any], dict[str, _Any]]:
    """Time ``first()`` and ``second()`` taking turns, after one warm-up call of each; return :func:`measure`'s
    summary of each.

    The two alternate call by call, and which one goes first alternates too, so a burst of load (another process, a
    pool's threads still spinning) falls on both alike: the ratio of their medians is then trustworthy where two
    back-to-back :func:`measure` calls can each catch a different phase of the machine. ``repeats`` and
    ``min_seconds`` are as in :func:`measure` (``min_seconds`` counts both functions' time).

    Raises:
        ValueError: ``repeats`` is not a positive int.
    """
    _check_repeats(repeats)
    first()
    second()
    runs: tuple[list[float], list[float]] = ([], [])
    pair = (first, second)
    start = _time.perf_counter()
    while len(runs[0]) < repeats or (_time.perf_counter() - start < min_seconds and len(runs[0]) < 50 * repeats):
        order = (0, 1) if len(runs[0]) % 2 == 0 else (1, 0)
        for i in order:
            runs[i].append(_time_one(pair[i]))
    return _summary(runs[0]), _summary(runs[1])


def _check_repeats(repeats: int) -> None:
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")


def _time_one(fn: _Callable[[], _Any]) -> float:
    """Seconds of one call of ``fn``, at least one clock tick."""
    t0 = _time.perf_counter()
    fn()
    return max(_time.perf_counter() - t0, _TICK)


def _summary(runs: list[float]) -> dict[str, _Any]:
    med = _statistics.median(runs)
    return {
        "median": med,
        "min": min(runs),
        "max": max(runs),
        "spread": (max(runs) - min(runs)) / med if med > 0 else 0.0,
        "runs": len(runs),
    }


def loadavg() -> list[float] | None:
    """Return the 1/5/15-minute load averages (rounded), or ``None`` where the OS has none.

    Other processes share the machine's cores and memory bandwidth: a benchmark table says how busy it was.
    """
    try:
        return [round(v, 2) for v in _os.getloadavg()]
    except (AttributeError, OSError):
        return None


def per_call_max(comm: _Any, fn: _Callable[[], _Any], calls: int) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls begun together after a barrier: the maximum over the ranks of
    ``comm`` (an :class:`hpc.mpi.Comm`), the same on every rank."""
    comm.barrier()
    start = _time.perf_counter()
    for _ in range(calls):
        fn()
    return comm.allreduce((_time.perf_counter() - start) / calls, op="max")


def interleaved_medians(comm: _Any, cases: dict[str, _Callable[[], _Any]], calls: int, rounds: int) -> dict[str, float]:
    """The median over ``rounds`` of :func:`per_call_max` for each case, after one warm-up call of each.

    The cases take turns within each round, their order rotated from round to round: a burst of load hits every
    case alike, and no case always runs after the same one.
    """
    for fn in cases.values():
        fn()
    labels = list(cases)
    runs: dict[str, list[float]] = {label: [] for label in labels}
    for r in range(rounds):
        turn = r % len(labels)
        for label in labels[turn:] + labels[:turn]:
            runs[label].append(per_call_max(comm, cases[label], calls))
    return {label: _statistics.median(times) for label, times in runs.items()}
