"""hpc.kernels inclusive and exclusive scans against numpy.cumsum."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scans_match_cumsum(rng, dtype, parallel):
    """inclusive_scan equals cumsum and exclusive_scan the cumsum shifted by one, across chunk boundaries."""
    x = rng.random(200_003).astype(dtype)
    ref = np.cumsum(x.astype(np.float64))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    inc = k.inclusive_scan(x, parallel=parallel)
    assert inc.dtype == dtype
    np.testing.assert_allclose(inc, ref, rtol=rtol)
    exc = k.exclusive_scan(x, parallel=parallel)
    assert exc[0] == 0.0
    np.testing.assert_allclose(exc[1:], ref[:-1], rtol=rtol)


def test_scan_in_place_strided_nd_and_edges():
    """A scan may write into its input, reads strided views, scans N-D arrays in C order, and handles 0 or 1 element."""
    x = np.arange(1.0, 6.0)
    assert k.inclusive_scan(x, out=x) is x and x.tolist() == [1, 3, 6, 10, 15]
    y = np.arange(10.0)
    assert k.exclusive_scan(y[::2]).tolist() == [0, 0, 2, 6, 12]
    m = np.ones((2, 3))
    assert k.inclusive_scan(m).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert k.inclusive_scan(np.empty(0)).shape == (0,)
    assert k.exclusive_scan(np.array([7.0])).tolist() == [0.0]
    z = k.inclusive_scan(np.array([1.0, np.nan, 1.0]))
    assert z[0] == 1.0 and np.isnan(z[1:]).all()
    with pytest.raises(ValueError, match=r"out must have shape \(3,\)"):
        k.inclusive_scan(np.ones(3), out=np.empty(4))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("shift", [1, -1])
def test_scan_out_partially_overlapping_x(parallel, shift):
    """An out= that is a shifted view of x's memory gives the scan of x as it was (NumPy computes as from a copy)."""
    n = 200_000
    for scan, reference in ((k.inclusive_scan, np.cumsum), (k.exclusive_scan, _exclusive)):
        buf = np.arange(n + 2, dtype=np.float64)
        x = buf[1 : n + 1]
        expected = reference(x.copy())
        out = buf[1 + shift : n + 1 + shift]
        scan(x, out=out, parallel=parallel)
        np.testing.assert_array_equal(out, expected)


def _exclusive(x):
    return np.concatenate([[0.0], np.cumsum(x)[:-1]])


@pytest.mark.parametrize("scan", ["inclusive_scan", "exclusive_scan"])
def test_an_overflow_stays_inf_on_the_parallel_variant_too(scan):
    """A running sum that overflows in the first chunk is inf from there on, as numpy.cumsum and the serial scan
    give it: the parallel scan's next chunks had started from the chunk's lane sum (0.0) and come back from inf."""
    x = np.zeros((1 << 16) + 4)
    x[:4] = [1e308, 1e308, -1e308, -1e308]
    parallel = getattr(k, scan)(x, parallel=True)
    serial = getattr(k, scan)(x, parallel=False)
    np.testing.assert_array_equal(parallel, serial)
    if scan == "inclusive_scan":
        np.testing.assert_array_equal(parallel, np.cumsum(x))
    assert np.isinf(parallel[-1])
    in_place = x.copy()  # in place too: the first chunks must not be written before the scan is redone in order
    assert getattr(k, scan)(in_place, out=in_place, parallel=True) is in_place
    np.testing.assert_array_equal(in_place, serial)
