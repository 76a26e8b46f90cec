"""``hpc bench iter``: hpc's parallel iterators against serial Python, multiprocessing, joblib and mpire.

Four workloads, every contestant with the same number of workers, in one run:

(a) 100,000 tiny tasks ``x*x``, summed: what dispatch costs per item;
(b) 400 uneven pure-Python tasks (about 4 s serially; 1 s with ``quick``): whether uneven work balances;
(c) a numba ``nogil`` kernel over 64 MiB of float64 in 128 chunks: threads on GIL-free code;
(d) scikit-learn's ``n_jobs`` on joblib's loky, threading and hpc backends (RandomForest, GridSearchCV,
    HistGradientBoosting, KNN, permutation_importance), where scikit-learn is installed.

Pools are started and warmed before timing (process start-up is reported apart); each time is the median of
``repeats`` runs. Nothing here asserts a time: the numbers are printed, and written as JSON on request.
"""

from __future__ import annotations

import concurrent.futures as _futures
import math as _math
import os as _os
import random as _random
import statistics as _statistics
import time as _time
from collections.abc import Callable
from typing import Any

from hpc import config as _config
from hpc.bench import _peers
from hpc.bench._machine import describe as _describe

__all__ = ["format_table", "run"]

#: tasks in workload (a) and (b) at ``scale=1``
TINY_TASKS = 100_000
UNEVEN_TASKS = 400
#: serial seconds of workload (b): full run, ``quick`` run
UNEVEN_SECONDS = 4.0
UNEVEN_SECONDS_QUICK = 1.0
#: MiB of float64 in workload (c), and how many chunks it is cut into
NUMBA_MIB = 64
NUMBA_CHUNKS = 128

_POOL_MAP = _peers.PoolMap.label
_DISPLAY = [
    _peers.Serial.label,
    "hpc par_iter (threads)",
    "hpc par_iter (processes)",
    "hpc par_iter (auto)",
    _peers.PoolMap.label,
    _peers.ProcessPool.label,
    _peers.Joblib.label,
    _peers.Mpire.label,
]


def run(
    quick: bool = False,
    *,
    scale: float = 1.0,
    repeats: int | None = None,
    workers: int | None = None,
    install_missing: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the three workloads on every contestant and return the numbers.

    Args:
        quick (bool): one repeat and workload (b) at about 1 s serial: about a minute in all.
        scale (float): multiplies every workload's size (the tests use 0.01).
        repeats (int or None): timed runs per measurement (the median is reported); default 3, or 1 if ``quick``.
        workers (int or None): workers for every contestant; default ``os.cpu_count()``.
        install_missing (bool): ``pip install mpire`` into this interpreter when it is missing (default: skip
            its rows, with a note saying how to install it: ``pip install 'hpc-substrate[bench]'``).
        log (callable or None): called with a line of progress before each step.

    Returns:
        A JSON-ready dict: ``machine``, ``settings``, ``workloads`` (``tiny``, ``uneven``, ``numba``, each with
        ``rows`` keyed by contestant), ``startup_s``, ``empty_call_us``, ``one_item_call_us`` and ``notes``.
    """
    if not (isinstance(scale, int | float) and scale > 0):
        raise ValueError(f"scale must be a positive number; got {scale!r}")
    if repeats is None:
        repeats = 1 if quick else 3
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 1:
        raise ValueError(f"repeats must be a positive int; got {repeats!r}")
    workers = workers or _os.cpu_count() or 1
    say = log or (lambda line: None)
    notes: list[str] = []
    mpire, missing = _peers.load_mpire(install_missing)
    if missing:
        notes.append(missing)

    # hpc's thread pool and its loky processes both follow the process-wide size: give them `workers` for the
    # run, then put back whatever was set before (read directly, so a user's own set_num_threads survives).
    previous = _config._num_threads_override
    _config.set_num_threads(workers)
    try:
        workloads = _maps(quick, scale, repeats, workers, mpire, notes, say)
        say("(c) numba kernel")
        workloads["numba"] = _numba(scale, repeats, workers, notes)
        say("call overhead")
        count = max(100, int(2000 * min(scale, 1.0)))
        empty_us = _call_us(lambda: _empty_call(), count)
        one_us = _call_us(lambda: _one_item_call(), count)
        sklearn = _sklearn(scale, repeats, workers, notes, say)
    finally:
        _config.set_num_threads(previous)
    startup = workloads.pop("_startup")
    return {
        "machine": _describe(("numpy", "numba", "joblib", "mpire"), workers=workers),
        "settings": {"quick": quick, "scale": scale, "repeats": repeats, "workers": workers},
        "workloads": workloads,
        "startup_s": startup,
        "empty_call_us": empty_us,
        "one_item_call_us": one_us,
        "call_samples": count,
        "sklearn": sklearn,
        "notes": notes,
    }


def _sklearn(scale: float, repeats: int, workers: int, notes: list[str], say: Callable[[str], None]) -> Any:
    """Workload (d): scikit-learn's ``n_jobs`` on loky, threading and hpc; None (and a note) without it."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        notes.append("(d) scikit-learn workloads skipped: scikit-learn is not installed (pip install scikit-learn)")
        return None
    from hpc.bench import _sklearn_joblib

    return _sklearn_joblib.run_workloads(scale, repeats, workers, say)


# ------------------------------------------------------------------------------------ workloads (a) and (b)


def _maps(quick, scale, repeats, workers, mpire, notes, say) -> dict[str, Any]:
    n_tiny = max(100, round(TINY_TASKS * scale))
    tiny_items = range(n_tiny)
    uneven_s = (UNEVEN_SECONDS_QUICK if quick else UNEVEN_SECONDS) * scale
    say(f"calibrating workload (b) to {uneven_s:.2f} s serial")
    lengths = _uneven_lengths(uneven_s, UNEVEN_TASKS)
    cases = [
        ("tiny", _peers.square, tiny_items, range(min(n_tiny, 1000))),
        ("uneven", _peers.spin, lengths, [min(n, 1000) for n in lengths[: 4 * workers]]),
    ]
    rows: dict[str, dict[str, Any]] = {"tiny": {}, "uneven": {}}
    expected: dict[str, Any] = {}
    startup: dict[str, float] = {}
    for contestant in _peers.contestants(workers, mpire):
        label = contestant.label
        say(f"(a)+(b) {label}")
        try:
            t0 = _time.perf_counter()
            contestant.start()
            if contestant.processes:
                startup[label] = _time.perf_counter() - t0
            try:
                for name, fn, items, warm in cases:
                    contestant.map_sum(fn, warm, name)  # warm-up: workers up, function loaded
                    seconds, runs, value = _timed(contestant.map_sum, repeats, fn, items, name)
                    expected.setdefault(name, value)  # the serial contestant runs first
                    rows[name][label] = {"seconds": seconds, "runs": runs, "ok": value == expected[name]}
            finally:
                contestant.close()
        except Exception as exc:  # one broken peer must not lose the others' numbers
            notes.append(f"{label} failed: {type(exc).__name__}: {exc}")
    _stop_hpc_processes()
    for name in rows:
        rows[name] = _ordered(rows[name])
        serial = rows[name].get(_peers.Serial.label, {}).get("seconds")
        pool = rows[name].get(_POOL_MAP, {}).get("seconds")
        for row in rows[name].values():
            row["vs_serial"] = row["seconds"] / serial if serial else None
            row["vs_pool_map"] = row["seconds"] / pool if pool else None
    return {
        "tiny": {"tasks": n_tiny, "rows": rows["tiny"]},
        "uneven": {
            "tasks": len(lengths),
            "target_serial_s": uneven_s,
            "steps_min": min(lengths),
            "steps_max": max(lengths),
            "steps_total": sum(lengths),
            "rows": rows["uneven"],
        },
        "_startup": startup,
    }


def _stop_hpc_processes() -> None:
    # Give the worker processes of hpc's processes backend back once the process-pool contestants are done, so the
    # thread-based workload (c) runs on a quiet machine.
    from hpc.iter.plumbing import processes

    processes.shutdown_executor()


def _uneven_lengths(seconds: float, count: int, seed: int = 20261127) -> list[int]:
    """Return ``count`` loop lengths for :func:`spin`, log-normally uneven, together about ``seconds`` of work."""
    # This machine runs Python about twice as slowly in a process's first second (the CPU clocks up under load),
    # so probe for at least min(1 s, seconds) and until three probes in a row agree within 10%.
    probe, rates = 200_000, []
    t_start = _time.perf_counter()
    while True:
        rates.append(_timed(_peers.spin, 1, probe)[0] / probe)
        recent, spent = rates[-3:], _time.perf_counter() - t_start
        steady = len(recent) == 3 and max(recent) <= 1.1 * min(recent)
        if (steady and spent >= min(1.0, seconds)) or spent > 3.0:
            break
    per_step = _statistics.median(recent)
    rng = _random.Random(seed)
    weights = [rng.lognormvariate(0.0, 0.8) for _ in range(count)]
    steps = seconds / per_step / sum(weights)
    return [max(1, int(w * steps)) for w in weights]


def _ordered(rows: dict[str, Any]) -> dict[str, Any]:
    known = [label for label in _DISPLAY if label in rows]
    return {label: rows[label] for label in known + [label for label in rows if label not in known]}


# ------------------------------------------------------------------------------------ workload (c)


def _numba(scale: float, repeats: int, workers: int, notes: list[str]) -> dict[str, Any]:
    try:
        import numpy as np

        from hpc.bench._kernel import sqrt_sum
    except ImportError as exc:
        notes.append(f"(c) skipped: {exc}")
        return {"rows": {}}
    from joblib import Parallel, delayed

    from hpc import par_chunks

    n = max(NUMBA_CHUNKS, int(NUMBA_MIB * scale * 2**20) // 8)
    a = np.random.default_rng(0).standard_normal(n)
    rows_per_chunk = -(-n // NUMBA_CHUNKS)
    views = [a[i : i + rows_per_chunk] for i in range(0, n, rows_per_chunk)]
    sqrt_sum(views[0])  # compile, or load numba's cache, before any timing
    pool = _futures.ThreadPoolExecutor(workers)
    cases: list[tuple[str, Callable[[], float]]] = [
        ("serial loop", lambda: sum(sqrt_sum(v) for v in views)),
        ("hpc par_chunks (threads)", lambda: par_chunks(a, rows_per_chunk).map(sqrt_sum).with_backend("threads").sum()),
        ("hpc par_chunks (serial)", lambda: par_chunks(a, rows_per_chunk).map(sqrt_sum).with_backend("serial").sum()),
        (
            "joblib.Parallel (threading)",
            lambda: sum(Parallel(n_jobs=workers, backend="threading")(delayed(sqrt_sum)(v) for v in views)),
        ),
        ("ThreadPoolExecutor", lambda: sum(pool.map(sqrt_sum, views))),
    ]
    rows: dict[str, Any] = {}
    c_repeats = max(repeats, 15)
    try:
        reference = None
        for label, fn in cases:
            fn()  # warm-up
            # each run takes ~20 ms here: a median of at least 15 keeps one descheduled run from deciding the row
            seconds, runs, value = _timed(fn, c_repeats)
            reference = value if reference is None else reference
            ok = _math.isclose(value, reference, rel_tol=1e-9)
            rows[label] = {"seconds": seconds, "runs": runs, "ok": ok, "gb_per_s": a.nbytes / seconds / 1e9}
    finally:
        pool.shutdown()
    serial = rows["serial loop"]["seconds"]
    for row in rows.values():
        row["speedup"] = serial / row["seconds"]
    return {
        "mib": a.nbytes / 2**20,
        "chunks": len(views),
        "rows_per_chunk": rows_per_chunk,
        "repeats": c_repeats,
        "rows": rows,
    }


# ------------------------------------------------------------------------------------ call overhead, helpers


def _empty_call() -> Any:
    from hpc import par_iter

    return par_iter([]).with_backend("threads").sum()


def _one_item_call() -> Any:
    from hpc import par_iter

    return par_iter([1]).with_backend("threads").sum()


def _call_us(fn: Callable[[], Any], count: int) -> float:
    fn()
    samples = []
    for _ in range(count):
        t0 = _time.perf_counter_ns()
        fn()
        samples.append(_time.perf_counter_ns() - t0)
    return _statistics.median(samples) / 1000


def _timed(fn: Callable[..., Any], repeats: int, *args: Any) -> tuple[float, list[float], Any]:
    runs, value = [], None
    for _ in range(repeats):
        t0 = _time.perf_counter()
        value = fn(*args)
        runs.append(_time.perf_counter() - t0)
    return _statistics.median(runs), runs, value


# ------------------------------------------------------------------------------------ the table


def format_table(results: dict[str, Any]) -> str:
    """Return ``results`` from :func:`run` as a plain-text table."""
    m, s, w = results["machine"], results["settings"], results["workloads"]
    how = [f"median of {s['repeats']} run(s)"]
    if s["quick"]:
        how.append("quick")
    if s["scale"] != 1:
        how.append(f"sizes x{s['scale']:g}")
    how.append("pools started and warmed before timing")
    lines = [
        f"hpc bench iter: {m['workers']} workers for every contestant (os.cpu_count()={m['cores']}); "
        f"Python {m['python']}; {m['date']}",
        "; ".join(how),
        ", ".join(f"{name} {version}" for name, version in m["versions"].items() if version),
        "",
    ]
    tiny, uneven, numba = w["tiny"], w["uneven"], w["numba"]
    head = f"{'':36}{'seconds':>10}{'vs serial':>12}{'vs Pool.map':>13}"
    lines += [f"(a) {tiny['tasks']:,} tiny tasks x*x, summed", head, *_map_rows(tiny["rows"]), ""]
    serial = uneven["rows"].get(_peers.Serial.label, {}).get("seconds")
    about = f"serial {serial:.2f} s; " if serial else ""
    lines += [
        f"(b) {uneven['tasks']} uneven pure-Python tasks ({about}{uneven['steps_min']:,}..{uneven['steps_max']:,} "
        "loop steps each)",
        head,
        *_map_rows(uneven["rows"]),
        "",
    ]
    if numba["rows"]:
        lines += [
            f"(c) numba nogil kernel sum(sqrt(x*x+1)) over {numba['mib']:.3g} MiB float64, {numba['chunks']} chunks "
            f"of {numba['rows_per_chunk']:,}; median of {numba.get('repeats', '?')} runs",
            f"{'':36}{'seconds':>10}{'speedup':>12}{'GB/s':>13}",
        ]
        for label, row in numba["rows"].items():
            flag = "" if row["ok"] else "  (result differs!)"
            lines.append(f"  {label:34}{row['seconds']:10.4f}{row['speedup']:11.2f}x{row['gb_per_s']:13.2f}{flag}")
        lines.append("")
    if results.get("sklearn"):
        lines += [
            f"(d) scikit-learn n_jobs={m['workers']} under joblib.parallel_config(backend=...); median of "
            f"{s['repeats']} run(s) after a warm-up; 'vs best' is hpc's time over the faster of loky and threading",
            f"{'':36}{'loky':>10}{'threading':>11}{'hpc':>10}{'vs best':>9}  same answers",
        ]
        for name, work in results["sklearn"].items():
            rows = work["rows"]
            same = all(row["same"] for row in rows.values())
            lines.append(
                f"  {name:34}{rows['loky']['seconds']:10.3f}{rows['threading']['seconds']:11.3f}"
                f"{rows['hpc']['seconds']:10.3f}{rows['hpc']['vs_fastest_peer']:8.2f}x  {'yes' if same else 'NO'}"
            )
        lines.append("")
    if results["startup_s"]:
        parts = [f"{label} {sec:.2f} s" for label, sec in results["startup_s"].items()]
        lines.append("process start-up (not in the runs above): " + ", ".join(parts))
    lines.append(
        f"call overhead, threads backend (median of {results['call_samples']}): "
        f"empty par_iter([]).sum() {results['empty_call_us']:.1f} us; "
        f"one-item par_iter([1]).sum() {results['one_item_call_us']:.1f} us"
    )
    lines += [f"note: {note}" for note in results["notes"]]
    return "\n".join(lines)


def _map_rows(rows: dict[str, Any]) -> list[str]:
    out = []
    for label, row in rows.items():
        ratio = lambda r: f"{r:11.2f}x" if r is not None else f"{'-':>12}"
        flag = "" if row["ok"] else "  (result differs!)"
        out.append(f"  {label:34}{row['seconds']:10.4f}{ratio(row['vs_serial'])}{ratio(row['vs_pool_map'])}{flag}")
    return out
