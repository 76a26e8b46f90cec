"""hpc: a Python HPC compute substrate.

Rayon-style parallel iterators (:mod:`hpc.iter`), MPI distributed reductions (:mod:`hpc.mpi`), SIMD numba kernels
(:mod:`hpc.kernels`) and CUDA device management (:mod:`hpc.cuda`). ``hpc.mpi``, ``hpc.cuda`` and ``hpc.kernels`` are
loaded on first use, so ``import hpc`` stays cheap and never initialises MPI or a GPU.
"""

from __future__ import annotations

import importlib as _importlib
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from hpc._core import ThreadPool, current_num_threads, join, scope
from hpc.config import ConfigError, set_num_threads
from hpc.iter import ParIter, par_bridge, par_chunks, par_iter, par_range

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "ParIter",
    "ThreadPool",
    "current_num_threads",
    "join",
    "par_bridge",
    "par_chunks",
    "par_iter",
    "par_range",
    "scope",
    "set_num_threads",
]

_LAZY = ("mpi", "cuda", "kernels", "ml", "bench", "info", "config")

if _TYPE_CHECKING:  # type checkers see the lazy submodules (hpc.mpi.world(), hpc.kernels.dot) as they are
    from hpc import bench as bench
    from hpc import cuda as cuda
    from hpc import info as info
    from hpc import kernels as kernels
    from hpc import ml as ml
    from hpc import mpi as mpi

# joblib costs ~180 ms to import, so hpc does not import it: our backend for joblib.parallel_config(backend="hpc")
# registers now if joblib is loaded, else when it is (hpc.iter._joblib_hook).
_importlib.import_module("hpc.iter._joblib_hook").install()
# a worker process of a rank (scikit-learn's n_jobs under mpiexec) inherits the rank's launcher variables, with which
# MPI would try to join the job as that rank and fail: they go before anything here or in the user's code starts MPI
_importlib.import_module("hpc._launcher").drop_inherited_job()
# numba's cache=True raises at import where it can write neither beside the sources nor in the user's cache (a
# read-only install, a home that is not writable): give it a private temporary directory then (hpc._numba_cache)
_importlib.import_module("hpc._numba_cache").ensure_cache_dir()
# `pip install tbb` does not reach numba's TBB threading layer in a virtual environment (the loader does not search
# <prefix>/lib): load the wheel's library by its path before any parallel kernel makes numba choose (hpc._tbb)
_importlib.import_module("hpc._tbb").load_pip_tbb()


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        return _importlib.import_module(f"hpc.{name}")
    raise AttributeError(f"module 'hpc' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_LAZY))
