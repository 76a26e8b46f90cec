"""Shared data and helpers for the hpc.ml tests: data every rank can rebuild, splits, fitted-attribute bits."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.ml import _blocks

FITTED = {
    "StandardScaler": ("mean_", "var_", "scale_", "n_samples_seen_"),
    "PCA": ("components_", "explained_variance_", "explained_variance_ratio_", "singular_values_", "mean_",
            "noise_variance_", "n_components_"),
    "LinearRegression": ("coef_", "intercept_", "singular_", "rank_"),
    "Ridge": ("coef_", "intercept_"),
    "LogisticRegression": ("coef_", "intercept_", "n_iter_", "classes_"),
    "KMeans": ("cluster_centers_", "inertia_", "n_iter_"),
}  # fmt: skip


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 64 rows, so that small data spans many blocks and blocks span ranks."""
    monkeypatch.setattr(_blocks, "BLOCK_ROWS", 64)


def blobs(n=600, d=5, centres=4, seed=0, dtype=np.float64):
    """Return clustered data ``(X, labels)``, the same on every rank."""
    rng = np.random.default_rng(seed)
    middles = rng.normal(scale=6.0, size=(centres, d))
    labels = rng.integers(0, centres, n)
    X = middles[labels] + rng.normal(size=(n, d)) + 100.0  # an offset: the centring must keep the digits
    return X.astype(dtype), labels


def regression(n=600, d=6, seed=1, targets=None):
    """Return ``(X, y)`` of a noisy linear model, the same on every rank."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.normal(size=d) * 5
    w = rng.normal(size=(d,) if targets is None else (d, targets))
    y = X @ w + 0.1 * rng.normal(size=w.shape[1:] and (n, targets) or n) + 2.0
    return X, y


def bits(estimator):
    """Return the fitted attributes of ``estimator`` as comparable bytes (arrays, floats, ints)."""
    out = {}
    for name in FITTED[type(estimator).__name__]:
        value = getattr(estimator, name)
        out[name] = np.asarray(value).tobytes() + str(np.asarray(value).dtype).encode()
    return out


def uneven_counts(n, size):
    """Split ``n`` rows over ``size`` ranks unevenly, rank 1 holding none (when there is a rank 1)."""
    if size == 1:
        return [n]
    weights = np.array([r + 2 for r in range(size)], dtype=float)
    weights[1] = 0.0
    counts = np.floor(n * weights / weights.sum()).astype(int)
    counts[-1] += n - counts.sum()
    return counts.tolist()


def classification(n=300, d=4, classes=2, seed=0, spread=1.5, weights=None):
    """Return overlapping classes ``(X, y)`` (not separable, so even an unpenalized fit is finite)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(classes, d))
    y = rng.choice(classes, size=n, p=weights)
    X = centres[y] + rng.normal(size=(n, d)) * rng.uniform(0.7, 1.5, d)
    return X, y


def rel_err(actual, expected):
    """Return ``max|actual - expected| / max|expected|``: an error relative to the size of the whole answer."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = np.abs(expected).max() if expected.size else 0.0
    return float(np.abs(actual - expected).max() / scale) if scale > 0 else float(np.abs(actual).max(initial=0.0))
