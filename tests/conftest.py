"""Shared pytest setup: markers, the GPU skip, quiet non-zero MPI ranks."""

from __future__ import annotations

import os

import pytest


def _launcher_rank() -> int:
    for name in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MPI_LOCALRANKID"):
        if name in os.environ:
            return int(os.environ[name])
    return 0


def pytest_configure(config: pytest.Config) -> None:
    # Under mpiexec every rank runs the same session; only rank 0 reports in full so the log stays readable.
    # Failures on other ranks still print and still make mpiexec exit non-zero.
    if _launcher_rank() > 0:
        config.option.verbose = -2


def _gpu_present() -> bool:
    try:
        from hpc import cuda

        return cuda.is_available()
    except Exception:
        return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if any("gpu" in item.keywords for item in items) and not _gpu_present():
        skip = pytest.mark.skip(reason="no CUDA GPU with a driver and pycuda on this machine")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
