"""hpc.kernels.simd.inspect, the packed-instruction check of the hot kernels, and the on-disk compile cache."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from numba import njit

from hpc import kernels as k

blas1, reductions, simd, _vexp = k.blas1, k.reductions, k.simd, k._vexp


def _cpu_has(flag: str) -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return f" {flag}" in f.read()
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _cpu_has("avx2"), reason="the packed-instruction checks expect an AVX2+ x86 CPU")


@pytest.mark.parametrize(
    "dispatcher, call",
    [
        (reductions._sum_serial, lambda x: k.sum(x, parallel=False)),
        (blas1._dot_serial, lambda x: k.dot(x, x, parallel=False)),
        (blas1._axpy_serial, lambda x: k.axpy(2.0, x, x.copy(), out=np.empty_like(x), parallel=False)),
        (blas1._axpy_into_y_serial, lambda x: k.axpy(2.0, x, x.copy(), parallel=False)),
        (blas1._scal_in_place_serial, lambda x: k.scal(2.0, x.copy(), parallel=False)),
    ],
    ids=["sum", "dot", "axpy", "axpy in place", "scal in place"],
)
def test_hot_kernels_use_packed_vector_instructions(dispatcher, call):
    """sum, dot, axpy and the in-place axpy and scal compile to packed (pd) FP instructions on ymm or zmm registers;
    dot and axpy use FMA."""
    x = np.ones(64)
    call(x)
    sig = next(s for s in dispatcher.signatures if "Array(float64, 1, 'C'" in str(s))  # not a strided one
    report = simd.inspect(dispatcher, sig)
    assert report["vectorized"], report
    assert report["vector_bits"] >= 256, report
    assert any(m.endswith("pd") for m in report["packed_fp"]), report
    if dispatcher not in (reductions._sum_serial, blas1._scal_in_place_serial) and _cpu_has("fma"):
        assert any(m.endswith("pd") for m in report["fma"]), report


def test_inspect_reports_scalar_code():
    """A loop with a dependency chain and no fastmath shows no packed arithmetic: the check can fail."""

    @njit
    def chain(x):
        acc = 1.0
        for v in x:
            acc = acc * 0.5 + v  # ordered: LLVM may not vectorize
        return acc

    chain(np.ones(8))
    report = simd.inspect(chain)
    assert report["vectorized"] is False
    assert set(report) == {"signatures", "vector_bits", "registers", "packed_fp", "fma", "vectorized"}


def test_inspect_errors():
    """Non-dispatchers and dispatchers without a compiled signature are refused."""
    with pytest.raises(TypeError, match="dispatcher must be a numba @njit function"):
        simd.inspect(len)
    with pytest.raises(TypeError, match=r"inspect one of those, such as hpc.kernels.reductions._sum_serial"):
        simd.inspect(k.sum)  # a public kernel is a wrapper: the error names its compiled loops

    @njit
    def never_called(x):
        return x

    with pytest.raises(ValueError, match="has not run in this process: give a signature"):
        simd.inspect(never_called)


def test_inspect_takes_a_signature_as_a_string():
    """A kernel that has not run yet is compiled for the signature given as text, as docs/kernels.md shows."""
    from hpc.kernels import reductions

    report = simd.inspect(reductions._sum_serial, "(float64[::1],)")
    assert len(report["signatures"]) == 1 and "float64" in report["signatures"][0]
    assert report["vectorized"] is True


def test_second_process_loads_from_cache(tmp_path):
    """With cache=True a second process loads sum from NUMBA_CACHE_DIR instead of compiling it again."""
    code = (
        "import numpy as np; from hpc import kernels as k; from hpc.kernels import reductions as r\n"
        "k.sum(np.ones(8), parallel=False)\n"
        "print(sum(r._sum_serial.stats.cache_hits.values()), sum(r._sum_serial.stats.cache_misses.values()))\n"
    )
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    first, second = (
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()
        for _ in range(2)
    )
    assert first == ["0", "1"]
    assert second == ["1", "0"]


@pytest.mark.parametrize("dispatcher", [reductions._min_view, reductions._argmin_view], ids=["min", "argmin"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_min_and_argmin_use_packed_min_max(dispatcher, dtype):
    """min/max and the block pass of argmin/argmax compile to packed vminp*/vmaxp* on ymm or zmm, no fastmath."""
    sig = (getattr(numba, dtype)[::1], numba.int64)
    report = simd.inspect(dispatcher, sig)
    suffix = "pd" if dtype == "float64" else "ps"
    assert {f"vmin{suffix}", f"vmax{suffix}"} <= set(report["packed_fp"]), report
    assert report["vector_bits"] >= 256, report


@pytest.mark.parametrize("name", ["exp_shifted", "exp_shifted float32", "exp_shifted_sum"])
def test_vector_exp_uses_packed_fma(name):
    """The exp loops of softmax/logsumexp compile to packed FMAs on ymm or zmm (no table gather, no libm call),
    float32 rows too (their flush to 0 below float32's smallest normal is the exp's own select)."""
    f64, f32 = numba.float64[::1], numba.float32[::1]
    sig = {
        "exp_shifted": (f64, numba.float64, f64, numba.float64),
        "exp_shifted float32": (f32, numba.float64, f32, numba.float64),
        "exp_shifted_sum": (f64, numba.float64),
    }[name]
    name = name.split()[0]
    report = simd.inspect(getattr(_vexp, name), sig)
    assert report["vectorized"] and report["vector_bits"] >= 256, report
    if _cpu_has("fma"):
        assert any(m.endswith("pd") for m in report["fma"]), report


def test_row_max_uses_packed_max():
    """The row maximum of softmax/logsumexp (NaN-propagating) compiles to packed vmaxpd."""
    report = simd.inspect(k.rows._row_max, (numba.float64[::1],))
    assert "vmaxpd" in report["packed_fp"] and report["vector_bits"] >= 256, report


@pytest.mark.parametrize(
    "name", ["elementwise._axpbyc_stream_view", "blas1._axpy_stream_view", "blas1._scal_stream_view"]
)
def test_streaming_kernels_use_nontemporal_stores(name):
    """The streaming variants of axpbyc, axpy and scal compile to non-temporal packed stores (vmovntpd), fenced."""
    module, attr = name.split(".")
    dispatcher = getattr(getattr(k, module), attr)
    f64 = numba.float64[::1]
    code = dispatcher.py_func.__code__
    sig = tuple(f64 if p in ("x", "y", "out") else numba.float64 for p in code.co_varnames[: code.co_argcount])
    options = {key: v for key, v in dispatcher.targetoptions.items() if key not in ("cache", "nopython")}
    twin = numba.njit(**options)(dispatcher.py_func)
    twin.compile(sig)
    asm = twin.inspect_asm(sig)
    assert "vmovntpd" in asm and "sfence" in asm
