"""The host driver: the same calls as :mod:`hpc.cuda._driver`, on host memory and the host clock.

When no GPU is usable (no pycuda, no driver, no device, or ``HPC_DEVICE=cpu``), :mod:`hpc.cuda` runs on this
driver. A "device pointer" is then the address of a host buffer, copies are ``memmove`` calls, a stream runs each
operation at once in the order it is enqueued (so every ordering guarantee holds trivially), an event stores
``time.perf_counter()`` when recorded, and kernels are computed on the CPU by :mod:`hpc.cuda.twins`.
:func:`hpc.cuda.is_available` stays ``False``.
"""

from __future__ import annotations

import ctypes as _ctypes
import time as _time
from typing import Any as _Any

import numpy as _np

__all__ = ["HostDriver"]


class _HostEvent:
    __slots__ = ("t",)

    def __init__(self) -> None:
        self.t: float | None = None


class HostDriver:
    """Host-memory implementation of the driver calls hpc.cuda makes (see :class:`hpc.cuda._driver.CudaDriver`)."""

    name = "cpu"
    #: DLPack device type of this driver's memory (kDLCPU)
    dlpack_device_type = 1

    def __repr__(self) -> str:
        return "<hpc.cuda host driver>"

    # contexts: a device index stands for its (imaginary) primary context
    def retain_primary(self, index: int) -> int:
        return index

    def push(self, ctx: _Any) -> None:
        pass

    def pop(self) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def mem_get_info(self) -> tuple[int, int]:
        import os

        try:
            pages, size = os.sysconf("SC_AVPHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
            total = os.sysconf("SC_PHYS_PAGES") * size
            return pages * size, total
        except (ValueError, OSError, AttributeError):
            return 0, 0

    # memory: the handle is the numpy byte buffer that owns the memory
    def mem_alloc(self, nbytes: int) -> tuple[_Any, int]:
        block = _np.empty(max(nbytes, 1), dtype=_np.uint8)
        return block, int(block.ctypes.data)

    def mem_free(self, handle: _Any) -> None:
        pass  # the numpy buffer is released when the last reference goes

    def pool_new(self) -> None:
        return None

    def pool_alloc(self, pool: _Any, nbytes: int) -> tuple[_Any, int]:
        return self.mem_alloc(nbytes)

    def pool_release(self, handle: _Any) -> None:
        pass

    def pool_held_bytes(self, pool: _Any) -> int:
        return 0

    def pool_free_held(self, pool: _Any) -> None:
        pass

    def pinned_pool_new(self) -> None:
        return None

    def pinned_alloc(self, pool: _Any, nbytes: int) -> tuple[_Any, _np.ndarray]:
        block = _np.empty(max(nbytes, 1), dtype=_np.uint8)[:nbytes]
        return block, block

    def pinned_release(self, handle: _Any) -> None:
        pass

    def pinned_held_bytes(self, pool: _Any) -> int:
        return 0

    def pinned_free_held(self, pool: _Any) -> None:
        pass

    # copies: pointers are host addresses, so every copy is a memmove
    def htod(self, dst: int, src: _np.ndarray, stream: _Any = None) -> None:
        _ctypes.memmove(dst, src.ctypes.data, src.nbytes)

    def dtoh(self, dst: _np.ndarray, src: int, stream: _Any = None) -> None:
        _ctypes.memmove(dst.ctypes.data, src, dst.nbytes)

    def dtod(self, dst: int, src: int, nbytes: int, stream: _Any = None) -> None:
        _ctypes.memmove(dst, src, nbytes)

    def memset(self, dst: int, value: int, nbytes: int, stream: _Any = None) -> None:
        _ctypes.memset(dst, value, nbytes)

    def host_view(self, ptr: int, nbytes: int) -> _np.ndarray:
        """Return the bytes at ``ptr`` as a uint8 array (only the host driver can do this)."""
        if nbytes == 0:
            return _np.empty(0, dtype=_np.uint8)
        return _np.ctypeslib.as_array((_ctypes.c_uint8 * nbytes).from_address(ptr))

    # streams and events: work runs when enqueued, so a stream is always idle
    def stream_new(self) -> object:
        return object()

    def stream_handle(self, stream: _Any) -> int:
        return 0 if stream is None else id(stream)

    def stream_sync(self, stream: _Any) -> None:
        pass

    def stream_done(self, stream: _Any) -> bool:
        return True

    def stream_wait(self, stream: _Any, event: _Any) -> None:
        pass

    def event_new(self, timing: bool = True) -> _HostEvent:
        return _HostEvent()

    def event_record(self, event: _HostEvent, stream: _Any = None) -> None:
        event.t = _time.perf_counter()

    def event_sync(self, event: _HostEvent) -> None:
        pass

    def event_done(self, event: _HostEvent) -> bool:
        return True

    def event_elapsed_ms(self, start: _HostEvent, end: _HostEvent) -> float:
        if start.t is None or end.t is None:
            raise RuntimeError("both events must be recorded before elapsed_ms")
        return (end.t - start.t) * 1e3
