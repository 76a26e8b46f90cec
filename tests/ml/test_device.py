"""hpc.cuda.DeviceArray inputs: fits copy the rows to the host; KMeans.predict and score run the GPU twins.

Without a GPU the twins run on hpc.cuda's host fallback, which is what these tests exercise here; on a GPU host the
same tests run the CUDA kernels.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpc import cuda, ml

from .conftest import blobs, regression


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_kmeans_on_device_rows(dtype):
    """A KMeans fit on device rows equals the host fit, and predict/score on the device agree with the host's."""
    X, _ = blobs(n=400, d=3, centres=3, dtype=dtype)
    device = cuda.to_device(X)
    on_device = ml.KMeans(3, random_state=0).fit(device)
    on_host = ml.KMeans(3, random_state=0).fit(X)
    np.testing.assert_array_equal(on_device.cluster_centers_, on_host.cluster_centers_)
    labels = on_host.predict(device)
    assert isinstance(labels, cuda.DeviceArray)
    np.testing.assert_array_equal(labels.get(), on_host.predict(X))
    assert on_host.score(device) == pytest.approx(on_host.score(X), rel=1e-6)
    with pytest.raises(ValueError, match="expecting 3 features"):
        on_host.predict(cuda.to_device(X[:, :2]))


def test_other_estimators_take_device_rows():
    """Every estimator's fit takes a DeviceArray and gives the host fit's bits."""
    X, y = regression(n=200, d=4)
    device = cuda.to_device(X)
    for make in (ml.StandardScaler, ml.PCA, ml.Ridge, ml.LinearRegression):
        args = (y,) if make in (ml.Ridge, ml.LinearRegression) else ()
        a, b = make().fit(device, *args), make().fit(X, *args)
        for name in ("mean_", "coef_", "components_"):
            if hasattr(b, name):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
