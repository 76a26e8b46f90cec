"""The contestants of ``hpc bench iter``: hpc's backends and the peers it is compared with, behind one interface.

Every contestant maps a module-level function over a list and sums the results. ``start`` builds its pool and
runs one trivial task (start-up is timed apart from the runs); ``close`` releases the pool.
"""

from __future__ import annotations

import concurrent.futures as _futures
import importlib as _importlib
import multiprocessing as _mp
import subprocess as _subprocess
import sys as _sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Contestant", "contestants", "load_mpire", "spin", "square"]


def square(x: int) -> int:
    """Return ``x * x``: workload (a), the smallest task there is."""
    return x * x


def spin(n: int) -> int:
    """Run a pure-Python loop of ``n`` steps and return a checksum: workload (b)."""
    acc = 0
    for i in range(n):
        acc ^= i
    return acc


class Contestant:
    """One way to run ``sum(map(fn, items))``. ``label`` is what the table shows."""

    label = ""
    #: whether start-up creates worker processes (reported in the start-up line)
    processes = False

    def __init__(self, workers: int) -> None:
        self.workers = workers

    def start(self) -> None:
        """Build the pool and run one trivial task on every worker."""

    def map_sum(self, fn: Callable[[Any], int], items: Sequence[Any], workload: str) -> int:
        """Return ``sum(fn(x) for x in items)`` computed this contestant's way."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the pool."""

    def __repr__(self) -> str:
        return f"<hpc bench contestant {self.label!r} workers={self.workers}>"


class Serial(Contestant):
    label = "serial Python"

    def map_sum(self, fn, items, workload):
        return sum(map(fn, items))


class Ours(Contestant):
    """hpc's ``par_iter(items).map(fn).sum()`` on one backend (the caller sizes hpc's pools to ``workers``)."""

    def __init__(self, workers: int, backend: str) -> None:
        super().__init__(workers)
        self.backend = backend
        self.label = f"hpc par_iter ({backend})"
        self.processes = backend == "processes"

    def start(self) -> None:
        self.map_sum(square, list(range(4 * self.workers)), "start")

    def map_sum(self, fn, items, workload):
        from hpc import par_iter

        return par_iter(items).map(fn).with_backend(self.backend).sum()


class PoolMap(Contestant):
    label = "multiprocessing.Pool.map"
    processes = True

    def start(self) -> None:
        self._pool = _mp.Pool(self.workers)
        self._pool.map(square, range(self.workers), chunksize=1)

    def map_sum(self, fn, items, workload):
        return sum(self._pool.map(fn, items))

    def close(self) -> None:
        self._pool.close()
        self._pool.join()


class ProcessPool(Contestant):
    label = "ProcessPoolExecutor"
    processes = True

    def start(self) -> None:
        self._ex = _futures.ProcessPoolExecutor(self.workers)
        list(self._ex.map(square, range(self.workers)))

    def map_sum(self, fn, items, workload):
        chunksize = 1000 if workload == "tiny" else 1
        return sum(self._ex.map(fn, items, chunksize=chunksize))

    def close(self) -> None:
        self._ex.shutdown()


class Joblib(Contestant):
    label = "joblib.Parallel (loky)"
    processes = True

    def start(self) -> None:
        self.map_sum(square, range(self.workers), "start")

    def map_sum(self, fn, items, workload):
        from joblib import Parallel, delayed

        return sum(Parallel(n_jobs=self.workers)(delayed(fn)(x) for x in items))


class Mpire(Contestant):
    label = "mpire.WorkerPool.map"
    processes = True

    def __init__(self, workers: int, mpire: Any) -> None:
        super().__init__(workers)
        self._mpire = mpire

    def start(self) -> None:
        # keep_alive reuses the workers between map calls with the same function, as the other pools do
        self._pool = self._mpire.WorkerPool(n_jobs=self.workers, keep_alive=True)
        self._pool.map(square, list(range(self.workers)), progress_bar=False)

    def map_sum(self, fn, items, workload):
        return sum(self._pool.map(fn, items, progress_bar=False))

    def close(self) -> None:
        self._pool.terminate()


def load_mpire(install: bool) -> tuple[Any, str | None]:
    """Return ``(mpire module or None, why it is missing)``; with ``install``, try ``pip install mpire`` first.

    The install goes into the running interpreter's environment (``sys.executable -m pip``).
    """
    try:
        return _importlib.import_module("mpire"), None
    except ImportError:
        pass
    if not install:
        return None, "mpire skipped: not installed (pip install mpire, or hpc's bench extra: 'hpc-substrate[bench]')"
    try:
        proc = _subprocess.run(
            [_sys.executable, "-m", "pip", "install", "-q", "mpire"], capture_output=True, text=True, timeout=300
        )
    except (OSError, _subprocess.SubprocessError) as exc:
        return None, f"mpire skipped: pip install mpire failed ({exc})"
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        return None, f"mpire skipped: pip install mpire failed ({lines[-1] if lines else proc.returncode})"
    _importlib.invalidate_caches()
    try:
        return _importlib.import_module("mpire"), None
    except ImportError as exc:
        return None, f"mpire skipped: installed but not importable ({exc})"


def contestants(workers: int, mpire: Any) -> list[Contestant]:
    """Return the contestants of workloads (a) and (b), in the order they are run.

    Pools that fork come first, before hpc's threads and loky's helper threads exist in this process.
    """
    out: list[Contestant] = [Serial(workers), PoolMap(workers), ProcessPool(workers)]
    if mpire is not None:
        out.append(Mpire(workers, mpire))
    out += [Joblib(workers), Ours(workers, "processes"), Ours(workers, "threads"), Ours(workers, "auto")]
    return out
