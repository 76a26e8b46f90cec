"""Tests for hpc.cuda.module: every kernels/cuda/*.cu compiles with nvcc, the disk cache, and clear errors."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from hpc import cuda
from hpc.cuda import module

SOURCES = sorted(module.kernel_dir().glob("*.cu"))
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")

# every extern "C" kernel twins.py launches, by source file
EXPECTED = {
    "blas1": ["axpy_f32", "axpy_f64", "dot_partial_f32", "dot_partial_f64", "nrm2_partial_f64", "finish_sum"],
    "reductions": ["sum_partial_f32", "sum_partial_f64", "extreme_f32", "extreme_f64"],
    "rows": ["softmax_f32", "softmax_f64"],
    "scan": ["scan_tiles_f32", "scan_tiles_f64", "tile_sums_f32", "tile_sums_f64"],
    "distances": ["sqdist_f32", "sqdist_f64", "kmeans_assign_f32", "kmeans_assign_f64"],
    "kmeans": ["kmeans_label_f32", "kmeans_label_f64", "kmeans_segment_sums_f32", "kmeans_segment_sums_f64",
               "kmeans_merge_segments"],
    "logistic": ["binary_rows_f32", "binary_rows_f64", "softmax_rows_f32", "softmax_rows_f64",
                 "weighted_column_sums_f32", "weighted_column_sums_f64", "logistic_merge_segments"],
    "columns": ["column_moments_f32", "column_moments_f64", "subtract_row_f32", "subtract_row_f64"],
}


def test_sources_are_found() -> None:
    """kernel_dir() finds the CUDA sources, one per kernel family."""
    assert {p.stem for p in SOURCES} == set(EXPECTED)


@needs_nvcc
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_source_compiles_to_cubin_with_its_kernels(source: Path, tmp_path: Path) -> None:
    """Each .cu compiles for sm_90 without warnings and its cubin holds every kernel twins.py launches."""
    out = tmp_path / "k.cubin"
    cmd = ["nvcc", "--cubin", "-arch=sm_90", "-O3", "-Werror", "all-warnings", "-o", str(out), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    image = out.read_bytes()
    for name in EXPECTED[source.stem]:
        assert name.encode() + b"\0" in image, f"{name} missing from {source.name}"


@needs_nvcc
def test_compile_source_caches_on_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """compile_source writes the cubin under HPC_CUDA_CACHE and a second call reads it without running nvcc."""
    monkeypatch.setenv("HPC_CUDA_CACHE", str(tmp_path))
    src = module.kernel_dir() / "rows.cu"
    first = module.compile_source(src, "sm_80")
    cached = list(tmp_path.glob("rows-sm_80-*.cubin"))
    assert len(cached) == 1 and cached[0].read_bytes() == first
    monkeypatch.setattr(module._subprocess, "run", lambda *a, **k: pytest.fail("nvcc ran again"))
    assert module.compile_source(src, "sm_80") == first
    monkeypatch.undo()  # nvcc may run again: a PTX target is a new cache entry
    monkeypatch.setenv("HPC_CUDA_CACHE", str(tmp_path / "ptx"))
    assert b".entry softmax_f32" in module.compile_source(src, "sm_90", target="ptx")


@needs_nvcc
def test_editing_a_shared_header_recompiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .cu file that includes common.cuh gets a new cache entry, and new code, when the header changes."""
    monkeypatch.setenv("HPC_CUDA_CACHE", str(tmp_path / "cache"))
    src_dir = tmp_path / "src"
    src_dir.mkdir()
    for name in ("reductions.cu", "common.cuh"):
        shutil.copy(module.kernel_dir() / name, src_dir / name)
    before = module.compile_source(src_dir / "reductions.cu", "sm_90", target="ptx")
    header = src_dir / "common.cuh"
    header.write_text(header.read_text().replace("#define BLOCK 256", "#define BLOCK 512"))
    after = module.compile_source(src_dir / "reductions.cu", "sm_90", target="ptx")
    assert before != after
    assert len(list((tmp_path / "cache").glob("reductions-sm_90-*.ptx"))) == 2


@needs_nvcc
def test_compile_error_carries_nvcc_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A source nvcc rejects raises CompileError with the command line and nvcc's message."""
    monkeypatch.setenv("HPC_CUDA_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "bad.cu"
    bad.write_text("__global__ void k() { undeclared = 1; }\n")
    with pytest.raises(module.CompileError, match=r"nvcc failed .*bad\.cu[\s\S]*undeclared"):
        module.compile_source(bad, "sm_90")
    with pytest.raises(ValueError, match="target must be 'cubin' or 'ptx'; got 'fatbin'"):
        module.compile_source(bad, "sm_90", target="fatbin")


def test_modules_need_a_gpu() -> None:
    """On the host fallback loading a module says that kernels need a GPU."""
    if cuda.is_available():
        pytest.skip("checks the host fallback; this machine has a GPU")
    with pytest.raises(RuntimeError, match="kernel modules need a GPU"):
        module.load("blas1")


@pytest.mark.gpu
def test_gpu_load_and_launch_prepared() -> None:
    """On a GPU a module loads for the device's arch, is cached per process, and a prepared launch runs."""
    import numpy as np

    mod = module.load("blas1")
    assert mod is module.load("blas1") and mod.arch.startswith("sm_")
    k = mod.kernel("axpy_f64", "dPPPq")
    x, y = cuda.to_device(np.arange(5.0)), cuda.to_device(np.ones(5))
    out = cuda.empty(5)
    k((1,), (256,), 2.0, x, y, out, 5)
    assert out.get().tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
    with pytest.raises(ValueError, match="takes 5 arguments"):
        k((1,), (256,), 2.0, x)


@needs_nvcc
def test_a_cache_that_cannot_be_written_does_not_fail_the_compile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """HPC_CUDA_CACHE under a file (or read-only) raised NotADirectoryError after nvcc had succeeded."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("HPC_CUDA_CACHE", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="could not be cached"):
        image = module.compile_source(module.kernel_dir() / "rows.cu", "sm_90", target="ptx")
    assert b".entry softmax_f32" in image
