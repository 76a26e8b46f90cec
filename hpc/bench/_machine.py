"""The machine a benchmark ran on: one description for every suite's JSON and table header.

Every suite records the same facts under the same keys (``hostname``, ``cpu`` as ``hpc info`` reports it, ``simd``,
``cores``, ``available_cpus``, ``python``, ``implementation``, ``platform``, ``date``, ``versions``) plus its own
extras (threads, ranks, the MPI library, load averages); tables print :func:`hpc.info.cpu_line` of ``cpu``.
"""

from __future__ import annotations

import datetime as _datetime
import os as _os
import platform as _platform
import socket as _socket
from importlib import metadata as _metadata
from typing import Any

__all__ = ["describe", "versions"]


def versions(*packages: str) -> dict[str, str | None]:
    """Return the installed version of each distribution (None where it is not installed)."""
    found: dict[str, str | None] = {}
    for name in packages:
        try:
            found[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            found[name] = None
    return found


def describe(packages: tuple[str, ...] = ("numpy",), **extra: Any) -> dict[str, Any]:
    """Return the machine facts, the versions of ``packages`` and the suite's ``extra`` entries (which win)."""
    from hpc import config, info

    machine: dict[str, Any] = {
        "hostname": _socket.gethostname(),
        "cpu": info._guard(info._cpu),
        "simd": info._guard(info._simd),
        "cores": _os.cpu_count(),
        "available_cpus": config.available_cpus(),
        "python": _platform.python_version(),
        "implementation": _platform.python_implementation(),
        "platform": _platform.platform(),
        "date": _datetime.datetime.now(_datetime.UTC).isoformat(timespec="seconds"),
        "versions": versions(*packages),
    }
    machine.update(extra)
    return machine
