"""CUDA device management over pycuda, with the same API on the CPU when no GPU is usable."""

from __future__ import annotations

from hpc.cuda.device import DeviceInfo, device_count, devices, is_available, unavailable_reason

__all__ = ["DeviceInfo", "device_count", "devices", "is_available", "unavailable_reason"]
