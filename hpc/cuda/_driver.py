"""Thin pycuda.driver calls: the only module of hpc.cuda that touches pycuda.

Every call here is one pycuda call (or two), so the rest of hpc.cuda reads the same on a GPU and on the host
driver of :mod:`hpc.cuda.fallback`, which implements the same methods. Signatures follow pycuda's documentation
(``pycuda.driver`` and ``pycuda.tools``, pycuda 2026.1); this path has not run on a GPU yet, see ``docs/cuda.md``.
"""

from __future__ import annotations

from types import ModuleType as _ModuleType
from typing import Any as _Any

import numpy as _np

from hpc._optional import optional_module, why_missing

__all__ = ["load", "init", "device_count", "device_properties", "CudaDriver"]


def load() -> tuple[_ModuleType | None, str]:
    """Return ``(pycuda.driver, "")``, or ``(None, reason)`` when pycuda or the CUDA driver is missing.

    Importing ``pycuda.driver`` loads ``libcuda``; it creates no context.
    """
    if optional_module("pycuda") is None:
        error = why_missing("pycuda")
        if error.startswith("ModuleNotFoundError"):
            return None, "pycuda is not installed (pip install pycuda)"
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


class CudaDriver:
    """The driver calls hpc.cuda makes, on pycuda. Every method needs a current context unless it says otherwise.

    Handles are pycuda objects (``Context``, ``PooledDeviceAllocation``, ``Stream``, ``Event``, ``Function``);
    pointers are plain ``int`` device addresses.
    """

    name = "cuda"
    #: DLPack device type of this driver's memory (kDLCUDA)
    dlpack_device_type = 2

    def __init__(self, driver: _ModuleType) -> None:
        self.drv = driver
        self.tools = optional_module("pycuda.tools")

    def __repr__(self) -> str:
        return "<hpc.cuda pycuda driver>"

    # contexts (no current context needed)
    def retain_primary(self, index: int) -> _Any:
        return self.drv.Device(index).retain_primary_context()

    def push(self, ctx: _Any) -> None:
        ctx.push()

    def pop(self) -> None:
        self.drv.Context.pop()

    def synchronize(self) -> None:
        self.drv.Context.synchronize()

    def mem_get_info(self) -> tuple[int, int]:
        free, total = self.drv.mem_get_info()
        return int(free), int(total)

    # memory
    def mem_alloc(self, nbytes: int) -> tuple[_Any, int]:
        alloc = self.drv.mem_alloc(max(nbytes, 1))
        return alloc, int(alloc)

    def mem_free(self, handle: _Any) -> None:
        handle.free()

    def pool_new(self) -> _Any:
        return self.tools.DeviceMemoryPool()

    def pool_alloc(self, pool: _Any, nbytes: int) -> tuple[_Any, int]:
        alloc = pool.allocate(max(nbytes, 1))
        return alloc, int(alloc)

    def pool_release(self, handle: _Any) -> None:
        handle.free()  # a PooledDeviceAllocation goes back to its pool; no CUDA call

    def pool_held_bytes(self, pool: _Any) -> int:
        return int(pool.managed_bytes) - int(pool.active_bytes)

    def pool_free_held(self, pool: _Any) -> None:
        pool.free_held()

    def pinned_pool_new(self) -> _Any:
        return self.tools.PageLockedMemoryPool()

    def pinned_alloc(self, pool: _Any, nbytes: int) -> tuple[_Any, _np.ndarray]:
        block = pool.allocate((max(nbytes, 1),), _np.uint8)
        return block.base, block[:nbytes]

    def pinned_release(self, handle: _Any) -> None:
        handle.free()

    def pinned_held_bytes(self, pool: _Any) -> int:
        return int(pool.managed_bytes) - int(pool.active_bytes)

    def pinned_free_held(self, pool: _Any) -> None:
        pool.free_held()

    # copies: an async copy needs page-locked host memory; callers stage pageable arrays (hpc.cuda._transfer)
    def htod(self, dst: int, src: _np.ndarray, stream: _Any = None) -> None:
        if stream is None:
            self.drv.memcpy_htod(dst, src)
        else:
            self.drv.memcpy_htod_async(dst, src, stream)

    def dtoh(self, dst: _np.ndarray, src: int, stream: _Any = None) -> None:
        if stream is None:
            self.drv.memcpy_dtoh(dst, src)
        else:
            self.drv.memcpy_dtoh_async(dst, src, stream)

    def dtod(self, dst: int, src: int, nbytes: int, stream: _Any = None) -> None:
        if stream is None:
            self.drv.memcpy_dtod(dst, src, nbytes)
        else:
            self.drv.memcpy_dtod_async(dst, src, nbytes, stream)

    def memset(self, dst: int, value: int, nbytes: int, stream: _Any = None) -> None:
        if stream is None:
            self.drv.memset_d8(dst, value, nbytes)
        else:
            self.drv.memset_d8_async(dst, value, nbytes, stream)

    # streams and events
    def stream_new(self) -> _Any:
        return self.drv.Stream()

    def stream_handle(self, stream: _Any) -> int:
        return 0 if stream is None else int(stream.handle)

    def stream_sync(self, stream: _Any) -> None:
        if stream is None:
            self.drv.Context.synchronize()
        else:
            stream.synchronize()

    def stream_done(self, stream: _Any) -> bool:
        return bool(stream.is_done())

    def stream_wait(self, stream: _Any, event: _Any) -> None:
        stream.wait_for_event(event)

    def event_new(self, timing: bool = True) -> _Any:
        return self.drv.Event(0 if timing else self.drv.event_flags.DISABLE_TIMING)

    def event_record(self, event: _Any, stream: _Any = None) -> None:
        event.record(stream)

    def event_sync(self, event: _Any) -> None:
        event.synchronize()

    def event_done(self, event: _Any) -> bool:
        return bool(event.query())

    def event_elapsed_ms(self, start: _Any, end: _Any) -> float:
        return float(start.time_till(end))  # pycuda: start.time_till(end) == end.time_since(start)

    # modules
    def module_load(self, image: bytes) -> _Any:
        return self.drv.module_from_buffer(image)

    def function(self, module: _Any, name: str, arg_format: str) -> _Any:
        return module.get_function(name).prepare(arg_format)

    def launch(self, fn: _Any, grid: tuple, block: tuple, args: tuple, stream: _Any = None, shared: int = 0) -> None:
        if stream is None:
            fn.prepared_call(grid, block, *args, shared_size=shared)
        else:
            fn.prepared_async_call(grid, block, stream, *args, shared_size=shared)
