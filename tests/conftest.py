"""Shared pytest setup: markers, the GPU skip, quiet non-zero MPI ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from hpc import _launcher


def _launcher_rank() -> int:
    found = _launcher.detect()
    return found["rank"] or 0 if found else 0


def pytest_configure(config: pytest.Config) -> None:
    # Under mpiexec every rank runs the same session; only rank 0 reports in full so the log stays readable.
    # Failures on other ranks still print and still make mpiexec exit non-zero.
    if _launcher_rank() > 0:
        config.option.verbose = -2


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    # Under mpiexec a test that fails on one rank leaves the other ranks waiting in a collective: print the failure
    # and abort the whole job at once, so the run fails in seconds instead of hanging until the timeout.
    outcome = yield
    try:
        report = outcome.get_result()
    except SystemError as exc:
        # CPython 3.11 counts the recursion of ast.parse in interpreter-wide state: pytest parsing a failing test's
        # source while a worker thread parses a traceback's line (3.11 places its ^^^ markers with ast) can trip
        # "AST constructor recursion depth mismatch" (python/cpython#106905), which ended the whole session as an
        # INTERNALERROR. The state is reset on each parse, so making the report again (every plugin's part of it,
        # xfail included) succeeds.
        if "AST constructor recursion depth mismatch" not in str(exc):
            raise
        report = item.ihook.pytest_runtest_makereport(item=item, call=call)
        outcome.force_result(report)
    if report.failed and "mpi" in item.keywords and _launcher_rank() >= 0 and _world_size() > 1:
        import sys

        from hpc import mpi

        rank = mpi.world().rank
        sys.stderr.write(f"\nrank {rank}: {item.nodeid} failed; aborting every rank\n{report.longreprtext}\n")
        sys.stderr.flush()
        mpi.world().mpi.Abort(1)


def _world_size() -> int:
    found = _launcher.detect()
    return found["size"] or 1 if found else 1


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


@pytest.fixture
def run_script(tmp_path) -> Callable[..., str]:
    """``run_script(source, timeout=100, **env)``: run ``source`` as a script in a fresh interpreter with these
    environment variables added, assert that it exited with 0 (showing its output if not), and return its stdout
    (its stderr is then ``run_script.last_stderr``).
    For what needs a process of its own: a threading layer, a fork, a start-up setting."""

    def run(source: str, timeout: float = 100, **env: str) -> str:
        script = tmp_path / "script.py"
        script.write_text(source)
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **env}
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        run.last_stderr = proc.stderr  # type: ignore[attr-defined]
        return proc.stdout

    return run
