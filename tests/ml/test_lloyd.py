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


def test_the_bounds_switch_rests_after_misses_and_tries_again_with_fresh_bounds():
    """MISSES steps in a row where most rows took the products: FIRST_REST steps without bounds; then bounds made
    anew (a step not judged), and one more miss rests twice as long, LONGEST_REST at most; a step where few rows took
    the products resets the count of misses."""
    switch = _lloyd.BoundsSwitch()
    misses, first, longest = switch.MISSES, switch.FIRST_REST, switch.LONGEST_REST
    turns = []
    forgotten = []  # the steps at which the points' bounds were forgotten

    class Points:
        def forget_bounds(self):
            forgotten.append(len(turns))

    def step(share):
        anew = switch.anew
        wanted = switch.bounded(Points())
        turns.append((wanted, anew))
        switch.after(share if wanted else None)

    step(None)  # the first step makes the bounds
    for share in [0.9] * (misses - 1) + [0.1] + [0.9] * misses:  # a hit in between: MISSES more are needed
        step(share)
    assert [w for w, _ in turns] == [True] * (2 * misses + 1)
    for _ in range(first):
        step(None)
    assert [w for w, _ in turns[-first:]] == [False] * first
    step(None)  # back: bounds made anew, not judged
    assert turns[-1] == (True, True)
    assert forgotten == [len(turns) - 1]
    step(0.95)  # one miss after a rest
    for _ in range(2 * first):
        step(None)
    assert [w for w, _ in turns[-2 * first :]] == [False] * (2 * first)
    step(None)
    step(0.2)  # a hit: the bounds stay
    step(0.3)
    assert [w for w, _ in turns[-3:]] == [True] * 3
    rests = []
    for _ in range(4):  # the rests double up to the longest
        step(0.95)
        rest = 0
        while not switch.wanted():
            step(None)
            rest += 1
        rests.append(rest)
        step(None)
    assert rests[-1] == longest and all(r <= longest for r in rests) and rests == sorted(rests)


def test_overlapping_clusters_rest_the_bounds_and_fit_the_bits_of_full_steps(monkeypatch):
    """Clusters that overlap (k x d = 1000: the bounds are tried): most rows take the products, so most steps run
    without bounds, and the fit is the full steps' bit for bit."""
    from hpc import kernels
    from hpc.ml import KMeans, _kmeans_init

    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 50)) + rng.integers(0, 5, (3000, 1))
    bounded = []
    step = kernels.kmeans_step_bounded

    def counted(x, *args, **kwargs):
        bounded.append(x.shape[0])
        return step(x, *args, **kwargs)

    monkeypatch.setattr(kernels, "kmeans_step_bounded", counted)
    fits = {}
    for name in ("switched", "full"):
        if name == "full":
            monkeypatch.setattr(_kmeans_init.Points, "_bounds_pay", lambda self, c: False)
        km = KMeans(20, init=X[:20].copy(), n_init=1, max_iter=40, tol=0.0).fit(X)
        fits[name] = (km.cluster_centers_.tobytes(), km.labels_.tobytes(), km.inertia_, km.n_iter_)
        if name == "switched":
            passes = len(bounded)  # one kernel call per pass here (3000 rows: one block)
            assert km.n_iter_ > 20 and 0 < passes < km.n_iter_ // 2, (passes, km.n_iter_)
    assert fits["switched"] == fits["full"]
