"""Fits run in several threads at once on one process (scikit-learn's n_jobs under the threading or hpc backend)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from hpc import ml, mpi


@pytest.mark.timeout(300)
def test_concurrent_fits_equal_serial_fits_bit_for_bit():
    """Fits in 4 threads at once give the bits of the same fits one by one. The reproducible sums kept their
    scratch buffers on the shared communicator engine: threads mixed each other's sums (29 of 160 scaler fits wrong,
    a LogisticRegression coefficient sum of 63.65 for 2.10)."""
    rng = np.random.default_rng(0)
    Xs = [rng.standard_normal((300, 5)) + i for i in range(8)]
    ys = [(X[:, 0] > X[:, 0].mean()).astype(int) for X in Xs]
    fits = {
        "scaler": lambda i: ml.StandardScaler().fit(Xs[i]).mean_,
        "logistic": lambda i: ml.LogisticRegression().fit(Xs[i], ys[i]).coef_,
        "pca": lambda i: ml.PCA(2).fit(Xs[i]).components_,
        "sum": lambda i: mpi.sum(mpi.world(), Xs[i], reproducible=True),
    }
    for name, fit in fits.items():
        serial = [fit(i) for i in range(len(Xs))]
        for _ in range(5):
            with ThreadPoolExecutor(4) as ex:
                together = list(ex.map(fit, range(len(Xs))))
            assert all(np.array_equal(a, b) for a, b in zip(serial, together)), name
