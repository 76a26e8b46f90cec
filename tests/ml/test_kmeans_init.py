"""hpc.ml._kmeans_init: k-means++ picks a row with probability proportional to its weight by a race of blocks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpc import mpi
from hpc.ml._blocks import Blocks
from hpc.ml._kmeans_init import Points, block_entrants


def _pick(blocks: list[np.ndarray], u_blocks: np.ndarray, u_rows: np.ndarray) -> int:
    """The race of blocks as kmeans_plusplus runs it: the smallest key wins (ties to the lower row); the global row."""
    best, best_row, start = np.inf, -1, 0
    for w, ub, ur in zip(blocks, u_blocks, u_rows):
        keys, rows = block_entrants(w, np.array([ub]), np.array([ur]))
        key, row = keys[0], rows[0]
        if key < best:
            best, best_row = key, start + row
        start += w.shape[0]
    return best_row


def test_rows_are_picked_in_proportion_to_their_weights():
    """Over 200,000 seeded races, each row's share is its weight over the total (to 0.005, about 4.5 standard
    errors), across blocks of unequal totals; rows and blocks of zero weight are never picked."""
    blocks = [np.array([1.0, 0.0, 3.0]), np.array([0.0, 0.0]), np.array([2.0, 2.0]), np.array([0.5])]
    weights = np.concatenate(blocks)
    rng = np.random.default_rng(20261207)
    n = 200_000
    u = 1.0 - rng.random((n, 2, len(blocks)))  # in (0, 1]
    u[u == 1.0] = 0.5
    picks = np.array([_pick(blocks, u[i, 0], u[i, 1]) for i in range(n)])
    share = np.bincount(picks, minlength=weights.size) / n
    assert np.abs(share - weights / weights.sum()).max() < 0.005, share
    assert share[weights == 0].sum() == 0


def _one(w, u_block, u_row):
    keys, rows = block_entrants(np.asarray(w, float), np.array([u_block]), np.array([u_row]))
    return keys[0], rows[0]


def test_a_block_of_zero_weight_never_wins_and_rounding_stays_on_a_weighted_row():
    assert _one(np.zeros(4), 0.5, 0.5)[0] == np.inf
    assert _one(np.array([]), 0.5, 0.5)[0] == np.inf
    last = 1.0  # a draw can be 1 (its half-step rounds up): u * total is then the total itself
    for w in (np.array([1.0, 2.0, 0.0, 0.0]), np.array([1e-300, 3.0, 0.0]), np.array([0.1] * 10 + [0.0])):
        row = _one(w, 0.5, last)[1]
        assert w[row] > 0 and row == np.flatnonzero(w)[-1]
    key, row = _one(np.array([0.0, 4.0]), 0.25, 1e-9)
    assert row == 1 and key == -np.log(0.25) / 4.0


def test_every_trial_searches_the_same_running_sum():
    """Several trials of one block: each pick is the inverse CDF at its own draw, each key uses the same total."""
    w = np.array([1.0, 0.0, 2.0, 1.0])
    keys, rows = block_entrants(w, np.array([0.5, 0.25, 0.9]), np.array([0.1, 0.5, 0.99]))
    assert rows.tolist() == [0, 2, 3]
    assert np.allclose(keys, -np.log([0.5, 0.25, 0.9]) / 4.0)


@pytest.mark.parametrize("weighted", [True, False])
def test_the_keyed_race_of_blocks_picks_rows_in_proportion(weighted):
    """The path kmeans_plusplus takes: every block's keyed draws (Points.plusplus_entrants), the race over blocks
    (race_entrants). Over 20,000 seeds on 5 blocks of 8 rows, each row's share is its weight over the total, or
    1/40 unweighted (to 0.01 and 0.006, about 4.5 standard errors); rows of zero weight are never picked."""
    n = 40
    blocks = Blocks(mpi.world(), np.array([n]), [np.zeros((n, 1))], block_rows=8)
    weights = np.zeros(n)
    weights[[0, 3, 4, 9, 17, 30, 31, 39]] = [1.0, 2.0, 0.5, 3.0, 1.0, 2.5, 1.0, 1.0]  # rows 18-29: no weight
    exponent = math.frexp(weights.max())[1]
    picks = np.zeros(n)
    seeds = 20_000
    for seed in range(seeds):
        points = Points(blocks, seed, 1)
        keys, rows = points.plusplus_entrants(weights, 0, 1, 1, exponent, weighted)
        picks[points.race_entrants(keys, rows, 1)[0]] += 1
    share = picks / seeds
    expected = weights / weights.sum() if weighted else np.full(n, 1 / n)
    assert np.abs(share - expected).max() < (0.01 if weighted else 0.006), share
    if weighted:
        assert share[weights == 0].sum() == 0


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_weighted_first_draw_in_proportion_to_the_weights(init):
    """The init's first centre (random: its only one, k = 1) falls on a row with probability w / sum(w), the rows
    spread over blocks: over 4000 seeds on 10 rows weighted 0..9 each row's share within 0.025 of w / 45, and the
    row of weight 0 never. (k-means||: tests/ml/test_kmeans.py, no centre from rows of weight 0.)"""
    from hpc.ml._kmeans_init import kmeans_plusplus, random_rows

    n = 10
    X = np.arange(n, dtype=np.float64)[:, None]
    w = np.arange(n, dtype=np.float64)
    blocks = Blocks(mpi.world(), np.array([n]), [X, w], block_rows=4)
    draw = kmeans_plusplus if init == "k-means++" else random_rows
    seen = np.zeros(n)
    for seed in range(4000):
        seen[int(draw(Points(blocks, seed, 1, weighted=True), 1, 0)[0, 0])] += 1
    assert seen[0] == 0
    assert np.abs(seen / 4000 - w / w.sum()).max() < 0.025


def test_kmeans_plusplus_with_fewer_weighted_rows_than_clusters():
    """When every row of positive weight is already a centre (the weighted potential is 0), k-means++ draws the
    rest in proportion to the weights, never from rows of weight 0 (before, it fell back to uniform draws)."""
    from hpc.ml._kmeans_init import kmeans_plusplus

    X = np.vstack([np.zeros((5, 2)), 100.0 + np.arange(30.0).reshape(15, 2)])
    w = np.concatenate([np.ones(5), np.zeros(15)])
    blocks = Blocks(mpi.world(), np.array([20]), [X, w], block_rows=8)
    for seed in range(20):
        centres = kmeans_plusplus(Points(blocks, seed, 2, weighted=True), 3, 0)
        assert np.abs(centres).max() == 0.0, seed


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("features", [3, 40])
def test_distances_over_groups_of_blocks_are_each_blocks_own(weighted, dtype, features):
    """Points.distances on rows laid end to end (a few kernel calls over groups of blocks) gives the bits of one
    call per block (the path of device blocks): the distances, each lowered to the nearest so far, and per block
    their (weighted) sums, for thin candidates (the direct form) and wide ones (the GEMM form per block)."""
    from hpc.kernels import sqdist

    rng = np.random.default_rng(7)
    n, block = 1000, 64  # 15 whole blocks and a short one
    X = (rng.standard_normal((n, features)) * 2).astype(dtype)
    w = rng.random(n)
    w[::5] = 0.0
    candidates = rng.standard_normal((9, features))
    closest = rng.random(n) * 50
    arrays = [X, w] if weighted else [X]
    blocks = Blocks(mpi.world(), np.array([n]), arrays, block_rows=block)
    offsets = np.concatenate([[0], np.cumsum([item[0].shape[0] for item in blocks.items])])
    grouped = Points(blocks, 1, features, weighted=weighted, rows=X, offsets=offsets)
    assert grouped._group_edges() is not None
    alone = Points(blocks, 1, features, weighted=weighted)
    assert alone._group_edges() is None
    dist, sums = grouped.distances(candidates, closest)
    want_dist, want_sums = alone.distances(candidates, closest)
    assert dist.tobytes() == want_dist.tobytes() and sums.tobytes() == want_sums.tobytes()
    first = sqdist(X[:block], candidates.astype(dtype)).astype(np.float64)
    assert dist[:block].tobytes() == np.minimum(first, closest[:block, None]).tobytes()
    lowered = np.minimum(first, closest[:block, None]) * (w[:block, None] if weighted else 1.0)
    assert np.allclose(sums[0], lowered.sum(axis=0), rtol=1e-12)
    plain, none = grouped.distances(candidates)
    assert none is None and plain[:block].tobytes() == first.tobytes()


def test_bounds_state_starts_anew_after_a_step_that_did_not_finish_or_non_finite_centres():
    """The bounded steps' per-row state: kept from a finished step (with the centres' moves), made anew when the
    last step did not finish (some rows' bounds may already be for new centres), when the number of centres
    changes, or when a move is not finite."""
    X = np.arange(40.0).reshape(20, 2)
    blocks = Blocks(mpi.world(), np.array([20]), [X], block_rows=8)
    offsets = np.array([0, 8, 16, 20])
    points = Points(blocks, 1, 2, rows=X, offsets=offsets)
    centres = np.zeros((3, 2))
    labels, _, _, moved = points._bounds_for(centres)
    assert moved is None and (labels == -1).all()
    labels[:] = 1
    points._bounds_centres = centres.copy()  # what a finished step leaves
    again, _, _, moved = points._bounds_for(centres + 1.0)
    assert again is labels and np.allclose(moved, np.sqrt(2.0))
    _, _, _, moved = points._bounds_for(centres)  # the step above never finished
    assert moved is None and (points._bounds[0] == -1).all()
    points._bounds[0][:] = 2
    points._bounds_centres = centres.copy()
    _, _, _, moved = points._bounds_for(np.full((3, 2), np.inf))
    assert moved is None and (points._bounds[0] == -1).all()
    points._bounds_centres = centres.copy()
    _, _, _, moved = points._bounds_for(np.zeros((4, 2)))
    assert moved is None


def test_race_entrants_and_fetch_on_one_rank():
    """One rank's race: each column's smallest key wins, the lower row on a tie, -1 where every key is inf or there
    is no entrant; fetch gives the rows asked for, in the order asked, as float64."""
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    blocks = Blocks(mpi.world(), np.array([6]), [X], block_rows=4)
    points = Points(blocks, 0, 2, rows=X, offsets=np.array([0, 4, 6]))
    keys = np.array([[0.5, np.inf, 2.0], [0.25, np.inf, 2.0], [0.25, np.inf, 3.0]])
    rows = np.array([[0, 0, 1], [4, 1, 4], [5, 5, 5]])
    assert points.race_entrants(keys, rows, 3).tolist() == [4, -1, 1]
    assert points.race_entrants(np.empty((0, 2)), np.empty((0, 2), np.int64), 2).tolist() == [-1, -1]
    got = points.fetch(np.array([5, 0, 3]))
    assert got.dtype == np.float64 and got.tolist() == [[10.0, 11.0], [0.0, 1.0], [6.0, 7.0]]
