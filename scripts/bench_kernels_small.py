"""Small inputs: the kernels against NumPy where a call's fixed cost, not the data, decides.

Run: ``python scripts/bench_kernels_small.py [--json FILE] [SIZE ...]`` (default sizes 16, 1024 and 16384 float64
elements). ``hpc bench kernels`` measures 1 MiB and 256 MiB arrays, where the loops dominate; here each call is a
microsecond or two, and the argument checks, the dispatch and NumPy's own overheads are what is compared. Serial
variants (``parallel=None`` decides serial at these sizes). Each figure: the best of 5 repeats of the mean of many
calls, in ns; ratio: NumPy's time / ours (> 1: ours faster).
"""

from __future__ import annotations

import argparse
import json
import timeit

import numpy as np

from hpc import info, kernels
from hpc.bench._args import positive_int, writable_path


def _cases(x: np.ndarray, y: np.ndarray, out: np.ndarray) -> dict[str, tuple]:
    return {
        "sum": (lambda: kernels.sum(x), lambda: np.sum(x)),
        "sum accurate": (lambda: kernels.sum(x, accurate=True), lambda: np.sum(x)),
        "dot": (lambda: kernels.dot(x, y), lambda: np.dot(x, y)),
        "nrm2": (lambda: kernels.nrm2(x), lambda: np.linalg.norm(x)),
        "min": (lambda: kernels.min(x), lambda: np.min(x)),
        "argmax": (lambda: kernels.argmax(x), lambda: np.argmax(x)),
        "mean": (lambda: kernels.mean(x), lambda: np.mean(x)),
        "var": (lambda: kernels.var(x), lambda: np.var(x)),
        "axpy (out=)": (lambda: kernels.axpy(2.0, x, y, out=out), lambda: np.add(2.0 * x, y, out=out)),
    }


def _ns(fn, calls: int) -> float:
    fn()
    return min(timeit.repeat(fn, number=calls, repeat=5)) / calls * 1e9


def main(sizes: list[int], json_path: str | None) -> None:
    rng = np.random.default_rng(0)
    record = {"cpu": info.cpu_line(), "sizes": {}}
    print(f"cpu: {record['cpu']}")
    for n in sizes:
        x, y, out = rng.random(n), rng.random(n), np.empty(n)
        calls = max(200, 20_000_000 // (n + 2000))
        rows = {}
        for name, (ours, theirs) in _cases(x, y, out).items():
            a, b = _ns(ours, calls), _ns(theirs, calls)
            rows[name] = {"ours_ns": a, "numpy_ns": b, "vs_numpy": b / a}
        record["sizes"][str(n)] = rows
        print(f"{n} elements: " + "  ".join(f"{k} {r['ours_ns']:.0f}/{r['numpy_ns']:.0f} ns {r['vs_numpy']:.2f}x"
                                            for k, r in rows.items()))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=positive_int, default=[16, 1024, 16384], help="float64 elements")
    parser.add_argument("--json", type=writable_path, help="also write the figures here")
    args = parser.parse_args()
    main(args.sizes, args.json)
