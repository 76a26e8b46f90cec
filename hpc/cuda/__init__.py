"""CUDA device management over pycuda, with the same API on the CPU when no GPU is usable.

>>> from hpc import cuda
>>> import numpy as np
>>> a = cuda.to_device(np.arange(4.0))
>>> a.get().tolist()
[0.0, 1.0, 2.0, 3.0]

Everything here works without a GPU: with no pycuda, no driver, no device, or ``HPC_DEVICE=cpu`` the same objects
run on host memory (see :mod:`hpc.cuda.fallback`), while :func:`is_available` stays ``False``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

from hpc.cuda.array import DeviceArray, asarray, empty, empty_like, to_device, zeros
from hpc.cuda.binding import Binding, bind_rank, local_rank
from hpc.cuda.device import (
    Device,
    DeviceInfo,
    current_device,
    device_count,
    devices,
    is_available,
    synchronize,
    unavailable_reason,
)
from hpc.cuda.memory import (
    PinnedArray,
    Pool,
    PoolStats,
    device_pool,
    is_pinned,
    memory_report,
    memory_stats,
    pinned_empty,
    pinned_pool,
)
from hpc.cuda.stream import Event, Stream

__all__ = [
    "Binding",
    "Device",
    "DeviceArray",
    "DeviceInfo",
    "Event",
    "PinnedArray",
    "Pool",
    "PoolStats",
    "Stream",
    "asarray",
    "backend",
    "bind_rank",
    "current_device",
    "device_count",
    "device_pool",
    "devices",
    "empty",
    "empty_like",
    "is_available",
    "is_pinned",
    "local_rank",
    "memory_report",
    "memory_stats",
    "pinned_empty",
    "pinned_pool",
    "synchronize",
    "to_device",
    "twins",
    "unavailable_reason",
    "zeros",
]

_LAZY = ("twins", "module", "bench")


def backend() -> str:
    """Return ``"cuda"`` when hpc.cuda runs on a GPU through pycuda, ``"cpu"`` on the host fallback.

    Raises:
        RuntimeError: ``HPC_DEVICE=cuda`` but no GPU is usable.

    .. versionadded:: 0.1.0
    """
    from hpc.cuda import _backend

    return _backend.get().name


def __getattr__(name: str) -> _Any:
    if name in _LAZY:
        return _importlib.import_module(f"hpc.cuda.{name}")
    raise AttributeError(f"module 'hpc.cuda' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
