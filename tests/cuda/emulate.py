"""Run a ``kernels/cuda/*.cu`` file on the CPU: each launch runs its threads one after another.

Valid for kernels in which no thread reads what another thread of the same launch writes (no ``__syncthreads``, no
shuffles, no shared memory): then a serial run computes exactly what the GPU computes, in the same order per
thread, so the CUDA source's logic is tested on machines without a GPU. The file is compiled with g++ behind a
small header that defines ``threadIdx``, ``blockIdx``, ``blockDim``, ``gridDim`` and the CUDA qualifiers.

Usage (``tmp_path`` a scratch folder)::

    lib = emulate.build("kmeans.cu", {"kmeans_label_f64": "PPPPiii"}, tmp_path)
    lib.launch("kmeans_label_f64", grid=2, block=64, args=(x, c, labels, dist, m, k, d))
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from hpc.cuda import module

_HEADER = r"""
#include <cmath>
struct EmuDim { unsigned x, y, z; };
static EmuDim threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __forceinline__ inline
#define __restrict__ __restrict
template <class T> static T __ldg(const T* p) { return *p; }
struct EmuArg {  // one launch argument, converted to whatever the kernel's parameter is
    void* p; long long i; double d;
    template <class T> operator T*() const { return (T*)p; }
    operator int() const { return (int)i; }
    operator long long() const { return i; }
    operator double() const { return d; }
    operator float() const { return (float)d; }
};
template <class F, class... A> static void emu_launch(unsigned grid, unsigned block, F f, A... a) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    for (unsigned b = 0; b < grid; ++b)
        for (unsigned t = 0; t < block; ++t) {
            blockIdx = {b, 0, 0};
            threadIdx = {t, 0, 0};
            f(a...);
        }
}
"""


class _Arg(ctypes.Structure):
    _fields_ = [("p", ctypes.c_void_p), ("i", ctypes.c_longlong), ("d", ctypes.c_double)]


def available() -> bool:
    """Return whether a C++ compiler is here to build emulations."""
    return shutil.which("g++") is not None


class Emulation:
    """A compiled emulation of one ``.cu`` file; :meth:`launch` runs one of its kernels on NumPy arrays."""

    def __init__(self, lib: ctypes.CDLL, formats: dict[str, str]) -> None:
        self._lib = lib
        self._formats = formats

    def launch(self, name: str, *, grid: int, block: int, args: tuple[Any, ...]) -> None:
        fmt = self._formats[name]
        if len(args) != len(fmt):
            raise ValueError(f"{name} takes {len(fmt)} arguments ({fmt}); got {len(args)}")
        packed = (_Arg * len(fmt))()
        for slot, code, value in zip(packed, fmt, args):
            if code == "P":
                if not (isinstance(value, np.ndarray) and value.flags.c_contiguous):
                    raise TypeError(f"{name}: pointer arguments must be C-contiguous NumPy arrays")
                slot.p = value.ctypes.data
            elif code in "iq":
                slot.i = int(value)
            else:
                slot.d = float(value)
        getattr(self._lib, f"emu_{name}")(ctypes.c_uint(grid), ctypes.c_uint(block), packed)


def build(source: str, formats: dict[str, str], workdir: Path) -> Emulation:
    """Compile ``kernels/cuda/<source>`` with a launcher ``emu_<name>`` per kernel of ``formats`` (name: arg codes)."""
    path = module.kernel_dir() / source
    wrappers = []
    for name, fmt in formats.items():
        call = ", ".join(f"a[{i}]" for i in range(len(fmt)))
        wrappers.append(
            f'extern "C" void emu_{name}(unsigned g, unsigned b, EmuArg* a) {{ emu_launch(g, b, {name}, {call}); }}'
        )
    text = f'{_HEADER}\n#include "{path}"\n' + "\n".join(wrappers) + "\n"
    key = hashlib.sha256(text.encode() + path.read_bytes()).hexdigest()[:16]
    cpp = workdir / f"emu_{key}.cpp"
    lib = workdir / f"emu_{key}.so"
    cpp.write_text(text)
    done = subprocess.run(["g++", "-std=c++17", "-O1", "-shared", "-fPIC", "-o", str(lib), str(cpp)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"g++ could not build the emulation of {source}:\n{done.stderr}")
    return Emulation(ctypes.CDLL(str(lib)), formats)
