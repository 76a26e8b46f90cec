"""The CUDA sources of hpc.ml's GPU fits, run on the CPU thread by thread (tests/cuda/emulate.py).

These kernels have never been able to run on this project's CI (no GPU): here their logic runs anyway, against
NumPy, for both dtypes, with launch shapes that make threads stride over several rows and segments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.cuda import emulate

pytestmark = pytest.mark.skipif(not emulate.available(), reason="g++ is needed to build the emulations")

KMEANS = {
    "kmeans_label_f32": "PPPPiii", "kmeans_label_f64": "PPPPiii",
    "kmeans_segment_sums_f32": "PPPiii", "kmeans_segment_sums_f64": "PPPiii",
    "kmeans_merge_segments": "PPq",
}  # fmt: skip
COLUMNS = {
    "column_moments_f32": "PPPPii", "column_moments_f64": "PPPPii",
    "subtract_row_f32": "PPPqi", "subtract_row_f64": "PPPqi",
    "pair_sums_f32": "PPPiii", "pair_sums_f64": "PPPiii",
    "gram_f32": "PPPPPiii", "gram_f64": "PPPPPiii",
}  # fmt: skip
LOGISTIC = {
    "binary_rows_f32": "PPPPdPii", "binary_rows_f64": "PPPPdPii",
    "softmax_rows_f32": "PPPPPPiii", "softmax_rows_f64": "PPPPPPiii",
    "weighted_column_sums_f32": "PPPiii", "weighted_column_sums_f64": "PPPiii",
    "logistic_merge_segments": "PPq",
}  # fmt: skip
SUFFIX = {np.float32: "f32", np.float64: "f64"}
SEGMENTS = 32  # kmeans.cu


@pytest.fixture(scope="module")
def kmeans_cu(tmp_path_factory: pytest.TempPathFactory) -> emulate.Emulation:
    return emulate.build("kmeans.cu", KMEANS, Path(tmp_path_factory.mktemp("emu")))


@pytest.fixture(scope="module")
def columns_cu(tmp_path_factory: pytest.TempPathFactory) -> emulate.Emulation:
    return emulate.build("columns.cu", COLUMNS, Path(tmp_path_factory.mktemp("emu")))


@pytest.fixture(scope="module")
def logistic_cu(tmp_path_factory: pytest.TempPathFactory) -> emulate.Emulation:
    return emulate.build("logistic.cu", LOGISTIC, Path(tmp_path_factory.mktemp("emu")))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,d", [(1, 1, 1), (37, 3, 2), (300, 7, 5), (1000, 16, 3)])
def test_kmeans_label_is_the_direct_argmin(kmeans_cu: emulate.Emulation, dtype: type, m: int, k: int, d: int) -> None:
    """Labels are the first nearest centre by direct distances in double; dist is that distance, exactly."""
    rng = np.random.default_rng(m + k)
    x = rng.normal(size=(m, d)).astype(dtype)
    c = rng.normal(size=(k, d))
    c[-1] = c[0]  # a tie: the first of the two wins
    labels = np.full(m, -1, np.int32)
    dist = np.full(m, np.nan)
    kmeans_cu.launch(f"kmeans_label_{SUFFIX[dtype]}", grid=3, block=64, args=(x, c, labels, dist, m, k, d))
    direct = ((x.astype(np.float64)[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    assert np.array_equal(labels, np.argmin(direct, axis=1))
    np.testing.assert_allclose(dist, direct.min(axis=1), rtol=1e-14, atol=0)
    assert (dist >= 0).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k,d", [(1, 1, 1), (31, 4, 2), (33, 2, 3), (4096, 10, 7), (1000, 3, 40)])
def test_kmeans_segment_sums_then_merge(kmeans_cu: emulate.Emulation, dtype: type, m: int, k: int, d: int) -> None:
    """The segments' sums, merged in order, are every cluster's feature sums and row count."""
    rng = np.random.default_rng(d)
    x = rng.normal(size=(m, d)).astype(dtype)
    labels = rng.integers(0, k, size=m).astype(np.int32)
    parts = np.zeros((SEGMENTS, k, d + 1))
    kmeans_cu.launch(f"kmeans_segment_sums_{SUFFIX[dtype]}", grid=2, block=32, args=(x, labels, parts, m, k, d))
    out = np.full((k, d + 1), np.nan)
    kmeans_cu.launch("kmeans_merge_segments", grid=1, block=16, args=(parts, out, k * (d + 1)))
    want_sums = np.zeros((k, d))
    np.add.at(want_sums, labels, x.astype(np.float64))
    np.testing.assert_allclose(out[:, :d], want_sums, rtol=1e-12, atol=1e-12)
    assert np.array_equal(out[:, d], np.bincount(labels, minlength=k).astype(np.float64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,d", [(1, 1), (5, 300), (4096, 3)])
def test_column_moments(columns_cu: emulate.Emulation, dtype: type, m: int, d: int) -> None:
    """Column sums, squared deviations about the block's mean and the deviations' sum, in double, with a large
    offset kept exact: the same bits as NumPy's row-by-row sums of the centred columns."""
    rng = np.random.default_rng(m)
    x = (1e4 + rng.normal(size=(m, d))).astype(dtype)
    sums, m2, devs = np.full(d, np.nan), np.full(d, np.nan), np.full(d, np.nan)
    columns_cu.launch(f"column_moments_{SUFFIX[dtype]}", grid=2, block=128, args=(x, sums, m2, devs, m, d))
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(sums, x64.sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(m2, ((x64 - x64.mean(axis=0)) ** 2).sum(axis=0), rtol=1e-9, atol=1e-9)
    centred = x64 - sums / m
    assert np.array_equal(devs, centred.sum(axis=0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_subtract_row_matches_numpy_bits(columns_cu: emulate.Emulation, dtype: type) -> None:
    """x - shift in x's dtype, the same bits as NumPy's broadcast subtraction."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(77, 6)).astype(dtype)
    shift = rng.normal(size=6).astype(dtype)
    out = np.empty_like(x)
    columns_cu.launch(f"subtract_row_{SUFFIX[dtype]}", grid=2, block=64, args=(x, shift, out, 77, 6))
    assert np.array_equal(out, x - shift)


def test_launch_checks_its_arguments(kmeans_cu: emulate.Emulation) -> None:
    """A wrong argument count or a non-array pointer is refused before anything runs."""
    with pytest.raises(ValueError, match="takes 3 arguments"):
        kmeans_cu.launch("kmeans_merge_segments", grid=1, block=1, args=(1, 2))
    with pytest.raises(TypeError, match="C-contiguous NumPy arrays"):
        kmeans_cu.launch("kmeans_merge_segments", grid=1, block=1, args=([1.0], np.zeros(1), 1))


def _gradient_from_rows(lib: emulate.Emulation, suffix: str, x: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Run steps 2 and 3 of logistic.cu: the segments' weighted column sums, merged."""
    m, d = x.shape
    width_r = r.shape[1]
    parts = np.full((SEGMENTS, width_r, d + 1), np.nan)
    lib.launch(f"weighted_column_sums_{suffix}", grid=3, block=64, args=(x, r, parts, m, d, width_r))
    out = np.full((width_r, d + 1), np.nan)
    lib.launch("logistic_merge_segments", grid=1, block=32, args=(parts, out, width_r * (d + 1)))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,d", [(1, 1), (50, 3), (4096, 12)])
def test_binary_loss_and_gradient_match_the_cpu_kernel(logistic_cu: emulate.Emulation, dtype: type, m: int,
                                                        d: int) -> None:
    """Rows, then weighted column sums, then the merge: the CPU kernel's loss and gradient (both branches of z)."""
    from hpc import kernels

    rng = np.random.default_rng(m)
    x = (3 * rng.normal(size=(m, d))).astype(dtype)
    y = rng.integers(0, 2, m).astype(np.float64)
    weight = rng.uniform(0.5, 2.0, m)
    coef, intercept = rng.normal(size=d), 0.3
    r = np.full((m, 2), np.nan)
    logistic_cu.launch(f"binary_rows_{SUFFIX[dtype]}", grid=2, block=64, args=(x, y, weight, coef, intercept, r, m, d))
    out = _gradient_from_rows(logistic_cu, SUFFIX[dtype], x, r)
    loss, grad = kernels.logistic_loss_grad(x, y, coef, intercept, weight)
    np.testing.assert_allclose(out[0], grad, rtol=1e-10, atol=1e-10)
    assert out[1, d] == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,d,k", [(1, 1, 2), (60, 4, 3), (3000, 7, 10)])
def test_softmax_loss_and_gradient_match_the_cpu_kernel(logistic_cu: emulate.Emulation, dtype: type, m: int, d: int,
                                                         k: int) -> None:
    """The multinomial rows (softmax, loss, residuals) and sums give the CPU kernel's loss and (k, d + 1) gradient."""
    from hpc import kernels

    rng = np.random.default_rng(k)
    x = (2 * rng.normal(size=(m, d))).astype(dtype)
    y = rng.integers(0, k, m).astype(np.int64)
    weight = rng.uniform(0.5, 2.0, m)
    coef, intercept = rng.normal(size=(k, d)), rng.normal(size=k)
    r = np.full((m, k + 1), np.nan)
    logistic_cu.launch(f"softmax_rows_{SUFFIX[dtype]}", grid=2, block=64,
                       args=(x, y, weight, coef, intercept, r, m, d, k))
    out = _gradient_from_rows(logistic_cu, SUFFIX[dtype], x, r)
    loss, grad = kernels.softmax_loss_grad(x, y, coef, intercept, weight)
    np.testing.assert_allclose(out[:k], grad, rtol=1e-9, atol=1e-9)
    assert out[k, d] == pytest.approx(loss, rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,d,t", [(1, 1, 0), (40, 3, 0), (500, 4, 2), (3, 2, 1)])
def test_pair_sums_and_gram_of_x_beside_y(columns_cu: emulate.Emulation, dtype: type, m: int, d: int, t: int) -> None:
    """The sums of [x | y] and their Gram matrix about a shift: exactly symmetric, NumPy's to rounding."""
    rng = np.random.default_rng(m + t)
    x = (50 + rng.normal(size=(m, d))).astype(dtype)
    y = rng.normal(size=(m, t)) if t else np.zeros((1, 1))  # an unread stand-in when t == 0
    w = d + t
    sums = np.full(w, np.nan)
    columns_cu.launch(f"pair_sums_{SUFFIX[dtype]}", grid=1, block=64, args=(x, y, sums, m, d, t))
    z = np.hstack([x.astype(np.float64), y[:, :t]]) if t else x.astype(np.float64)
    np.testing.assert_allclose(sums, z.sum(axis=0), rtol=1e-13)
    shift = sums / m
    out, devs = np.full((w, w), np.nan), np.full(w, np.nan)
    columns_cu.launch(f"gram_{SUFFIX[dtype]}", grid=2, block=8, args=(x, y, shift, out, devs, m, d, t))
    centred = z - shift
    np.testing.assert_allclose(out, centred.T @ centred, rtol=1e-10, atol=1e-10)
    assert np.array_equal(out, out.T)
    assert np.array_equal(devs, centred.sum(axis=0))  # each diagonal thread's deviations, in row order
