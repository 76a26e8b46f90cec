"""The "hpc" joblib backend name in processes that never import hpc: the start-up file hpc-joblib.pth.

These run fresh interpreters of this environment; they skip where the start-up file is not installed (a source
tree used without ``make install``, or an editable install that did not copy it).
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

STARTUP_FILE = Path(sysconfig.get_paths()["purelib"]) / "hpc-joblib.pth"
needs_startup_file = pytest.mark.skipif(not STARTUP_FILE.exists(), reason=f"{STARTUP_FILE} is not installed")


def _run(code: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("\n")


@needs_startup_file
def test_backend_known_without_importing_hpc():
    """A process that imports only joblib can use "hpc" (parallel_config and Parallel(backend=)); hpc is imported
    on first use, not at start-up."""
    out = _run(
        """
        import sys, joblib
        print("hpc" in sys.modules)
        with joblib.parallel_config(backend="hpc"):
            print(joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-i) for i in range(3)))
        print(joblib.Parallel(n_jobs=2, backend="hpc")(joblib.delayed(abs)(-i) for i in range(3)))
        print("hpc" in sys.modules)
        """
    )
    assert out[:4] == ["False", "[0, 1, 2]", "[0, 1, 2]", "True"]


@needs_startup_file
def test_hpc_inside_loky_workers():
    """A loky outer call whose tasks run an inner "hpc" call works: the workers never imported hpc."""
    out = _run(
        """
        import joblib

        def inner(i):
            with joblib.parallel_config(backend="hpc"):
                return sum(joblib.Parallel(n_jobs=2)(joblib.delayed(abs)(-j) for j in range(i)))

        if __name__ == "__main__":
            print(joblib.Parallel(n_jobs=2, backend="loky")(joblib.delayed(inner)(i) for i in range(5)))
        """
    )
    assert out[0] == "[0, 0, 1, 3, 6]"


@needs_startup_file
def test_startup_adds_nothing_but_a_waiting_finder():
    """At start-up neither hpc nor joblib is imported; one finder waits for joblib."""
    out = _run(
        """
        import sys
        print("hpc" in sys.modules, "joblib" in sys.modules, "numpy" in sys.modules)
        print(sum(getattr(f, "hpc_joblib_hook", False) for f in sys.meta_path))
        import hpc  # its own registration finds the waiting finder: still one
        print(sum(getattr(f, "hpc_joblib_hook", False) for f in sys.meta_path))
        """
    )
    assert out[:3] == ["False False False", "1", "1"]
