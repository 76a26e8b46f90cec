"""Type checkers read the public API as the docs use it: mypy reveals the documented types, reports no error on
working code and catches misuse (tests/typing_user_code.py says what, line by line; it also runs, here)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USER_CODE = ROOT / "tests" / "typing_user_code.py"

pytest.importorskip("mypy", reason="mypy is in the dev extra")


def _wheel_layout(site: Path) -> Path:
    """A directory where ``hpc`` has the installed layout (``kernels/`` as ``hpc/kernels``), made of links to the
    sources: an editable install maps ``hpc.kernels`` with an import hook, which type checkers cannot follow."""
    package = site / "hpc"
    package.mkdir(parents=True)
    for entry in (ROOT / "hpc").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    (package / "kernels").symlink_to(ROOT / "kernels")
    return site


def _expectations() -> tuple[dict[int, str], dict[int, str]]:
    reveals, errors = {}, {}
    for number, line in enumerate(USER_CODE.read_text().splitlines(), 1):
        if match := re.search(r"# reveal: (.+)$", line):
            reveals[number] = match.group(1).strip()
        elif match := re.search(r"# error: ([\w-]+)$", line):
            errors[number] = match.group(1)
    return reveals, errors


@pytest.mark.timeout(600)
def test_mypy_reads_the_public_api_as_documented(tmp_path):
    site = _wheel_layout(tmp_path / "site")
    env = {**os.environ, "MYPYPATH": str(site)}
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports", "--no-error-summary",
         "--show-error-codes", "--cache-dir", str(tmp_path / "cache"), str(USER_CODE)],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert proc.stderr == "", proc.stderr
    notes: dict[int, str] = {}
    errors: dict[int, str] = {}
    for line in proc.stdout.splitlines():
        match = re.match(r".*typing_user_code\.py:(\d+): (note|error): (.*?)(?:  \[([\w-]+)\])?$", line)
        assert match, f"mypy said something else: {line}\n{proc.stdout}"
        number, kind, text, code = int(match.group(1)), match.group(2), match.group(3), match.group(4)
        if kind == "note" and text.startswith("Revealed type is"):
            notes[number] = text.replace("builtins.", "")  # mypy 1 writes builtins.int, mypy 2 int
        elif kind == "error":
            errors[number] = f"{code}: {text}"
    want_reveals, want_errors = _expectations()
    assert len(want_reveals) >= 20 and len(want_errors) == 2
    wrong = [f"line {n}: mypy revealed {notes.get(n, 'nothing')!r}, not {want!r}"
             for n, want in want_reveals.items() if want not in notes.get(n, "")]
    assert not wrong, "\n".join(wrong)
    assert {n: e.split(":")[0] for n, e in errors.items()} == want_errors, proc.stdout


@pytest.mark.timeout(600)
def test_pyright_finds_no_false_alarm_and_catches_the_misuse(tmp_path):
    """pyright (VS Code's Pylance) reads some things as mypy does not: it rejected ``fold(dict, add)`` and
    ``mpi.FusedResult`` as a type, both working code. Its errors on the user code are the misuse lines alone."""
    if shutil.which("node") is None or importlib.util.find_spec("pyright") is None:
        pytest.skip("pyright (dev extra) runs on Node.js, which this machine lacks")
    site = _wheel_layout(tmp_path / "site")
    (tmp_path / "pyrightconfig.json").write_text(json.dumps(
        {"extraPaths": [str(site)], "pythonVersion": f"{sys.version_info.major}.{sys.version_info.minor}"}))
    proc = subprocess.run(
        [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable,
         "--project", str(tmp_path / "pyrightconfig.json"), str(USER_CODE)],
        capture_output=True, text=True, cwd=tmp_path, timeout=500,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:  # pyright-python could not fetch pyright itself (npm): not a verdict on the code
        pytest.skip(f"pyright did not run: {(proc.stdout + proc.stderr)[-300:]}")
    errors = {d["range"]["start"]["line"] + 1: d["message"] for d in report["generalDiagnostics"]
              if d["severity"] == "error"}
    _, want_errors = _expectations()
    assert sorted(errors) == sorted(want_errors), json.dumps(errors, indent=1)


@pytest.mark.timeout(300)
def test_the_typed_user_code_runs(run_script):
    """Every line mypy checks is working code, so an error mypy reports on it is a false alarm."""
    assert "ran to the end" in run_script(USER_CODE.read_text(), timeout=240)
