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
    out = np.empty((6, 5))
    assert _lloyd._moved(sums, counts, out)
    assert out.tobytes() == _numpy_rule(sums, counts).tobytes()
    counts[3] = 1.0
    assert not _lloyd._moved(sums, counts, out)
    assert out.tobytes() == _numpy_rule(sums, counts).tobytes()


def test_a_fit_stops_where_the_shift_summed_as_numpy_sums_it_meets_tol():
    """tol compares the centres' squared shift summed as NumPy sums it (pairwise; a sum in row order differs in the
    last bit for about half of small problems): with tol set to each iteration's shift, or one ulp below it, the fit
    stops at the first iteration whose shift is within tol."""
    from hpc import mpi
    from hpc.ml._blocks import Blocks
    from hpc.ml._kmeans_init import Points
    from hpc.ml._progress import Progress

    X = np.random.default_rng(3).standard_normal((400, 8))
    init = X[:6].copy()

    def fit(max_iter: int, tol: float) -> tuple[np.ndarray, int]:
        points = Points(Blocks(mpi.world(), np.array([400]), [X]), 0, 8, rows=X, offsets=np.array([0, 400]))
        _, _, centres, n_iter = _lloyd.lloyd(points, init, max_iter, tol, Progress("KMeans", max_iter, 0, 0), False)
        return centres, n_iter

    path = [init] + [fit(m, 0.0)[0] for m in range(1, 11)]
    shifts = [float(((path[m] - path[m - 1]) ** 2).sum()) for m in range(1, 11)]  # after iterations 1..10
    assert min(shifts) > 0.0
    for shift in shifts:
        for tol in (shift, np.nextafter(shift, 0.0)):
            stops = [m for m, s in enumerate(shifts, start=1) if s <= tol]
            n_iter = fit(50, tol)[1]
            assert n_iter == stops[0] if stops else n_iter > 10
