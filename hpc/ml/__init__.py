"""Distributed estimators with scikit-learn's API and answers, the same bits on any number of ranks or threads.

``fit`` is collective: every rank of the communicator passes its own rows (``comm=None`` means ``mpi.world()``,
one process without a launcher), and every rank ends with the same model. ``predict`` and ``transform`` work on
the rows a rank passes them; ``score`` is collective. Sums run over fixed global row blocks and meet in
reproducible reductions, and random draws are keyed by global row index, so the fitted attributes are the same
bits for 1..N ranks, any thread count and any split of the rows (see docs/ml.md for what is stable where).

Example:
    >>> import numpy as np
    >>> from hpc import ml
    >>> X = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]])
    >>> km = ml.KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_[:, 0].round(2).tolist())
    [0.05, 5.05]
"""

from typing import TYPE_CHECKING

from hpc import _launcher
from hpc.ml.kmeans import KMeans
from hpc.ml.linear import LinearRegression, Ridge
from hpc.ml.logistic import LogisticRegression
from hpc.ml.pca import PCA
from hpc.ml.rows import load_rows, shard
from hpc.ml.scaler import StandardScaler

# in a rank, mark it as one for the worker processes scikit-learn's n_jobs starts: they leave the rank's job alone
# and refuse collective fits with a reason (hpc._launcher.started_by_rank)
_launcher.mark_rank()

__all__ = [
    "PCA",
    "ConvergenceWarning",
    "KMeans",
    "LinearRegression",
    "LogisticRegression",
    "NotFittedError",
    "Ridge",
    "StandardScaler",
    "load_rows",
    "shard",
]


if TYPE_CHECKING:  # for type checkers: at run time these are scikit-learn's own classes (__getattr__ below)

    class NotFittedError(ValueError, AttributeError):
        """Raised when a method needs a fitted estimator (``sklearn.exceptions.NotFittedError``)."""

    class ConvergenceWarning(UserWarning):
        """Warned when an iterative fit stops before it converges (``sklearn.exceptions.ConvergenceWarning``)."""


def __getattr__(name: str) -> type:
    # scikit-learn's own classes where it is installed (importing it costs a second: only when asked for)
    if name in ("ConvergenceWarning", "NotFittedError"):
        from hpc.ml._base import sklearn_class

        return sklearn_class(name)
    raise AttributeError(f"module 'hpc.ml' has no attribute {name!r}")
