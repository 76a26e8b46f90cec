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
