"""The benchmark scripts' and example jobs' arguments (hpc/bench/_args.py): a bad count is one usage line and
status 2, before any work or any collective (a negative size had hung a 2-rank job: one rank failed in MPI, the
other waited for it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hpc.bench import _args

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("bench_shm_stores.py", ["-8"], "argument bytes: expected a whole number >= 1; got '-8'"),
        ("bench_mpi_reproducible.py", ["4"], "expected at least 8 bytes (one float64); got '4'"),
        ("mpi_pi.py", ["abc"], "argument darts: expected a whole number >= 1; got 'abc'"),
        ("ml_kmeans.py", ["--clusters", "0"], "argument --clusters: expected a whole number >= 1; got '0'"),
        ("ml_kmeans.py", ["--rows", "3"], "--rows (3) must be at least --clusters (8)"),
        ("ml_logistic.py", ["--C", "0"], "argument --C: expected a finite number > 0; got '0'"),
        ("bench_joblib.py", ["--repeats", "0"], "argument --repeats: expected a whole number >= 1; got '0'"),
        ("bench_kernels_small.py", ["16", "--json", "/no/such/dir/x.json"], "no such directory: /no/such/dir"),
        ("bench_threading_layers.py", ["--rounds", "0"], "--rounds must be 1 or more; got 0"),
    ],
)
def test_bad_arguments_are_one_usage_line(script, args, message):
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), *args], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_argument_types():
    assert _args.positive_int("3") == 3 and _args.positive_float("0.5") == 0.5 and _args.float64_bytes("8") == 8
    for bad in ("0", "-1", "1.5", "x"):
        with pytest.raises(Exception, match="expected a whole number >= 1"):
            _args.positive_int(bad)
    for bad in ("0", "-1", "inf", "nan", "x"):
        with pytest.raises(Exception, match="expected a"):
            _args.positive_float(bad)
