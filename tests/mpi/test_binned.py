"""The numba loops of the reproducible sum: the one-call kernel of the shared-memory lane against the three passes."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.mpi import _binned
from hpc.mpi.comm import Comm, LocalComm
from hpc.mpi.reproducible import reproducible_sum


def _columns(k: int, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((k, n)) * 10.0 ** rng.integers(-12, 13, (k, n))
    rows[:, 3600:4200] = rng.uniform(1.0, 1.5, (k, 600)) * 1e300  # summed to inf or near it, never to NaN
    rows[:, 7] = np.inf
    rows[0, 9] = np.nan
    rows[:, 11] = 1e-320  # subnormal
    rows[:, 2000:2600] = 1.0  # a whole tile of finite terms...
    rows[0, 2100] = -np.inf  # ...but one
    rows[:, 3000:3600] *= 1e-300  # tiles whose factors need two multiplications
    return rows


@pytest.mark.parametrize("k", [1, 2, 3, 7, 8, 20])
def test_sum_columns_gives_the_bits_of_the_three_passes(k):
    """One and two-word forms, every tile kind, a share of the columns, and a row read from ``own``."""
    rows = _columns(k, 5000, seed=k)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf and overflowing plain sums of the checks
        want = reproducible_sum(Comm(LocalComm()), rows)[1000:4500]
    me = k // 2
    own = rows[me].copy()
    elsewhere = rows.copy()
    elsewhere[me] = 7.0  # never read: row `me` comes from `own`
    got = np.empty(3500)
    _binned.sum_columns(elsewhere, own, me, 1000, 4500, got)
    assert got.tobytes() == want.tobytes()
    _binned.sum_columns(rows, own, -1, 1000, 4500, got)
    assert got.tobytes() == want.tobytes()
