"""CUDA device discovery, like ``cupy.cuda.runtime.getDeviceCount`` but never raising."""

from __future__ import annotations

import dataclasses as _dataclasses
import functools as _functools
from typing import Any as _Any
from typing import NamedTuple as _NamedTuple

from hpc import config as _config
from hpc.cuda import _driver

__all__ = ["DeviceInfo", "is_available", "device_count", "devices", "unavailable_reason"]


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
    """Forget the cached probe so the next call looks again (for tests that change ``HPC_DEVICE``)."""
    _probe.cache_clear()


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

    Examples are ``"HPC_DEVICE=cpu"``, ``"pycuda is not installed (pip install 'hpc-substrate[cuda]')"``,
    ``"no CUDA driver: ImportError: libcuda.so.1: ..."`` and ``"driver found but 0 devices"``.

    .. versionadded:: 0.1.0
    """
    return _probe().reason
