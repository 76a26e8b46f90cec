"""``hpc bench roofline``: this machine's ceilings, measured in the run that uses them.

Memory bandwidth by a multi-threaded (and a one-thread) STREAM-style triad ``a = b + s*c`` (24 bytes per element:
two reads, one write; write-allocate traffic not counted, as STREAM) and a read kernel (a sum, 8 bytes per
element), numba loops on arrays far larger than the last-level cache (8x it in full mode); the FLOP rate by
BLAS ``numpy.matmul`` in float64. ``OPENBLAS_CORETYPE``/``OPENBLAS_L2_SIZE`` slow a current OpenBLAS where they are
set: then gemm is measured a second time in a subprocess with both unset, and both numbers are reported.
"""

from __future__ import annotations

import json as _json
import os as _os
import subprocess as _subprocess
import sys as _sys
from collections.abc import Callable
from typing import Any

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from hpc.bench._timing import measure as _measure

__all__ = ["LLC_BYTES", "format_table", "run"]

#: last-level cache assumed when the OS does not say (this machine: 32 MiB L3)
LLC_BYTES = 32 << 20
_OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


@_njit(cache=True, nogil=True, parallel=True, fastmath={"contract"})
def _triad(a, b, c, s):  # pragma: no cover - compiled by numba
    for i in _prange(a.shape[0]):
        a[i] = b[i] + s * c[i]


@_njit(cache=True, nogil=True, parallel=True, fastmath={"reassoc", "contract"})
def _read(a):  # pragma: no cover - compiled by numba
    acc = 0.0
    for i in _prange(a.shape[0]):
        acc += a[i]
    return acc


@_njit(cache=True, nogil=True, fastmath={"contract"})
def _triad_serial(a, b, c, s):  # pragma: no cover - compiled by numba
    for i in range(a.shape[0]):
        a[i] = b[i] + s * c[i]


@_njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def _read_serial(a):  # pragma: no cover - compiled by numba
    acc = 0.0
    for i in range(a.shape[0]):
        acc += a[i]
    return acc


def llc_bytes() -> int:
    """Return the size of the largest CPU cache the OS reports (sysfs), else :data:`LLC_BYTES`."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in _os.listdir(base):
            try:
                with open(f"{base}/{entry}/size", encoding="ascii") as f:
                    text = f.read().strip()
            except OSError:
                continue
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            best = max(best, int(text.rstrip("KMG")) * mult)
    except (OSError, ValueError):
        pass
    return best or LLC_BYTES


def _time_triad(n: int, repeats: int, kernel) -> dict[str, Any]:
    b = _np.full(n, 1.0)
    c = _np.full(n, 2.0)
    a = _np.empty(n)
    kernel(a, b, c, 3.0)  # compile or load, and touch every page
    return _measure(lambda: kernel(a, b, c, 3.0), repeats)


def _time_read(n: int, repeats: int, kernel) -> dict[str, Any]:
    x = _np.full(n, 1.0)
    kernel(x)
    return _measure(lambda: kernel(x), repeats)


def _gemm_gflops(n: int, repeats: int) -> dict[str, Any]:
    rng = _np.random.default_rng(0)
    a = rng.standard_normal((n, n))
    b = rng.standard_normal((n, n))
    c = _np.empty((n, n))
    t = _measure(lambda: _np.matmul(a, b, out=c), repeats)
    return {"n": n, "seconds": t, "gflops": 2.0 * n**3 / t["median"] / 1e9}


def _gemm_clean_env(n: int, repeats: int) -> dict[str, Any] | None:
    env = {k: v for k, v in _os.environ.items() if k not in _OPENBLAS_VARS}
    code = f"import json, sys; from hpc.bench import roofline as r; print(json.dumps(r._gemm_gflops({n}, {repeats})))"
    try:
        proc = _subprocess.run([_sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
        return _json.loads(proc.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, _subprocess.SubprocessError):
        return None


def _blas_info() -> list[dict[str, Any]]:
    try:
        from threadpoolctl import threadpool_info

        return [
            {k: i.get(k) for k in ("internal_api", "version", "num_threads", "architecture")}
            for i in threadpool_info()
            if i.get("user_api") == "blas"
        ]
    except Exception:  # threadpoolctl is a dependency, but its probing may fail on odd systems: report nothing
        return []


def run(quick: bool = False, *, scale: float = 1.0, log: Callable[[str], None] | None = None, **_: Any) -> dict:
    """Measure the memory-bandwidth and FLOP ceilings of this machine and return them.

    Args:
        quick (bool): arrays of 2x the last-level cache in total (not 8x), fewer repeats; a few seconds.
        scale (float): multiplies the array sizes and the gemm volume (tests use 0.01).
        log (callable or None): called with a progress line before each measurement.

    Returns:
        A JSON-ready dict: ``llc_bytes``, ``threads`` (numba's), ``triad`` and ``read`` (``bytes`` per run,
        ``seconds`` {median, min, max, spread, runs}, ``gbs``), ``triad_1thread``/``read_1thread`` (the same
        kernels serial), ``gemm`` (``n``, ``seconds``, ``gflops``),
        ``gemm_clean_env`` (the same with the OpenBLAS variables unset, or ``None`` when none was set),
        ``ceilings`` (``triad_gbs``, ``read_gbs``: the better of the parallel and serial runs; ``gflops``: the
        numbers other suites divide by), ``env``
        (the OpenBLAS variables as found) and ``blas`` (threadpoolctl's view).

    Example:
        >>> from hpc.bench import roofline
        >>> sorted(roofline.run(True, scale=0.01)["ceilings"])
        ['gflops', 'read_gbs', 'triad_gbs']
    """
    import numba as _numba

    say = log or (lambda line: None)
    llc = llc_bytes()
    repeats = 3 if quick else 7
    factor = 2 if quick else 8
    elems = max(1024, int(factor * llc * scale) // 8)
    per_array = max(1024, elems // 3)  # the triad's three arrays together span factor x LLC
    say(f"triad on 3 x {per_array * 8 / 2**20:.0f} MiB, read on {elems * 8 / 2**20:.0f} MiB")
    triad = _time_triad(per_array, repeats, _triad)
    read = _time_read(elems, repeats, _read)
    triad_1 = _time_triad(per_array, repeats, _triad_serial)
    read_1 = _time_read(elems, repeats, _read_serial)
    n = max(64, int((1024 if quick else 2048) * scale ** (1 / 3)))
    say(f"gemm float64 {n} x {n}")
    gemm = _gemm_gflops(n, repeats)
    env = {k: _os.environ.get(k) for k in _OPENBLAS_VARS}
    clean = _gemm_clean_env(n, repeats) if any(env.values()) else None
    triad_bytes, read_bytes = 24 * per_array, 8 * elems
    result = {
        "llc_bytes": llc,
        "threads": _numba.get_num_threads(),
        "triad": {"bytes": triad_bytes, "seconds": triad, "gbs": triad_bytes / triad["median"] / 1e9},
        "read": {"bytes": read_bytes, "seconds": read, "gbs": read_bytes / read["median"] / 1e9},
        "triad_1thread": {"bytes": triad_bytes, "seconds": triad_1, "gbs": triad_bytes / triad_1["median"] / 1e9},
        "read_1thread": {"bytes": read_bytes, "seconds": read_1, "gbs": read_bytes / read_1["median"] / 1e9},
        "gemm": gemm,
        "gemm_clean_env": clean,
        "env": env,
        "blas": _blas_info(),
    }
    # the ceiling is the best this machine showed: on a machine shared with other busy processes one thread
    # can beat two, whose slower partner holds up every parallel region
    result["ceilings"] = {
        "triad_gbs": max(result["triad"]["gbs"], result["triad_1thread"]["gbs"]),
        "read_gbs": max(result["read"]["gbs"], result["read_1thread"]["gbs"]),
        "gflops": max(gemm["gflops"], clean["gflops"] if clean else 0.0),
    }
    return result


def format_table(result: dict) -> str:
    """Return the roofline result as a short human-readable table."""
    lines = [
        f"roofline ceilings ({result['threads']} numba threads, LLC {result['llc_bytes'] / 2**20:.0f} MiB)",
        f"{'ceiling':<34}{'value':>12}  {'median s':>10}  {'spread':>7}",
    ]
    for key, label in (
        ("triad", "memory triad a=b+s*c"),
        ("read", "memory read (sum)"),
        ("triad_1thread", "triad, 1 thread"),
        ("read_1thread", "read, 1 thread"),
    ):
        r = result[key]
        size = f" {r['bytes'] / 2**20:.0f} MiB"
        lines.append(
            f"{label + size:<34}{r['gbs']:>8.1f} GB/s  {r['seconds']['median']:>10.4f}  {r['seconds']['spread']:>6.1%}"
        )
    g = result["gemm"]
    lines.append(
        f"{'dgemm np.matmul n=' + str(g['n']):<34}{g['gflops']:>5.1f} GFLOP/s  "
        f"{g['seconds']['median']:>10.4f}  {g['seconds']['spread']:>6.1%}"
    )
    if result.get("gemm_clean_env"):
        lines.append(f"{'dgemm, OPENBLAS_* unset':<34}{result['gemm_clean_env']['gflops']:>5.1f} GFLOP/s")
    env = ", ".join(f"{k}={v}" for k, v in result["env"].items() if v) or "OPENBLAS_CORETYPE/L2_SIZE not set"
    blas = "; ".join(f"{b.get('internal_api')} {b.get('version')} {b.get('architecture')}" for b in result["blas"])
    lines.append(f"env: {env}; BLAS: {blas or 'unknown'}")
    return "\n".join(lines)
