"""Shared helpers of the kernel tests: random inputs and tolerances by dtype."""

from __future__ import annotations

import numpy as np
import pytest

RTOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


@pytest.fixture
def rng():
    """A fixed-seed generator, so a failure reproduces."""
    return np.random.default_rng(20261127)


def tol(dtype) -> dict:
    """Return assert_allclose tolerances for results of ``dtype``."""
    rtol = RTOL[np.dtype(dtype)]
    return {"rtol": rtol, "atol": rtol}


def scipy_blas() -> bool:
    """Whether numba can call BLAS here (SciPy's ``cython_blas`` imports): the compiled GEMM-form kernels need it."""
    from hpc.kernels import _checks

    saved = _checks.COMPILED_BLAS
    _checks.COMPILED_BLAS = None  # asked afresh: a test may have set it
    try:
        return _checks.compiled_blas()
    finally:
        _checks.COMPILED_BLAS = saved


@pytest.fixture
def needs_scipy_blas() -> None:
    """For tests of kernels that need SciPy's BLAS (kmeans_step_bounded): skipped in an install without it."""
    if not scipy_blas():
        pytest.skip("needs SciPy's BLAS (an install without SciPy)")


@pytest.fixture
def blas_path(monkeypatch):
    """``blas_path(compiled)``: run the GEMM-form kernels on SciPy's compiled BLAS (True) or NumPy's products
    (False), for this test; the compiled path is skipped where SciPy's BLAS does not import."""
    from hpc.kernels import _checks

    def choose(compiled: bool) -> None:
        if compiled and not scipy_blas():
            pytest.skip("the compiled BLAS path needs SciPy")
        monkeypatch.setattr(_checks, "COMPILED_BLAS", compiled)

    return choose
