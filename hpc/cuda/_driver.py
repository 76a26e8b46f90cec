"""Thin pycuda.driver calls: the only module of hpc.cuda that touches pycuda."""

from __future__ import annotations

from types import ModuleType as _ModuleType
from typing import Any as _Any

from hpc._optional import optional_module, why_missing

__all__ = ["load", "init", "device_count", "device_properties"]


def load() -> tuple[_ModuleType | None, str]:
    """Return ``(pycuda.driver, "")``, or ``(None, reason)`` when pycuda or the CUDA driver is missing.

    Importing ``pycuda.driver`` loads ``libcuda``; it creates no context.
    """
    if optional_module("pycuda") is None:
        error = why_missing("pycuda")
        if error.startswith("ModuleNotFoundError"):
            return None, "pycuda is not installed (pip install 'hpc-substrate[cuda]')"
        return None, f"pycuda cannot be imported: {error}"
    driver = optional_module("pycuda.driver")
    if driver is None:
        return None, f"no CUDA driver: {why_missing('pycuda.driver')}"
    return driver, ""


def init(driver: _ModuleType) -> None:
    """Call ``cuInit(0)``; it is idempotent and creates no context."""
    driver.init()


def device_count(driver: _ModuleType) -> int:
    """Return ``cuDeviceGetCount()``."""
    return int(driver.Device.count())


def device_properties(driver: _ModuleType, index: int) -> dict[str, _Any]:
    """Return the properties of device ``index`` read with ``cuDeviceGet*`` calls (no context is created)."""
    dev = driver.Device(index)
    attr = driver.device_attribute
    major, minor = dev.compute_capability()
    return {
        "index": index,
        "name": str(dev.name()),
        "compute_capability": (int(major), int(minor)),
        "total_memory": int(dev.total_memory()),
        "multiprocessor_count": int(dev.get_attribute(attr.MULTIPROCESSOR_COUNT)),
        "clock_rate_khz": int(dev.get_attribute(attr.CLOCK_RATE)),
        "pci_bus_id": str(dev.pci_bus_id()),
    }
