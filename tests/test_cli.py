"""Tests for the ``hpc`` command line, run as real subprocesses (and under mpiexec)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from hpc import _launcher, cli

BIN = Path(sys.executable).parent
HPC = BIN / "hpc"
MPIEXEC = BIN / "mpiexec"
# Launcher and HPC_* variables are dropped: a run inside mpiexec or a tuned environment still tests defaults.
# Open MPI's consent to run as root (OMPI_ALLOW_RUN_AS_ROOT*) stays.


def _run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in _launcher.child_environment().items() if not k.startswith("HPC_")}
    clean.update(env)
    return subprocess.run(args, cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120)


def _line(text: str, section: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(section + " "))


def _rank_rows(text: str) -> list[list[str]]:
    lines = text.splitlines()
    table = lines[lines.index("  ranks") + 2 :]
    return [line.split() for line in table if line.strip()]


def _hpc_script() -> str:
    if not HPC.exists():
        pytest.skip(f"no hpc console script next to {sys.executable}")
    return str(HPC)


def test_python_m_hpc_info(tmp_path: Path) -> None:
    """``python -m hpc info`` exits 0 and prints one report with this machine's sections."""
    proc = _run([sys.executable, "-m", "hpc", "info"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("machine report") == 1
    for section in ("cpu", "simd", "caches", "numba", "mpi", "gpus"):
        assert _line(proc.stdout, section)


def test_console_script_info_json(tmp_path: Path) -> None:
    """``hpc info --json`` prints one JSON report with rank 0 of 1."""
    proc = _run([_hpc_script(), "info", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["process"]["rank"] == 0 and report["process"]["size"] == 1
    assert report["cpu"]["logical_cores"] == os.cpu_count()


def test_bad_variable_is_a_clean_error(tmp_path: Path) -> None:
    """A bad HPC_* value exits 2 with one ``hpc: error:`` line naming the variable and value."""
    proc = _run([sys.executable, "-m", "hpc", "info"], tmp_path, HPC_NUM_THREADS="zero")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("hpc: error: HPC_NUM_THREADS")
    assert "'zero'" in proc.stderr


def test_device_cpu_says_why_there_is_no_gpu(tmp_path: Path) -> None:
    """With HPC_DEVICE=cpu the GPU line gives HPC_DEVICE=cpu as the reason."""
    proc = _run([sys.executable, "-m", "hpc", "info"], tmp_path, HPC_DEVICE="cpu")
    assert proc.returncode == 0, proc.stderr
    assert "HPC_DEVICE=cpu" in _line(proc.stdout, "gpus")


def test_missing_pycuda_is_reported_not_raised(tmp_path: Path) -> None:
    """Without pycuda, ``hpc info`` still exits 0 and the GPU line says pycuda is not installed."""
    code = "import sys; sys.modules['pycuda'] = None; import hpc.cli; sys.exit(hpc.cli.main(['info']))"
    proc = _run([sys.executable, "-c", code], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "pycuda is not installed" in _line(proc.stdout, "gpus")


def _mpiexec() -> str:
    if not MPIEXEC.exists():
        pytest.skip(f"no mpiexec next to {sys.executable} (install the mpich wheel: pip install mpich)")
    return str(MPIEXEC)


@pytest.mark.parametrize("launch", ["script", "module"])
def test_info_under_mpiexec_prints_one_gathered_report(launch: str, tmp_path: Path) -> None:
    """Under ``mpiexec -n 2`` only rank 0 prints: one header and a row for each of ranks 0 and 1."""
    command = [_hpc_script()] if launch == "script" else [sys.executable, "-m", "hpc"]
    proc = _run([_mpiexec(), "-n", "2", *command, "info"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("machine report") == 1
    rows = _rank_rows(proc.stdout)
    assert [row[0] for row in rows] == ["0", "1"]
    assert len({row[2] for row in rows}) == 2  # two distinct pids
    assert "launched by" in _line(proc.stdout, "mpi")


@pytest.mark.parametrize("ranks", [1, 2])
def test_info_json_under_mpiexec_is_a_list_per_rank(tmp_path: Path, ranks: int) -> None:
    """Under ``mpiexec -n N``, ``--json`` prints a list holding the reports of ranks 0 to N-1: one rank too (it
    printed a bare dict there, another shape for the same job)."""
    proc = _run([_mpiexec(), "-n", str(ranks), _hpc_script(), "info", "--json"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["process"]["rank"] for r in reports] == list(range(ranks))
    assert {r["process"]["size"] for r in reports} == {ranks}


def test_bad_variable_under_mpiexec_fails_once_without_hanging(tmp_path: Path) -> None:
    """Under ``mpiexec -n 2`` a bad HPC_* value exits 2, printed once by rank 0, with no deadlock."""
    proc = _run([_mpiexec(), "-n", "2", _hpc_script(), "info"], tmp_path, HPC_BACKEND="gpu")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stderr.count("hpc: error: HPC_BACKEND") == 1


def test_config_error_in_process(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """main() returns 2 and writes ``hpc: error: ...`` to stderr for a bad HPC_DEVICE."""
    monkeypatch.setenv("HPC_DEVICE", "tpu")
    assert cli.main(["info"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "hpc: error: HPC_DEVICE must be one of auto, cpu, cuda; got 'tpu'\n"


def test_bench_forwards_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """``hpc bench ARGS`` calls hpc.bench.main with ARGS, options included, and returns its status."""
    seen: list[list[str]] = []
    stub = types.ModuleType("hpc.bench")
    stub.main = lambda argv: seen.append(argv) or 7  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hpc.bench", stub)
    assert cli.main(["bench", "roofline", "--quick", "--json", "out.json"]) == 7
    assert seen == [["roofline", "--quick", "--json", "out.json"]]


def test_bench_with_a_bad_setting_says_so_without_a_traceback(tmp_path):
    """`hpc bench` with a bad HPC_* value exits 2 naming the variable and the value, before benchmarking."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HPC_")}
    env["HPC_NUM_THREADS"] = "zero"
    proc = subprocess.run(
        [sys.executable, "-m", "hpc", "bench", "iter", "--tiny"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "HPC_NUM_THREADS" in proc.stderr and "zero" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bench_help_works_with_a_bad_setting(tmp_path):
    """`hpc bench --help` prints the usage and exits 0 even with a bad HPC_* value, as `hpc info --help` does."""
    proc = _run([sys.executable, "-m", "hpc", "bench", "--help"], tmp_path, HPC_NUM_THREADS="zero")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: hpc bench")


def test_info_into_a_closed_pipe_exits_quietly():
    """`hpc info | head -1`: the reader goes away before the report is written; no BrokenPipeError traceback."""
    for args in (["info"], ["info", "--json"]):
        child = subprocess.Popen([sys.executable, "-m", "hpc", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        child.stdout.close()  # before the report is ready: its write meets a closed pipe
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()
