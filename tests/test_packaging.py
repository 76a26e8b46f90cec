"""The source distribution builds a working wheel (it could not: setup.py copies a start-up file the sdist lacked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(300)
def test_the_sdist_carries_what_setup_py_needs_and_builds_a_wheel(tmp_path):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout (the sdist is made from the tracked files)")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    tree = tmp_path / "tree"
    for name in tracked:  # a copy of the tracked files: building writes egg-info and build/ beside them
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path / "dist")], cwd=tree,
                   capture_output=True, text=True, check=True)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"startup/hpc-joblib.pth", "kernels/cuda/kmeans.cu", "docs/mpi.md", "scripts/demo.py"} <= names
    assert not any("__pycache__" in name or name.endswith((".nbi", ".nbc", ".so")) for name in names)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(sdist) as archive:
        # the data filter where this Python has it (3.11.4, 3.10.12): sdists are untrusted input
        archive.extractall(unpacked, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    (source,) = unpacked.iterdir()
    built = subprocess.run([sys.executable, "setup.py", "-q", "build", "--build-lib", str(tmp_path / "lib")],
                           cwd=source, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]  # setup.py copied startup/hpc-joblib.pth, which was missing
    lib = tmp_path / "lib"
    for name in ("hpc-joblib.pth", "hpc/kernels/cuda/kmeans.cu", "hpc/py.typed", "hpc/_numba_cache.py"):
        assert (lib / name).is_file(), name
    assert not (lib / "kernels").exists() and not (lib / "tests").exists()
