"""hpc.kernels.kmeans_step: the GEMM-form Lloyd step against a NumPy reference, on both of its BLAS routes."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


def _reference(x, c):
    products = x.astype(np.float64) @ c.T
    labels = np.argmin(0.5 * (c * c).sum(1)[None, :] - products, axis=1)
    dist = ((x.astype(np.float64) - c[labels]) ** 2).sum(1)
    return labels, dist


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(500, 3, 4), (300, 40, 70)])  # small k*d, and many tiles of wide products
def test_step_matches_reference(rng, blas_path, compiled, dtype, shape):
    """Labels, exact distances, per-cluster sums and counts equal the NumPy computation."""
    blas_path(compiled)
    n, d, kc = shape
    x = rng.standard_normal((n, d)).astype(dtype)
    c = rng.standard_normal((kc, d))
    sums, counts = np.zeros((kc, d)), np.zeros(kc)
    labels, dist = k.kmeans_step(x, c, sums=sums, counts=counts)
    ref_labels, ref_dist = _reference(x, c)
    assert labels.dtype == np.int32 and dist.dtype == np.float64
    np.testing.assert_array_equal(labels, ref_labels)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)
    np.testing.assert_array_equal(counts, np.bincount(ref_labels, minlength=kc))
    expected = np.zeros((kc, d))
    np.add.at(expected, ref_labels, x.astype(np.float64))
    np.testing.assert_allclose(sums, expected, rtol=1e-12, atol=1e-12)


def test_step_accumulates_and_takes_strided_rows(rng):
    """sums and counts are added to, not overwritten; a strided x gives the contiguous copy's answer."""
    base = rng.standard_normal((200, 6))
    c = rng.standard_normal((5, 3))
    x = base[::2, ::2]
    sums, counts = np.ones((5, 3)), np.ones(5)
    labels, dist = k.kmeans_step(x, c, sums=sums, counts=counts)
    again = k.kmeans_step(np.ascontiguousarray(x), c)
    np.testing.assert_array_equal(labels, again[0])
    np.testing.assert_array_equal(dist, again[1])
    assert counts.sum() == 5 + x.shape[0]


def test_step_errors():
    """Wrong centroid shapes and half-given accumulators are refused."""
    with pytest.raises(ValueError, match="centroids must be"):
        k.kmeans_step(np.ones((3, 2)), np.ones((2, 3)))
    with pytest.raises(ValueError, match="sums and counts go together"):
        k.kmeans_step(np.ones((3, 2)), np.ones((2, 2)), sums=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sums must be float64"):
        k.kmeans_step(np.ones((3, 2)), np.ones((2, 2)), sums=np.zeros((2, 3)), counts=np.zeros(2))


def test_read_only_sums_or_counts_are_refused_by_name():
    """kmeans_step adds into sums and counts: read-only ones raise ValueError naming them, not a numba typing error."""
    x, c = np.ones((3, 2)), np.ones((2, 2))
    sums, counts = np.zeros((2, 2)), np.zeros(2)
    sums.flags.writeable = False
    with pytest.raises(ValueError, match="sums must be writeable"):
        k.kmeans_step(x, c, sums=sums, counts=counts)
    sums, counts = np.zeros((2, 2)), np.zeros(2)
    counts.flags.writeable = False
    with pytest.raises(ValueError, match="counts must be writeable"):
        k.kmeans_step(x, c, sums=sums, counts=counts)


@pytest.mark.parametrize("compiled", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m, block", [(1000, 64), (1000, 300), (4096, 4096), (5, 64), (129, 1)])
def test_blocked_step_is_each_blocks_own_call(rng, blas_path, compiled, dtype, m, block):
    """With block_rows, entry b of sums/counts is what a call on block b's rows alone adds, bit for bit, and the
    labels and distances are those calls' too (the tiles start again at each block)."""
    blas_path(compiled)
    d, kc = 7, 40  # tiles of TILE_PRODUCTS // 40 = 819 rows: a 1000-row block of 300 ends a tile early
    x = rng.standard_normal((m, d)).astype(dtype)
    c = rng.standard_normal((kc, d))
    blocks = -(-m // block)
    sums, counts = np.zeros((blocks, kc, d)), np.zeros((blocks, kc))
    labels, dist = k.kmeans_step(x, c, sums=sums, counts=counts, block_rows=block)
    for b in range(blocks):
        rows = x[b * block : (b + 1) * block]
        own_sums, own_counts = np.zeros((kc, d)), np.zeros(kc)
        own_labels, own_dist = k.kmeans_step(rows, c, sums=own_sums, counts=own_counts)
        np.testing.assert_array_equal(sums[b], own_sums)
        np.testing.assert_array_equal(counts[b], own_counts)
        np.testing.assert_array_equal(labels[b * block : (b + 1) * block], own_labels)
        np.testing.assert_array_equal(dist[b * block : (b + 1) * block], own_dist)
    assert counts.sum() == m


def test_blocked_step_checks_its_arguments():
    x, c = np.ones((10, 2)), np.ones((3, 2))
    with pytest.raises(ValueError, match=r"sums must be float64 \(4, 3, 2\) and counts float64 \(4, 3\)"):
        k.kmeans_step(x, c, sums=np.zeros((3, 2)), counts=np.zeros(3), block_rows=3)
    for bad in (0, -1, 2.5, True, "4"):
        with pytest.raises(ValueError, match="block_rows must be an int >= 1"):
            k.kmeans_step(x, c, block_rows=bad)
    labels, _ = k.kmeans_step(x, c, block_rows=4)  # without sums: the labels alone
    assert labels.shape == (10,)


@pytest.mark.parametrize("compiled", [True, False])
def test_step_without_distances(rng, blas_path, compiled):
    """distances=False returns None for the distances and the same labels, sums and counts, bit for bit."""
    blas_path(compiled)
    x, c = rng.standard_normal((700, 5)), rng.standard_normal((6, 5))
    sums, counts = np.zeros((3, 6, 5)), np.zeros((3, 6))
    labels, dist = k.kmeans_step(x, c, sums=sums, counts=counts, block_rows=256)
    again = np.zeros((3, 6, 5)), np.zeros((3, 6))
    labels2, none = k.kmeans_step(x, c, sums=again[0], counts=again[1], block_rows=256, distances=False)
    assert none is None and dist.shape == (700,)
    np.testing.assert_array_equal(labels2, labels)
    np.testing.assert_array_equal(again[0], sums)
    np.testing.assert_array_equal(again[1], counts)


def _lloyd_centres(x, c, sums, counts):
    total, n = sums.sum(0), counts.sum(0)
    new = c.copy()
    new[n > 0] = total[n > 0] / n[n > 0, None]
    return new


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3000, 16, 24), (2000, 3, 5), (900, 40, 1)])
def test_bounded_step_gives_the_labels_of_a_full_step_and_skips_rows(rng, dtype, shape, needs_scipy_blas):
    """Over Lloyd's iterations on clustered rows, the bounded step's labels, exact distances and per-block sums are
    those of kmeans_step, while it skips most rows once the centres settle (k = 1: every row after the first)."""
    n, d, kc = shape
    middles = rng.normal(scale=8.0, size=(kc, d))
    x = (middles[rng.integers(0, kc, n)] + rng.standard_normal((n, d))).astype(dtype)
    c = middles + rng.normal(scale=2.0, size=middles.shape)  # near the clusters: Lloyd settles within 8 steps
    labels, upper, lower = np.full(n, -1, np.int32), np.zeros(n), np.zeros(n)
    moved, computed = None, []
    blocks = -(-n // 512)
    for _ in range(8):
        s1, c1 = np.zeros((blocks, kc, d)), np.zeros((blocks, kc))
        s2, c2 = np.zeros((blocks, kc, d)), np.zeros((blocks, kc))
        want, want_dist = k.kmeans_step(x, c, sums=s1, counts=c1, block_rows=512)
        got, dist, rows = k.kmeans_step_bounded(x, c, labels, upper, lower, moved=moved, sums=s2, counts=c2,
                                                block_rows=512)
        assert got is labels and np.array_equal(got, want)
        assert dist.tobytes() == want_dist.tobytes() and s2.tobytes() == s1.tobytes() and c2.tobytes() == c1.tobytes()
        computed.append(rows)
        new = _lloyd_centres(x, c, s1, c1)
        moved, c = np.sqrt(((new - c) ** 2).sum(1)), new
    assert computed[0] == n and computed[-1] < n // 4, computed
    if kc == 1:
        assert computed[1:] == [0] * 7


def test_bounded_step_recomputes_rows_on_a_tie_and_after_a_jump(needs_scipy_blas):
    """A row equidistant from two centroids is never skipped (its label, the first on the tie, is kmeans_step's),
    and a centroid that jumps loosens the bounds of every row (they are all recomputed)."""
    x = np.array([[0.0, 0.0], [2.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    c = np.array([[0.0, 0.0], [2.0, 0.0]])
    labels, upper, lower = np.full(4, -1, np.int32), np.zeros(4), np.zeros(4)
    k.kmeans_step_bounded(x, c, labels, upper, lower)
    _, _, rows = k.kmeans_step_bounded(x, c, labels, upper, lower, moved=np.zeros(2))
    assert rows == 1 and labels.tolist() == k.kmeans_step(x, c)[0].tolist() == [0, 1, 0, 1]
    jumped = np.array([[0.0, 0.0], [9.0, 0.0]])
    _, _, rows = k.kmeans_step_bounded(x, jumped, labels, upper, lower, moved=np.array([0.0, 7.0]))
    assert rows == 4 and labels.tolist() == k.kmeans_step(x, jumped)[0].tolist()


def test_bounded_step_checks_its_arguments():
    x = np.ones((4, 2))
    c = np.zeros((2, 2))
    good = (np.full(4, -1, np.int32), np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="labels must be a contiguous int32 array of shape"):
        k.kmeans_step_bounded(x, c, np.full(4, -1), *good[1:])
    with pytest.raises(ValueError, match="upper must be a contiguous float64"):
        k.kmeans_step_bounded(x, c, good[0], np.zeros(3), good[2])
    with pytest.raises(ValueError, match="labels must be -1"):
        k.kmeans_step_bounded(x, c, np.full(4, 2, np.int32), *good[1:])
    with pytest.raises(ValueError, match="moved must be 2 distances >= 0"):
        k.kmeans_step_bounded(x, c, *good, moved=np.array([1.0, -1.0]))
    read_only = np.zeros(4)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="lower must be writeable"):
        k.kmeans_step_bounded(x, c, good[0], good[1], read_only)
    with pytest.raises(ValueError, match="sums and counts go together"):
        k.kmeans_step_bounded(x, c, *good, sums=np.zeros((2, 2)))


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1e-161), (np.float64, 1e-150), (np.float64, 1e150),
                                          (np.float32, 1e-22), (np.float32, 1e18), (np.float32, 3e19)])
def test_bounded_step_near_the_ends_of_the_range_keeps_full_step_labels(rng, dtype, scale, needs_scipy_blas):
    """Where products and norms go subnormal (their rounding is absolute there) or overflow, no row is kept on
    bounds that do not hold: after a small move of the centroids every label is still kmeans_step's."""
    for d in (1, 8):
        x = (rng.standard_normal((600, d)) * scale).astype(dtype)
        c = x[:6].astype(np.float64)
        labels, upper, lower = np.full(600, -1, np.int32), np.zeros(600), np.zeros(600)
        k.kmeans_step_bounded(x, c, labels, upper, lower)
        for _ in range(4):
            new = c * (1.0 + 0.01 * rng.standard_normal(c.shape))
            with np.errstate(over="ignore", invalid="ignore"):
                moved = np.sqrt(((new - c) ** 2).sum(1)) * 1.001
            if not np.isfinite(moved).all():
                moved = np.full(6, np.inf)
            c = new
            got = k.kmeans_step_bounded(x, c, labels, upper, lower, moved=moved)[0]
            with np.errstate(over="ignore", invalid="ignore"):
                assert np.array_equal(got, k.kmeans_step(x, c)[0]), (d, scale)


def test_distances_of_given_labels_are_the_steps_bits(rng):
    """kmeans_distances gives, for the labels a step chose, the step's own distances bit for bit, and checks its
    labels."""
    for d, kc, dtype in ((10, 10, np.float64), (100, 30, np.float64), (7, 5, np.float32), (1, 3, np.float64)):
        x = rng.standard_normal((3000, d)).astype(dtype)
        c = rng.standard_normal((kc, d))
        labels, dist = k.kmeans_step(x, c)
        assert k.kmeans_distances(x, c, labels).tobytes() == dist.tobytes()
        assert k.kmeans_distances(x, c, labels.astype(np.int64)).tobytes() == dist.tobytes()
    assert k.kmeans_distances(np.empty((0, 2)), np.zeros((1, 2)), np.empty(0, np.int32)).shape == (0,)
    with pytest.raises(ValueError, match="labels must be 3 integers"):
        k.kmeans_distances(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2, np.int32))
    with pytest.raises(ValueError, match=r"labels must be centroids in \[0, 2\)"):
        k.kmeans_distances(np.zeros((3, 2)), np.zeros((2, 2)), np.array([0, 2, 1]))


def test_kmeans_step_gives_the_same_bits_for_any_layout_of_the_rows(rng):
    """Fortran-ordered and strided rows give kmeans_step the same labels, distances and sums as the C-ordered ones,
    as kmeans_distances and kmeans_step_bounded give (a non-contiguous x took a NumPy tile path whose distances
    differed in the last bits)."""
    x = rng.standard_normal((700, 12))
    c = x[:9].copy()
    want = k.kmeans_step(x, c, sums=np.zeros((9, 12)), counts=np.zeros(9))
    for layout in (np.asfortranarray(x), np.repeat(x, 2, axis=1)[:, ::2]):
        sums, counts = np.zeros((9, 12)), np.zeros(9)
        labels, dist = k.kmeans_step(layout, c, sums=sums, counts=counts)
        np.testing.assert_array_equal(labels, want[0])
        np.testing.assert_array_equal(dist, want[1])
        np.testing.assert_array_equal(dist, k.kmeans_distances(layout, c, labels))
