"""Configuration from the ``HPC_*`` environment variables, read and checked in one place.

Every variable is read when it is needed (not cached at import), so a test or a job can change it with
``os.environ`` and see the effect where it is next read: ``HPC_NUM_THREADS`` and ``HPC_BACKEND`` on the next call,
``HPC_MPI_CHECK`` and ``HPC_MPI_TIMEOUT`` when the next communicator is made (``hpc.mpi.world()`` is made once),
``HPC_DEVICE`` when ``hpc.cuda`` first picks its driver (once per process), ``HPC_CUDA_CACHE`` at the next
compile. A bad value raises :class:`ConfigError` naming the variable, the value and what is allowed.

=====================  ===========================================  =========================================
variable               allowed values                               default
=====================  ===========================================  =========================================
``HPC_NUM_THREADS``    a positive integer, at most 4096             the CPUs this process may run on
``HPC_BACKEND``        ``auto``, ``threads``, ``processes``,        ``auto``
                       ``serial``, ``mpi``
``HPC_DEVICE``         ``auto``, ``cpu``, ``cuda``                  ``auto``
``HPC_MPI_CHECK``      ``0`` or ``1``                               ``0``
``HPC_MPI_TIMEOUT``    seconds, a non-negative number (0 = off)     ``0``
``HPC_CUDA_LEAKCHECK`` ``0`` or ``1``                               ``0``
``HPC_CUDA_CACHE``     a directory for compiled CUDA kernels        ``$XDG_CACHE_HOME/hpc/cuda``, else
                                                                    ``~/.cache/hpc/cuda``
=====================  ===========================================  =========================================
"""

from __future__ import annotations

import operator as _operator
import os as _os
import threading as _threading
from collections.abc import Callable as _Callable
from typing import TypeVar as _TypeVar

__all__ = [
    "ConfigError",
    "BACKENDS",
    "DEVICES",
    "available_cpus",
    "num_threads",
    "set_num_threads",
    "backend",
    "device",
    "mpi_check",
    "mpi_timeout",
    "cuda_leakcheck",
    "cuda_cache",
    "snapshot",
]

BACKENDS = ("auto", "threads", "processes", "serial", "mpi")
DEVICES = ("auto", "cpu", "cuda")

_T = _TypeVar("_T")
_num_threads_override: int | None = None


class ConfigError(ValueError):
    """An ``HPC_*`` setting has a value hpc does not accept."""


#: os.environ's own mapping of bytes on POSIX, which every change through os.environ updates: a key missing from
#: os.environ costs a KeyError raised and caught (0.75 us), read on every large kernel call and parallel run
_ENVIRON_BYTES: dict[bytes, bytes] | None = getattr(_os.environ, "_data", None) if _os.name == "posix" else None
_ENCODED: dict[str, bytes] = {}


def _getenv(name: str) -> str | None:
    if _ENVIRON_BYTES is None:
        return _os.environ.get(name)
    key = _ENCODED.get(name)
    if key is None:
        key = _ENCODED[name] = _os.fsencode(name)
    raw = _ENVIRON_BYTES.get(key)
    return None if raw is None else _os.fsdecode(raw)


def _read(name: str, default: _T, parse: _Callable[[str], _T], allowed: str) -> _T:
    raw = _getenv(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse(raw.strip())
    except (ValueError, TypeError):
        raise ConfigError(f"{name} must be {allowed}; got {raw!r}") from None


def _positive_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()):  # int() would take "1_0" as 10, "+4", and other scripts' digits
        raise ValueError(text)
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


#: the most threads a pool may have: a million took 11 s and 800 MB to start (a deque per thread, scanned by idle
#: workers); 4096 is 8 per core on a 512-core node
MAX_THREADS = 4096


_THREAD_COUNT_ALLOWED = f"a positive integer, at most {MAX_THREADS}"


def _thread_count(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_THREADS:
        raise ValueError(text)
    return value


def _non_negative_float(text: str) -> float:
    if "_" in text or not text.isascii():  # float() would take "1_0" as 10.0, and other scripts' digits
        raise ValueError(text)
    value = float(text)
    if not value >= 0.0 or value == float("inf"):
        raise ValueError(text)
    if value == 0.0 and any(c in "123456789" for c in text.lower().partition("e")[0]):
        raise ValueError(text)  # "1e-400" underflows to 0.0, which would turn the watchdog off
    return value + 0.0  # "-0" is 0.0


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(text)
    return text == "1"


def _choice(choices: tuple[str, ...]) -> _Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.lower()
        if value not in choices:
            raise ValueError(text)
        return value

    return parse


def available_cpus() -> int:
    """Return the number of CPUs this process may run on (its affinity mask, not the machine total)."""
    try:
        return len(_os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return _os.cpu_count() or 1


def num_threads() -> int:
    """Return the default size of hpc's thread pool.

    :func:`set_num_threads` wins over ``HPC_NUM_THREADS``, which wins over :func:`available_cpus`.
    """
    if _num_threads_override is not None:
        return _num_threads_override
    return _read("HPC_NUM_THREADS", available_cpus(), _thread_count, _THREAD_COUNT_ALLOWED)


def whole_number(value: object) -> int | None:
    """Return ``value`` as an int when it is an integer of any type (a NumPy int too, as ``range`` takes one), else
    None: a bool, a float or anything else is no count (every count hpc takes is read through this)."""
    if isinstance(value, bool) or not hasattr(type(value), "__index__"):
        return None
    return _operator.index(value)


_pool_thread = _threading.local()


def pool_numba_threads() -> int | None:
    """The numba thread count hpc's pool gives the calling thread, one of its workers (the cores over the pool's
    size), or None on any other thread. Recorded as each worker starts; the worker sets numba's count to it once
    numba's threading layer runs, and an ``hpc.kernels`` call that starts the layer in a worker starts it with this
    count (a team per worker would oversubscribe the cores)."""
    return getattr(_pool_thread, "numba_threads", None)


def set_pool_numba_threads(n: int | None) -> None:
    """Record :func:`pool_numba_threads` for the calling thread (hpc's pool does, as each worker starts)."""
    _pool_thread.numba_threads = n


def set_num_threads(n: int | None) -> None:
    """Set the size of the default thread pool for the whole process (``None`` returns to the default).

    This affects the whole process; there is no per-thread isolation. A pool that already runs keeps its
    size; the next parallel call on the default pool uses the new one.
    """
    global _num_threads_override
    count = None if n is None else whole_number(n)
    if n is not None and (count is None or not 1 <= count <= MAX_THREADS):
        raise ConfigError(f"num_threads must be a positive int of at most {MAX_THREADS}, or None; got {n!r}")
    _num_threads_override = count


def backend() -> str:
    """Return the default parallel backend from ``HPC_BACKEND`` (one of :data:`BACKENDS`)."""
    return _read("HPC_BACKEND", "auto", _choice(BACKENDS), "one of " + ", ".join(BACKENDS))


def device() -> str:
    """Return the requested device kind from ``HPC_DEVICE`` (one of :data:`DEVICES`)."""
    return _read("HPC_DEVICE", "auto", _choice(DEVICES), "one of " + ", ".join(DEVICES))


def mpi_check() -> bool:
    """Return whether collectives verify that shapes, dtypes and ops agree across ranks (``HPC_MPI_CHECK``)."""
    return _read("HPC_MPI_CHECK", False, _flag, "0 or 1")


def mpi_timeout() -> float:
    """Return the collective watchdog in seconds from ``HPC_MPI_TIMEOUT`` (0 turns it off)."""
    return _read("HPC_MPI_TIMEOUT", 0.0, _non_negative_float, "a non-negative number of seconds")


def cuda_leakcheck() -> bool:
    """Return whether a report of live device allocations is printed at exit (``HPC_CUDA_LEAKCHECK``)."""
    return _read("HPC_CUDA_LEAKCHECK", False, _flag, "0 or 1")


def cuda_cache() -> str:
    """Return the directory where compiled CUDA kernels are kept (``HPC_CUDA_CACHE``, ``~`` expanded, made absolute;
    an empty or blank value is unset; a relative ``XDG_CACHE_HOME`` is ignored, as the XDG spec says)."""
    xdg = _os.environ.get("XDG_CACHE_HOME", "").strip()
    base = xdg if _os.path.isabs(xdg) else _os.path.join(_os.path.expanduser("~"), ".cache")  # XDG: relative ignored
    given = _os.environ.get("HPC_CUDA_CACHE", "").strip()
    return _os.path.abspath(_os.path.expanduser(given)) if given else _os.path.join(base, "hpc", "cuda")


def snapshot() -> dict[str, object]:
    """Return every setting, validated, as a dict (raises :class:`ConfigError` on the first bad one)."""
    return {
        "num_threads": num_threads(),
        "backend": backend(),
        "device": device(),
        "mpi_check": mpi_check(),
        "mpi_timeout": mpi_timeout(),
        "cuda_leakcheck": cuda_leakcheck(),
        "cuda_cache": cuda_cache(),
    }
