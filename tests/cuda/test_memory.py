"""Tests for hpc.cuda.memory: pool accounting, pinned arrays, the report and the leak check at exit."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from hpc import cuda
from hpc.cuda import memory


def test_accounting_current_peak_counts(no_leaks: None) -> None:
    """Allocations raise current and peak, frees bring current back, and counts track both."""
    pool = cuda.device_pool()
    pool.reset_peak()
    base = pool.stats()
    a = pool.allocate(1000)
    b = pool.allocate(24)
    s = pool.stats()
    assert s.current - base.current == 1024
    assert s.allocations - base.allocations == 2 and s.live - base.live == 2
    assert s.peak >= base.current + 1024
    a.free()
    a.free()  # a second free does nothing
    b.free()
    s = pool.stats()
    assert s.current == base.current and s.live == base.live
    assert s.peak >= base.current + 1024
    pool.reset_peak()
    assert pool.stats().peak == base.current


def test_buffer_freed_by_gc(no_leaks: None) -> None:
    """A buffer nobody references goes back to its pool when collected."""
    pool = cuda.device_pool()
    before = pool.stats().current
    buf = pool.allocate(4096)
    assert pool.stats().current == before + 4096
    del buf
    gc.collect()
    assert pool.stats().current == before


def test_device_array_counts_in_device_pool(no_leaks: None) -> None:
    """A DeviceArray's bytes are counted in its device pool until it is freed."""
    before = cuda.memory_stats()["device:0"]["current"]
    a = cuda.empty((10, 10), np.float32)
    assert cuda.memory_stats()["device:0"]["current"] == before + 400
    a.free()
    assert cuda.memory_stats()["device:0"]["current"] == before
    with pytest.raises(RuntimeError, match="after free"):
        a.get()


def test_pinned_empty_counts_and_returns_on_gc(no_leaks: None) -> None:
    """pinned_empty gives a writable array counted in the pinned pool until the last view is collected."""
    before = cuda.memory_stats()["pinned"]["current"]
    p = cuda.pinned_empty((4, 8), np.float64)
    assert isinstance(p, cuda.PinnedArray) and p.shape == (4, 8) and p.dtype == np.float64
    p[...] = 3.0
    view = p[1:3]
    assert memory.is_pinned(view)
    del p
    gc.collect()
    assert cuda.memory_stats()["pinned"]["current"] == before + 256  # the view keeps the block
    assert float(view.sum()) == 48.0
    del view
    gc.collect()
    assert cuda.memory_stats()["pinned"]["current"] == before


def test_bad_sizes_are_rejected() -> None:
    """Negative sizes and bad pool names raise ValueError naming what is accepted."""
    with pytest.raises(ValueError, match="non-negative int; got -1"):
        cuda.device_pool().allocate(-1)
    with pytest.raises(ValueError, match="'pinned' or 'device:<index>'"):
        cuda.Pool("gpu")


def test_memory_stats_and_report_text() -> None:
    """memory_stats lists every pool with its five counters; memory_report prints one line per pool."""
    stats = cuda.memory_stats()
    assert {"device:0", "pinned"} <= set(stats)
    assert set(stats["pinned"]) == {"current", "peak", "allocations", "live", "held"}
    report = cuda.memory_report()
    lines = report.splitlines()
    assert lines[0].startswith("hpc.cuda memory (")
    assert "current" in lines[1] and "peak" in lines[1]
    assert any(line.startswith("device:0") for line in lines)
    assert any(line.startswith("pinned") for line in lines)


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=60)


def test_leak_report_at_exit_names_the_site() -> None:
    """With HPC_CUDA_LEAKCHECK=1 a buffer live at exit is reported on stderr with where it was allocated."""
    code = "from hpc import cuda\nkeep = cuda.empty(1000, 'f8')\n"
    done = _run(code, HPC_CUDA_LEAKCHECK="1")
    assert done.returncode == 0, done.stderr
    assert "hpc.cuda leak check: 1 allocation(s) still live at exit" in done.stderr
    assert "device:0: 7.8 KiB allocated at <string>:2" in done.stderr


def test_leak_report_clean_and_off() -> None:
    """With everything freed the check says so; without HPC_CUDA_LEAKCHECK it prints nothing."""
    code = "from hpc import cuda\na = cuda.empty(10)\na.free()\n"
    done = _run(code, HPC_CUDA_LEAKCHECK="1")
    assert "no live allocations at exit" in done.stderr
    done = _run("from hpc import cuda\nkeep = cuda.empty(10)\n", HPC_CUDA_LEAKCHECK="0")
    assert "leak check" not in done.stderr


@pytest.mark.gpu
def test_gpu_pool_reuses_and_holds() -> None:
    """On a GPU a freed block is held by the pool and free_held releases it."""
    pool = cuda.device_pool()
    pool.allocate(1 << 20).free()
    assert pool.stats().held >= 1 << 20
    pool.free_held()
    assert pool.stats().held == 0


def test_new_arrays_from_a_pinned_array_are_not_pinned(no_leaks: None) -> None:
    """copy(), arithmetic and astype of a PinnedArray are pageable: not pinned, and they do not keep the block."""
    p = cuda.pinned_empty(100)
    p[...] = 1.0
    made = [p.copy(), p + 1, p.astype(np.float32), np.empty_like(p)]
    assert not any(memory.is_pinned(m) for m in made)
    assert memory.is_pinned(p[::2]) and memory.is_pinned(p.reshape(10, 10))
    del p
    gc.collect()  # only `made` is left: the pinned block must be back (no_leaks checks it)


def test_leak_report_leaves_out_the_staging_buffers() -> None:
    """A staged (>= 4 MiB) transfer whose arrays are freed leaves no leak report, though the staging stays cached."""
    code = "import numpy as np\nfrom hpc import cuda\na = cuda.to_device(np.zeros(1 << 20))\na.get()\na.free()\n"
    done = _run(code, HPC_CUDA_LEAKCHECK="1")
    assert done.returncode == 0, done.stderr
    assert "no live allocations at exit" in done.stderr, done.stderr


def test_pools_of_missing_devices_are_refused() -> None:
    """A device index that does not exist raises ValueError for pools, arrays, streams and events alike."""
    bad = cuda.device_count() or 1
    for make in (
        lambda: cuda.device_pool(bad),
        lambda: cuda.empty(3, device=bad),
        lambda: cuda.to_device(np.ones(3), device=bad),
        lambda: cuda.Stream(bad),
        lambda: cuda.Event(bad),
    ):
        with pytest.raises(ValueError, match=f"got {bad}"):
            make()
    assert f"device:{bad}" not in cuda.memory_stats()


def test_a_pinned_block_lives_while_any_view_of_it_does():
    """np.asarray(pinned) and pinned.view(np.ndarray) are plain views: they keep the block, so it is not handed out
    again while they point into it (NumPy's base collapsing skipped the PinnedArray that held the block)."""
    before = memory.pinned_pool().stats().live
    p = cuda.pinned_empty(1000)
    p[:] = 7.0
    plain, part = np.asarray(p), p.view(np.ndarray)[10:20]
    del p
    gc.collect()
    assert memory.pinned_pool().stats().live == before + 1 and plain[0] == part[0] == 7.0
    del plain
    gc.collect()
    assert memory.pinned_pool().stats().live == before + 1
    del part
    gc.collect()
    assert memory.pinned_pool().stats().live == before


def test_the_leak_check_names_the_callers_line_for_a_dispatched_kernel(tmp_path):
    """An allocation made by a kernel dispatched to its twin is reported at the caller's line, not in hpc's dispatch."""
    script = tmp_path / "leaky.py"
    script.write_text(
        "import numpy as np\nfrom hpc import cuda, kernels\nx = cuda.to_device(np.ones((4, 4)))\n"
        "out = kernels.softmax(x)\n"
    )
    env = {**os.environ, "HPC_CUDA_LEAKCHECK": "1"}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=120)
    assert f"{script}:4 in <module>" in done.stderr and "_dispatch" not in done.stderr, done.stderr


def test_pinned_empty_refuses_objects_and_float_sizes() -> None:
    """Uninitialised pinned bytes read as object pointers crashed the first print; a float size is no size."""
    with pytest.raises(TypeError, match="numbers, not objects"):
        cuda.pinned_empty(3, object)
    with pytest.raises(TypeError, match="shape must be"):
        cuda.pinned_empty((2, 2.5))
    with pytest.raises(ValueError, match="negative"):
        cuda.pinned_empty(-1)


def test_plain_numpy_views_of_pinned_memory_are_pinned() -> None:
    """numpy.asarray(pinned) drops the PinnedArray class but not the memory: an asynchronous get into it is allowed."""
    p = cuda.pinned_empty(6)
    assert memory.is_pinned(np.asarray(p)) and memory.is_pinned(np.asarray(p)[2:])
    assert not memory.is_pinned(p.copy()) and not memory.is_pinned(np.empty(6))
    d = cuda.to_device(np.arange(6.0))
    s = cuda.Stream()
    out = np.asarray(p)
    d.get(out=out, stream=s)
    s.synchronize()
    np.testing.assert_array_equal(out, np.arange(6.0))


def test_is_pinned_is_public():
    assert cuda.is_pinned is memory.is_pinned and "is_pinned" in cuda.__all__
