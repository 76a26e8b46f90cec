"""``hpc bench cuda``: transfers, device copy, the GPU twins, launch latency and allocation, against device copy.

Every bandwidth is reported in GB/s and, for the kernels, as a fraction of the device-to-device copy bandwidth
measured in the same run (the GPU's practical memory ceiling). On the host fallback the same suite runs on host
memory, so the numbers describe the CPU and say so. Run it as ``python -m hpc.cuda.bench [--quick]``.
"""

from __future__ import annotations

import argparse as _argparse
import os as _os
import sys as _sys
import time as _time
from collections.abc import Callable as _Callable
from typing import Any as _Any

import numpy as _np

from hpc.cuda import _backend, memory, twins
from hpc.cuda.array import DeviceArray, to_device
from hpc.cuda.device import current_device, devices, unavailable_reason
from hpc.cuda.stream import Event

__all__ = ["format_table", "main", "run"]


def _time_ms(fn: _Callable[[], _Any], repeats: int) -> float:
    """Return the mean milliseconds of ``fn`` over ``repeats`` calls, timed with events after one warm-up call."""
    fn()
    start, end = Event(), Event()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_ms(end) / repeats


def _host_us(fn: _Callable[[], _Any], repeats: int) -> float:
    fn()
    t0 = _time.perf_counter()
    for _ in range(repeats):
        fn()
    return (_time.perf_counter() - t0) / repeats * 1e6


def run(quick: bool = False, *, log: _Callable[[str], None] | None = None, scale: float = 1.0, **_: _Any) -> dict:
    """Run the suite and return its numbers as a JSON-ready dict.

    Args:
        quick (bool): smaller arrays and fewer repeats (well under a minute on a GPU).
        log (callable or None): called with one progress line per step.
        scale (float): multiplies the array sizes (tests use 0.01).
    """
    say = log or (lambda line: None)
    gpu = _backend.on_gpu()
    n = int((1 << (25 if gpu else 22)) * (0.25 if quick else 1.0) * scale)
    n = max(n, 1 << 12)
    repeats = 5 if quick else 20
    nbytes = n * 8
    x_host = _np.random.default_rng(0).standard_normal(n)
    out: dict[str, _Any] = {
        "device": str(devices()[current_device().index]) if gpu else f"host fallback ({unavailable_reason()})",
        "backend": _backend.get().name,
        "elements": n,
        "bytes": nbytes,
        "transfers_GBps": {},
        "kernels": {},
    }
    x = to_device(x_host)
    y = to_device(x_host[::-1].copy())
    z = DeviceArray(x.shape, x.dtype)
    say(f"device copy of {nbytes >> 20} MiB")
    copy_ms = _time_ms(lambda: x.copy_to(z), repeats)
    copy_gbps = 2 * nbytes / copy_ms / 1e6
    out["device_copy_GBps"] = copy_gbps

    say("host <-> device transfers")
    driver = _backend.get()
    pinned = memory.pinned_empty(x_host.shape, x_host.dtype)
    pinned[...] = x_host
    back = _np.empty_like(x_host)
    t = out["transfers_GBps"]
    t["h2d_pageable_raw"] = nbytes / _time_ms(lambda: driver.htod(x.ptr, x_host), repeats) / 1e6
    t["h2d_pageable_staged"] = nbytes / _time_ms(lambda: x.set(x_host), repeats) / 1e6
    t["h2d_pinned"] = nbytes / _time_ms(lambda: x.set(pinned), repeats) / 1e6
    t["d2h_pageable_raw"] = nbytes / _time_ms(lambda: driver.dtoh(back, x.ptr), repeats) / 1e6
    t["d2h_pageable_staged"] = nbytes / _time_ms(lambda: x.get(out=back), repeats) / 1e6
    t["d2h_pinned"] = nbytes / _time_ms(lambda: x.get(out=pinned), repeats) / 1e6
    t["staged_over_raw_h2d"] = t["h2d_pageable_staged"] / t["h2d_pageable_raw"]

    rows = max(1, n // 1024)
    m2 = x.reshape(rows, -1) if n % 1024 == 0 else x.reshape(1, -1)
    sm = DeviceArray(m2.shape, m2.dtype)
    sc = DeviceArray(x.shape, x.dtype)
    cases: list[tuple[str, int, _Callable[[], _Any]]] = [
        ("axpy", 3 * nbytes, lambda: twins.axpy(1.5, x, y, out=z)),
        ("dot", 2 * nbytes, lambda: twins.dot(x, y)),
        ("sum", nbytes, lambda: twins.sum(x)),
        ("nrm2", nbytes, lambda: twins.nrm2(x)),
        ("min", nbytes, lambda: twins.min(x)),
        ("max", nbytes, lambda: twins.max(x)),
        ("softmax", 2 * nbytes, lambda: twins.softmax(m2, out=sm)),
        ("inclusive_scan", 2 * nbytes, lambda: twins.inclusive_scan(x, out=sc)),
    ]
    for name, moved, fn in cases:
        say(name)
        ms = _time_ms(fn, repeats)
        gbps = moved / ms / 1e6
        out["kernels"][name] = {"ms": ms, "GBps": gbps, "of_copy": gbps / copy_gbps}
    pts = to_device(_np.random.default_rng(1).standard_normal((max(64, int(4096 * scale)), 64)))
    cent = to_device(_np.random.default_rng(2).standard_normal((256, 64)))
    d2 = DeviceArray((pts.shape[0], cent.shape[0]), pts.dtype)
    for name, fn in (
        ("sqdist", lambda: twins.sqdist(pts, cent, out=d2)),
        ("kmeans_assign", lambda: twins.kmeans_assign(pts, cent)),
    ):
        say(name)
        ms = _time_ms(fn, repeats)
        flops = 3 * pts.shape[0] * cent.shape[0] * pts.shape[1]
        out["kernels"][name] = {"ms": ms, "GFLOPs": flops / ms / 1e6}

    say("launch latency and allocation")
    one = to_device(_np.ones(1))
    launches = 2000 if gpu else 200
    out["launch_us"] = _host_us(lambda: twins.axpy(1.0, one, one), launches)
    pool = memory.device_pool()

    def pooled() -> None:
        pool.allocate(1 << 20).free()

    def raw() -> None:
        handle, _ = driver.mem_alloc(1 << 20)
        driver.mem_free(handle)

    out["alloc_us"] = {"pool": _host_us(pooled, 500), "raw": _host_us(raw, 50 if gpu else 500)}
    for a in (x, y, z, sm, sc, pts, cent, d2, one):
        a.free()
    pinned._hpc_buffer.free()
    return out


def format_table(result: dict) -> str:
    """Return the result of :func:`run` as a short text table, ceilings first."""
    lines = [
        f"hpc bench cuda: {result['device']}",
        f"  {result['elements']} float64 elements ({result['bytes'] >> 20} MiB)",
        f"  device copy          {result['device_copy_GBps']:10.1f} GB/s   (the ceiling below)",
    ]
    for name, gbps in result["transfers_GBps"].items():
        unit = "x" if name.startswith("staged_over") else "GB/s"
        lines.append(f"  {name:<20} {gbps:10.2f} {unit}")
    lines.append(f"  {'kernel':<20} {'ms':>10} {'GB/s':>10} {'of copy':>8}")
    for name, k in result["kernels"].items():
        if "GBps" in k:
            lines.append(f"  {name:<20} {k['ms']:10.3f} {k['GBps']:10.1f} {k['of_copy']:8.2f}")
        else:
            lines.append(f"  {name:<20} {k['ms']:10.3f} {k['GFLOPs']:10.1f} GFLOP/s")
    lines.append(f"  launch latency       {result['launch_us']:10.2f} us")
    lines.append(
        f"  alloc+free 1 MiB     {result['alloc_us']['pool']:10.2f} us pool, {result['alloc_us']['raw']:.2f} us raw"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the suite from the command line: ``python -m hpc.cuda.bench [--quick] [--json FILE]``."""
    summary = __doc__.splitlines()[0].replace("``", "")  # the docstring's first line, without its reST quotes
    parser = _argparse.ArgumentParser(prog="python -m hpc.cuda.bench", description=summary)
    parser.add_argument("--quick", action="store_true", help="smaller arrays, fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    if args.json is not None:  # at once, not after the run (hpc bench cuda checks it the same way)
        folder = _os.path.dirname(_os.path.abspath(args.json))
        if not args.json.strip() or _os.path.isdir(args.json) or not _os.access(folder, _os.W_OK | _os.X_OK):
            parser.error(f"--json {args.json!r}: cannot be written (a directory, or no writable folder)")
    result = run(args.quick, log=lambda line: print(f"hpc bench cuda: {line}", file=_sys.stderr, flush=True))
    print(format_table(result))
    if args.json:
        import json

        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
