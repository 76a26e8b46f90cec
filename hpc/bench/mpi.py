"""``hpc bench mpi``: hpc's allreduce against raw mpi4py on 2 ranks, OSU-style, from 8 B to 64 MiB.

Contestants, all on float64 sums, in one run:

- raw mpi4py ``Allreduce`` on preallocated NumPy buffers: the ceiling;
- raw mpi4py lower-case ``allreduce`` (pickled objects; up to 1 MiB only, it is slow): the peer most users start from;
- ours ``comm.allreduce(x)`` (a new output array each call, as users call it), ours with ``out=`` preallocated, and
  ours with ``reproducible=True``;
- float ``max``: ours ``comm.allreduce(x, op="max")`` (floats travel as integer keys, so a NaN gives every rank the
  same answer) against raw ``Allreduce(MAX)``, whose NaN handling depends on the order the ranks' values meet in;
- 100 scalar reductions in one ``with comm.fused()`` block against 100 separate ``comm.allreduce(float)`` calls.

Method (OSU micro-benchmarks): for each size and contestant, warm up and calibrate the iteration count, then
``repeats`` times (contestants interleaved, the order rotated each round so that none always follows the same
one): barrier, time the iterations with ``MPI.Wtime``, take the per-rank average and its maximum over ranks; report
the median. The full run takes 9 rounds: with 5, a row of two contestants doing the same MPI call (raw and ours)
differed by up to 13% in runs on the dev VM, whose speed for mid-size messages swings within a minute. Bus
bandwidth is ``algbw * 2 * (n - 1) / n`` (allreduce).

``hpc bench mpi`` works from a plain process: it starts ``mpiexec -n 2 python -m hpc.bench.mpi --worker ...`` and
reads rank 0's numbers from a temporary file. Under an existing launcher with 2 or more ranks it measures in place.
Nothing here asserts a time: targets are printed as pass/fail lines.
"""

from __future__ import annotations

import argparse as _argparse
import json as _json
import math as _math
import os as _os
import shutil as _shutil
import signal as _signal
import socket as _socket
import statistics as _statistics
import subprocess as _subprocess
import sys as _sys
import tempfile as _tempfile
from collections.abc import Callable
from importlib import util as _import_util
from pathlib import Path as _Path
from typing import Any

from hpc import _launcher
from hpc.bench._machine import describe as _describe
from hpc.bench._timing import loadavg as _loadavg

__all__ = ["find_mpiexec", "format_table", "run", "unavailable"]

KiB, MiB = 1 << 10, 1 << 20
#: message sizes in bytes: 8 B, then powers of 4 from 16 B to 64 MiB
SIZES = (8, *(4**k for k in range(2, 14)))
SIZES_QUICK = (8, 64, KiB, 16 * KiB, 256 * KiB, MiB, 4 * MiB)
SIZES_TINY = (8, 64 * KiB)
#: the pickled lower-case allreduce runs up to this size
PICKLE_MAX = MiB
#: ranks the launcher starts
RANKS = 2
#: scalar reductions in the fused-vs-separate workload
FUSED_COUNT = 100
#: a ``scale`` below this selects the tiny configuration (2 sizes, a few iterations: for tests)
TINY_BELOW = 0.1

#: the targets this suite checks (benchmark lines, never test assertions)
TARGET_ABS_US, TARGET_REL = 1.0, 0.05  # ours <= raw + 1 us + 5%
TARGET_REPRO, TARGET_REPRO_FROM = 2.0, MiB  # reproducible <= 2x plain at >= 1 MiB
TARGET_FUSED = 20.0  # fused >= 20x faster than separate
#: the fused kinds beyond Python floats: (label, dtype, elements per entry or 0 for a NumPy scalar, target speedup
#: or None: measured, no target)
FUSED_KINDS = (
    ("np.float64 scalars", "float64", 0, 20.0),
    ("1-element float64 arrays", "float64", 1, 20.0),
    ("1 KiB float64 arrays", "float64", 128, 5.0),
    ("np.float32 scalars", "float32", 0, None),
    ("1-element float32 arrays", "float32", 1, None),
    ("1 KiB float32 arrays", "float32", 256, None),
)

RAW, PICKLE, OURS, OURS_OUT, REPRO = "raw Allreduce", "raw allreduce (pickle)", "ours", "ours out=", "ours reproducible"
CONTESTANTS = (RAW, PICKLE, OURS, OURS_OUT, REPRO)
RAW_MAX, OURS_MAX = "raw Allreduce(MAX)", "ours max"
FUSED, SEPARATE = "fused (1 block)", "separate (100 calls)"
RAW_ONE, RAW_MANY = "raw: 1 Allreduce of 100", "raw: 100 Allreduce of 1"
FUSED_CONTESTANTS = (FUSED, SEPARATE, RAW_ONE, RAW_MANY)



def _settings(quick: bool, scale: float) -> dict[str, Any]:
    """Sizes, timed blocks per contestant (``repeats``), target seconds per block, iteration bounds, overhead calls."""
    if scale < TINY_BELOW:
        sizes, repeats, block_s, min_iters, max_iters, calls = SIZES_TINY, 3, 0.002, 2, 20, 200
    elif quick:
        sizes, repeats, block_s, min_iters, max_iters, calls = SIZES_QUICK, 5, 0.04 * scale, 2, 20000, 5000
    else:
        sizes, repeats, block_s, min_iters, max_iters, calls = SIZES, 9, 0.15 * scale, 3, 50000, 20000
    return {
        "sizes": list(sizes),
        "repeats": repeats,
        "block_s": block_s,
        "min_iters": min_iters,
        "max_iters": max_iters,
        "calls": calls,
    }


# ------------------------------------------------------------------------------------ entry points


def run(
    quick: bool = False,
    *,
    scale: float = 1.0,
    install_missing: bool = False,
    log: Callable[[str], None] | None = None,
    timeout: float | None = None,
    hosts: int | None = None,
) -> dict[str, Any] | None:
    """Measure every contestant on 2 ranks and return the numbers (rank 0), or ``None`` on the other ranks.

    From a plain process this starts ``mpiexec -n 2`` (see :func:`find_mpiexec`) and waits for it; under a launcher
    with 2 or more ranks it measures in this job directly. With ``hosts=2`` the two ranks run on two test hosts of
    the multi-host harness (``scripts/multihost.sh``, one rank each: every message crosses the harness's network).

    Args:
        quick (bool): 7 sizes up to 4 MiB and shorter timed blocks: under half a minute (full run: 1-2 minutes).
        scale (float): multiplies the time of each timed block; below 0.1, the tiny test configuration (2 sizes).
        install_missing (bool): unused (nothing is installed); accepted like every suite's ``run``.
        log (callable or None): called with a line of progress before each size.
        timeout (float or None): seconds before the launched job is killed; default 90 (tiny), 600 (quick), 1800.
        hosts (int or None): 2: across two test hosts of the harness (needs root, ``ip netns`` and a source
            checkout, whose ``scripts/multihost.sh`` builds them); None: this host.

    Returns:
        A JSON-ready dict: ``machine``, ``settings``, ``hpc``, ``sizes`` (one row per size with ``rows`` keyed by
        contestant and the target checks), ``fused``, ``call_overhead_ns`` (per call on ``COMM_SELF``, no network)
        and ``targets``; ``None`` on ranks other than 0.

    Raises:
        RuntimeError: no mpiexec or mpi4py (see :func:`unavailable`), or the launched job failed or timed out.
    """
    del install_missing
    if not (isinstance(scale, int | float) and scale > 0):
        raise ValueError(f"scale must be a positive number; got {scale!r}")
    if hosts is not None and hosts != RANKS:
        raise ValueError(f"hosts must be {RANKS} (one rank per test host) or None; got {hosts!r}")
    settings = _settings(quick, scale)
    settings.update(quick=quick, scale=scale)
    if _inside_job_of_two() and hosts is None:
        return _measure(settings, log)
    problem = unavailable() or (_harness_problem() if hosts else None)
    if problem:
        raise RuntimeError(f"hpc bench mpi: {problem}")
    if timeout is None:
        timeout = 90.0 if scale < TINY_BELOW else 600.0 if quick else 1800.0
    return _launch(settings, log, timeout, hosts)


def harness() -> _Path:
    """Return the multi-host harness of a source checkout (``scripts/multihost.sh`` beside the ``hpc`` package)."""
    return _Path(__file__).resolve().parents[2] / "scripts" / "multihost.sh"


def _harness_problem() -> str | None:
    script = harness()
    if not script.is_file():
        return f"--hosts needs the multi-host harness of a source checkout ({script} is missing)"
    env = {**_os.environ, "MPIEXEC": find_mpiexec() or "mpiexec"}  # the launcher the run would give it
    check = _subprocess.run([str(script), "--check"], capture_output=True, text=True, timeout=60, env=env)
    return None if check.returncode == 0 else f"--hosts: the harness cannot run here: {check.stdout.strip()}"


def unavailable() -> str | None:
    """Return why this benchmark cannot run here (no mpi4py, no mpiexec), or ``None`` when it can."""
    if _inside_job_of_two():
        return None
    if _import_util.find_spec("mpi4py") is None:
        return "needs mpi4py and an MPI library: pip install mpi4py mpich"
    if find_mpiexec() is None:
        return f"needs mpiexec, found neither next to {_sys.executable} nor on PATH: pip install mpich"
    return None


def find_mpiexec() -> str | None:
    """Return the ``mpiexec`` next to this Python (the mpich wheel's), else the one on ``PATH``, else ``None``."""
    beside = _Path(_sys.executable).parent / "mpiexec"
    if beside.is_file() and _os.access(beside, _os.X_OK):
        return str(beside)
    return _shutil.which("mpiexec")


def _inside_job_of_two() -> bool:
    from hpc.info import detect_launcher

    if detect_launcher() is None:
        return False
    from hpc import mpi

    return mpi.world().size >= 2


def _launch(
    settings: dict[str, Any], log: Callable[[str], None] | None, timeout: float, hosts: int | None = None
) -> dict[str, Any]:
    mpiexec = find_mpiexec()
    assert mpiexec is not None
    say = log or (lambda line: None)
    with _tempfile.TemporaryDirectory(prefix="hpc-bench-mpi-") as tmp:
        out = _Path(tmp) / "results.json"
        if hosts:  # the harness's hosts share this file system: rank 0 writes `out` as it would here
            command = [str(harness()), "--hosts", str(hosts), "--ppn", "1", "--timeout", str(int(timeout)), "--"]
            env = {**_launcher.child_environment(), "MPIEXEC": mpiexec}
        else:
            command = [mpiexec, *_mpiexec_flags(mpiexec), "-n", str(RANKS)]
            env = _launcher.child_environment()
        command += [_sys.executable, "-m", "hpc.bench.mpi", "--worker", "--out", str(out)]
        command += ["--scale", repr(settings["scale"])] + (["--quick"] if settings["quick"] else [])
        say(f"starting {' '.join(command[:6])} ... (timeout {timeout:g} s)")
        # stdout and stderr pass through (the workers' progress and any traceback); own session: a timeout ends all.
        proc = _subprocess.Popen(command, env=env, stdin=_subprocess.DEVNULL, start_new_session=True)
        try:
            status = proc.wait(timeout=timeout)
        except _subprocess.TimeoutExpired:
            _kill_group(proc)
            raise RuntimeError(f"hpc bench mpi: the {RANKS}-rank job did not finish in {timeout:g} s; killed") from None
        except BaseException:  # Ctrl-C: take the job down with us
            _kill_group(proc)
            raise
        if status != 0 or not out.exists():
            raise RuntimeError(
                f"hpc bench mpi: `{' '.join(command)}` exited with status {status} (its messages are above)"
            )
        return _json.loads(out.read_text(encoding="utf-8"))


def _mpiexec_flags(mpiexec: str) -> list[str]:
    # Open MPI refuses more ranks than cores (and root) unless told; MPICH's hydra needs nothing.
    try:
        version = _subprocess.run([mpiexec, "--version"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, _subprocess.SubprocessError):
        return []
    if "Open MPI" not in version and "OpenRTE" not in version:
        return []
    flags = ["--oversubscribe"]
    if hasattr(_os, "geteuid") and _os.geteuid() == 0:
        flags.append("--allow-run-as-root")
    return flags


def _kill_group(proc: _subprocess.Popen) -> None:
    try:
        _os.killpg(proc.pid, _signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


# ------------------------------------------------------------------------------------ the measurement (every rank)


def _measure(settings: dict[str, Any], log: Callable[[str], None] | None) -> dict[str, Any] | None:
    import numpy as np
    from mpi4py import MPI

    from hpc import mpi

    comm = mpi.world()
    c = comm.mpi
    root = comm.rank == 0
    say = (log or (lambda line: None)) if root else (lambda line: None)
    load_before = _loadavg()

    def block(fn: Callable[[], Any], n: int) -> float:
        """Seconds per call of ``fn``: the per-rank average of ``n`` calls, maximum over ranks."""
        c.Barrier()
        t0 = MPI.Wtime()
        for _ in range(n):
            fn()
        return c.allreduce((MPI.Wtime() - t0) / n, op=MPI.MAX)

    def calibrate(fn: Callable[[], Any]) -> int:
        """Warm ``fn`` up and return the iteration count that makes a timed block about ``block_s`` long."""
        fn()
        n = 1
        while True:  # every decision rests on the max over ranks, so every rank makes the same calls
            t = block(fn, n)
            if n * t >= settings["block_s"] / 4 or n >= settings["max_iters"]:
                break
            n = min(settings["max_iters"], n * 8)
        wanted = _math.ceil(settings["block_s"] / t) if t > 0 else settings["max_iters"]
        return max(settings["min_iters"], min(settings["max_iters"], wanted))

    def timed(cases: dict[str, Callable[[], Any]]) -> dict[str, dict[str, Any]]:
        iters = {label: calibrate(fn) for label, fn in cases.items()}
        runs: dict[str, list[float]] = {label: [] for label in cases}
        labels = list(cases)
        for round_ in range(settings["repeats"]):  # interleaved: a burst of load hits every contestant alike
            turn = round_ % len(labels)
            for label in labels[turn:] + labels[:turn]:  # rotated: no contestant always runs after the same one
                runs[label].append(block(cases[label], iters[label]))
        return {
            label: {"seconds": _statistics.median(runs[label]), "runs": runs[label], "iterations": iters[label]}
            for label in cases
        }

    rng = np.random.default_rng(20261127 + comm.rank)
    sizes: list[dict[str, Any]] = []
    for nbytes in settings["sizes"]:
        say(f"{_size_label(nbytes)}")
        x = rng.standard_normal(max(1, nbytes // 8))
        recv, out, recv_max = np.empty_like(x), np.empty_like(x), np.empty_like(x)
        cases: dict[str, Callable[[], Any]] = {
            RAW: lambda x=x, recv=recv: c.Allreduce(x, recv, MPI.SUM),
            PICKLE: lambda x=x: c.allreduce(x, op=MPI.SUM),
            OURS: lambda x=x: comm.allreduce(x),
            OURS_OUT: lambda x=x, out=out: comm.allreduce(x, out=out),
            REPRO: lambda x=x: comm.allreduce(x, reproducible=True),
            RAW_MAX: lambda x=x, recv_max=recv_max: c.Allreduce(x, recv_max, MPI.MAX),
            OURS_MAX: lambda x=x: comm.allreduce(x, op="max"),
        }
        if nbytes > PICKLE_MAX:
            del cases[PICKLE]
        ok = _check_results(cases, recv, out, recv_max, np)
        rows = timed(cases)
        for label, row in rows.items():
            row["ok"] = ok[label]
        sizes.append(_size_row(nbytes, comm.size, rows))

    say(f"{FUSED_COUNT} scalar reductions: fused vs separate")
    values = [float(comm.rank + i) + 0.5 for i in range(FUSED_COUNT)]
    one, one_recv = np.ones(1), np.empty(1)
    many, many_recv = np.asarray(values), np.empty(FUSED_COUNT)

    def fused() -> list[Any]:
        with comm.fused() as f:
            results = [f.allreduce(v) for v in values]
        return results

    def separate() -> list[Any]:
        return [comm.allreduce(v) for v in values]

    def raw_many() -> None:
        for _ in range(FUSED_COUNT):
            c.Allreduce(one, one_recv, MPI.SUM)

    fused_cases = {
        FUSED: fused,
        SEPARATE: separate,
        RAW_ONE: lambda: c.Allreduce(many, many_recv, MPI.SUM),
        RAW_MANY: raw_many,
    }
    expected = [sum(column) for column in zip(*c.allgather(values))]  # small integers + 0.5: exact in any order
    fused_ok = [r.value for r in fused()] == expected and separate() == expected
    fused_rows = timed(fused_cases)
    fused_kinds = {}
    for label, dtype, width, target in FUSED_KINDS:
        say(f"{FUSED_COUNT} {label}: fused (and every value read) vs separate")
        entries = [np.dtype(dtype).type(v) if width == 0 else np.full(width, v, dtype) for v in values]

        def fused_read(entries: list[Any] = entries) -> list[Any]:
            with comm.fused() as f:
                results = [f.allreduce(e) for e in entries]
            return [r.value for r in results]

        def separate_many(entries: list[Any] = entries) -> list[Any]:
            return [comm.allreduce(e) for e in entries]

        same = all(np.array_equal(a, b) and type(a) is type(b) for a, b in zip(fused_read(), separate_many()))
        rows = timed({FUSED: fused_read, SEPARATE: separate_many})
        kind_speedup = rows[SEPARATE]["seconds"] / rows[FUSED]["seconds"]
        fused_kinds[label] = {"ok": same, "rows": rows, "speedup": kind_speedup, "target": target,
                              "pass": None if target is None else kind_speedup >= target}
    say("per-call cost without the network (COMM_SELF)")
    overhead = _call_overhead(mpi.Comm(MPI.COMM_SELF), MPI, np, settings["calls"], settings["repeats"])
    overhead = {label: c.allreduce(ns, op=MPI.MAX) for label, ns in overhead.items()}
    load_after = _loadavg()
    host_names = c.allgather(_socket.gethostname())
    if not root:
        return None
    for row in fused_rows.values():
        row["us_per_reduction"] = row["seconds"] / FUSED_COUNT * 1e6
    speedup = fused_rows[SEPARATE]["seconds"] / fused_rows[FUSED]["seconds"]
    results = {
        "machine": _machine(comm, MPI, load_before, load_after, host_names),
        "settings": {**settings, "ranks": comm.size, "pickle_max": PICKLE_MAX, "fused_count": FUSED_COUNT},
        "hpc": {"check": comm.check, "watchdog_s": comm.timeout, "fast_path": not comm.check and comm.timeout <= 0},
        "sizes": sizes,
        "fused": {
            "count": FUSED_COUNT,
            "ok": fused_ok,
            "rows": fused_rows,
            "speedup": speedup,
            "fused_vs_raw_one": fused_rows[FUSED]["seconds"] / fused_rows[RAW_ONE]["seconds"],
            "separate_vs_raw_many": fused_rows[SEPARATE]["seconds"] / fused_rows[RAW_MANY]["seconds"],
            "target": TARGET_FUSED,
            "pass": speedup >= TARGET_FUSED,
        },
        "fused_kinds": fused_kinds,
        "call_overhead_ns": overhead,
    }
    results["targets"] = _targets(results)
    return results


def _call_overhead(comm: Any, MPI: Any, np: Any, calls: int, repeats: int) -> dict[str, float]:  # noqa: N803
    """Median ns per call on a one-rank communicator: what each contestant costs besides the network (8 bytes)."""
    c, x, recv, out = comm.mpi, np.ones(1), np.empty(1), np.empty(1)
    cases: dict[str, Callable[[], Any]] = {
        RAW: lambda: c.Allreduce(x, recv, MPI.SUM),
        OURS: lambda: comm.allreduce(x),
        OURS_OUT: lambda: comm.allreduce(x, out=out),
        "raw allreduce(float) (pickle)": lambda: c.allreduce(0.5, op=MPI.SUM),
        "ours allreduce(float)": lambda: comm.allreduce(0.5),
    }
    runs: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(repeats):
        for label, fn in cases.items():
            fn()
            t0 = MPI.Wtime()
            for _ in range(calls):
                fn()
            runs[label].append((MPI.Wtime() - t0) / calls * 1e9)
    return {label: _statistics.median(values) for label, values in runs.items()}


def _check_results(cases: dict[str, Callable[[], Any]], recv: Any, out: Any, recv_max: Any,
                   np: Any) -> dict[str, bool]:
    """Call each contestant once and compare with raw ``Allreduce`` of its op (bitwise; reproducible: to 1e-12)."""
    cases[RAW]()
    cases[RAW_MAX]()
    reference, reference_max = recv.copy(), recv_max.copy()
    ok = {RAW: True, RAW_MAX: True}
    for label, fn in cases.items():
        if label in ok:
            continue
        got = fn()
        got = out if label == OURS_OUT else got
        if label == REPRO:
            ok[label] = bool(np.allclose(got, reference, rtol=1e-12, atol=0.0))
        else:
            ok[label] = bool(np.array_equal(got, reference_max if label == OURS_MAX else reference))
    return ok


def _size_row(nbytes: int, ranks: int, rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    for row in rows.values():
        seconds = row["seconds"]
        row["us"] = seconds * 1e6
        row["algbw_gbs"] = nbytes / seconds / 1e9
        row["busbw_gbs"] = row["algbw_gbs"] * 2 * (ranks - 1) / ranks
    raw = rows[RAW]["us"]
    checks = {}
    for label in (OURS, OURS_OUT):
        ours = rows[label]["us"]
        limit = raw * (1 + TARGET_REL) + TARGET_ABS_US
        checks[label] = {
            "minus_raw_us": ours - raw,
            "over_raw": ours / raw,
            "limit_us": limit,
            "pass": ours <= limit,
        }
    repro_ratio = rows[REPRO]["us"] / rows[OURS]["us"]
    return {
        "max_over_raw": rows[OURS_MAX]["us"] / rows[RAW_MAX]["us"],
        "bytes": nbytes,
        "count": max(1, nbytes // 8),
        "rows": rows,
        "vs_raw": checks,
        "repro_over_plain": repro_ratio,
        "repro_target_applies": nbytes >= TARGET_REPRO_FROM,
        "repro_pass": repro_ratio <= TARGET_REPRO if nbytes >= TARGET_REPRO_FROM else None,
    }


def _targets(results: dict[str, Any]) -> dict[str, Any]:
    sizes = results["sizes"]
    summary: dict[str, Any] = {}
    for label in (OURS, OURS_OUT):
        failed = [row["bytes"] for row in sizes if not row["vs_raw"][label]["pass"]]
        summary[f"{label} <= raw + 1 us + 5%"] = {"pass": not failed, "failed_sizes": failed}
    applies = [row for row in sizes if row["repro_target_applies"]]
    failed = [row["bytes"] for row in applies if not row["repro_pass"]]
    summary["reproducible <= 2x plain at >= 1 MiB"] = {
        "pass": (not failed) if applies else None,
        "failed_sizes": failed,
    }
    summary["fused >= 20x separate"] = {"pass": results["fused"]["pass"], "speedup": results["fused"]["speedup"]}
    for label, kind in results["fused_kinds"].items():
        if kind["target"] is not None:
            summary[f"fused {label} >= {kind['target']:g}x separate"] = {"pass": kind["pass"],
                                                                          "speedup": kind["speedup"]}
    return summary


def _machine(comm: Any, MPI: Any, load_before: Any, load_after: Any, host_names: list[str]) -> dict[str, Any]:  # noqa: N803
    library = MPI.Get_library_version().strip()
    return _describe(
        ("mpi4py", "numpy"),
        ranks=comm.size,
        rank_hosts=host_names,
        mpi_library=" ".join(library.splitlines()[0].split()) if library else "unknown",
        mpi_library_full=library,
        mpi_standard="{}.{}".format(*MPI.Get_version()),
        loadavg_before=load_before,
        loadavg_after=load_after,
    )


# ------------------------------------------------------------------------------------ the table


def _size_label(nbytes: int) -> str:
    for unit, factor in (("MiB", MiB), ("KiB", KiB)):
        if nbytes >= factor and nbytes % factor == 0:
            return f"{nbytes // factor} {unit}"
    return f"{nbytes} B"


def _us(value: float | None, width: int = 10) -> str:
    if value is None:
        return f"{'-':>{width}}"
    return f"{value:{width}.1f}" if value < 1e5 else f"{value:{width}.4g}"


def format_table(results: dict[str, Any]) -> str:
    """Return ``results`` from :func:`run` as plain-text tables (latency, bandwidth, fused) and the target lines."""
    m, s, h = results["machine"], results["settings"], results["hpc"]
    how = [
        f"median of {s['repeats']} timed blocks (contestants interleaved, order rotated each round) "
        "of max-over-ranks per-call averages"
    ]
    if s["quick"]:
        how.append("quick")
    if s["scale"] != 1:
        how.append(f"block time x{s['scale']:g}")
    lines = [
        f"hpc bench mpi: {m['ranks']} ranks {_where(m)}; {m['mpi_library']} (MPI {m['mpi_standard']}); "
        f"mpi4py {m['versions']['mpi4py']}, numpy {m['versions']['numpy']}; Python {m['python']}; {m['date']}",
        "; ".join(how) + f"; load average {_load(m['loadavg_before'])} before the run "
        f"({_load(m['loadavg_after'])} after, counting the busy-polling ranks themselves)",
        "float64 sums; raw Allreduce uses preallocated buffers; 'ours' allocates its output each call as users call it",
    ]
    if not h["fast_path"]:
        lines.append(f"note: HPC_MPI_CHECK={int(h['check'])} / HPC_MPI_TIMEOUT={h['watchdog_s']:g}: ours is checked")
    lines += [
        "",
        "latency (us), and our allreduce against raw Allreduce: ours - raw (us), ours / raw, ours <= raw + 1 us + 5%",
        f"{'size':>8}{'raw':>10}{'pickle':>10}{'ours':>10}{'out=':>10}{'repro':>10}{'repro/ours':>12} |"
        f"{'ours-raw':>10}{'ratio':>8}{'target':>7} |{'out=-raw':>10}{'ratio':>8}{'target':>7}",
    ]
    for row in results["sizes"]:
        r = row["rows"]
        bad = [label for label, v in r.items() if not v["ok"]]
        cells = "".join(_us(r[label]["us"] if label in r else None) for label in CONTESTANTS)
        checks = "".join(_check(row["vs_raw"][label]) for label in (OURS, OURS_OUT))
        flag = f"  (result differs: {', '.join(bad)})" if bad else ""
        lines.append(f"{_size_label(row['bytes']):>8}{cells}{row['repro_over_plain']:11.2f}x{checks}{flag}")
    lines += [
        "",
        "float max (ours: integer keys, the same NaN answer on every rank) against raw Allreduce(MAX): latency (us)",
        f"{'size':>8}{'raw MAX':>10}{'ours max':>10}{'ratio':>8}",
    ]
    for row in results["sizes"]:
        r = row["rows"]
        if OURS_MAX in r:  # runs recorded before the max contestants have none
            flag = "" if r[OURS_MAX]["ok"] else "  (result differs)"
            lines.append(f"{_size_label(row['bytes']):>8}{_us(r[RAW_MAX]['us'])}{_us(r[OURS_MAX]['us'])}"
                         f"{row['max_over_raw']:7.2f}x{flag}")
    lines += [
        "",
        "bandwidth (GB/s; busbw = algbw * 2(n-1)/n)",
        f"{'size':>8}{'algbw raw':>11}{'ours':>8}{'out=':>8}{'repro':>8}{'pickle':>8}"
        f"{'busbw raw':>11}{'ours':>8}{'out=':>8}{'repro':>8}",
    ]
    for row in results["sizes"]:
        r = row["rows"]
        alg = "".join(_gbs(r, label, "algbw_gbs", w) for label, w in ((RAW, 11), (OURS, 8), (OURS_OUT, 8), (REPRO, 8)))
        alg += _gbs(r, PICKLE, "algbw_gbs", 8)
        bus = "".join(_gbs(r, label, "busbw_gbs", w) for label, w in ((RAW, 11), (OURS, 8), (OURS_OUT, 8), (REPRO, 8)))
        lines.append(f"{_size_label(row['bytes']):>8}{alg}{bus}")
    f = results["fused"]
    lines += [
        "",
        f"{f['count']} scalar float sums{'' if f['ok'] else '  (results differ!)'}",
        f"  {'':28}{'us per 100':>12}{'us each':>10}",
    ]
    for label, row in f["rows"].items():
        lines.append(f"  {label:28}{row['seconds'] * 1e6:12.1f}{row['us_per_reduction']:10.2f}")
    lines += [
        f"  fused is {f['speedup']:.1f}x faster than separate (target >= {f['target']:g}x); "
        f"fused / raw single Allreduce {f['fused_vs_raw_one']:.1f}x; "
        f"separate / raw 100 Allreduce {f['separate_vs_raw_many']:.2f}x",
        "",
        f"{f['count']} fused entries of other kinds (every value read after the block) against separate calls:",
        f"  {'':28}{'fused us':>10}{'separate us':>13}{'speedup':>9}",
    ]
    for label, kind in results["fused_kinds"].items():
        rows = kind["rows"]
        lines.append(f"  {label:28}{rows[FUSED]['seconds'] * 1e6:10.1f}{rows[SEPARATE]['seconds'] * 1e6:13.1f}"
                     f"{kind['speedup']:8.1f}x{'' if kind['ok'] else '  (results differ!)'}")
    lines.append("")
    o = results["call_overhead_ns"]
    raw_ns, float_ns = o[RAW], o["raw allreduce(float) (pickle)"]
    lines += [
        f"per-call cost without the network (COMM_SELF, 8 B, median of {s['repeats']} x {s['calls']:,} calls, "
        "max over ranks):",
        f"  raw Allreduce {raw_ns:.0f} ns; ours {o[OURS]:.0f} ns ({o[OURS] - raw_ns:+.0f}); "
        f"ours out= {o[OURS_OUT]:.0f} ns ({o[OURS_OUT] - raw_ns:+.0f})",
        f"  a Python float: raw allreduce(float) (pickle) {float_ns:.0f} ns; "
        f"ours allreduce(float) {o['ours allreduce(float)']:.0f} ns ({o['ours allreduce(float)'] - float_ns:+.0f})",
        "",
        "targets (benchmark lines, not tests: a miss is reported here and does not change the exit status)",
    ]
    for name, t in results["targets"].items():
        verdict = "n/a" if t["pass"] is None else "PASS" if t["pass"] else "FAIL"
        extra = ""
        if t.get("failed_sizes"):
            extra = " at " + ", ".join(_size_label(b) for b in t["failed_sizes"])
        elif "speedup" in t:
            extra = f" ({t['speedup']:.1f}x)"
        lines.append(f"  {verdict:5}{name}{extra}")
    return "\n".join(lines)


def _check(c: dict[str, Any]) -> str:
    return f" |{c['minus_raw_us']:+10.1f}{c['over_raw']:7.2f}x{'pass' if c['pass'] else 'FAIL':>7}"


def _gbs(rows: dict[str, Any], label: str, key: str, width: int) -> str:
    if label not in rows:
        return f"{'-':>{width}}"
    value = rows[label][key]
    return f"{value:{width}.3f}" if value < 10 else f"{value:{width}.1f}"


def _where(machine: dict[str, Any]) -> str:
    """Say where the ranks ran: on this host's cores, or on which hosts."""
    hosts = machine.get("rank_hosts") or []
    if len(set(hosts)) > 1:
        return f"on {len(set(hosts))} hosts ({', '.join(hosts)})"
    return f"on {machine['cores']} cores"


def _load(values: list[float] | None) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


# ------------------------------------------------------------------------------------ python -m hpc.bench.mpi


def _main(argv: list[str] | None = None) -> int:
    parser = _argparse.ArgumentParser(
        prog="python -m hpc.bench.mpi",
        description="hpc's allreduce against raw mpi4py (the same as `hpc bench mpi`; runs in place under mpiexec).",
    )
    parser.add_argument("--quick", action="store_true", help="7 sizes up to 4 MiB, shorter timed blocks")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers, with machine info, as JSON")
    parser.add_argument("--worker", action="store_true", help=_argparse.SUPPRESS)  # started by run(): measure only
    parser.add_argument("--out", metavar="FILE", help=_argparse.SUPPRESS)  # where a worker's rank 0 writes JSON
    parser.add_argument("--scale", type=float, default=1.0, help=_argparse.SUPPRESS)
    parser.add_argument("--hosts", type=int, metavar="N", help="run on N=2 test hosts of the multi-host harness")
    parser.add_argument("--tiny", action="store_true", help=_argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.worker:
        from hpc import bench

        extra = ["--quick"] * args.quick + ["--tiny"] * args.tiny + (["--json", args.json] if args.json else [])
        extra += ["--hosts", str(args.hosts)] if args.hosts is not None else []
        return bench.main(["mpi", *extra])
    settings = _settings(args.quick, args.scale)
    settings.update(quick=args.quick, scale=args.scale)

    def log(line: str) -> None:
        print(f"hpc bench mpi: {line}", file=_sys.stderr, flush=True)

    results = _measure(settings, log)
    if results is not None and args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            _json.dump(results, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    _sys.exit(_main())
