"""Tests for hpc.cuda.twins against NumPy (on the fallback here, on the CUDA kernels on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import cuda
from hpc.cuda import twins

SIZES = [1, 255, 2048, 2049, 100_003]
FLOATS = [np.float32, np.float64]


def _tol(dtype: type) -> dict[str, float]:
    return {"rtol": 2e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}


def _vec(n: int, dtype: type, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", SIZES)
def test_reductions_match_numpy(n: int, dtype: type, no_leaks: None) -> None:
    """sum, dot, nrm2, min and max equal NumPy's on random data of awkward sizes."""
    xh, yh = _vec(n, dtype), _vec(n, dtype, 1)
    x, y = cuda.to_device(xh), cuda.to_device(yh)
    x64, y64 = xh.astype(np.float64), yh.astype(np.float64)
    assert twins.sum(x) == pytest.approx(x64.sum(), rel=1e-9, abs=1e-9)
    assert twins.dot(x, y) == pytest.approx(x64 @ y64, rel=1e-9, abs=1e-9)
    assert twins.nrm2(x) == pytest.approx(np.sqrt(x64 @ x64), rel=1e-12)
    assert twins.min(x) == float(xh.min()) and twins.max(x) == float(xh.max())


def test_nrm2_does_not_overflow_and_min_max_see_nan(no_leaks: None) -> None:
    """nrm2 of huge values stays finite; min and max return NaN when the data holds one; empty min raises."""
    big = cuda.to_device(np.full(10, 1e300))
    assert twins.nrm2(big) == pytest.approx(1e300 * np.sqrt(10))
    assert twins.nrm2(cuda.to_device(np.zeros(5))) == 0.0
    x = _vec(5000, np.float64)
    x[3333] = np.nan
    d = cuda.to_device(x)
    assert np.isnan(twins.min(d)) and np.isnan(twins.max(d)) and np.isnan(twins.nrm2(d))
    with pytest.raises(ValueError, match="empty"):
        twins.min(cuda.empty(0))
    assert twins.sum(cuda.empty(0)) == 0.0


@pytest.mark.parametrize("dtype", FLOATS)
def test_axpy_in_place_and_out(dtype: type, no_leaks: None) -> None:
    """axpy writes a*x + y into y by default, or into out."""
    xh, yh = _vec(3001, dtype), _vec(3001, dtype, 1)
    x, y = cuda.to_device(xh), cuda.to_device(yh)
    out = cuda.empty_like(x)
    assert twins.axpy(0.5, x, y, out=out) is out
    np.testing.assert_allclose(out.get(), dtype(0.5) * xh + yh, **_tol(dtype))
    assert twins.axpy(2.0, x, y) is y
    np.testing.assert_allclose(y.get(), dtype(2.0) * xh + yh, **_tol(dtype))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("shape", [(7,), (3, 1), (5, 300), (64, 1000)])
def test_softmax_matches_numpy(shape: tuple[int, ...], dtype: type, no_leaks: None) -> None:
    """Row softmax equals the NumPy formula and each row sums to one."""
    xh = (np.random.default_rng(2).standard_normal(shape) * 10).astype(dtype)
    got = twins.softmax(cuda.to_device(xh)).get()
    rows = xh.reshape(-1, shape[-1]).astype(np.float64)
    e = np.exp(rows - rows.max(axis=1, keepdims=True))
    np.testing.assert_allclose(got.reshape(rows.shape), e / e.sum(axis=1, keepdims=True), **_tol(dtype))


def test_softmax_nan_row_is_nan(no_leaks: None) -> None:
    """A row holding a NaN comes out all NaN and the other rows are untouched."""
    xh = np.zeros((2, 4))
    xh[1, 2] = np.nan
    got = twins.softmax(cuda.to_device(xh)).get()
    assert np.allclose(got[0], 0.25) and np.isnan(got[1]).all()


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("n", [1, 2047, 2048, 2049, 500_001])
def test_scans_match_cumsum(n: int, dtype: type, no_leaks: None) -> None:
    """Inclusive scan equals numpy.cumsum and exclusive scan is it shifted right by one with a leading zero."""
    xh = np.random.default_rng(3).integers(-4, 5, n).astype(dtype)  # small integers: exact in any order
    x = cuda.to_device(xh)
    inc = np.cumsum(xh, dtype=dtype)
    assert np.array_equal(twins.inclusive_scan(x).get(), inc)
    exc = twins.exclusive_scan(x).get()
    assert exc[0] == 0 and np.array_equal(exc[1:], inc[:-1])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize(("m", "n", "d"), [(1, 1, 1), (17, 33, 5), (40, 7, 70)])
def test_sqdist_matches_numpy(m: int, n: int, d: int, dtype: type, no_leaks: None) -> None:
    """Pairwise squared distances equal the broadcast NumPy formula and are exact on the diagonal."""
    xh, yh = _vec(m * d, dtype).reshape(m, d), _vec(n * d, dtype, 1).reshape(n, d)
    got = twins.sqdist(cuda.to_device(xh), cuda.to_device(yh)).get()
    want = ((xh[:, None, :].astype(np.float64) - yh[None, :, :]) ** 2).sum(-1)
    np.testing.assert_allclose(got, want, **_tol(dtype))
    same = twins.sqdist(cuda.to_device(xh), cuda.to_device(xh)).get()
    assert np.all(np.diag(same) == 0.0) and np.all(same >= 0.0)


@pytest.mark.parametrize("dtype", FLOATS)
def test_kmeans_assign_matches_argmin(dtype: type, no_leaks: None) -> None:
    """Labels are the argmin of the distances (first on ties) and the distances are the minimum."""
    xh = _vec(500 * 3, dtype).reshape(500, 3)
    ch = np.vstack([_vec(8 * 3, dtype, 1).reshape(8, 3), _vec(3, dtype, 1).reshape(1, 3)])  # row 8 ties row 0
    labels, dist = twins.kmeans_assign(cuda.to_device(xh), cuda.to_device(ch))
    d2 = ((xh[:, None, :].astype(np.float64) - ch[None, :, :]) ** 2).sum(-1)
    assert labels.dtype == np.int64
    assert np.array_equal(labels.get(), d2.argmin(axis=1))
    np.testing.assert_allclose(dist.get(), d2.min(axis=1), **_tol(dtype))


def test_kmeans_nan_rules(no_leaks: None) -> None:
    """A number beats a NaN distance and a row of all-NaN distances gets label 0 with distance NaN."""
    xh = np.array([[0.0], [np.nan]])
    ch = np.array([[np.nan], [2.0]])
    labels, dist = twins.kmeans_assign(cuda.to_device(xh), cuda.to_device(ch))
    assert labels.get().tolist() == [1, 0]
    got = dist.get()
    assert got[0] == 4.0 and np.isnan(got[1])


def test_twins_check_their_arguments() -> None:
    """Wrong types, dtypes, layouts and shapes raise with the argument's name."""
    x = cuda.to_device(np.ones(4))
    with pytest.raises(TypeError, match="x must be an hpc.cuda.DeviceArray; got ndarray"):
        twins.sum(np.ones(4))
    with pytest.raises(TypeError, match="float32 or float64; got int64"):
        twins.sum(cuda.to_device(np.ones(4, np.int64)))
    with pytest.raises(ValueError, match="y must be a float64 array of shape"):
        twins.dot(x, cuda.to_device(np.ones(5)))
    with pytest.raises(TypeError, match="y must be a float64 array of shape"):
        twins.dot(x, cuda.to_device(np.ones(4, np.float32)))
    strided = cuda.DeviceArray((2,), np.float64, strides=(16,), ptr=x.ptr, owner=x)
    with pytest.raises(ValueError, match="C-contiguous"):
        twins.sum(strided)
    with pytest.raises(ValueError, match="1 or 2 dimensions"):
        twins.softmax(cuda.empty((2, 2, 2)))
    with pytest.raises(ValueError, match="centroids must be"):
        twins.kmeans_assign(cuda.empty((3, 2)), cuda.empty((0, 2)))


@pytest.mark.gpu
def test_gpu_twins_on_a_stream_match_numpy() -> None:
    """On a GPU, array twins queued on a non-default stream give NumPy's results after synchronize."""
    s = cuda.Stream()
    xh = _vec(1 << 20, np.float64)
    x = cuda.to_device(xh, stream=s)
    sm = twins.softmax(x.reshape(1024, -1), stream=s)
    sc = twins.inclusive_scan(x, stream=s)
    s.synchronize()
    rows = xh.reshape(1024, -1)
    e = np.exp(rows - rows.max(axis=1, keepdims=True))
    np.testing.assert_allclose(sm.get(), e / e.sum(axis=1, keepdims=True), rtol=1e-12)
    np.testing.assert_allclose(sc.get(), np.cumsum(xh), rtol=1e-9, atol=1e-9)
    assert twins.sum(x, stream=s) == pytest.approx(xh.sum(), rel=1e-12)


def test_hpc_kernels_dispatch_device_arrays_to_the_twins():
    """hpc.kernels functions given DeviceArrays run the twins and agree with the host kernels."""
    from hpc import kernels

    x = np.linspace(-1.0, 1.0, 1000)
    d = cuda.to_device(x)
    assert kernels.sum(d) == pytest.approx(kernels.sum(x))
    assert kernels.dot(d, d) == pytest.approx(float(x @ x))
    assert kernels.max(d) == x.max()
    y = cuda.to_device(np.ones_like(x))  # DeviceArrays passed by keyword dispatch too
    np.testing.assert_allclose(kernels.axpy(2.0, x=d, y=y, out=cuda.empty(x.shape, x.dtype)).get(), 2 * x + 1)
    assert kernels.dot(x=d, y=d) == pytest.approx(float(x @ x))


@pytest.mark.parametrize("dtype", FLOATS)
def test_nrm2_of_infinities_is_inf(dtype: type, no_leaks: None) -> None:
    """nrm2 is inf (not NaN) when the data holds one or more infinities and no NaN, as hpc.kernels.nrm2."""
    for values in ([np.inf, 1.0], [np.inf, -np.inf, 2.0], [-np.inf]):
        assert twins.nrm2(cuda.to_device(np.array(values, dtype))) == np.inf


def test_float32_scans_carry_float64_partial_sums(no_leaks: None) -> None:
    """float32 scans carry their partial sums in float64 as hpc.kernels does (one rounding per output)."""
    xh = np.full(100_000, 0.1, np.float32)
    want = np.cumsum(xh, dtype=np.float64)
    inc = twins.inclusive_scan(cuda.to_device(xh)).get()
    exc = twins.exclusive_scan(cuda.to_device(xh)).get()
    assert np.array_equal(inc, want.astype(np.float32))
    assert exc[0] == 0 and np.array_equal(exc[1:], want[:-1].astype(np.float32))


def test_softmax_of_zero_columns_is_empty(no_leaks: None) -> None:
    """A softmax over rows of zero columns returns the empty result, as hpc.kernels.softmax."""
    assert twins.softmax(cuda.to_device(np.empty((2, 0)))).shape == (2, 0)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("m,k,d", [(1, 1, 1), (500, 9, 3), (5000, 4, 20)])
def test_kmeans_step_twin_sums_and_labels(dtype: type, m: int, k: int, d: int, no_leaks: None) -> None:
    """Labels are the direct-distance argmin (first on ties), sqdists its distance, and sums/counts get added to."""
    xh = _vec(m * d, dtype).reshape(m, d)
    ch = _vec(k * d, np.float64, 1).reshape(k, d)
    ch[-1] = ch[0]  # a tie: the first wins
    sums, counts = np.ones((k, d)), np.ones(k)
    labels, dist = twins.kmeans_step(cuda.to_device(xh), ch, sums=sums, counts=counts)
    d2 = ((xh[:, None, :].astype(np.float64) - ch[None, :, :]) ** 2).sum(-1)
    assert labels.dtype == np.int32 and dist.dtype == np.float64
    lh = labels.get()
    assert np.array_equal(lh, d2.argmin(axis=1))
    np.testing.assert_allclose(dist.get(), d2.min(axis=1), rtol=1e-13)
    want = np.ones((k, d))
    np.add.at(want, lh, xh.astype(np.float64))
    np.testing.assert_allclose(sums, want, rtol=1e-12, atol=1e-12)
    assert np.array_equal(counts, 1.0 + np.bincount(lh, minlength=k))
    again = np.ones((k, d)), np.ones(k)
    twins.kmeans_step(cuda.to_device(xh), cuda.to_device(ch), sums=again[0], counts=again[1])
    assert np.array_equal(again[0], sums) and np.array_equal(again[1], counts)  # the same bits on a rerun


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("m, block", [(1000, 300), (64, 64), (7, 3)])
def test_kmeans_step_twin_block_rows(dtype: type, m: int, block: int, no_leaks: None) -> None:
    """With block_rows each block's sums and counts are those of a call on its rows alone, and the labels and
    distances those of an unblocked call."""
    xh = _vec(m * 3, dtype).reshape(m, 3)
    ch = _vec(12, np.float64, 2).reshape(4, 3)
    blocks = -(-m // block)
    sums, counts = np.zeros((blocks, 4, 3)), np.zeros((blocks, 4))
    labels, dist = twins.kmeans_step(cuda.to_device(xh), ch, sums=sums, counts=counts, block_rows=block)
    whole = twins.kmeans_step(cuda.to_device(xh), ch)
    assert np.array_equal(labels.get(), whole[0].get()) and np.array_equal(dist.get(), whole[1].get())
    for b in range(blocks):
        own = np.zeros((4, 3)), np.zeros(4)
        twins.kmeans_step(cuda.to_device(xh[b * block : (b + 1) * block]), ch, sums=own[0], counts=own[1])
        assert np.array_equal(sums[b], own[0]) and np.array_equal(counts[b], own[1])
    with pytest.raises(ValueError, match="sums must be float64"):
        twins.kmeans_step(cuda.to_device(xh), ch, sums=np.zeros((4, 3)), counts=np.zeros(4), block_rows=block)
    with pytest.raises(ValueError, match="block_rows must be an int"):
        twins.kmeans_step(cuda.to_device(xh), ch, block_rows=0)


def test_kmeans_step_twin_checks_its_arguments() -> None:
    """Bad centroids, a lone sums or counts, and wrong sums shapes raise before any work."""
    x = cuda.to_device(np.ones((4, 2)))
    with pytest.raises(ValueError, match="centroids must be"):
        twins.kmeans_step(x, np.ones((2, 3)))
    with pytest.raises(ValueError, match="centroids must be"):
        twins.kmeans_step(x, np.ones((0, 2)))
    with pytest.raises(ValueError, match="go together"):
        twins.kmeans_step(x, np.ones((2, 2)), sums=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="sums must be a float64 NumPy array"):
        twins.kmeans_step(x, np.ones((2, 2)), sums=np.zeros((2, 3)), counts=np.zeros(2))
    labels, dist = twins.kmeans_step(cuda.empty((0, 2)), np.ones((2, 2)))
    assert labels.shape == dist.shape == (0,)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("m,d", [(0, 3), (1, 1), (4096, 7)])
def test_column_moments_and_subtract_row(dtype: type, m: int, d: int, no_leaks: None) -> None:
    """Column sums and deviations about the mean survive a large offset; subtract_row is NumPy's x - shift."""
    xh = (1e3 + _vec(m * d, dtype).reshape(m, d)).astype(dtype)
    sums, m2 = twins.column_moments(cuda.to_device(xh))
    x64 = xh.astype(np.float64)
    np.testing.assert_allclose(sums, x64.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(m2, ((x64 - x64.mean(axis=0)) ** 2).sum(axis=0) if m else 0.0, rtol=1e-9, atol=1e-9)
    again, m2_again, devs = twins.column_moments(cuda.to_device(xh), deviations=True)
    assert np.array_equal(again, sums) and np.array_equal(m2_again, m2)
    np.testing.assert_allclose(devs, (x64 - sums / max(m, 1)).sum(axis=0), atol=1e-9)
    shift = _vec(d, dtype, 2)
    assert np.array_equal(twins.subtract_row(cuda.to_device(xh), shift).get(), xh - shift)
    x = cuda.to_device(xh)
    assert twins.subtract_row(x, shift, out=x) is x and np.array_equal(x.get(), xh - shift)
    with pytest.raises(ValueError, match=r"shift must have shape"):
        twins.subtract_row(x, np.ones(d + 1))


def test_kmeans_step_dispatches_from_hpc_kernels(no_leaks: None) -> None:
    """hpc.kernels.kmeans_step given a DeviceArray runs the twin and agrees with the host kernel."""
    from hpc import kernels

    xh = _vec(300 * 4, np.float64).reshape(300, 4)
    ch = xh[:5].copy()
    labels, dist = kernels.kmeans_step(cuda.to_device(xh), ch)
    want_labels, want_dist = kernels.kmeans_step(xh, ch)
    assert np.array_equal(labels.get(), want_labels)
    np.testing.assert_allclose(dist.get(), want_dist, rtol=1e-12)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("on_device", [False, True])
def test_loss_twins_match_the_cpu_kernels(dtype: type, on_device: bool, no_leaks: None) -> None:
    """The binary and multinomial loss twins give the CPU kernels' loss and gradient, with targets and weights on
    the host or on the device, and no weights at all."""
    from hpc.kernels import logistic

    m, d, k = 3000, 5, 4
    rng = np.random.default_rng(3)
    xh = rng.normal(size=(m, d)).astype(dtype)
    y01 = rng.integers(0, 2, m).astype(np.float64)
    codes = rng.integers(0, k, m).astype(np.int64)
    weight = rng.uniform(0.5, 2.0, m)
    put = cuda.to_device if on_device else (lambda a: a)
    x = cuda.to_device(xh)
    tol = {"rtol": 1e-6 if dtype == np.float32 else 1e-10, "atol": 1e-9}
    for w in (None, weight):
        loss, grad = twins.logistic_loss_grad(x, put(y01), np.ones(d), 0.5, None if w is None else put(w))
        want = logistic.logistic_loss_grad(xh, y01, np.ones(d), 0.5, w)
        assert loss == pytest.approx(want[0], rel=1e-10) and grad.shape == (d + 1,)
        np.testing.assert_allclose(grad, want[1], **tol)
        coef, b = rng.normal(size=(k, d)), rng.normal(size=k)
        loss, grad = twins.softmax_loss_grad(x, put(codes), coef, b, None if w is None else put(w))
        want = logistic.softmax_loss_grad(xh, codes, coef, b, w)
        assert loss == pytest.approx(want[0], rel=1e-10) and grad.shape == (k, d + 1)
        np.testing.assert_allclose(grad, want[1], **tol)


def test_loss_twins_check_their_arguments() -> None:
    """Wrong coefficient and target shapes raise, naming the argument."""
    x = cuda.to_device(np.ones((4, 2)))
    with pytest.raises(ValueError, match="coef must have shape"):
        twins.logistic_loss_grad(x, np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="coef must be"):
        twins.softmax_loss_grad(x, np.zeros(4, np.int64), np.ones(2))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("with_y", [False, True])
@pytest.mark.parametrize("centred", [True, False])
def test_gram_twin(dtype: type, with_y: bool, centred: bool, no_leaks: None) -> None:
    """Sums and the (centred or raw) Gram matrix of [x | y], exactly symmetric."""
    rng = np.random.default_rng(5)
    xh = (10 + rng.normal(size=(700, 5))).astype(dtype)
    yh = rng.normal(size=(700, 2))
    z = np.hstack([xh.astype(np.float64), yh]) if with_y else xh.astype(np.float64)
    sums, m2 = twins.gram(cuda.to_device(xh), cuda.to_device(yh) if with_y else None, centred=centred)
    np.testing.assert_allclose(sums, z.sum(axis=0), rtol=1e-12)
    zc = z - z.mean(axis=0) if centred else z
    np.testing.assert_allclose(m2, zc.T @ zc, rtol=1e-9, atol=1e-9)
    assert np.array_equal(m2, m2.T)
    again, m2_again, devs = twins.gram(cuda.to_device(xh), cuda.to_device(yh) if with_y else None, centred=centred,
                                       deviations=True)
    assert np.array_equal(again, sums) and np.array_equal(m2_again, m2)
    np.testing.assert_allclose(devs, (z - sums / 700).sum(axis=0) if centred else 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="y must be a float64 array of 700 rows"):
        twins.gram(cuda.to_device(xh), cuda.to_device(yh[:5]))


def test_accurate_sum_of_finite_data_whose_partial_sums_overflow_is_the_hosts():
    """The twin's accurate sum gives the host kernel's answers: the finite true sum where partial sums overflow
    (math.fsum raises there, and the twin used to return NumPy's inf), inf or NaN for non-finite data."""
    from hpc import kernels

    for values in ([1e308, 1e308, -1e308], [1e308, 1e308], [-1e308, -1e308], [np.inf, 1.0], [1.0, 2.0]):
        x = np.array(values)
        assert kernels.sum(cuda.to_device(x), accurate=True) == kernels.sum(x, accurate=True)
    assert np.isnan(kernels.sum(cuda.to_device(np.array([np.inf, -np.inf])), accurate=True))


def test_a_scalar_argument_is_checked_as_on_the_host():
    """axpy's a on DeviceArrays: None and arrays with elements raise the host's TypeError (None became NaN there)."""
    from hpc import kernels

    x = cuda.to_device(np.ones(3))
    for bad in (None, np.array([2.0])):
        with pytest.raises(TypeError, match="a must be a real number"):
            kernels.axpy(bad, x, cuda.to_device(np.ones(3)))
    assert kernels.axpy(np.float32(2.0), x, cuda.to_device(np.ones(3))).get().tolist() == [3.0, 3.0, 3.0]


def test_per_row_device_vectors_of_another_dtype_are_converted():
    """float32 targets or int32 labels as DeviceArrays, which the host kernels and the fallback take: the GPU path
    converts them (it refused them)."""
    like = cuda.to_device(np.ones((3, 2)))
    got = twins._row_vector("y", cuda.to_device(np.array([0.0, 1.0, 1.0], np.float32)), 3, np.float64, like)
    assert got.dtype == np.float64 and got.get().tolist() == [0.0, 1.0, 1.0]
    got = twins._row_vector("y", cuda.to_device(np.array([2, 0, 1], np.int32)), 3, np.int64, like)
    assert got.dtype == np.int64 and got.get().tolist() == [2, 0, 1]
    with pytest.raises(ValueError, match=r"y must have shape \(3,\)"):
        twins._row_vector("y", cuda.to_device(np.ones(4)), 3, np.float64, like)


@pytest.mark.parametrize("gpu_path", [False, True])
def test_softmax_loss_grad_checks_labels_and_intercepts_as_the_host(monkeypatch, gpu_path):
    """Labels that are no class indices (0.9, -0.5, strings) and intercepts of any shape but (k,) are refused as
    the host kernel refuses them, on the fallback and on the GPU path (whose launch is a stub here): the twin had
    truncated 0.9 to class 0 and broadcast a (k, 1) intercept per row."""
    if gpu_path:
        monkeypatch.setattr(twins, "_gpu", lambda: True)
        monkeypatch.setattr(twins, "_loss_grad_gpu", lambda x, kernel, fmt, args, tail, width, stream:
                            np.zeros((width, x.shape[1] + 1)))
    x = cuda.to_device(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    coef = np.zeros((3, 2))
    for y in (np.array([0.9, 1.9, 2.9]), np.array([-0.5, 1.0, 2.0]), np.array(["0", "1", "2"]), np.array([0, 1, 3])):
        for labels in (y, cuda.to_device(y)) if y.dtype.kind == "f" else (y,):
            with pytest.raises(ValueError, match=r"y must be \(3,\) class indices in \[0, 3\)"):
                twins.softmax_loss_grad(x, labels, coef, np.zeros(3))
    for b in (0.5, np.zeros(1), np.zeros((1, 3)), np.zeros((3, 1))):
        with pytest.raises(ValueError, match=r"intercept must be \(3,\), one per class"):
            twins.softmax_loss_grad(x, np.array([0, 1, 2]), coef, b)
    loss, grad = twins.softmax_loss_grad(x, np.array([0.0, 1.0, 2.0]), coef, np.zeros(3))  # whole floats are classes
    assert grad.shape == (3, 3)




def test_fallback_axpy_is_a_fused_multiply_add() -> None:
    """The fallback's ``a*x + y`` has the host kernel's bits where rounding the product first would not: a product
    beyond the range meeting an infinite y (-inf, not NaN), and a near cancellation (exact, not 10% off)."""
    from hpc import kernels

    rng = np.random.default_rng(3)
    cases = [
        (2.0, np.array([1e308]), np.array([-np.inf])),
        (1.0000000000000002, np.array([1e308]), np.array([-1e308])),
        (np.float32(2), np.array([3e38], np.float32), np.array([-np.inf], np.float32)),
        (1.3, rng.normal(size=1000), -1.3 * rng.normal(size=1000)),
        (1e-150, rng.normal(size=100) * 1e-160, rng.normal(size=100) * 1e-310),
        (1e10, rng.normal(size=100) * 1e300, rng.normal(size=100) * 1e308),
    ]
    x = rng.normal(size=1000)
    cases.append((1.3, x, -1.3 * x))
    for a, xh, yh in cases:
        want = kernels.axpy(a, xh, yh.copy())
        got = twins.axpy(a, cuda.to_device(xh), cuda.to_device(yh)).get()
        np.testing.assert_array_equal(got, want)


def test_every_twin_checks_its_stream_and_marks_its_results() -> None:
    """A wrong ``stream=`` raises TypeError on the fallback as on a GPU, and array results record the stream."""
    x = cuda.to_device(np.ones((4, 2)))
    v = cuda.to_device(np.ones(8))
    calls = {
        "axpy": lambda **kw: twins.axpy(2.0, v, v.copy(), **kw), "dot": lambda **kw: twins.dot(v, v, **kw),
        "sum": lambda **kw: twins.sum(v, **kw), "nrm2": lambda **kw: twins.nrm2(v, **kw),
        "min": lambda **kw: twins.min(v, **kw), "max": lambda **kw: twins.max(v, **kw),
        "softmax": lambda **kw: twins.softmax(x, **kw), "inclusive_scan": lambda **kw: twins.inclusive_scan(v, **kw),
        "exclusive_scan": lambda **kw: twins.exclusive_scan(v, **kw), "sqdist": lambda **kw: twins.sqdist(x, x, **kw),
        "kmeans_assign": lambda **kw: twins.kmeans_assign(x, x, **kw),
        "kmeans_step": lambda **kw: twins.kmeans_step(x, np.ones((2, 2)), **kw),
        "column_moments": lambda **kw: twins.column_moments(x, **kw),
        "subtract_row": lambda **kw: twins.subtract_row(x, np.ones(2), **kw),
        "logistic_loss_grad": lambda **kw: twins.logistic_loss_grad(x, np.zeros(4), np.ones(2), **kw),
        "softmax_loss_grad": lambda **kw: twins.softmax_loss_grad(x, np.zeros(4, np.int64), np.ones((2, 2)), **kw),
        "gram": lambda **kw: twins.gram(x, **kw),
    }
    assert sorted(calls) == sorted(twins.__all__)
    s = cuda.Stream()
    for name, call in calls.items():
        with pytest.raises(TypeError, match="stream must be an hpc.cuda.Stream or None"):
            call(stream="bad")
        result = call(stream=s)
        arrays = [r for r in (result if isinstance(result, tuple) else (result,)) if isinstance(r, cuda.DeviceArray)]
        assert all(a.stream is s for a in arrays), name


def test_kmeans_assign_twin_refuses_another_dtype_with_type_error() -> None:
    x = cuda.to_device(np.ones((3, 2)))
    with pytest.raises(TypeError, match="same dtype"):
        twins.kmeans_assign(x, cuda.to_device(np.ones((2, 2), np.float32)))


def test_fallback_axpy_of_0d_arrays_matches_the_host() -> None:
    """0-d float64 inputs whose result is not finite, or whose product is tiny, failed in the fused multiply-add's
    repair step (their arithmetic gives NumPy scalars, which take no item assignment)."""
    from hpc import kernels

    cases = [(2.0, np.inf, 1.0), (2.0, 1.0, np.nan), (1e-300, 1e-300, 1.0), (1e300, 1e300, 0.0), (2.0, 3.0, 1.0)]
    for a, xv, yv in cases:
        x, y = np.array(xv), np.array(yv)
        want = kernels.axpy(a, x, y.copy())
        got = kernels.axpy(a, cuda.to_device(x), cuda.to_device(y)).get()
        assert got.shape == () and np.array_equal(got, want, equal_nan=True), (a, xv, yv, got, want)


def test_kmeans_step_refuses_freed_centroids(no_leaks: None) -> None:
    """float64 C-contiguous device centroids are used in place: freed, they had been read anyway (all labels 0 and
    infinite distances, or a segfault once the pool had handed the memory back)."""
    x = cuda.to_device(np.random.default_rng(0).standard_normal((50, 4)))
    c = cuda.to_device(np.zeros((3, 4)))
    c.free()
    for block_rows in (None, 16):
        with pytest.raises(RuntimeError, match="after free"):
            twins.kmeans_step(x, c, block_rows=block_rows)
    x.free()


def test_kmeans_step_twin_takes_the_nan_rules_of_kmeans_assign(no_leaks: None) -> None:
    """NumPy's argmin takes the first NaN: a NaN centroid had won every row. A number beats a NaN distance and an
    all-NaN row gets 0, as kmeans_assign (host and twin) choose; the host kernel needs finite input."""
    xh = np.array([[0.0, 0.0], [1.0, 1.0], [9.0, 9.0], [np.nan, 0.0]])
    ch = np.array([[0.0, 0.0], [np.nan, 0.0], [9.0, 9.0]])
    labels, dist = twins.kmeans_step(cuda.to_device(xh), ch)
    assigned = twins.kmeans_assign(cuda.to_device(xh), cuda.to_device(ch))[0].get()
    assert labels.get().tolist() == assigned.tolist() == [0, 0, 2, 0]
    assert dist.get()[:3].tolist() == [0.0, 2.0, 0.0] and np.isnan(dist.get()[3])


def test_a_scalar_intercept_for_one_class_is_refused_as_on_the_host() -> None:
    """k = 1 and intercept=0.5: the host refuses shape (); the twin had read it as (1,)."""
    from hpc import kernels

    x = np.ones((3, 2))
    for arg in (x, cuda.to_device(x)):
        with pytest.raises(ValueError, match=r"intercept must be \(1,\), one per class; got shape \(\)"):
            kernels.softmax_loss_grad(arg, np.zeros(3, int), np.ones((1, 2)), intercept=0.5)
