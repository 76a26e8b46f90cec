"""hpc.cuda.DeviceArray inputs: KMeans fits, predicts and scores on the device (the GPU twins); the other
estimators' fits copy the rows to the host.

Without a GPU the twins run on hpc.cuda's host fallback, which is what these tests exercise here; on a GPU host the
same tests run the CUDA kernels.
"""

from __future__ import annotations

import numpy as np
import pytest
from hpc.kernels import _dispatch

from hpc import cuda, ml

from .conftest import blobs, regression

#: On the host fallback the twins compute as the CPU kernels do (the same bits); on a GPU they add in another order
#: and assign k-means labels by direct distances: the same model to rounding.
ON_GPU = cuda.is_available()


def assert_same_model(got, want, rtol=1e-12):
    if ON_GPU:
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeans_on_device_rows(dtype):
    """A KMeans fit on device rows gives the host fit's model (the same bits on the fallback, whose twins add in the
    host kernels' order), and predict/score on the device agree with the host's."""
    X, _ = blobs(n=400, d=3, centres=3, dtype=dtype)
    device = cuda.to_device(X)
    on_device = ml.KMeans(3, random_state=0).fit(device)
    on_host = ml.KMeans(3, random_state=0).fit(X)
    assert_same_model(on_device.cluster_centers_, on_host.cluster_centers_, 1e-6 if dtype == np.float32 else 1e-12)
    labels = on_host.predict(device)
    assert isinstance(labels, cuda.DeviceArray)
    np.testing.assert_array_equal(labels.get(), on_host.predict(X))
    assert on_host.score(device) == pytest.approx(on_host.score(X), rel=1e-6)
    with pytest.raises(ValueError, match="expecting 3 features"):
        on_host.predict(cuda.to_device(X[:, :2]))


@pytest.mark.parametrize("make", [ml.StandardScaler, ml.PCA, ml.Ridge, ml.LinearRegression,
                                  lambda: ml.Ridge(fit_intercept=False)], ids=["scaler", "pca", "ridge", "ols", "raw"])
def test_moment_fits_run_the_twins_on_device_blocks(make, small_blocks, monkeypatch):
    """StandardScaler, PCA and the linear models take each device block's moments from the twins (column moments,
    the Gram matrix of X or [X | y]) and give the host fit's model."""
    from hpc.cuda import twins

    X, y = regression(n=300, d=4)
    calls = []
    for name in ("column_moments", "gram"):
        original = getattr(twins, name)

        def counted(*args, _original=original, **kwargs):
            assert all(isinstance(a, cuda.DeviceArray) for a in args)
            calls.append(len(args))
            return _original(*args, **kwargs)

        monkeypatch.setattr(twins, name, counted)
    estimator = make()
    args = (y,) if isinstance(estimator, (ml.Ridge, ml.LinearRegression)) else ()
    a, b = make().fit(cuda.to_device(X), *args), make().fit(X, *args)
    assert len(calls) == -(-300 // 64) and set(calls) == {1 + len(args)}  # one call per block: X, or X and y
    for name in ("mean_", "var_", "coef_", "intercept_", "components_", "explained_variance_"):
        if hasattr(b, name):
            assert_same_model(_np_or_float(getattr(a, name)), _np_or_float(getattr(b, name)))


def _np_or_float(value):
    return np.asarray(value, dtype=np.float64)


def test_ill_conditioned_device_fit_takes_tsqr_on_the_host(monkeypatch):
    """A linear fit on device rows too ill-conditioned for Cholesky takes TSQR (on host copies of the blocks)."""
    from hpc.ml import linear

    taken = []
    original = linear._tsqr
    record = lambda blocks, *args: taken.append(blocks.on_device) or original(blocks, *args)  # noqa: E731
    monkeypatch.setattr(linear, "_tsqr", record)
    X, y = regression(n=200, d=3)
    X = np.hstack([X, X[:, :1] * (1 + 1e-13)])
    a, b = ml.LinearRegression().fit(cuda.to_device(X), y), ml.LinearRegression().fit(X, y)
    assert taken == [True, False]
    assert_same_model(a.coef_, b.coef_, 1e-9)


@pytest.mark.parametrize("init", ["k-means++", "random", "k-means||", "array"])
def test_kmeans_fit_runs_the_twins_on_device_blocks(init, small_blocks, monkeypatch):
    """Every block of a device fit stays on the device (views, and one assembled block at most) and is computed by
    the twins: the moments, the centring and each Lloyd step; the host's kmeans_step never runs."""
    from hpc import kernels
    from hpc.cuda import twins

    X, _ = blobs(n=700, d=3, centres=4)
    calls = {"kmeans_step": 0, "column_moments": 0, "subtract_row": 0, "sqdist": 0}
    for name in calls:
        original = getattr(twins, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            assert isinstance(args[0] if args else kwargs["x"], cuda.DeviceArray)
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(twins, name, counted)
    host_step = kernels.kmeans_step.__wrapped__
    monkeypatch.setattr(kernels, "kmeans_step", _dispatch.gpu_twin(_refuse(host_step)))
    given = X[[0, 100, 200, 300]] if init == "array" else init
    fitted = ml.KMeans(4, init=given, n_init=1, random_state=2).fit(cuda.to_device(X))
    blocks = -(-700 // 64)
    assert calls["column_moments"] == blocks and calls["subtract_row"] == blocks
    assert calls["kmeans_step"] >= blocks * (fitted.n_iter_ + 1)
    assert calls["sqdist"] > 0 or init in ("random", "array")
    reference = ml.KMeans(4, init=given, n_init=1, random_state=2)
    monkeypatch.setattr(kernels, "kmeans_step", _dispatch.gpu_twin(host_step))
    reference.fit(X)
    assert_same_model(fitted.cluster_centers_, reference.cluster_centers_)
    assert_same_model(fitted.inertia_, reference.inertia_)


def _refuse(host_step):
    """Return a stand-in for the host kernel that fails the test if a fit calls it."""

    import functools

    @functools.wraps(host_step)  # the name and signature the dispatch needs
    def refuse(*args, **kwargs):
        raise AssertionError(f"the host {host_step.__name__} ran in a device fit")

    return refuse


def test_device_fit_checks_its_rows_on_the_device():
    """NaN, inf, ints and 1-D device rows are refused with the host fit's messages (or a DeviceArray's)."""
    X, _ = blobs(n=50, d=2)
    bad = X.copy()
    bad[7, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        ml.KMeans(2).fit(cuda.to_device(bad))
    bad[7, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        ml.KMeans(2).fit(cuda.to_device(bad))
    with pytest.raises(TypeError, match="a DeviceArray X must be float64 or float32; got int64"):
        ml.KMeans(2).fit(cuda.to_device(X.astype(np.int64)))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D DeviceArray"):
        ml.KMeans(2).fit(cuda.to_device(X[:, 0].copy()))


@pytest.mark.parametrize("classes", [2, 4])
@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_fit_runs_the_loss_twins_on_device_blocks(classes, weighted, small_blocks, monkeypatch):
    """A LogisticRegression fit on device rows computes every block's loss and gradient with the twins (targets and
    weights moved to the device beside the rows) and gives the host fit's model."""
    from hpc import kernels
    from hpc.cuda import twins

    X, labels = blobs(n=500, d=3, centres=4)
    X, y = X - 100.0, labels % classes
    weight = np.linspace(0.5, 2.0, X.shape[0]) if weighted else None
    name = "logistic_loss_grad" if classes == 2 else "softmax_loss_grad"
    calls = []
    original = getattr(twins, name)

    def counted(*, x, y, sample_weight, **kwargs):  # hpc.kernels passes every argument by name
        assert isinstance(x, cuda.DeviceArray) and isinstance(y, cuda.DeviceArray)
        assert (sample_weight is None) != weighted and (not weighted or isinstance(sample_weight, cuda.DeviceArray))
        calls.append(x.shape[0])
        return original(x=x, y=y, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(twins, name, counted)
    host_loss = getattr(kernels, name).__wrapped__
    monkeypatch.setattr(kernels, name, _dispatch.gpu_twin(_refuse(host_loss)))
    make = lambda: ml.LogisticRegression(C=0.5, tol=1e-10, max_iter=500)  # noqa: E731
    fitted = make().fit(cuda.to_device(X), y, sample_weight=weight)
    assert calls and sum(calls) % X.shape[0] == 0  # whole passes over every row
    monkeypatch.setattr(kernels, name, _dispatch.gpu_twin(host_loss))
    reference = make().fit(X, y, sample_weight=weight)
    # the loss twins' fallback computes with NumPy (another order than the CPU kernels, as on a GPU): to rounding
    np.testing.assert_allclose(fitted.coef_, reference.coef_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fitted.intercept_, reference.intercept_, rtol=1e-6, atol=1e-9)
