"""CUDA device discovery, like ``cupy.cuda.runtime.getDeviceCount`` but never raising."""

from __future__ import annotations

import dataclasses as _dataclasses
import functools as _functools
from typing import Any as _Any
from typing import NamedTuple as _NamedTuple

import numpy as _np

from hpc import config as _config
from hpc.cuda import _driver

__all__ = [
    "Device",
    "DeviceInfo",
    "current_device",
    "device_count",
    "devices",
    "is_available",
    "synchronize",
    "unavailable_reason",
]


@_dataclasses.dataclass(frozen=True)
class DeviceInfo:
    """What the driver reports about one GPU, read without creating a context.

    Attributes:
        index (int): the device ordinal, zero origin, as ``CUDA_VISIBLE_DEVICES`` renumbers it.
        name (str): the marketing name, e.g. ``"NVIDIA H100 80GB HBM3"``.
        compute_capability (tuple[int, int]): ``(major, minor)``, e.g. ``(9, 0)``.
        total_memory (int): device memory in bytes.
        multiprocessor_count (int): streaming multiprocessors (SMs).
        clock_rate_khz (int): the peak SM clock in kHz.
        pci_bus_id (str): e.g. ``"0000:17:00.0"``.

    .. versionadded:: 0.1.0
    """

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int
    multiprocessor_count: int
    clock_rate_khz: int
    pci_bus_id: str

    def as_dict(self) -> dict[str, _Any]:
        """Return the fields as a JSON-ready dict (the compute capability as a list)."""
        out = _dataclasses.asdict(self)
        out["compute_capability"] = list(self.compute_capability)
        return out

    def __str__(self) -> str:
        major, minor = self.compute_capability
        gib = self.total_memory / 2**30
        return (
            f"[{self.index}] {self.name}, sm_{major}{minor}, {gib:.1f} GiB, "
            f"{self.multiprocessor_count} SMs, {self.clock_rate_khz / 1e6:.2f} GHz, {self.pci_bus_id}"
        )


class _Probe(_NamedTuple):
    devices: tuple[DeviceInfo, ...]
    reason: str


@_functools.lru_cache(maxsize=1)
def _probe() -> _Probe:
    # Never raises: every failure becomes the one-line reason that unavailable_reason() returns.
    try:
        if _config.device() == "cpu":
            return _Probe((), "HPC_DEVICE=cpu")
    except _config.ConfigError as exc:
        return _Probe((), str(exc))
    driver, reason = _driver.load()
    if driver is None:
        return _Probe((), reason)
    try:
        _driver.init(driver)
    except Exception as exc:  # pycuda.driver.Error, or anything a broken driver raises
        return _Probe((), f"the CUDA driver failed to initialise: {exc}")
    try:
        count = _driver.device_count(driver)
        if count == 0:
            return _Probe((), "driver found but 0 devices")
        found = tuple(DeviceInfo(**_driver.device_properties(driver, i)) for i in range(count))
    except Exception as exc:
        return _Probe((), f"the CUDA driver failed to list devices: {exc}")
    return _Probe(found, "")


def _clear_cache() -> None:
    """Forget the cached probe and driver so the next call looks again (for tests that change ``HPC_DEVICE``)."""
    _probe.cache_clear()
    from hpc.cuda import _backend

    _backend.clear()


def is_available() -> bool:
    """Return whether a CUDA GPU is usable: pycuda, a driver, a device, and ``HPC_DEVICE`` not ``cpu``.

    The result is cached for the process and the call never raises; :func:`unavailable_reason` says why
    it is ``False``.

    .. note:: The first call runs ``cuInit`` (tens of milliseconds); it never creates a context.

    .. versionadded:: 0.1.0
    """
    return bool(_probe().devices)


def device_count() -> int:
    """Return the number of usable CUDA GPUs (0 when :func:`is_available` is ``False``).

    .. versionadded:: 0.1.0
    """
    return len(_probe().devices)


def devices() -> list[DeviceInfo]:
    """Return a :class:`DeviceInfo` for every usable GPU, in ordinal order (empty without one).

    .. versionadded:: 0.1.0
    """
    return list(_probe().devices)


def unavailable_reason() -> str:
    """Return one human line saying why no GPU is usable, or an empty string when one is.

    Examples are ``"HPC_DEVICE=cpu"``, ``"pycuda is not installed (pip install pycuda)"``,
    ``"no CUDA driver: ImportError: libcuda.so.1: ..."`` and ``"driver found but 0 devices"``.

    .. versionadded:: 0.1.0
    """
    return _probe().reason


class Device:
    """One GPU, used through its primary context; a context manager that restores the previous context on exit.

    ``with Device(1): ...`` pushes device 1's primary context on this thread's context stack and pops it when the
    block ends, also when it raises, so whatever was current before is current again. Blocks nest and each thread
    has its own stack, so threads of hpc's pool may each use a device at once. On the host fallback the only
    device is ``Device(0)``, standing for the host.

    Args:
        index (int or Device): the device ordinal, zero origin (as ``CUDA_VISIBLE_DEVICES`` renumbers it).

    Raises:
        ValueError: ``index`` is not a usable device.

    .. note:: Retaining a primary context the first time costs ~100 ms and some device memory, which stays for
       the process (as with CuPy and torch); entering a ``with`` block costs one push and one pop, and never
       synchronizes. :meth:`synchronize` does.

    .. versionadded:: 0.1.0
    """

    __slots__ = ("index",)

    def __init__(self, index: int | _np.integer[_Any] | Device = 0) -> None:
        if isinstance(index, Device):
            index = index.index
        if isinstance(index, _np.integer):
            index = int(index)
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise ValueError(f"index must be a non-negative int; got {index!r}")
        count = device_count()
        if count == 0 and index != 0:
            raise ValueError(f"index must be 0 on the host fallback ({unavailable_reason()}); got {index!r}")
        if count and index >= count:
            raise ValueError(f"index must be below the device count {count}; got {index!r}")
        self.index = index

    @property
    def info(self) -> DeviceInfo | None:
        """DeviceInfo or None: what the driver reports about this GPU (``None`` on the host fallback)."""
        found = devices()
        return found[self.index] if found else None

    @property
    def compute_capability(self) -> tuple[int, int]:
        """tuple[int, int]: ``(major, minor)``; ``(0, 0)`` on the host fallback."""
        info = self.info
        return info.compute_capability if info else (0, 0)

    def mem_get_info(self) -> tuple[int, int]:
        """Return ``(free, total)`` device memory in bytes (host memory on the fallback)."""
        from hpc.cuda import _backend, context

        with context.active(self.index):
            return _backend.get().mem_get_info()

    def synchronize(self) -> None:
        """Wait until all work queued on this device has finished (``cuCtxSynchronize``)."""
        from hpc.cuda import _backend, context

        with context.active(self.index):
            _backend.get().synchronize()

    def __enter__(self) -> Device:
        from hpc.cuda import context

        context.push(self.index)
        return self

    def __exit__(self, *exc: object) -> None:
        from hpc.cuda import context

        context.pop()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) and other.index == self.index

    def __hash__(self) -> int:
        return hash(("hpc.cuda.Device", self.index))

    def __repr__(self) -> str:
        return f"<hpc.cuda.Device {self.index}>"


def current_device() -> Device:
    """Return the device of this thread's innermost ``with Device(i):`` block, else the process default.

    .. versionadded:: 0.1.0
    """
    from hpc.cuda import context

    index = context.current_index()
    return Device(context.default_index() if index is None else index)


def synchronize() -> None:
    """Wait until all work queued on the current device has finished.

    .. versionadded:: 0.1.0
    """
    current_device().synchronize()
