"""Pick the driver once: pycuda when a GPU is usable, else the host driver of :mod:`hpc.cuda.fallback`."""

from __future__ import annotations

import functools as _functools
from typing import Any as _Any

from hpc import config as _config

__all__ = ["get", "clear"]


@_functools.lru_cache(maxsize=1)
def get() -> _Any:
    """Return the driver every hpc.cuda object uses (cached; :func:`clear` forgets it).

    Raises:
        RuntimeError: ``HPC_DEVICE=cuda`` was asked for but no GPU is usable (the reason is in the message).
        hpc.config.ConfigError: ``HPC_DEVICE`` has a value hpc does not accept.
    """
    from hpc.cuda import _driver, device, fallback

    if device.is_available():
        driver, _ = _driver.load()
        return _driver.CudaDriver(driver)
    if _config.device() == "cuda":
        raise RuntimeError(f"HPC_DEVICE=cuda but no CUDA GPU is usable: {device.unavailable_reason()}")
    return fallback.HostDriver()


def on_gpu() -> bool:
    """Return whether hpc.cuda runs on a GPU (``False`` on the host fallback)."""
    return get().name == "cuda"


def clear() -> None:
    """Forget the chosen driver (for tests that change ``HPC_DEVICE``); objects made before keep theirs."""
    get.cache_clear()
