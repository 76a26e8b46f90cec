"""hpc.mpi._float_keys: floats as integer keys that order as the floats do (what min/max reduce over MPI)."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.mpi import _float_keys


def _awkward(dtype):
    info = np.finfo(dtype)
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.normal(size=200) * 10.0 ** rng.integers(-30, 30, 200),
        [0.0, -0.0, np.inf, -np.inf, info.max, -info.max, info.tiny, -info.tiny, info.smallest_subnormal,
         -info.smallest_subnormal, 1.0, -1.0],
    ]).astype(dtype)
    return values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_keys_order_as_the_floats_and_come_back_bit_for_bit(dtype):
    values = _awkward(dtype)
    for op in ("min", "max"):
        keys = _float_keys.to_keys(values, op)
        order = np.argsort(keys, kind="stable")
        ranked = values[order]
        assert (np.diff(ranked.astype(np.float64)) >= 0).all()  # ascending, -0.0 before +0.0
        assert [np.signbit(v) for v in ranked if v == 0] == [True, False]
        back = _float_keys.from_keys(keys.copy())
        assert back.tobytes() == values.tobytes()
        out = np.empty_like(values)
        assert _float_keys.from_keys(keys, out) is out and out.tobytes() == values.tobytes()
        for v in values[:20]:
            key = _float_keys.scalar_key(dtype(v).item(), np.dtype(dtype).itemsize, op)
            assert key == int(_float_keys.to_keys(np.array([v], dtype), op)[0])
            assert _float_keys.scalar_value(key, np.dtype(dtype).itemsize) == dtype(v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_nan_wins_under_its_op_and_comes_back_as_numpys_nan(dtype):
    ints = np.dtype(dtype).itemsize * 8
    nans = np.array([np.nan, -np.nan], dtype)
    payload = np.array([1], np.int64 if ints == 64 else np.int32)
    odd = (np.array([np.inf], dtype).view(payload.dtype) | payload).view(dtype)  # a signalling-style NaN
    values = np.concatenate([nans, odd, np.array([np.inf, -np.inf], dtype)])
    keys_max = _float_keys.to_keys(values, "max")
    keys_min = _float_keys.to_keys(values, "min")
    assert (keys_max[:3] == keys_max.max()).all() and (keys_max[:3] > keys_max[3]).all()
    assert (keys_min[:3] == keys_min.min()).all() and (keys_min[:3] < keys_min[4]).all()
    for keys in (keys_max, keys_min):
        back = _float_keys.from_keys(keys.copy())
        assert np.isnan(back[:3]).all() and back[:3].tobytes() == np.full(3, np.nan, dtype).tobytes()
        assert np.isnan(_float_keys.scalar_value(int(keys[0]), np.dtype(dtype).itemsize))
