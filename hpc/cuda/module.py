"""Kernel modules from ``kernels/cuda/*.cu``: compiled once with nvcc for the device, cached on disk, launched prepared.

Like ``pycuda.compiler.SourceModule`` and CuPy's ``RawModule``, but for hpc's own sources: :func:`load` compiles
``<name>.cu`` with ``nvcc --cubin -arch=sm_XY -O3`` (XY: the device's compute capability), keeps the cubin in
``$HPC_CUDA_CACHE`` (default ``~/.cache/hpc/cuda``) under a key made of the source hash (with the ``.cuh`` headers
next to it), the architecture and the nvcc version, loads it into the device's primary context, and hands out
:class:`Kernel` objects whose argument layout is fixed once (``prepare``), so a launch only packs the arguments
(about 6 µs with pycuda).
"""

from __future__ import annotations

import functools as _functools
import hashlib as _hashlib
import importlib.util as _import_util
import os as _os
import shutil as _shutil
import subprocess as _subprocess
import tempfile as _tempfile
import threading as _threading
from pathlib import Path as _Path
from typing import Any as _Any

from hpc import config as _config
from hpc.cuda import _backend, context
from hpc.cuda.stream import Stream, handle_of

__all__ = ["CompileError", "Kernel", "Module", "cache_dir", "compile_source", "kernel_dir", "load", "nvcc_version"]

NVCC_OPTIONS = ("-O3",)


class CompileError(RuntimeError):
    """nvcc failed; the message holds its command line and its output."""


def kernel_dir() -> _Path:
    """Return the folder of the CUDA C sources (``kernels/cuda``, installed as ``hpc/kernels/cuda``)."""
    spec = _import_util.find_spec("hpc.kernels")  # finds the folder without importing the numba kernels
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("hpc.kernels is not installed; its cuda/ sources cannot be found")
    return _Path(next(iter(spec.submodule_search_locations))) / "cuda"


def cache_dir() -> _Path:
    """Return the cubin cache: ``$HPC_CUDA_CACHE``, else ``$XDG_CACHE_HOME/hpc/cuda`` or ``~/.cache/hpc/cuda``."""
    return _Path(_config.cuda_cache())


def _nvcc() -> str:
    found = _shutil.which("nvcc") or (
        "/usr/local/cuda/bin/nvcc" if _os.path.exists("/usr/local/cuda/bin/nvcc") else None
    )
    if found is None:
        raise CompileError("nvcc was not found on PATH (or in /usr/local/cuda/bin); it compiles hpc's CUDA kernels")
    return found


@_functools.lru_cache(maxsize=1)
def nvcc_version() -> str:
    """Return the last line of ``nvcc --version`` (e.g. ``Build cuda_13.0.r13.0/compiler.36424714_0``)."""
    out = _subprocess.run([_nvcc(), "--version"], capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def compile_source(path: _Any, arch: str, *, target: str = "cubin") -> bytes:
    """Return the cubin (or PTX) of the CUDA C file ``path`` for ``arch`` (e.g. ``"sm_90"``), from the cache if there.

    Raises:
        CompileError: nvcc is missing or rejects the source.
        ValueError: ``target`` is not ``"cubin"`` or ``"ptx"``.
    """
    if target not in ("cubin", "ptx"):
        raise ValueError(f"target must be 'cubin' or 'ptx'; got {target!r}")
    path = _Path(path)
    source = path.read_bytes()
    # The headers next to the source (``#include "common.cuh"``) are part of what nvcc compiles, so of the key.
    headers = [h.read_bytes() for h in sorted(path.parent.glob("*.cuh"))]
    key = _hashlib.sha256(
        b"\0".join([source, *headers, arch.encode(), nvcc_version().encode(), " ".join(NVCC_OPTIONS).encode()])
    ).hexdigest()[:32]
    cached = cache_dir() / f"{path.stem}-{arch}-{key}.{target}"
    if cached.exists():
        return cached.read_bytes()
    with _tempfile.TemporaryDirectory(prefix="hpc-nvcc-") as tmp:
        out = _os.path.join(tmp, f"out.{target}")
        cmd = [_nvcc(), f"--{target}", f"-arch={arch}", *NVCC_OPTIONS, "-o", out, str(path)]
        done = _subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise CompileError(f"nvcc failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
        image = _Path(out).read_bytes()
    partial = cached.with_suffix(f".{_os.getpid()}.tmp")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(image)
        _os.replace(partial, cached)  # atomic: concurrent ranks compiling the same module never see half a file
    except OSError as exc:  # a cache that cannot be written (read-only, not a directory) must not fail the compile
        import warnings

        warnings.warn(f"hpc.cuda: the compiled kernel could not be cached in {cached.parent} ({exc}); each process "
                      "compiles it again (set HPC_CUDA_CACHE to a writable directory)", RuntimeWarning, stacklevel=2)
    return image


class Kernel:
    """One ``__global__`` function of a loaded :class:`Module`, prepared for an argument layout.

    Args are packed with :mod:`struct` codes: ``P`` a device pointer (an int, or a ``DeviceArray``), ``i`` int32,
    ``q`` int64, ``f`` float32, ``d`` float64.
    """

    def __init__(self, module: Module, name: str, arg_format: str) -> None:
        self.module = module
        self.name = name
        self.arg_format = arg_format
        self._fn = module._driver.function(module._module, name, arg_format)

    def __call__(
        self, grid: tuple[int, ...], block: tuple[int, ...], *args: _Any, stream: Stream | None = None, shared: int = 0
    ) -> None:
        """Queue one launch on ``stream`` (the default stream when ``None``); never blocks.

        Raises:
            ValueError: the argument count does not match the prepared layout.
        """
        if len(args) != len(self.arg_format):
            raise ValueError(f"{self.name} takes {len(self.arg_format)} arguments ({self.arg_format}); got {len(args)}")
        packed = tuple(int(a.ptr) if hasattr(a, "ptr") else a for a in args)
        grid = tuple(int(g) for g in grid) + (1,) * (2 - len(grid))  # pycuda wants (x, y) at least
        block = tuple(int(b) for b in block) + (1,) * (3 - len(block))  # and (x, y, z)
        with context.active(self.module.device_index):
            self.module._driver.launch(self._fn, grid, block, packed, handle_of(stream), shared)

    def __repr__(self) -> str:
        return f"<hpc.cuda.Kernel {self.module.name}.{self.name}({self.arg_format})>"


class Module:
    """A compiled ``kernels/cuda/<name>.cu`` loaded into one device's primary context; get it with :func:`load`."""

    def __init__(self, name: str, device_index: int) -> None:
        from hpc.cuda.device import Device

        self.name = name
        self.device_index = device_index
        self._driver = _backend.get()
        if self._driver.name != "cuda":
            raise RuntimeError("kernel modules need a GPU; on the host fallback hpc.cuda.twins compute on the CPU")
        major, minor = Device(device_index).compute_capability
        self.arch = f"sm_{major}{minor}"
        image = compile_source(kernel_dir() / f"{name}.cu", self.arch)
        with context.active(device_index):
            self._module = self._driver.module_load(image)
        self._kernels: dict[str, Kernel] = {}
        self._lock = _threading.Lock()

    def kernel(self, name: str, arg_format: str) -> Kernel:
        """Return the prepared :class:`Kernel` ``name`` (made once per module)."""
        with self._lock:
            if name not in self._kernels:
                with context.active(self.device_index):
                    self._kernels[name] = Kernel(self, name, arg_format)
            return self._kernels[name]

    def __repr__(self) -> str:
        return f"<hpc.cuda.Module {self.name} {self.arch} on device {self.device_index}>"


_modules: dict[tuple[str, int], Module] = {}
_modules_lock = _threading.Lock()


def load(name: str, device: _Any = None) -> Module:
    """Return module ``name`` (``kernels/cuda/<name>.cu``) loaded on ``device`` (default: the current one).

    .. note:: The first call per process compiles (about a second per file, once per machine thanks to the disk
       cache) and loads the cubin; later calls return the same :class:`Module`.

    .. versionadded:: 0.1.0
    """
    index = context.device_index(device)
    key = (name, index)
    with _modules_lock:
        if key not in _modules:
            _modules[key] = Module(name, index)
        return _modules[key]
