"""``hpc bench kernels``: every ``hpc.kernels`` kernel against NumPy (and numexpr), as a fraction of the roofline.

The ceilings come from :mod:`hpc.bench.roofline`, measured in the same run. Each kernel is timed at two sizes,
one far beyond the last-level cache (``large``: memory-bound kernels meet the bandwidth ceiling there) and one
in cache (``cache``: 1 MiB inputs), after a warm-up call; its first call (compile or on-disk cache load) is
reported apart. Memory-bound kernels are rated in GB/s against the read ceiling (kernels that only read) or the
triad ceiling (kernels that write); compute-bound ones in GFLOP/s against BLAS dgemm. A separate pair of
subprocesses measures compile time with an empty numba cache and the load time with the cache filled.
"""

from __future__ import annotations

import json as _json
import os as _os
import subprocess as _subprocess
import sys as _sys
import tempfile as _tempfile
import time as _time
from collections.abc import Callable
from typing import Any

import numpy as _np

from hpc import info as _info
from hpc.bench import _output
from hpc.bench import roofline as _roofline
from hpc.bench._machine import describe as _describe
from hpc.bench._timing import first_call as _first_call
from hpc.bench._timing import loadavg as _loadavg
from hpc.bench._timing import measure as _measure
from hpc.bench._timing import measure_pair as _measure_pair

__all__ = ["format_table", "plot", "run"]

#: float64 elements of the ``large`` size at full scale (256 MiB per array: 8x this machine's 32 MiB L3)
LARGE = 32 << 20
LARGE_QUICK = 8 << 20
#: float64 elements of the ``cache`` size (1 MiB per array)
CACHE = 1 << 17
#: row length of the row kernels (softmax, logsumexp, layernorm)
COLS = 4096


_STREAMED = "large out written with streaming stores: no write-allocate read, which the triad ceiling pays"


class _Case:
    """One kernel at one size: our call, the peers' calls, and the bytes and flops one call moves and does."""

    def __init__(self, name, bound, nbytes, flops, ours, numpy, numexpr=None, serial=None, note="", blas=False):
        self.name, self.bound, self.nbytes, self.flops = name, bound, nbytes, flops
        self.ours, self.numpy, self.numexpr, self.serial, self.note = ours, numpy, numexpr, serial, note
        self.blas = blas  # the NumPy peer runs on BLAS's threads, which spin for a while after it returns

    def __repr__(self):
        return f"<hpc bench kernels case {self.name} bound={self.bound}>"


def _cases(n: int, ne: Any) -> list[_Case]:
    """Build every case for ``n`` float64 elements (``ne``: the numexpr module or ``None``)."""
    from hpc import kernels as k
    from hpc.kernels._checks import STREAM_MIN_BYTES

    rng = _np.random.default_rng(20261127)
    x = rng.standard_normal(n)
    y = rng.standard_normal(n)
    out = _np.empty(n)
    rows = max(1, n // COLS)
    m = x[: rows * COLS].reshape(rows, COLS)
    mout = _np.empty_like(m)
    b8 = 8 * n
    fused = k.fuse(lambda u, v: u * v + 1.0)
    grid = int(n**0.5)
    u = x[: grid * grid].reshape(grid, grid)
    uout = _np.empty_like(u)
    a_rows = max(1, n // 2048)
    amat = x[: a_rows * 2048].reshape(a_rows, 2048)
    avec = y[:2048]
    gout = _np.empty(a_rows)

    def np_softmax(z):
        e = _np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def np_lse(z):
        mx = z.max(axis=1)
        return mx + _np.log(_np.exp(z - mx[:, None]).sum(axis=1))

    def np_layernorm(z, eps=1e-5):
        mu = z.mean(axis=1, keepdims=True)
        return (z - mu) / _np.sqrt(z.var(axis=1, keepdims=True) + eps)

    def np_jacobi(g):
        r = g.copy()
        r[1:-1, 1:-1] = 0.25 * (g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:])
        return r

    mb = 8 * m.size
    streamed = _STREAMED if out.nbytes >= STREAM_MIN_BYTES else ""  # only large outputs take streaming stores
    cases = [
        _Case("sum", "read", b8, n, lambda: k.sum(x, parallel=True), lambda: _np.sum(x),
              serial=lambda: k.sum(x, parallel=False)),
        _Case("sum accurate", "read", b8, 4 * n, lambda: k.sum(x, accurate=True, parallel=True), lambda: _np.sum(x),
              serial=lambda: k.sum(x, accurate=True, parallel=False)),
        _Case("dot", "read", 2 * b8, 2 * n, lambda: k.dot(x, y, parallel=True), lambda: _np.dot(x, y),
              serial=lambda: k.dot(x, y, parallel=False), blas=True),
        _Case("nrm2", "read", b8, 2 * n, lambda: k.nrm2(x, parallel=True), lambda: _np.linalg.norm(x),
              serial=lambda: k.nrm2(x, parallel=False), blas=True),  # norm of a vector: x.dot(x), BLAS ddot
        _Case("asum", "read", b8, 2 * n, lambda: k.asum(x, parallel=True), lambda: _np.abs(x).sum(),
              serial=lambda: k.asum(x, parallel=False)),
        _Case("min", "read", b8, n, lambda: k.min(x, parallel=True), lambda: _np.min(x),
              serial=lambda: k.min(x, parallel=False)),
        _Case("max", "read", b8, n, lambda: k.max(x, parallel=True), lambda: _np.max(x)),
        _Case("argmin", "read", b8, n, lambda: k.argmin(x, parallel=True), lambda: _np.argmin(x)),
        _Case("argmax", "read", b8, n, lambda: k.argmax(x, parallel=True), lambda: _np.argmax(x)),
        _Case("mean", "read", b8, n, lambda: k.mean(x, parallel=True), lambda: _np.mean(x)),
        _Case("var", "read", b8, 3 * n, lambda: k.var(x, parallel=True), lambda: _np.var(x),
              serial=lambda: k.var(x, parallel=False)),
        _Case("axpy (out=)", "triad", 3 * b8, 2 * n, lambda: k.axpy(2.0, x, y, out=out, parallel=True),
              lambda: _np.add(_np.multiply(2.0, x), y, out=out),
              ne and (lambda: ne.evaluate("2.0 * x + y", local_dict={"x": x, "y": y}, out=out)),
              serial=lambda: k.axpy(2.0, x, y, out=out, parallel=False), note=streamed),
        _Case("scal (out=)", "triad", 2 * b8, n, lambda: k.scal(3.0, x, out=out, parallel=True),
              lambda: _np.multiply(x, 3.0, out=out), note=streamed),
        _Case("a*x+b*y+c", "triad", 3 * b8, 4 * n, lambda: k.axpbyc(2.0, x, 3.0, y, 1.0, out=out, parallel=True),
              lambda: 2.0 * x + 3.0 * y + 1.0,
              ne and (lambda: ne.evaluate("2.0 * x + 3.0 * y + 1.0", local_dict={"x": x, "y": y}, out=out)),
              serial=lambda: k.axpbyc(2.0, x, 3.0, y, 1.0, out=out, parallel=False),
              note=streamed),
        _Case("fuse(x*y+1)", "triad", 3 * b8, 2 * n, lambda: fused(x, y, out=out, parallel=True),
              lambda: x * y + 1.0,
              ne and (lambda: ne.evaluate("x * y + 1.0", local_dict={"x": x, "y": y}, out=out))),
        _Case("softmax rows", "triad", 2 * mb, 4 * m.size, lambda: k.softmax(m, out=mout, parallel=True),
              lambda: np_softmax(m), serial=lambda: k.softmax(m, out=mout, parallel=False)),
        _Case("logsumexp rows", "read", mb, 3 * m.size, lambda: k.logsumexp(m, parallel=True), lambda: np_lse(m)),
        _Case("layernorm rows", "triad", 2 * mb, 6 * m.size, lambda: k.layernorm(m, out=mout, parallel=True),
              lambda: np_layernorm(m)),
        _Case("inclusive scan", "triad", 2 * b8, n, lambda: k.inclusive_scan(x, out=out, parallel=True),
              lambda: _np.cumsum(x, out=out), serial=lambda: k.inclusive_scan(x, out=out, parallel=False)),
        _Case("histogram 256 bins", "read", b8, 4 * n, lambda: k.histogram(x, 256, (-4.0, 4.0), parallel=True),
              lambda: _np.histogram(x, 256, (-4.0, 4.0))),
        _Case("jacobi 5-point", "triad", 2 * 8 * u.size, 4 * u.size, lambda: k.jacobi_step(u, out=uout, parallel=True),
              lambda: np_jacobi(u)),
        _Case("gemv", "read", 8 * amat.size, 2 * amat.size, lambda: k.gemv(amat, avec, out=gout),
              lambda: _np.dot(amat, avec), blas=True),
    ]  # fmt: skip
    # compute-bound: distances and k-means (their inputs fit in cache), gemm
    pts = max(64, n // 512)
    X = rng.standard_normal((pts, 64))
    C = rng.standard_normal((256, 64))
    D = _np.empty((pts, 256))
    dflops = 3 * pts * 256 * 64

    def np_sqdist():
        return (X * X).sum(1)[:, None] + (C * C).sum(1)[None, :] - 2.0 * X @ C.T

    cases += [
        _Case(
            "sqdist 64-d",
            "flops",
            8 * (X.size + D.size),
            dflops,
            lambda: k.sqdist(X, C, out=D, parallel=True),
            np_sqdist,
            note="NumPy peer: |x|^2+|c|^2-2x.c (BLAS)",
            blas=True,
        ),
        _Case(
            "kmeans assign k=256",
            "flops",
            8 * X.size,
            dflops,
            lambda: k.kmeans_assign(X, C, parallel=True),
            lambda: np_sqdist().argmin(axis=1),
            note="NumPy peer: argmin of the BLAS distances",
            blas=True,
        ),
    ]
    g = max(64, int(round((n / 32) ** (1 / 2) / 64)) * 64)
    A = rng.standard_normal((g, g))
    B = rng.standard_normal((g, g))
    G = _np.empty((g, g))
    cases += [
        _Case(f"gemm {g}", "flops", 8 * 3 * g * g, 2 * g**3, lambda: k.gemm(A, B, out=G),
              lambda: _np.matmul(A, B, out=G), blas=True),
        _Case(f"gemm_tiled {g}", "flops", 8 * 3 * g * g, 2 * g**3, lambda: k.gemm_tiled(A, B, out=G, parallel=True),
              lambda: _np.matmul(A, B, out=G), note="numba loops, a benchmark entry", blas=True),
    ]  # fmt: skip
    return cases


def _rate(case: _Case, seconds: float, ceilings: dict[str, float]) -> dict[str, Any]:
    if case.bound == "flops":
        value = case.flops / seconds / 1e9
        return {"unit": "GFLOP/s", "value": value, "fraction": value / ceilings["gflops"]}
    value = case.nbytes / seconds / 1e9
    ceiling = ceilings["read_gbs"] if case.bound == "read" else ceilings["triad_gbs"]
    return {"unit": "GB/s", "value": value, "fraction": value / ceiling}


#: seconds to wait before a section, so BLAS threads left spinning by the previous one have gone to sleep
_BLAS_SETTLE_S = 0.5


def _bench_size(label, n, ne, repeats, ceilings, say) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    min_seconds = 0.05 if label == "cache" else 0.0
    # The previous section ends with BLAS gemm: OpenBLAS's threads keep spinning for a while after it returns and
    # would take the cores from the first rows here (an in-cache sum measured 8 ms instead of 20 us).
    _time.sleep(_BLAS_SETTLE_S)
    for case in _cases(n, ne):
        say(f"{label}: {case.name}")
        first = _first_call(case.ours)
        ours = _measure(case.ours, repeats, min_seconds=min_seconds)
        peer = _measure(case.numpy, repeats, min_seconds=min_seconds)
        if case.blas:
            # a parallel kernel called while BLAS's threads still spin waits for the cores they hold (milliseconds
            # per call under the OpenMP layer: docs/kernels.md), which would be timed as this case's serial
            # variant or the next case's kernel
            _time.sleep(_BLAS_SETTLE_S)
        row = {
            "bound": case.bound,
            "bytes": case.nbytes,
            "flops": case.flops,
            "first_call_s": first,
            "seconds": ours,
            **_rate(case, ours["median"], ceilings),
            "numpy_seconds": peer,
            "vs_numpy": peer["median"] / ours["median"],
            "note": case.note,
        }
        if row["vs_numpy"] < SLOW_VS_NUMPY:
            _retime(row, case, repeats, min_seconds, ceilings)
        if case.serial is not None:
            serial = _measure(case.serial, repeats, min_seconds=min_seconds)
            row["serial_seconds"] = serial
            serial_rate = _rate(case, serial["median"], ceilings)
            row["serial_value"] = serial_rate["value"]
            row["serial_fraction"] = serial_rate["fraction"]
        if case.numexpr:
            nx = _measure(case.numexpr, repeats, min_seconds=min_seconds)
            row["numexpr_seconds"] = nx
            row["vs_numexpr"] = nx["median"] / row["seconds"]["median"]  # ours re-timed, where it was
        rows[case.name] = row
    return {"elements": n, "bytes_per_array": 8 * n, "rows": rows}


#: runs of each side when a kernel below SLOW_VS_NUMPY is timed again (at least this many, or twice the section's)
RETIME_REPEATS = 7


def _retime(row: dict[str, Any], case: _Case, repeats: int, min_seconds: float, ceilings: dict[str, float]) -> None:
    """Time a row that came out below :data:`SLOW_VS_NUMPY` again, ours and NumPy taking turns, and keep that.

    The first pass times ours, then NumPy: on a shared machine a burst of load can fall on one side only, and a
    single run's warning would then name a different kernel each time. Where the NumPy peer runs on BLAS's threads,
    taking turns would time our kernel while they still spin, which is the cost of alternating the two (documented
    apart), not the kernel's: ours is then timed alone after they settle, and NumPy after it. The first pass's
    figures stay in the row under ``first_pass``; the warning line rests on the second.
    """
    runs = max(RETIME_REPEATS, 2 * repeats)
    if case.blas:
        _time.sleep(_BLAS_SETTLE_S)
        ours = _measure(case.ours, runs, min_seconds=min_seconds)
        peer = _measure(case.numpy, runs, min_seconds=min_seconds)
        _time.sleep(_BLAS_SETTLE_S)
    else:
        ours, peer = _measure_pair(case.ours, case.numpy, runs, min_seconds=min_seconds)
    row["first_pass"] = {"seconds": row["seconds"], "numpy_seconds": row["numpy_seconds"],
                         "vs_numpy": row["vs_numpy"]}  # fmt: skip
    row.update(_rate(case, ours["median"], ceilings))
    row.update(seconds=ours, numpy_seconds=peer, vs_numpy=peer["median"] / ours["median"])


_COMPILE_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from hpc import kernels as k
x = np.linspace(-1.0, 1.0, 4096); y = x[::-1].copy(); m = x.reshape(64, 64)
calls = {
    "sum": lambda p: k.sum(x, parallel=p), "dot": lambda p: k.dot(x, y, parallel=p),
    "axpy": lambda p: k.axpy(2.0, x, y, out=np.empty_like(x), parallel=p),
    "nrm2": lambda p: k.nrm2(x, parallel=p), "asum": lambda p: k.asum(x, parallel=p),
    "min": lambda p: k.min(x, parallel=p), "argmin": lambda p: k.argmin(x, parallel=p),
    "var": lambda p: k.var(x, parallel=p), "axpbyc": lambda p: k.axpbyc(1.0, x, 2.0, y, 3.0, parallel=p),
    "softmax": lambda p: k.softmax(m, parallel=p), "logsumexp": lambda p: k.logsumexp(m, parallel=p),
    "layernorm": lambda p: k.layernorm(m, parallel=p), "sqdist": lambda p: k.sqdist(m, m, parallel=p),
    "kmeans_assign": lambda p: k.kmeans_assign(m, m[:4], parallel=p),
    "histogram": lambda p: k.histogram(x, 16, parallel=p), "inclusive_scan": lambda p: k.inclusive_scan(x, parallel=p),
    "jacobi_step": lambda p: k.jacobi_step(m, parallel=p),
}
names = sys.argv[1].split(",")
out = {"import_s": time.perf_counter() - t0, "kernels": {}}
# numba's once-per-process start-up (its registries, numba.np.arraymath, the threading layer): about 0.4 s that the
# first kernel timed would carry in both processes; paid here on a function of its own, not cached, reported apart
from numba import njit, prange
@njit(parallel=True)
def warm(a):
    s = 0.0
    for i in prange(a.shape[0]):
        s += a[i]
    return s
t = time.perf_counter()
warm(x)
out["numba_start_s"] = time.perf_counter() - t
for name in names:
    t = time.perf_counter()
    calls[name](False); calls[name](True)
    out["kernels"][name] = time.perf_counter() - t
print(json.dumps(out))
"""


def compile_and_load(names: list[str] | None = None) -> dict[str, Any]:
    """Time the first calls of kernels in a process with an empty numba cache, then in a second one with it filled.

    Both processes use a fresh temporary ``NUMBA_CACHE_DIR``. Each kernel is called once serial and once parallel
    on tiny float64 input, so the times are compile (first process) or cache load (second) plus a negligible run.

    Returns:
        ``{"kernels": {name: {"compile_s", "cached_s", "ratio"}}, "compile_total_s", "cached_total_s", "ratio"}``.
    """
    names = names or ["sum", "dot", "axpy", "nrm2", "asum", "min", "argmin", "var", "axpbyc", "softmax",
                      "logsumexp", "layernorm", "sqdist", "kmeans_assign", "histogram", "inclusive_scan",
                      "jacobi_step"]  # fmt: skip
    with _tempfile.TemporaryDirectory(prefix="hpc-numba-cache-") as cache:
        env = dict(_os.environ, NUMBA_CACHE_DIR=cache)
        runs = []
        for _ in range(2):
            proc = _subprocess.run(
                [_sys.executable, "-c", _COMPILE_SCRIPT, ",".join(names)],
                env=env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"the compile-time subprocess failed: {proc.stderr.strip()[-2000:]}")
            runs.append(_json.loads(proc.stdout.strip().splitlines()[-1]))
    first, second = runs
    kernels = {
        name: {
            "compile_s": first["kernels"][name],
            "cached_s": second["kernels"][name],
            "ratio": second["kernels"][name] / first["kernels"][name],
        }
        for name in names
    }
    total_c = _builtin_sum(first["kernels"].values())
    total_l = _builtin_sum(second["kernels"].values())
    return {
        "kernels": kernels,
        "compile_total_s": total_c,
        "cached_total_s": total_l,
        "ratio": total_l / total_c,
        "import_s": [first["import_s"], second["import_s"]],
    }


_builtin_sum = sum


def run(
    quick: bool = False,
    *,
    scale: float = 1.0,
    log: Callable[[str], None] | None = None,
    json: str | None = None,
    plot: str | None = None,
    compile_times: bool = True,
    **_: Any,
) -> dict:
    """Time every kernel at a beyond-LLC and an in-cache size next to NumPy, against ceilings measured now.

    Args:
        quick (bool): 64 MiB arrays (not 256 MiB), 3 repeats (not 7), compile times for three kernels only;
            about a minute here.
        scale (float): multiplies the array sizes (tests use 0.01).
        log (callable or None): called with a progress line before each measurement.
        json (str or None): also write the result as JSON to this path.
        plot (str or None): also draw the roofline chart to this path (needs matplotlib).
        compile_times (bool): measure compile vs cached-load time in two subprocesses.

    Returns:
        A JSON-ready dict: ``machine``, ``settings``, ``roofline`` (see :func:`hpc.bench.roofline.run`),
        ``sizes`` (``large`` and ``cache``, each with ``rows``: per kernel ``seconds`` {median, min, max, spread,
        runs}, ``value`` and ``unit``, ``fraction`` of the ceiling, ``numpy_seconds``, ``vs_numpy`` (NumPy time
        / ours), ``first_call_s``, and where measured ``serial_*``/``numexpr_*``/``vs_numexpr``), ``compile``
        (see :func:`compile_and_load`, or ``None``), ``notes``.

    Raises:
        ValueError: ``json`` or ``plot`` cannot be written (checked before anything runs).
    """
    for flag, path in (("json", json), ("plot", plot)):
        problem = _output.unwritable(path) if path is not None else None
        if problem:  # at once, not after minutes of benchmarks
            raise ValueError(f"{flag}={path!r}: {problem}")
    say = log or (lambda line: None)
    try:
        import numexpr as ne
    except ImportError:
        ne = None
    import numba as _numba

    repeats = 3 if quick else 7
    load_before = _loadavg()
    roof = _roofline.run(quick, scale=scale, log=say)
    ceilings = roof["ceilings"]
    large = max(4096, int((LARGE_QUICK if quick else LARGE) * scale))
    cache = max(4096, int(CACHE * min(1.0, scale * 10)))
    sizes = {
        "large": _bench_size("large", large, ne, repeats, ceilings, say),
        "cache": _bench_size("cache", cache, ne, repeats, ceilings, say),
    }
    comp = None
    if compile_times:
        say("compile time (empty cache) and cached load, two subprocesses")
        comp = compile_and_load(["sum", "dot", "axpy"] if quick else None)
    notes = [
        "fraction: of the read ceiling for kernels that only read, of the triad ceiling for kernels that write "
        "(write-allocate traffic not counted, as STREAM), of np.matmul dgemm for GFLOP/s kernels",
        "vs_numpy: NumPy's median time / ours (>1: ours is faster); ours is the parallel variant",
    ]
    if ne is None:
        notes.append("numexpr not installed: no numexpr column")
    result = {
        "machine": _describe(
            ("numpy", "numba", "numexpr"),
            numba_threads=_numba.get_num_threads(),
            threading_layer=_threading_layer(),
            loadavg_before=load_before,
            loadavg_after=_loadavg(),
        ),
        "settings": {"quick": quick, "scale": scale, "repeats": repeats},
        "roofline": roof,
        "sizes": sizes,
        "compile": comp,
        "notes": notes,
    }
    if json:
        _output.write_json(json, result)
    if plot:
        globals()["plot"](result, plot)
    return result


def _seconds(value: float) -> str:
    """A median in 10 characters: 5 decimals from 1 ms up, else 3 significant digits (in-cache medians)."""
    return f"{value:>10.5f}" if value >= 1e-3 else f"{value:>10.3g}"


def _threading_layer() -> str | None:
    try:
        import numba as _numba

        return str(_numba.threading_layer())
    except ValueError:  # no parallel kernel has run yet
        return None


#: a kernel whose time is above NumPy's by this factor or more gets a warning line under the table
SLOW_VS_NUMPY = 0.5


def slow_kernels(result: dict) -> list[str]:
    """Return a line per kernel and size running below :data:`SLOW_VS_NUMPY` times NumPy's speed (after the
    re-time of :func:`_retime`, where the row had one)."""
    return [
        f"{name} ({label}): {r['vs_numpy']:.2f}x NumPy"
        for label, size in result["sizes"].items()
        for name, r in size["rows"].items()
        if r.get("vs_numpy") is not None and r["vs_numpy"] < SLOW_VS_NUMPY
    ]


def format_table(result: dict) -> str:
    """Return the kernels result (with its roofline) as human-readable tables."""
    m = result["machine"]
    v = m["versions"]
    lines = [
        f"cpu: {_info.cpu_line(m['cpu']) if 'cpu' in m else '?'}",
        f"machine: numba {v['numba']} ({m['numba_threads']} threads, {m['threading_layer']}), numpy {v['numpy']}, "
        f"numexpr {v['numexpr'] or 'not installed'}; load average before {m['loadavg_before']}, "
        f"after {m['loadavg_after']}",
        _roofline.format_table(result["roofline"]),
        "",
    ]
    for label, size in result["sizes"].items():
        where = "beyond LLC" if label == "large" else "in cache"
        lines.append(f"kernels, {label} ({where}): {size['bytes_per_array'] / 2**20:.1f} MiB per float64 array")
        lines.append(
            f"{'kernel':<22}{'median s':>10}{'spread':>8}{'rate':>16}{'of ceil':>9}{'vs NumPy':>10}"
            f" {'serial (of ceil)':>16}{'vs numexpr':>12}{'1st call s':>12}"
        )
        for name, r in size["rows"].items():
            serial = f"{r['serial_value']:>6.1f} ({r['serial_fraction']:>4.0%})" if "serial_value" in r else ""
            times = "*" if "first_pass" in r else "x"  # *: re-timed (see the line under the tables)
            nx = f"{r['vs_numexpr']:>11.2f}x" if "vs_numexpr" in r else ""
            lines.append(
                f"{name:<22}{_seconds(r['seconds']['median'])} {r['seconds']['spread']:>7.0%} "
                f"{r['value']:>7.1f} {r['unit']:<7}{r['fraction']:>8.0%} {r['vs_numpy']:>8.2f}{times}"
                f"{serial:>16}{nx:>12}{r['first_call_s']:>12.3f}"
            )
        lines.append("")
    comp = result.get("compile")
    if comp:
        lines.append("compile (empty numba cache) vs cached load in a second process, serial + parallel variant:")
        for name, c in comp["kernels"].items():
            lines.append(f"  {name:<16}{c['compile_s']:>8.2f} s  ->{c['cached_s']:>7.3f} s  ({c['ratio']:.1%})")
        lines.append(
            f"  {'total':<16}{comp['compile_total_s']:>8.2f} s  ->{comp['cached_total_s']:>7.3f} s  "
            f"({comp['ratio']:.1%})"
        )
    lines += [f"note: {n}" for n in result.get("notes", [])]
    retimed = [
        f"{name} ({label}) {r['first_pass']['vs_numpy']:.2f}x -> {r['vs_numpy']:.2f}x"
        for label, size in result["sizes"].items()
        for name, r in size["rows"].items()
        if "first_pass" in r
    ]
    if retimed:
        lines.append(
            f"re-timed (*: ours and NumPy taking turns, or for a BLAS peer ours first after BLAS's threads settled) "
            f"after a first pass below {SLOW_VS_NUMPY}x NumPy: "
            + "; ".join(retimed)
        )
    slow = slow_kernels(result)
    if slow:
        lines.append(f"WARNING: below {SLOW_VS_NUMPY}x NumPy on this CPU: " + "; ".join(slow))
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """Draw the roofline chart (GFLOP/s against arithmetic intensity) of a kernels result and save it to ``path``.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError:
        raise ImportError("plotting needs matplotlib; install it with: pip install matplotlib") from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    ceil = result["roofline"]["ceilings"]
    fig, ax = plt.subplots(figsize=(9, 6))
    ai = _np.logspace(-3, 3, 200)
    for gbs, label, style in ((ceil["triad_gbs"], "triad", "-"), (ceil["read_gbs"], "read", "--")):
        ax.plot(ai, _np.minimum(ceil["gflops"], ai * gbs), style, color="k", lw=1,
                label=f"roof: {label} {gbs:.1f} GB/s, dgemm {ceil['gflops']:.0f} GFLOP/s")  # fmt: skip
    markers = {"large": "o", "cache": "^"}
    for label, size in result["sizes"].items():
        for name, r in size["rows"].items():
            intensity = r["flops"] / r["bytes"]
            gflops = r["flops"] / r["seconds"]["median"] / 1e9
            ax.scatter(intensity, gflops, marker=markers.get(label, "o"), s=28)
            if label == "large":
                ax.annotate(name, (intensity, gflops), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop/byte)")
    ax.set_ylabel("GFLOP/s")
    ax.set_title("hpc.kernels on the measured roofline (o: beyond LLC, ^: in cache)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
