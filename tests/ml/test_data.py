"""hpc.ml._data's finiteness check: NaN and infinities found wherever they are, finite extremes let through."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.ml import _data

SHAPE = (50_000, 6)  # 300,000 elements: several chunks on the pool


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(
    "bad, message", [(np.nan, "contains NaN"), (np.inf, "contains infinity"), (-np.inf, "contains infinity")]
)
@pytest.mark.parametrize("where", [(0, 0), (SHAPE[0] - 1, SHAPE[1] - 1), (SHAPE[0] // 2, 3)])
def test_non_finite_found(dtype: type, order: str, bad: float, message: str, where: tuple[int, int]) -> None:
    X = np.ones(SHAPE, dtype=dtype, order=order)
    X[where] = bad
    with pytest.raises(ValueError, match=f"Input X {message}"):
        _data._check_finite(X, "X")


def test_both_infinities_found() -> None:
    X = np.ones(SHAPE)
    X[0, 0], X[-1, -1] = np.inf, -np.inf  # their chunks' sums are +inf and -inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        _data._check_finite(X, "X")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.filterwarnings("error")
def test_finite_extremes_pass(dtype: type) -> None:
    """Finite data whose sum overflows the dtype (float32 sums to inf when cast back) are still finite, quietly."""
    big = np.finfo(dtype).max
    X = np.full(SHAPE, big, dtype=dtype)
    X[::2] = -big / 3
    _data._check_finite(X, "X")
    _data._check_finite(np.full(10, big, dtype=dtype), "X")  # small: one NumPy sum


def test_fingerprint_of_pandas_values_reads_every_value():
    """A parameter given as a DataFrame or Series (a KMeans init, say) compares by its values, as the array it holds:
    pandas' repr elides the middle rows, and two inits of 100 rows that differed in row 50 passed as the same; the
    same init as a DataFrame on one rank and an array on another had been refused (column names in the digest)."""
    import pandas as pd

    a = pd.DataFrame(np.arange(200.0).reshape(100, 2), columns=["x", "y"])
    b = a.copy()
    b.iloc[50, 0] = -1.0
    assert repr(a) == repr(b)
    assert _data.fingerprint(a) != _data.fingerprint(b)
    assert _data.fingerprint(a) == _data.fingerprint(a.copy())
    assert _data.fingerprint(a) == _data.fingerprint(a.rename(columns={"x": "z"})) == _data.fingerprint(a.to_numpy())
    assert _data.fingerprint(pd.Series([1.0, 2.0])) != _data.fingerprint(pd.Series([1.0, 3.0]))
