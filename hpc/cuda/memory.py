"""Device and pinned host memory pools with accounting, like ``cupy.cuda.MemoryPool`` and ``PinnedMemoryPool``.

Each device has one pool (``"device:0"``, ...) on ``pycuda.tools.DeviceMemoryPool`` and the process has one
pinned host pool (``"pinned"``) on ``pycuda.tools.PageLockedMemoryPool``. hpc counts what it hands out: the
bytes live now (``current``), the most ever live at once (``peak``), the allocations made (``allocations``) and
those not yet freed (``live``). On the host fallback the same pools hand out host memory and count it the same way.

With ``HPC_CUDA_LEAKCHECK=1`` each allocation remembers where it was made, and at exit a report of what is still
live goes to stderr.
"""

from __future__ import annotations

import atexit as _atexit
import dataclasses as _dataclasses
import operator as _operator
import os as _os
import sys as _sys
import threading as _threading
import weakref as _weakref
from typing import Any as _Any

import numpy as _np

from hpc import config as _config
from hpc.cuda import _backend, context

__all__ = [
    "Buffer",
    "PinnedArray",
    "Pool",
    "PoolStats",
    "device_pool",
    "is_pinned",
    "memory_report",
    "memory_stats",
    "pinned_empty",
    "pinned_pool",
]

_HERE = _os.path.dirname(_os.path.abspath(__file__))


@_dataclasses.dataclass(frozen=True)
class PoolStats:
    """The accounting of one pool, in bytes and counts of hpc's own allocations.

    Attributes:
        current (int): bytes handed out and not yet freed.
        peak (int): the largest ``current`` seen (since the pool started or :meth:`Pool.reset_peak`).
        allocations (int): allocations made so far.
        live (int): allocations not yet freed.
        held (int): bytes the pool keeps cached for reuse (always 0 on the host fallback).
    """

    current: int
    peak: int
    allocations: int
    live: int
    held: int

    def as_dict(self) -> dict[str, int]:
        """Return the fields as a dict."""
        return _dataclasses.asdict(self)


class Buffer:
    """A block of pool memory: ``ptr`` (an int address) and ``nbytes``; freed once, by :meth:`free` or the GC.

    On the pinned pool ``host`` is a uint8 NumPy array over the block; on the device pool it is ``None``.
    """

    __slots__ = ("ptr", "nbytes", "host", "pool", "site", "_handle", "_retired", "__weakref__")

    def __init__(self, pool: Pool, handle: _Any, ptr: int, nbytes: int, host: _np.ndarray | None, site: str) -> None:
        self.pool = pool
        self._handle = handle
        self._retired = False
        self.ptr = ptr
        self.nbytes = nbytes
        self.host = host
        self.site = site

    @property
    def freed(self) -> bool:
        """bool: whether the block went back to its pool, or was retired (:meth:`retire`): no longer to be used."""
        return self._handle is None or self._retired

    def retire(self) -> None:
        """Mark the block freed for hpc (using it raises) but keep the memory until this Buffer is collected: for
        memory that NumPy views or DLPack consumers may still read, which hold the Buffer's owner alive. Until
        then the pool counts the block as live."""
        self._retired = True

    def free(self) -> None:
        """Give the block back to its pool now (it stays cached there); a second call does nothing.

        .. note:: No synchronization: free only memory no queued work still uses.
        """
        handle, self._handle = self._handle, None
        if handle is not None:
            self.host = None
            self.pool._release(self, handle)

    def __del__(self) -> None:
        try:
            self.free()
        except Exception:  # at interpreter exit the driver may be gone before us  # noqa: S110
            pass

    def __repr__(self) -> str:
        state = "freed" if self.freed else f"0x{self.ptr:x}"
        return f"<hpc.cuda.Buffer {self.nbytes} B on {self.pool.name} {state}>"


class Pool:
    """A memory pool with accounting; get one with :func:`device_pool` or :func:`pinned_pool`.

    Args:
        name (str): ``"device:<index>"`` or ``"pinned"``.

    .. note:: A freed block stays cached in the pool (pycuda's pools bin blocks by size), so a later allocation
       of a similar size costs about a microsecond instead of a ``cuMemAlloc`` (~80 µs) and never synchronizes.
       Cached memory is not available to other programs until :meth:`free_held`.
    """

    def __init__(self, name: str) -> None:
        if name != "pinned" and not name.startswith("device:"):
            raise ValueError(f"name must be 'pinned' or 'device:<index>'; got {name!r}")
        self.name = name
        self.pinned = name == "pinned"
        self.device_index = 0 if self.pinned else int(name.split(":", 1)[1])
        self._lock = _threading.RLock()  # re-entrant: the GC may free a Buffer while this thread holds it
        self._driver: _Any = None
        self._pool: _Any = None
        self._current = self._peak = self._allocations = 0
        self._live: _weakref.WeakSet[Buffer] = _weakref.WeakSet()

    def _backing(self) -> tuple[_Any, _Any]:
        if self._driver is None:
            driver = _backend.get()
            self._pool = driver.pinned_pool_new() if self.pinned else driver.pool_new()
            self._driver = driver
        return self._driver, self._pool

    def allocate(self, nbytes: int) -> Buffer:
        """Return a :class:`Buffer` of ``nbytes`` bytes (uninitialised).

        Raises:
            ValueError: ``nbytes`` is negative or not an int.
        """
        if not isinstance(nbytes, (int, _np.integer)) or nbytes < 0:
            raise ValueError(f"nbytes must be a non-negative int; got {nbytes!r}")
        nbytes = int(nbytes)
        site = _site() if _config.cuda_leakcheck() else ""
        with context.active(self.device_index):
            with self._lock:
                driver, pool = self._backing()
            if self.pinned:
                handle, host = driver.pinned_alloc(pool, nbytes)
                buf = Buffer(self, handle, int(host.ctypes.data), nbytes, host, site)
            else:
                handle, ptr = driver.pool_alloc(pool, nbytes)
                buf = Buffer(self, handle, ptr, nbytes, None, site)
        with self._lock:
            self._current += nbytes
            self._allocations += 1
            self._peak = max(self._peak, self._current)
            self._live.add(buf)
        return buf

    def _release(self, buf: Buffer, handle: _Any) -> None:
        with self._lock:
            self._current -= buf.nbytes
            self._live.discard(buf)
        if self.pinned:
            self._driver.pinned_release(handle)
        else:
            self._driver.pool_release(handle)

    def stats(self) -> PoolStats:
        """Return this pool's :class:`PoolStats` now."""
        with self._lock:
            held = 0
            if self._driver is not None:
                held = (
                    self._driver.pinned_held_bytes(self._pool)
                    if self.pinned
                    else self._driver.pool_held_bytes(self._pool)
                )
            return PoolStats(self._current, self._peak, self._allocations, len(self._live), held)

    def live_buffers(self) -> list[Buffer]:
        """Return the buffers not yet freed, largest first."""
        with self._lock:
            return sorted(self._live, key=lambda b: -b.nbytes)

    def reset_peak(self) -> None:
        """Start the peak again from the bytes live now."""
        with self._lock:
            self._peak = self._current

    def free_held(self) -> None:
        """Release the cached free blocks to the driver (``cuMemFree``); live buffers stay."""
        if self._driver is not None:
            with context.active(self.device_index), self._lock:
                if self.pinned:
                    self._driver.pinned_free_held(self._pool)
                else:
                    self._driver.pool_free_held(self._pool)

    def __repr__(self) -> str:
        s = self.stats()
        return f"<hpc.cuda.Pool {self.name} current={s.current} peak={s.peak} live={s.live}>"


_pools: dict[str, Pool] = {}
_pools_lock = _threading.Lock()


def _get_pool(name: str) -> Pool:
    with _pools_lock:
        if name not in _pools:
            _pools[name] = Pool(name)
        return _pools[name]


def device_pool(device: _Any = None) -> Pool:
    """Return the memory pool of ``device`` (an index or :class:`~hpc.cuda.Device`; default: the current one).

    .. versionadded:: 0.1.0
    """
    index = context.device_index(device)
    if device is not None:
        from hpc.cuda.device import Device

        Device(index)  # ValueError for a device that does not exist
    return _get_pool(f"device:{index}")


def pinned_pool() -> Pool:
    """Return the process's pinned (page-locked) host memory pool.

    .. versionadded:: 0.1.0
    """
    return _get_pool("pinned")


class _PinnedBlock:
    """One pinned block seen by NumPy (``__array_interface__``): the base of every array made on it, holding the
    block's Buffer.

    NumPy gives a view of a view the first owner of the memory as its base, skipping the arrays between: a plain
    ``np.asarray(pinned)`` skipped the PinnedArray (which held the Buffer), so the block went back to its pool, to
    be handed out again, while that view still pointed into it. The skipping ends at an object that is not an array:
    this one, so every array made on the block keeps it, and the block, alive.
    """

    __slots__ = ("buffer", "__array_interface__")

    def __init__(self, buffer: Buffer) -> None:
        self.buffer = buffer
        self.__array_interface__ = {
            "shape": (buffer.nbytes,), "typestr": "|u1", "data": (buffer.ptr, False), "version": 3
        }


class PinnedArray(_np.ndarray):
    """A NumPy array in page-locked host memory from :func:`pinned_empty`; its block goes back when all views go.

    Transfers from and to pinned memory run at the link's full speed and may be asynchronous.
    """

    _hpc_buffer: Buffer | None = None

    def __array_finalize__(self, obj: object) -> None:
        # Views share the pinned block; new arrays made from one (copy(), p + 1, astype) are pageable memory and
        # must neither claim to be pinned nor keep the block alive.
        buf = getattr(obj, "_hpc_buffer", None)
        if buf is not None and not buf.freed:
            address = self.__array_interface__["data"][0]
            if not buf.ptr <= address < buf.ptr + max(buf.nbytes, 1):
                buf = None
        self._hpc_buffer = buf


def normalize_shape(shape: _Any) -> tuple[int, ...]:
    """Return ``shape`` (an int or a sequence of ints, NumPy's included) as a tuple of non-negative ints, for
    :func:`pinned_empty` and :class:`~hpc.cuda.DeviceArray` alike.

    Raises:
        TypeError: a size that is no integer (2.5 is no size: NumPy refuses it too).
        ValueError: a negative size.
    """
    if isinstance(shape, (int, _np.integer)):
        shape = (shape,)
    try:
        out = tuple(_operator.index(n) for n in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints; got {shape!r}") from None
    if any(n < 0 for n in out):
        raise ValueError(f"shape must not hold negative sizes; got {shape!r}")
    return out


def pinned_empty(shape: _Any, dtype: _Any = float, order: str = "C") -> PinnedArray:
    """Return an uninitialised array in pinned host memory (``pycuda.driver.pagelocked_empty`` from a pool).

    .. seealso:: :func:`numpy.empty`

    .. versionadded:: 0.1.0
    """
    dtype = _np.dtype(dtype)
    if dtype.hasobject:  # uninitialised bytes read as object pointers would crash the first print
        raise TypeError(f"pinned memory holds numbers, not objects; got dtype {dtype}")
    shape = normalize_shape(shape)
    if order not in ("C", "F"):
        raise ValueError(f"order must be 'C' or 'F'; got {order!r}")
    count = 1
    for n in shape:
        count *= n
    buf = pinned_pool().allocate(count * dtype.itemsize)
    raw = _np.asarray(_PinnedBlock(buf))
    out = _np.ndarray(shape, dtype=dtype, buffer=raw, order=order).view(PinnedArray)
    out._hpc_buffer = buf
    return out


def is_pinned(array: object) -> bool:
    """Return whether ``array`` is a view of memory from :func:`pinned_empty`: a :class:`PinnedArray`, or a plain
    NumPy view of one (``numpy.asarray(pinned)``, whose base is the pinned block)."""
    buf = getattr(array, "_hpc_buffer", None)
    if buf is None and isinstance(array, _np.ndarray):
        base = array.base
        while isinstance(base, _np.ndarray):
            base = base.base
        if isinstance(base, _PinnedBlock):
            bounds = getattr(_np, "byte_bounds", None) or _np.lib.array_utils.byte_bounds  # NumPy 1.x, 2.x
            lo, hi = bounds(array)
            if base.buffer.ptr <= lo and hi <= base.buffer.ptr + base.buffer.nbytes:
                buf = base.buffer
    return buf is not None and not buf.freed


def memory_stats() -> dict[str, dict[str, int]]:
    """Return every pool's accounting: ``{"device:0": {"current", "peak", "allocations", "live", "held"}, ...}``.

    The device pool of the current device and the pinned pool are always listed, even before their first use.

    .. versionadded:: 0.1.0
    """
    device_pool()
    pinned_pool()
    with _pools_lock:
        pools = sorted(_pools.values(), key=lambda p: p.name)
    return {p.name: p.stats().as_dict() for p in pools}


def _human(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def memory_report() -> str:
    """Return a small text table of :func:`memory_stats`, one line per pool, naming the driver in use.

    .. versionadded:: 0.1.0
    """
    stats = memory_stats()
    where = "GPU" if _backend.on_gpu() else "host fallback"
    lines = [
        f"hpc.cuda memory ({where})",
        f"{'pool':<10} {'current':>11} {'peak':>11} {'allocations':>11} {'live':>6} {'held':>11}",
    ]
    for name, s in stats.items():
        lines.append(
            f"{name:<10} {_human(s['current']):>11} {_human(s['peak']):>11} {s['allocations']:>11} "
            f"{s['live']:>6} {_human(s['held']):>11}"
        )
    return "\n".join(lines)


_internal: _weakref.WeakSet[Buffer] = _weakref.WeakSet()


def mark_internal(buf: Buffer) -> Buffer:
    """Leave ``buf`` out of the leak report: a cache hpc keeps on purpose (the staging buffers of transfers)."""
    _internal.add(buf)
    return buf


def leak_report() -> str:
    """Return one line per live allocation (pool, size, where it was made), or an empty string when none is live.

    hpc's own caches (see :func:`mark_internal`) are not leaks and are left out; they still count in the stats.
    """
    with _pools_lock:
        pools = sorted(_pools.values(), key=lambda p: p.name)
    lines = []
    for pool in pools:
        for buf in pool.live_buffers():
            if buf in _internal:
                continue
            lines.append(f"  {pool.name}: {_human(buf.nbytes)} allocated at {buf.site or '(site not recorded)'}")
    if not lines:
        return ""
    return f"hpc.cuda leak check: {len(lines)} allocation(s) still live at exit\n" + "\n".join(lines)


def _site() -> str:
    frame = _sys._getframe(2)
    while frame is not None and _inside_hpc(frame.f_code.co_filename):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "(unknown)"
    return f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}"


def _inside_hpc(filename: str) -> bool:
    """Whether a frame is hpc's own on the way to an allocation: hpc.cuda, or hpc.kernels' dispatch of a kernel to
    its GPU twin (kernels/_dispatch.py and the wrapper it generates), so a leak names the caller's line."""
    if filename.startswith("<hpc.kernels gpu_twin"):
        return True
    path = _os.path.abspath(filename)
    return _os.path.dirname(path) == _HERE or path.endswith(_os.path.join("kernels", "_dispatch.py"))


def _report_leaks_at_exit() -> None:
    try:
        enabled = _config.cuda_leakcheck()
    except _config.ConfigError:
        return
    if enabled:
        report = leak_report()
        _sys.stderr.write((report or "hpc.cuda leak check: no live allocations at exit") + "\n")
        _sys.stderr.flush()


_atexit.register(_report_leaks_at_exit)
