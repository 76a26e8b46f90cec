"""The argument checks every kernel shares (kernels/_checks.py)."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


@pytest.mark.parametrize(
    "call",
    [
        lambda a: k.scal(a, np.ones(3)),
        lambda a: k.axpy(a, np.ones(3), np.ones(3)),
        lambda a: k.axpbyc(a, np.ones(3), 1.0, np.ones(3)),
        lambda a: k.axpbyc(1.0, np.ones(3), a, np.ones(3)),
    ],
    ids=["scal", "axpy", "axpbyc-a", "axpbyc-b"],
)
def test_a_scalar_argument_must_be_a_real_number(call):
    """None (NumPy's float64(None) is NaN: a silent NaN result), bools and arrays with elements raise TypeError
    naming the argument; Python and NumPy numbers and 0-d arrays are taken."""
    for bad, what in ((None, "NoneType"), (True, "bool"), (np.array([2.0]), r"an array of shape \(1,\)"), ("2", "str")):
        with pytest.raises(TypeError, match=f"must be a real number; got {what}"):
            call(bad)
    for good in (2, 2.0, np.float32(2.0), np.int64(2), np.array(2.0)):
        assert np.isfinite(call(good)).all()
