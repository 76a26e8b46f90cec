"""Lloyd's iterations' compiled update (hpc.ml._lloyd): the bits of NumPy's rule for the new centres."""

from __future__ import annotations

import numpy as np

from hpc.ml import _lloyd


def _numpy_rule(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each sum times the inverse of its count, divided where the inverse overflows; a count of 0 keeps its sum."""
    new = sums.copy()
    filled = counts > 0
    with np.errstate(divide="ignore", over="ignore"):
        inverse = 1.0 / counts[filled]
        tiny = ~np.isfinite(inverse)
        inverse[tiny] = 1.0
        new[filled] *= inverse[:, None]
        new[np.flatnonzero(filled)[tiny]] /= counts[filled][tiny][:, None]
    return new


def test_new_centres_have_the_bits_of_the_numpy_rule_and_report_empty_clusters():
    rng = np.random.default_rng(4)
    sums = rng.standard_normal((6, 5)) * 10.0 ** rng.integers(-300, 100, (6, 1))
    counts = np.array([3.0, 7.0, 1e-310, 0.0, 2.5, 5e-324])  # subnormal totals: their inverse overflows
    sums[3] = 0.0
    old = rng.standard_normal((6, 5))
    out = np.empty((6, 5))
    shift, empty = _lloyd._moved(sums, counts, old, out)
    want = _numpy_rule(sums, counts)
    assert out.tobytes() == want.tobytes()
    assert empty
    expected = 0.0  # the squared shift, summed in row order
    with np.errstate(over="ignore"):
        for step in (want - old).ravel():
            expected += float(step) * float(step)
    assert shift == expected
    counts[3] = 1.0
    assert not _lloyd._moved(sums, counts, old, out)[1]
