"""hpc.kernels pairwise squared distances and k-means assignment against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


def ref_sqdist(x, y):
    return ((x[:, None, :].astype(np.float64) - y[None, :, :]) ** 2).sum(-1)


def force(monkeypatch, form):
    """Make both kernels take ``form`` whatever the sizes: "direct", "gemm" (with ``parallel=True``, the threads each
    making their own products, in many chunks) or "gemm-numpy" (no compiled BLAS: NumPy's products, serially)."""
    from hpc.kernels import _checks, distances

    limit = 1 << 60 if form == "direct" else -1
    monkeypatch.setattr(distances, "_DIRECT_MAX_WORK", limit)
    monkeypatch.setattr(distances, "_DIRECT_MAX_ROW_WORK", limit)
    monkeypatch.setattr(distances, "_CHUNK_WORK", 1 << 13)
    monkeypatch.setattr(_checks, "COMPILED_BLAS", _checks.compiled_blas() and form != "gemm-numpy")


@pytest.fixture(params=["gemm", "gemm-numpy", "direct"])
def form(request, monkeypatch):
    """Each test taking it runs on each form and variant."""
    force(monkeypatch, request.param)
    return request.param


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sqdist_and_assign_match_numpy(form, rng, dtype, parallel):
    """sqdist equals the broadcast NumPy formula and kmeans_assign its row-wise argmin and minimum."""
    x = rng.standard_normal((301, 13)).astype(dtype)
    c = rng.standard_normal((17, 13)).astype(dtype)
    ref = ref_sqdist(x, c)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(k.sqdist(x, c, parallel=parallel), ref, rtol=rtol)
    labels, d = k.kmeans_assign(x, c, parallel=parallel)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, ref.argmin(axis=1))
    np.testing.assert_allclose(d, ref.min(axis=1), rtol=rtol)


def test_distances_exact_ties_strided_and_nan(form, rng):
    """Identical points are at distance 0, ties pick the first centroid, strided input works, NaN never wins."""
    x = rng.standard_normal((10, 4))
    assert (np.diag(k.sqdist(x, x)) == 0.0).all()
    c = np.array([[1.0, 0.0], [1.0, 0.0], [-1.0, 0.0]])
    assert k.kmeans_assign(np.array([[2.0, 0.0]]), c)[0].tolist() == [0]
    base = rng.standard_normal((20, 8))
    np.testing.assert_allclose(k.sqdist(base[::2, ::2], base[1::4, ::2]), ref_sqdist(base[::2, ::2], base[1::4, ::2]))
    cn = np.array([[np.nan, 0.0], [5.0, 0.0]])
    assert k.kmeans_assign(np.array([[0.0, 0.0]]), cn)[0].tolist() == [1]
    labels, d = k.kmeans_assign(np.array([[np.nan, 0.0]]), cn)
    assert labels.tolist() == [0] and np.isnan(d[0])
    assert k.sqdist(np.empty((0, 3)), np.ones((2, 3))).shape == (0, 2)


def test_distances_errors():
    """Feature counts must agree and there must be a centroid."""
    with pytest.raises(ValueError, match="y must have 3 columns"):
        k.sqdist(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="centroids must have at least one row"):
        k.kmeans_assign(np.ones((2, 3)), np.ones((0, 3)))


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1000, 6, 5), (700, 40, 30), (300, 3, 130), (40, 100, 3)])
def test_sqdist_blocks_get_the_bits_of_their_own_calls(rng, dtype, parallel, shape):
    """With block_rows each block's distances are those of a call on its rows alone: thin problems (one direct
    call), wide ones (the GEMM form per block; the short last block of 8 rows takes the direct form on its own),
    and blocks of the direct form beside the GEMM form."""
    m, d, n = shape
    x = (rng.standard_normal((m, d)) * 3 + 1).astype(dtype)
    y = rng.standard_normal((n, d)).astype(dtype)
    for block in (1, 8, 64, 173, m - 8, m, m + 5):
        got = k.sqdist(x, y, parallel=parallel, block_rows=block)
        out = np.empty_like(got)
        assert k.sqdist(x, y, out=out, parallel=parallel, block_rows=block) is out
        for lo in range(0, m, block):
            want = k.sqdist(x[lo : lo + block], y, parallel=parallel)
            assert got[lo : lo + block].tobytes() == want.tobytes(), (block, lo)
            assert out[lo : lo + block].tobytes() == want.tobytes(), (block, lo)


def test_sqdist_refuses_a_bad_block_size_on_host_and_device():
    from hpc import cuda

    x = np.ones((5, 2))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="block_rows must be an int >= 1"):
            k.sqdist(x, x, block_rows=bad)
        with pytest.raises(ValueError, match="block_rows must be an int >= 1"):
            k.sqdist(cuda.to_device(x), cuda.to_device(x), block_rows=bad)
    assert k.sqdist(cuda.to_device(x), cuda.to_device(x), block_rows=2).get().tolist() == np.zeros((5, 5)).tolist()


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("offset", [0.0, 1e3, 1e6])
def test_distances_far_from_the_origin_are_the_direct_forms(form, rng, offset, parallel):
    """Points clustered far from the origin (where |x|^2+|c|^2-2x.c cancels) get the direct form's answers."""
    x = rng.standard_normal((700, 9)) * 0.01 + offset
    c = x[:30] + rng.standard_normal((30, 9)) * 1e-3
    ref = ref_sqdist(x, c)
    np.testing.assert_allclose(k.sqdist(x, c, parallel=parallel), ref, rtol=1e-12)
    labels, d = k.kmeans_assign(x, c, parallel=parallel)
    np.testing.assert_array_equal(labels, ref.argmin(axis=1))
    np.testing.assert_allclose(d, ref.min(axis=1), rtol=1e-12)
    assert (k.sqdist(x, x[:50], parallel=parallel)[np.arange(50), np.arange(50)] == 0.0).all()


def test_many_tiles_and_float32(form, rng):
    """Many tiles (more rows than one tile holds) and float32 input give the direct form's answers."""
    x = rng.standard_normal((5000, 3)).astype(np.float32)
    c = rng.standard_normal((40, 3)).astype(np.float32)
    ref = ref_sqdist(x, c)
    np.testing.assert_allclose(k.sqdist(x, c, parallel=False), ref, rtol=1e-6)
    labels, d = k.kmeans_assign(x, c, parallel=False)
    assert d.dtype == np.float32
    np.testing.assert_array_equal(labels, ref.argmin(axis=1))


def test_parallel_assign_works_in_tiles(form, rng):
    """The parallel variant does not hold every distance at once: peak memory stays far below rows x centroids."""
    import tracemalloc

    x = rng.standard_normal((60000, 4))
    c = rng.standard_normal((256, 4))
    k.kmeans_assign(x[:1000], c, parallel=True)  # compiled and warmed outside the trace
    tracemalloc.start()
    try:
        k.kmeans_assign(x, c, parallel=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.shape[0] * c.shape[0] * 8 / 4  # the whole product matrix would be 123 MB


def test_sqdist_with_an_out_over_its_inputs(form, rng):
    """An out that is an input, or overlaps one, gives the answer of separate arrays (the inputs are copied)."""
    x = rng.random((6, 6))
    expected = k.sqdist(x.copy(), x.copy())
    same = x.copy()
    np.testing.assert_allclose(k.sqdist(same, same, out=same), expected)
    z = rng.random((8, 8))
    expected = k.sqdist(z[:, :4].copy(), z[:3, :4].copy())
    np.testing.assert_allclose(k.sqdist(z[:, :4], z[:3, :4], out=z[:, 4:7]), expected)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_assign_gives_the_same_bits_on_either_form(rng, dtype, monkeypatch):
    """kmeans_assign's direct form (small or thin inputs) and GEMM form give the same bits: ties, NaN and infinite
    rows and centroids, far-off data and strided input included."""
    x = rng.standard_normal((40, 5)).astype(dtype)
    x[3] = np.nan
    x[4, 1] = np.inf
    x[5:9] *= 1e30 if dtype == np.float64 else 1e15
    x[9:20] = x[9:20] * 1e-3 + 1e6
    c = np.concatenate([x[9:12] + 1e-4, x[:2], x[:2], rng.standard_normal((3, 5)).astype(dtype)])  # a tie pair
    c[-1, 2] = np.nan
    cases = [(x, c), (x[::3, ::2], c[::2, ::2]), (x, c[:1]), (x[:1], c)]
    for xs, cs in cases:
        force(monkeypatch, "direct")
        direct = k.kmeans_assign(xs, cs)
        for form, parallel in [("gemm", False), ("gemm", True), ("gemm-numpy", True), ("direct", True)]:
            force(monkeypatch, form)
            other = k.kmeans_assign(xs, cs, parallel=parallel)
            np.testing.assert_array_equal(direct[0], other[0])
            assert direct[1].dtype == other[1].dtype == dtype
            np.testing.assert_array_equal(direct[1], other[1])  # NaN where NaN, the same bits elsewhere


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sqdist_forms_agree_to_rounding(rng, dtype, monkeypatch):
    """sqdist's direct form (small or thin inputs) and GEMM form agree to rounding: identical points are exactly 0,
    NaN and inf land where NumPy's formula puts them, an overlapping out is safe."""
    x = rng.standard_normal((30, 4)).astype(dtype)
    x[2, 1] = np.nan
    x[3, 0] = np.inf
    y = np.concatenate([x[5:9], rng.standard_normal((5, 4)).astype(dtype)])
    ref = ref_sqdist(x, y)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    for form in ("direct", "gemm", "gemm-numpy"):
        force(monkeypatch, form)
        got = k.sqdist(x, y, parallel=form != "direct")
        assert got.dtype == dtype
        np.testing.assert_allclose(got, ref, rtol=rtol)  # NaN where NaN, inf where inf
        assert (got[np.arange(5, 9), np.arange(4)] == 0.0).all()
        z = np.concatenate([x[:4], y[:4]]).T.copy()  # an out over the inputs' memory
        np.testing.assert_allclose(k.sqdist(z[:, :4].T, z[:, 4:].T, out=z[:, :4]), ref[:4, :4], rtol=rtol)


def _edge_cases():
    """Inputs at float64's edges where the GEMM form's shortcuts fail and the direct form must decide."""
    s = np.sqrt(0.6 * np.finfo(np.float64).max)
    rng = np.random.default_rng(0)
    big = np.sqrt(0.9 * np.finfo(np.float64).max)
    return {
        # a centroid whose squared norm overflows (finite coordinates) is the nearest
        "norm overflows": (np.repeat([[1e154, 0.8e154]], 20, 0),
                           np.concatenate([[[0.0, 0.0]], np.repeat([[1e154, 1e154]], 9, 0)])),
        # |x|^2 + |y|^2 overflows, the distance does not
        "norms' sum overflows": (np.repeat([[s, 0.0]], 20, 0), np.repeat([[0.5 * s, np.sqrt(0.75) * s]], 9, 0)),
        # 2 x.c overflows (without a fused multiply-add the GEMM value is -inf)
        "product overflows": (np.array([[big, 0.0], [0.0, 1.0]]), np.array([[big, 0.0], [0.0, 0.0], [1.0, 1.0]])),
        # subnormal distances: ties and the nearest decided on the direct values
        "subnormal tie": (np.repeat([[2e-162]], 20, 0), np.concatenate([[[0.0]], np.full((9, 1), 4e-162)])),
        "subnormal": (rng.standard_normal((300, 3)) * 1e-162, rng.standard_normal((100, 3)) * 1e-162),
    }  # fmt: skip


@pytest.mark.filterwarnings("error::RuntimeWarning")  # an overflow the kernel handles is not the caller's warning
@pytest.mark.parametrize("case", list(_edge_cases()))
def test_gemm_form_at_the_edges_of_float64_gives_the_direct_answers(case, monkeypatch):
    """Where norms or products overflow, or the values are subnormal, both forms give the direct form's labels
    and distances (kmeans_assign: the same bits) and sqdist NumPy's float64 values."""
    x, c = _edge_cases()[case]
    with np.errstate(over="ignore", under="ignore"):
        ref = ref_sqdist(x, c)
    force(monkeypatch, "direct")
    direct = k.kmeans_assign(x, c)
    np.testing.assert_array_equal(direct[0], ref.argmin(axis=1))
    np.testing.assert_array_equal(direct[1], ref.min(axis=1))
    for form, parallel in [("gemm", False), ("gemm", True), ("gemm-numpy", False)]:
        force(monkeypatch, form)
        labels, dist = k.kmeans_assign(x, c, parallel=parallel)
        np.testing.assert_array_equal(labels, direct[0])
        np.testing.assert_array_equal(dist, direct[1])
        got = k.sqdist(x, c, parallel=parallel)
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, ref, rtol=1e-14, atol=0)


def test_float32_points_are_not_copied_to_float64_whole(rng):
    """The rows' float64 norms of float32 points are made a block at a time: labelling 1 GB of float32 points took
    a 2 GB float64 copy beside them. Here the peak beside the input is the results, the norms and a few tiles."""
    import tracemalloc

    x = rng.standard_normal((40_000, 64)).astype(np.float32)  # 10 MiB
    c = x[:256].copy()
    want = k.kmeans_assign(x[:2000], c)  # compiled before the count
    tracemalloc.start()
    try:
        labels, dist = k.kmeans_assign(x, c)
        assign_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        d = k.sqdist(x, c[:16])
        sqdist_peak = tracemalloc.get_traced_memory()[1] - d.nbytes
    finally:
        tracemalloc.stop()
    assert assign_peak < x.nbytes // 2, assign_peak  # a float64 copy alone is twice x
    assert sqdist_peak < x.nbytes // 2, sqdist_peak
    np.testing.assert_array_equal(labels[:2000], want[0])
    np.testing.assert_array_equal(dist[:2000], want[1])


@pytest.mark.parametrize("m, d", [(3, 10_000), (14, 40_000), (1, 9000), (2, 9000), (4099, 64), (0, 5)])
def test_float32_norms_in_blocks_are_the_bits_of_the_whole(m, d):
    """The blockwise float64 norms of float32 rows equal einsum's over the whole converted array, wide rows too
    (einsum sums a row of more than 8192 elements in another order when it is alone in its block)."""
    from hpc.kernels import distances

    a = np.random.default_rng(m + d).standard_normal((m, d)).astype(np.float32)
    a64 = a.astype(np.float64)
    assert distances._sqnorms(a).tobytes() == np.einsum("ij,ij->i", a64, a64).tobytes()
