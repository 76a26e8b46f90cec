"""The numba loops of the reproducible sum: the one-call kernel of the shared-memory lane against the three passes."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.mpi import _binned

from .conftest import NONFINITE_COLUMNS, one_process_sum


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
        want = one_process_sum(rows)[1000:4500]
    me = k // 2
    own = rows[me].copy()
    elsewhere = rows.copy()
    elsewhere[me] = 7.0  # never read: row `me` comes from `own`
    got = np.empty(3500)
    _binned.sum_columns(elsewhere, own, me, 1000, 4500, got)
    assert got.tobytes() == want.tobytes()
    _binned.sum_columns(rows, own, -1, 1000, 4500, got)
    assert got.tobytes() == want.tobytes()


@pytest.mark.parametrize("order", [0, 1, 2])
def test_non_finite_columns_sum_to_fixed_bits_in_any_order(order):
    """NaN (one fixed NaN) for a NaN or both infinities, else the infinity; finite terms never overflow into it."""
    rows = np.array([column for column, _ in NONFINITE_COLUMNS]).T  # (4 terms, 6 columns)
    rows = np.roll(rows, order, axis=0) if order < 2 else rows[::-1].copy()
    want = np.array([total for _, total in NONFINITE_COLUMNS])
    got = np.empty(len(NONFINITE_COLUMNS))
    _binned.sum_columns(rows, rows[0], -1, 0, rows.shape[1], got)
    assert got.tobytes() == want.tobytes()
    assert one_process_sum(rows).tobytes() == want.tobytes()


@pytest.mark.parametrize("columns", [1, 2, 7])
def test_narrow_rows_sum_down_the_columns_with_the_same_bits(columns):
    """1-7 columns take the loops that run down each column (across carry blocks of 2**14 rows): the bits of the
    same columns summed among 16 (the loops along the rows)."""
    rng = np.random.default_rng(columns)
    tall = rng.standard_normal((40000, 16)) * 10.0 ** rng.integers(-12, 13, (40000, 16))
    tall[123, 0] = np.inf
    tall[7, 1] = np.nan
    with np.errstate(over="ignore", invalid="ignore"):
        wide = one_process_sum(tall)
        narrow = one_process_sum(np.ascontiguousarray(tall[:, :columns]))
        strided = one_process_sum(tall[:, :columns])  # not contiguous: each column copied first
    assert narrow.tobytes() == wide[:columns].tobytes() == strided.tobytes()
