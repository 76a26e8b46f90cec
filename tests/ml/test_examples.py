"""The example jobs run under a real mpiexec and print the same model fingerprint on 1 and 3 ranks."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hpc import _launcher

ROOT = Path(__file__).resolve().parents[2]
MPIEXEC = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="mpiexec not found next to the interpreter or on PATH")


def _run(script: str, ranks: int, *args: str) -> str:
    env = _launcher.child_environment()  # a job of its own, not part of the one running these tests
    proc = subprocess.run(
        [MPIEXEC, "-n", str(ranks), sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True, text=True, timeout=240, env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@needs_mpiexec
@pytest.mark.timeout(300)
@pytest.mark.parametrize("script, args, marker", [
    ("ml_kmeans.py", ("--rows", "3000", "--features", "4", "--clusters", "5", "--init", "k-means||"),
     "centres fingerprint"),
    ("ml_logistic.py", ("--rows", "1500", "--features", "5", "--classes", "3"), "coefficients fingerprint"),
])  # fmt: skip
def test_example_job_same_model_on_any_rank_count(script, args, marker):
    """The job succeeds, shows its progress on rank 0 only, and its model fingerprint does not depend on ranks."""
    one = _run(script, 1, *args)
    three = _run(script, 3, *args)
    prints = [re.search(rf"{marker}: (\w+)", out).group(1) for out in (one, three)]
    assert prints[0] == prints[1]
    assert three.count("iteration 0,") == 1  # one progress report: rank 0's
