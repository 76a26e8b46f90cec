"""hpc.kernels histogram against numpy.histogram: counts bit for bit."""

from __future__ import annotations

import re

import numpy as np
import pytest

from hpc import kernels as k


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_histogram_matches_numpy(rng, dtype, parallel):
    """Counts and edges equal numpy.histogram's, with the data's range and with an explicit range."""
    x = rng.standard_normal(150_001).astype(dtype)
    for bins, rng_ in ((17, None), (64, (-1.0, 2.5))):
        counts, edges = k.histogram(x, bins, rng_, parallel=parallel)
        want_c, want_e = np.histogram(x, bins, rng_)
        np.testing.assert_array_equal(counts, want_c)
        np.testing.assert_array_equal(edges, want_e)


def test_histogram_edges_nan_and_strided():
    """Values on bin edges land where NumPy puts them (last edge included); NaN and outside values are dropped."""
    x = np.array([0.0, 0.1, 0.2, 0.3, 0.7, 1.0, -0.5, 1.5, np.nan])
    np.testing.assert_array_equal(k.histogram(x, 10, (0.0, 1.0))[0], np.histogram(x, 10, (0.0, 1.0))[0])
    y = np.linspace(0, 1, 1001)
    np.testing.assert_array_equal(k.histogram(y[::3], 7)[0], np.histogram(y[::3], 7)[0])
    assert k.histogram(np.array([2.0, 2.0]), 3)[0].tolist() == np.histogram(np.array([2.0, 2.0]), 3)[0].tolist()
    assert k.histogram(np.empty(0), 4)[0].tolist() == [0, 0, 0, 0]


def test_histogram_errors():
    """Bad bins and ranges, and NaN data without a range, are refused as numpy.histogram refuses them."""
    with pytest.raises(ValueError, match="bins must be a positive int; got 0"):
        k.histogram(np.ones(3), 0)
    with pytest.raises(ValueError, match="max must be larger than min in range parameter"):
        k.histogram(np.ones(3), 4, (2.0, 1.0))
    with pytest.raises(ValueError, match="autodetected range of .* is not finite"):
        k.histogram(np.array([1.0, np.nan]), 4)
    with pytest.raises(ValueError, match="range must be a"):
        k.histogram(np.ones(3), 4, "wide")


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    "x, bins, span",
    [
        (np.array([0.0, 1e-320]), 2, None),  # a subnormal-sized range: its reciprocal overflows
        (np.array([0.0, 5e-324]), 1, None),
        (np.zeros(2), 2, (0.0, 1e-320)),
        (np.array([]), 2, None),
        (np.array([-1.7e308, 1.7e308]), 3, None),  # wider than float64: NumPy refuses it
        (np.array([-3e38, 3e38], np.float32), 4, None),
        (np.array([0.0, np.nan]), 10, None),
    ],
    ids=["subnormal-range", "tiniest-range", "subnormal-given-range", "empty", "too-wide", "too-wide-float32", "nan"],
)
def test_extreme_ranges_give_numpys_counts_or_its_error(x, bins, span, parallel):
    """Ranges whose width underflows or overflows: NumPy's counts, or its ValueError, never an index outside the
    counts (the bin of a value was computed from an infinite scale and written past the end)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's linspace warns on the too-wide ranges, for both
        try:
            want = np.histogram(x, bins, span)
        except (ValueError, IndexError) as error:
            # NumPy before 2.2 indexed past its counts there (IndexError); 2.2 and later say why, as hpc does
            message = "Too many bins for data range" if isinstance(error, IndexError) else str(error)
            with pytest.raises(ValueError, match=re.escape(message)):
                k.histogram(x, bins, span, parallel=parallel)
            return
        counts, edges = k.histogram(x, bins, span, parallel=parallel)
    np.testing.assert_array_equal(counts, want[0])
    np.testing.assert_array_equal(edges, want[1])


def test_parallel_private_histograms_stay_within_their_memory_budget(monkeypatch):
    """64 private histograms of 10 million bins took 5 GiB for a 76 MiB result: their number is capped by
    PRIVATE_BYTES, down to the serial variant, and the counts are NumPy's either way."""
    import importlib

    module = importlib.import_module("hpc.kernels.histogram")  # the module: hpc.kernels.histogram is the function
    seen = []
    real = module._hist_parallel
    monkeypatch.setattr(module, "_hist_parallel", lambda *a: seen.append((a[-1], a[-2].shape[0])) or real(*a))
    x = np.random.default_rng(0).random(1 << 20)
    for bins in (100, 4_000_000, 10_000_000):
        counts, _ = module.histogram(x, bins, (0.0, 1.0), parallel=True)
        np.testing.assert_array_equal(counts, np.histogram(x, bins, (0.0, 1.0))[0])
    assert [parts for parts, _ in seen] == [16, 2]  # 10 million bins: one part would fit, so the serial variant ran
    assert all(parts * 8 * bins <= module.PRIVATE_BYTES for parts, bins in seen)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_range_of_numpy_scalars_makes_numpys_edges(dtype):
    """NumPy makes the edges from the range as given: np.float32 endpoints give float32-precision edges (the
    kernel had made float64 ones from float(e) and binned values between the two elsewhere), np.float64 endpoints
    give float64 edges for float32 data."""
    rng = np.random.default_rng(4)
    x = rng.random(2000).astype(dtype)
    for r in [(np.float32(0.1), np.float32(0.9)), (np.float64(0.1), np.float64(0.7)), (0.1, 0.9)]:
        for bins in (3, 10, 37):
            counts, edges = k.histogram(x, bins, r)
            want_counts, want_edges = np.histogram(x, bins, r)
            assert edges.dtype == want_edges.dtype
            np.testing.assert_array_equal(edges, want_edges)
            np.testing.assert_array_equal(counts, want_counts)


def test_bins_of_infinite_width_are_refused():
    """float32 data over (-1e39, 1e39): edges [-inf, 0, inf] had been accepted."""
    with pytest.raises(ValueError, match="Cannot create 2 finite-sized bins"):
        k.histogram(np.float32([0.0, 1.0]), 2, (-1e39, 1e39))
