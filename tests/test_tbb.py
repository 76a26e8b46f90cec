"""hpc._tbb: a pip-installed TBB reaches numba's TBB threading layer, which gives the same bits as OpenMP.

The subprocess tests need the ``tbb`` wheel (the dev extra installs it) and skip without it. The rest of the suite
runs under the OpenMP layer (the Makefile sets NUMBA_THREADING_LAYER=omp): these set the layer per subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hpc import _tbb

BITS_TESTS = Path(__file__).resolve().parent / "kernels" / "test_parallel_bits.py"

needs_wheel = pytest.mark.skipif(
    not sys.platform.startswith("linux") or _tbb.library_path() is None,
    reason="the tbb wheel is not installed (pip install 'hpc-substrate[tbb]')",
)


def _fake_prefix(monkeypatch, tmp_path, *, data, user, user_site=True):
    monkeypatch.setattr(_tbb._sysconfig, "get_path", lambda name: str(data) if name == "data" else None)
    monkeypatch.setattr(_tbb._sys, "prefix", str(data))
    monkeypatch.setattr(_tbb._site, "getuserbase", lambda: str(user))
    monkeypatch.setattr(_tbb._site, "ENABLE_USER_SITE", user_site)


def test_library_path_looks_in_the_prefix_then_the_user_base(monkeypatch, tmp_path):
    """The wheel's library is found in <prefix>/lib, else in the user base's lib where the user site is read;
    None where neither holds it."""
    prefix, user = tmp_path / "venv", tmp_path / "user"
    _fake_prefix(monkeypatch, tmp_path, data=prefix, user=user)
    assert _tbb.library_path() is None
    (user / "lib").mkdir(parents=True)
    (user / "lib" / _tbb.LIBRARY).write_bytes(b"")
    assert _tbb.library_path() == str(user / "lib" / _tbb.LIBRARY)
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / _tbb.LIBRARY).write_bytes(b"")
    assert _tbb.library_path() == str(prefix / "lib" / _tbb.LIBRARY)


def test_library_path_skips_the_user_base_where_the_user_site_is_off(monkeypatch, tmp_path):
    """In a virtual environment, or under python -s or -I, a library under ~/.local is not this environment's;
    nor is a relative PYTHONUSERBASE, which would name a directory under the current one."""
    user = tmp_path / "user"
    (user / "lib").mkdir(parents=True)
    (user / "lib" / _tbb.LIBRARY).write_bytes(b"")
    _fake_prefix(monkeypatch, tmp_path, data=tmp_path / "venv", user=user, user_site=False)
    assert _tbb.library_path() is None
    monkeypatch.chdir(tmp_path)
    _fake_prefix(monkeypatch, tmp_path, data=tmp_path / "venv", user="user", user_site=True)
    assert _tbb.library_path() is None


def test_load_does_nothing_where_it_should_not(monkeypatch, tmp_path):
    """No load where NUMBA_THREADING_LAYER names another layer or off Linux; a file that is not a library is left
    to numba (None, no exception)."""
    prefix = tmp_path / "venv"
    (prefix / "lib").mkdir(parents=True)
    (prefix / "lib" / _tbb.LIBRARY).write_text("not a shared library")
    _fake_prefix(monkeypatch, tmp_path, data=prefix, user=tmp_path / "none")
    monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
    assert _tbb.load_pip_tbb() is None  # found, fails to load: left to numba
    monkeypatch.setattr(_tbb, "library_path", lambda: pytest.fail("looked for the library"))
    for layer in ("omp", "workqueue", "OMP"):  # numba lower-cases the value
        monkeypatch.setenv("NUMBA_THREADING_LAYER", layer)
        assert _tbb.load_pip_tbb() is None
    monkeypatch.setenv("NUMBA_THREADING_LAYER", "tbb")
    monkeypatch.setattr(_tbb._sys, "platform", "darwin")
    assert _tbb.load_pip_tbb() is None


def _run(code: str, layer: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    if layer is not None:
        env["NUMBA_THREADING_LAYER"] = layer
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@needs_wheel
def test_import_hpc_gives_numba_the_tbb_layer_by_default():
    """With the wheel installed and no NUMBA_THREADING_LAYER, a parallel kernel runs on numba's TBB layer (numba
    alone would not find the library in a virtual environment), and hpc info reports it."""
    out = _run(
        """
        import numba, numpy as np
        import hpc
        from hpc import info, kernels
        assert kernels.sum(np.ones(1 << 20), parallel=True) == 1 << 20
        print(numba.threading_layer(), info.collect()["numba"]["threading_layer"])
        """,
        None,
    )
    assert out.split() == ["tbb", "tbb"]


@needs_wheel
def test_every_parallel_kernel_gives_the_same_bits_under_tbb_as_under_openmp():
    """The chunks depend only on the length and are combined in order: the threading layer changes no bit."""
    code = f"""
        import hashlib, importlib.util, json, numba
        import hpc
        spec = importlib.util.spec_from_file_location("bits", {str(BITS_TESTS)!r})
        bits = importlib.util.module_from_spec(spec); spec.loader.exec_module(bits)
        out = {{label: hashlib.sha256(b"".join(bits._bits(call(True)))).hexdigest()
               for label, call in bits._calls().items()}}
        print(json.dumps({{"layer": numba.threading_layer(), "threads": numba.get_num_threads(), "bits": out}}))
        """
    tbb, omp = json.loads(_run(code, "tbb")), json.loads(_run(code, "omp"))
    assert (tbb["layer"], omp["layer"]) == ("tbb", "omp")
    assert tbb["threads"] == omp["threads"]
    assert len(tbb["bits"]) >= 20 and tbb["bits"] == omp["bits"]


@needs_wheel
def test_a_child_forked_after_a_parallel_kernel_runs_one_under_tbb():
    """GNU OpenMP ends such a child ("fork() called from a process already using GNU OpenMP"); TBB does not."""
    out = _run(
        """
        import os, numba, numpy as np
        import hpc
        from hpc import kernels
        x = np.ones(1 << 20)
        assert kernels.sum(x, parallel=True) == x.size
        pid = os.fork()
        if pid == 0:
            os._exit(0 if kernels.sum(x, parallel=True) == x.size else 3)
        _, status = os.waitpid(pid, 0)
        print(numba.threading_layer(), os.waitstatus_to_exitcode(status))
        """,
        None,
    )
    assert out.split() == ["tbb", "0"]
