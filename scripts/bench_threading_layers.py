"""numba's OpenMP and TBB threading layers side by side, on what hpc's users run: which should yours be?

Each workload is timed in a fresh process per layer (``NUMBA_THREADING_LAYER=omp`` or ``tbb``; the layer cannot
change inside a process), for ``--rounds`` rounds, the two layers' order alternating round by round; a figure is the
median over rounds of each process's median over its calls, each workload starting after half a second of quiet.
The workloads:

- **after BLAS**: a NumPy 256 x 256 product, then a short parallel kernel (``kmeans_assign`` 256 x 256 x 64, a
  1 MiB ``sum``, a 256 x 512 ``softmax``), the pair timed together: user code that mixes NumPy and hpc.kernels;
- **back to back**: the same kernels (and a 64 MiB ``sum``) called again and again, nothing between;
- **large after BLAS**: the 64 MiB ``sum`` called again and again right after a burst of NumPy products;
- **70 us between**: a 1 MiB ``sum`` with 70 us of Python work before each call;
- **hpc.ml**: KMeans fit (1e5 x 10, k=8) and predict (1e6 x 10), LogisticRegression fit (5e4 x 20), PCA fit
  (1e6 x 10);
- **threads run**: ``par_iter`` over 8 slices of 64 MiB, a parallel ``sum`` inside each ``map``.

Needs TBB where numba can load it: the tbb wheel (``pip install 'hpc-substrate[tbb]'``), or ``libtbb.so.12`` on
``LD_LIBRARY_PATH`` (how scripts/gpu_check.sh runs it on a host without a package registry). Run::

    python scripts/bench_threading_layers.py [--rounds 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time

#: the layers compared, in the first round's order
LAYERS = ("omp", "tbb")
#: seconds of quiet before each workload: NumPy's BLAS threads spin for a while after a product, and a workload
#: timed during that would carry the previous one's cost
SETTLE_S = 0.5


def workloads():
    """Name -> (call, calls timed) of each workload; imports and data made here, in the measuring process."""
    import numpy as np

    import hpc
    from hpc import kernels as k
    from hpc import ml

    rng = np.random.default_rng(0)
    x, c, a = rng.standard_normal((256, 64)), rng.standard_normal((256, 64)), rng.standard_normal((256, 256))
    small, large, rows = rng.standard_normal(1 << 17), rng.standard_normal(1 << 23), rng.standard_normal((256, 512))
    xk, xp = rng.standard_normal((100_000, 10)), rng.standard_normal((1_000_000, 10))
    xl = rng.standard_normal((50_000, 20))
    yl = (xl @ rng.standard_normal(20) > 0).astype(int)
    fitted = ml.KMeans(8, random_state=0, n_init=1).fit(xk)
    slices = [large[i::8] for i in range(8)]

    def busy(seconds):
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    def large_after_blas():
        for _ in range(10):
            a @ a
        return k.sum(large, parallel=True)

    chosen = {
        "after BLAS: kmeans_assign": (lambda: (a @ a, k.kmeans_assign(x, c, parallel=True)), 31),
        "after BLAS: sum 1 MiB": (lambda: (a @ a, k.sum(small, parallel=True)), 31),
        "after BLAS: softmax": (lambda: (a @ a, k.softmax(rows, parallel=True)), 31),
        "back to back: kmeans_assign": (lambda: k.kmeans_assign(x, c, parallel=True), 31),
        "back to back: sum 1 MiB": (lambda: k.sum(small, parallel=True), 31),
        "back to back: softmax": (lambda: k.softmax(rows, parallel=True), 31),
        "back to back: sum 64 MiB": (lambda: k.sum(large, parallel=True), 15),
        "large after BLAS: 10 products + sum 64 MiB": (large_after_blas, 15),
        "70 us between: sum 1 MiB": (lambda: (busy(7e-5), k.sum(small, parallel=True)), 31),
        "hpc.ml KMeans.fit 1e5 x 10, k=8": (lambda: ml.KMeans(8, random_state=0, n_init=1).fit(xk), 5),
        "hpc.ml KMeans.predict 1e6 x 10": (lambda: fitted.predict(xp), 7),
        "hpc.ml LogisticRegression.fit 5e4 x 20": (lambda: ml.LogisticRegression().fit(xl, yl), 7),
        "hpc.ml PCA(3).fit 1e6 x 10": (lambda: ml.PCA(3).fit(xp), 7),
        "threads run: par_iter map(sum) of 8 x 8 MiB": (
            lambda: hpc.par_iter(slices).map(lambda s: float(k.sum(s, parallel=True))).sum(), 7),
    }  # fmt: skip
    if importlib.util.find_spec("scipy") is None:  # LogisticRegression's L-BFGS (a host without SciPy: skipped)
        del chosen["hpc.ml LogisticRegression.fit 5e4 x 20"]
    return chosen


def measure() -> dict:
    """In this process: each workload's median milliseconds (two warm-up calls first), and the layer numba chose."""
    import numba

    from hpc.bench._timing import measure as timed

    out = {}
    for name, (call, calls) in workloads().items():
        time.sleep(SETTLE_S)
        out[name] = timed(call, calls, warmup=2)["median"] * 1e3
    return {"layer": numba.threading_layer(), "threads": numba.get_num_threads(), "ms": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per layer (default 3)")
    parser.add_argument("--json", metavar="FILE", help="also write the per-round figures, with machine info")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # one process's turn
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure()))
        return 0
    from hpc.bench._machine import describe  # hpc only here: a --measure process imports numba under its layer
    from hpc.bench._output import unwritable
    from hpc.info import cpu_line

    if args.rounds < 1:
        parser.error(f"--rounds must be 1 or more; got {args.rounds}")
    problem = None if args.json is None else unwritable(args.json)
    if problem:
        parser.error(f"--json {args.json!r}: {problem}")

    runs: dict[str, list[dict]] = {layer: [] for layer in LAYERS}
    for r in range(args.rounds):
        for layer in LAYERS if r % 2 == 0 else LAYERS[::-1]:
            env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
            proc = subprocess.run([sys.executable, __file__, "--measure"], env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                if layer == "tbb" and "TBB" in proc.stderr:
                    print("numba cannot load TBB: pip install 'hpc-substrate[tbb]' (or put libtbb.so.12 on "
                          "LD_LIBRARY_PATH)", file=sys.stderr)  # fmt: skip
                    return 2
                return 1
            result = json.loads(proc.stdout.strip().splitlines()[-1])
            if result["layer"] != layer:
                print(f"asked for {layer}, numba ran {result['layer']}", file=sys.stderr)
                return 1
            runs[layer].append(result)
            print(f"round {r + 1}/{args.rounds}: {layer} done", file=sys.stderr)
    machine = describe(("numpy", "numba", "scipy", "tbb"))
    print(f"cpu: {cpu_line(machine['cpu'])}; numba threads {runs['omp'][0]['threads']}; {args.rounds} rounds")
    print(f"{'workload (median ms)':46}{'omp':>10}{'tbb':>10}{'tbb/omp':>9}")
    table = {}
    for name in runs["omp"][0]["ms"]:
        omp = statistics.median(r["ms"][name] for r in runs["omp"])
        tbb = statistics.median(r["ms"][name] for r in runs["tbb"])
        table[name] = {"omp_ms": omp, "tbb_ms": tbb, "tbb_over_omp": tbb / omp}
        print(f"{name:46}{omp:>10.3f}{tbb:>10.3f}{tbb / omp:>8.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "rounds": args.rounds, "runs": runs, "table": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
