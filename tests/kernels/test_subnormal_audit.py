"""scripts/audit_subnormals.py: no kernel makes a subnormal from ordinary data (Intel's per-element hazard).

The audit traps the first subnormal result (``feenableexcept(FE_UNDERFLOW)``, SIGFPE in a forked child), which
works on any x86 CPU: a kernel that passes here takes no microcode assists on Intel from those inputs.
"""

from __future__ import annotations

import importlib.util
import json
import platform
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from hpc import kernels

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "audit_subnormals.py"

pytestmark = pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64") or not sys.platform.startswith("linux"),
    reason="the audit traps through glibc's feenableexcept on x86-64 Linux",
)


def _audit_module():
    spec = importlib.util.spec_from_file_location("audit_subnormals", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(300)
def test_no_kernel_makes_a_subnormal_from_ordinary_data(tmp_path):
    """Every public kernel, serial, float64 and float32, on each input family: no underflow trap fires."""
    out = tmp_path / "audit.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--json", str(out)], capture_output=True, text=True,
                          timeout=280)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cases = json.loads(out.read_text())["cases"]
    audited = {case["kernel"].split(" ")[0].split("(")[0] for case in cases}
    public = set(kernels.__all__) - {"simd"}
    if "not audited: kmeans_step_bounded" in proc.stdout:  # an install without SciPy, which it needs
        public.discard("kmeans_step_bounded")
    assert public <= audited, f"kernels the audit does not cover: {sorted(public - audited)}"
    assert {case["dtype"] for case in cases} == {"float64", "float32"}
    assert all(case["result"] == "ok" for case in cases)


def test_the_trap_catches_a_subnormal_intermediate():
    """The former nrm2 form (every element scaled by 2**-538 and squared) is caught; its plain twin is not."""
    audit = _audit_module()

    @numba.njit
    def scaled_squares(x):
        s = 0.0
        for v in x:
            s += (v * 2.0**-538) ** 2
        return s

    @numba.njit
    def squares(x):
        s = 0.0
        for v in x:
            s += v * v
        return s

    x = np.random.default_rng(0).standard_normal(1000)
    assert audit.trapped(lambda: scaled_squares(x)) == "underflow"
    assert audit.trapped(lambda: squares(x)) == "ok"
    assert audit.trapped(lambda: 1 / 0) == "error"  # an ordinary exception is reported apart


def test_the_vector_exp_forms_no_subnormal_below_its_flush():
    """exp of arguments just below log(2**-1022) (about -708.396) flushes to 0 without forming the subnormal
    product p * 2**-1022 first: the former code computed it and then selected 0, which AVX-512 code masked away but
    AVX2 code (a znver3 CPU) executed. Called here as scalar code, which executes every step on any CPU."""
    from hpc.kernels import _vexp

    audit = _audit_module()
    edge = np.array([-708.3965, -708.398, -708.4, -708.2, -745.0, -1000.0, -np.inf])
    for flush in (_vexp.flush_for(np.float64), _vexp.flush_for(np.float32)):
        for v in edge:
            assert audit.trapped(lambda v=v, flush=flush: _vexp.exp_nonpos(v, flush)) == "ok", (v, flush)
    assert _vexp.exp_nonpos(-708.398, _vexp.flush_for(np.float64)) == 0.0
    assert np.isnan(_vexp.exp_nonpos(np.nan, _vexp.flush_for(np.float64)))
    assert _vexp.exp_nonpos(-707.9, _vexp.flush_for(np.float64)) == pytest.approx(np.exp(-707.9), rel=1e-15)
