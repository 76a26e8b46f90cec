"""Tests for the host fallback (hpc.cuda.fallback): chosen honestly, and the same API works under HPC_DEVICE=cpu."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from hpc.cuda import fallback

_SCRIPT = """
import numpy as np
from hpc import cuda
assert cuda.is_available() is False
print(cuda.backend(), '|', cuda.unavailable_reason())
s = cuda.Stream(); e0 = s.record()
a = cuda.to_device(np.arange(5.0), stream=s)
print(cuda.twins.sum(a), cuda.twins.inclusive_scan(a).get().tolist(), a.get(stream=s).tolist())
print(e0.elapsed_ms(s.record()) >= 0)
"""


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=60
    )


def test_hpc_device_cpu_runs_the_whole_api() -> None:
    """With HPC_DEVICE=cpu the API runs on the host driver and says why no GPU is used."""
    done = _run(_SCRIPT, HPC_DEVICE="cpu")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "cpu | HPC_DEVICE=cpu"
    assert lines[1] == "10.0 [0.0, 1.0, 3.0, 6.0, 10.0] [0.0, 1.0, 2.0, 3.0, 4.0]"
    assert lines[2] == "True"


def test_hpc_device_cuda_without_gpu_is_loud() -> None:
    """With HPC_DEVICE=cuda and no usable GPU, the first allocation raises naming the reason, and so does bind_rank
    (which bound the host fallback quietly)."""
    code = (
        "from hpc import cuda\n"
        "for call in (lambda: cuda.empty(3), cuda.bind_rank):\n"
        "    try:\n        call()\n    except RuntimeError as exc:\n        print(exc)\n"
    )
    done = _run(code, HPC_DEVICE="cuda")
    if done.stdout == "":  # no error: a GPU is usable here
        pytest.skip("a GPU is usable here")
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("HPC_DEVICE=cuda but no CUDA GPU is usable: ") for line in lines)


def test_host_driver_copies_and_views() -> None:
    """The host driver's pointers are host addresses: memmove copies and host_view reads them back."""
    drv = fallback.HostDriver()
    handle, ptr = drv.mem_alloc(32)
    src = np.arange(4.0)
    drv.htod(ptr, src)
    dst = np.empty(4)
    drv.dtoh(dst, ptr)
    assert dst.tolist() == [0.0, 1.0, 2.0, 3.0]
    drv.memset(ptr, 0, 32)
    assert drv.host_view(ptr, 32).sum() == 0
    assert drv.name == "cpu" and drv.dlpack_device_type == 1 and repr(drv) == "<hpc.cuda host driver>"
    assert handle.nbytes == 32
