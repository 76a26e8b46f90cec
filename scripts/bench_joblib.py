"""The joblib backend's targets, side by side with joblib's own backends, in one run.

Run with:  python scripts/bench_joblib.py [--repeats N]

(1) an error in the 4th of 200 tasks of 25 ms: how long until it surfaces, and how many tasks started;
(2) 20,000 tiny tasks (``abs``) with joblib's default ``batch_size="auto"``;
(3) 4 user threads, each a ``Parallel(n_jobs=2)`` of 10 sleeps of 50 ms, at once.
Times are medians of ``--repeats`` runs (after a warm-up); nothing asserts them.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import joblib

import hpc.iter.joblib_backend  # noqa: F401 - registers "hpc"
from hpc import info
from hpc.bench._args import positive_int

BACKENDS = ("threading", "loky", "hpc")


_started: list[int] = []  # tasks of early_error started in this process (threads; loky's workers keep their own)


def _task(i: int) -> int:
    _started.append(i)
    time.sleep(0.025)
    if i == 3:
        raise ValueError("task 3")
    return i


def _nap(i: int) -> int:
    time.sleep(0.05)
    return i


def early_error(backend: str) -> tuple[float, object]:
    _started.clear()
    t0 = time.perf_counter()
    try:
        joblib.Parallel(n_jobs=2, backend=backend)(joblib.delayed(_task)(i) for i in range(200))
    except ValueError:
        pass
    return time.perf_counter() - t0, (len(_started) if backend != "loky" else "-")


def tiny(backend: str) -> float:
    t0 = time.perf_counter()
    joblib.Parallel(n_jobs=2, backend=backend)(joblib.delayed(abs)(-i) for i in range(20_000))
    return time.perf_counter() - t0


def concurrent_callers(backend: str) -> float:
    def caller() -> None:
        joblib.Parallel(n_jobs=2, backend=backend)(joblib.delayed(_nap)(i) for i in range(10))

    threads = [threading.Thread(target=caller) for _ in range(4)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=positive_int, default=5)
    args = parser.parse_args()
    print("cpu:", info.cpu_line())
    print(f"median of {args.repeats} runs after a warm-up, n_jobs=2")
    print(f"{'':44}" + "".join(f"{b:>12}" for b in BACKENDS))
    rows = {"error in task 4 of 200 x 25 ms: seconds": [], "  tasks started before it surfaced": [],
            "20,000 tiny tasks: seconds": [], "4 concurrent sleep-bound callers: seconds": []}  # fmt: skip
    for backend in BACKENDS:
        early_error(backend), tiny(backend), concurrent_callers(backend)  # warm-up: pools, workers, imports
        errors = [early_error(backend) for _ in range(args.repeats)]
        rows["error in task 4 of 200 x 25 ms: seconds"].append(statistics.median(e[0] for e in errors))
        started = [e[1] for e in errors]
        count = int(statistics.median(started)) if "-" not in started else "-"
        rows["  tasks started before it surfaced"].append(count)
        rows["20,000 tiny tasks: seconds"].append(statistics.median(tiny(backend) for _ in range(args.repeats)))
        rows["4 concurrent sleep-bound callers: seconds"].append(
            statistics.median(concurrent_callers(backend) for _ in range(args.repeats))
        )
    for label, values in rows.items():
        print(f"{label:44}" + "".join(f"{v:12.3f}" if isinstance(v, float) else f"{v!s:>12}" for v in values))


if __name__ == "__main__":
    main()
