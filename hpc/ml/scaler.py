"""Standardize features by removing the mean and scaling to unit variance (``sklearn.preprocessing.StandardScaler``)."""

from __future__ import annotations

from typing import Any

import numpy as _np

from hpc.ml import _data
from hpc.ml._base import Estimator, check_is_fitted, one_blas_thread
from hpc.ml._blocks import Blocks
from hpc.ml._moments import centered_moments

__all__ = ["StandardScaler"]


class StandardScaler(Estimator):
    """Standardize features over the rows of every rank: ``(x - mean_) / scale_``.

    ``fit`` is collective (every rank passes its own rows; ``comm`` defaults to ``mpi.world()``); ``transform``
    and ``inverse_transform`` are local. ``mean_``, ``var_`` and ``scale_`` are the same bits on every rank and for
    any number of ranks or threads.

    Args:
        copy (bool): transform a copy (True) or, where the dtype allows, the input in place.
        with_mean (bool): centre the data.
        with_std (bool): scale to unit variance.

    Attributes:
        mean_ (ndarray of shape (n_features,) or None), var_ (ndarray or None), scale_ (ndarray or None):
            as scikit-learn's; near-constant features get scale 1.
        n_samples_seen_ (int or float): rows over every rank; with ``sample_weight``, the weights' total (float),
            as scikit-learn (the row count as a float when neither ``with_mean`` nor ``with_std``).
        n_features_in_ (int).

    Example:
        >>> import numpy as np
        >>> from hpc import ml
        >>> ml.StandardScaler().fit(np.array([[0.0, 1.0], [2.0, 3.0]])).mean_.tolist()
        [1.0, 2.0]

    .. seealso:: :class:`sklearn.preprocessing.StandardScaler`.
    """

    _estimator_type = "transformer"

    def __init__(self, *, copy: bool = True, with_mean: bool = True, with_std: bool = True) -> None:
        self.copy = copy
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> StandardScaler:
        """Compute the mean and variance over every rank's rows (collective), each weighted by ``sample_weight`` if
        given; return self. Forgets earlier :meth:`partial_fit` calls."""
        for name in ("n_samples_seen_", "mean_", "var_", "scale_"):
            self.__dict__.pop(name, None)
        return self.partial_fit(X, y, sample_weight, comm=comm)

    def _continued_state(self) -> Any:
        """For a later ``partial_fit`` batch, the running moments it merges into (ranks holding different ones
        ended with different models, silently)."""
        if not hasattr(self, "n_samples_seen_"):
            return None
        return {name: getattr(self, name, None) for name in ("n_samples_seen_", "mean_", "var_")}

    @one_blas_thread
    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> StandardScaler:
        """Add a batch of every rank's rows to the mean and variance (collective: every rank passes its part of the
        batch, possibly none), each row weighted by ``sample_weight`` if given; return self.

        The batch's moments are computed as :meth:`fit` computes them (the same bits on any split of the batch) and
        merged with the running ones by Chan et al.'s formula, so the result depends on the sequence of batches, not
        on how each batch was split over ranks or threads. A later batch must have the first one's features (their
        count and names, as scikit-learn checks them).
        """
        first = not hasattr(self, "n_samples_seen_")
        comm = self._comm_for(comm, fitting=first)  # a later batch continues on the first one's communicator
        rows = self._fit_rows(comm, X, local_check=None if first else (lambda checked: self._continues(X, checked)))
        d = rows.n_features
        weight = _data.agreed_sample_weight(comm, sample_weight, rows.X.shape[0])
        self._comm = comm
        if first:
            self._set_features(rows)
        seen = 0 if first else self.n_samples_seen_
        if weight is not None:  # a batch of weight 0, first or later, is refused, as by scikit-learn 1.9
            _data.total_weight(comm, weight)
        if not (self.with_mean or self.with_std):
            self.n_samples_seen_ = seen + (rows.n_total if weight is None else float(rows.n_total))
            self.mean_ = self.var_ = self.scale_ = None
            return self
        # the weights stay on the host (beside device rows too), where the weighted moments are taken
        arrays = [rows.X] + ([weight] if weight is not None else [])
        blocks = Blocks(comm, rows.counts, arrays)
        batch = centered_moments(blocks, d, diagonal=True, weighted=weight is not None)
        if first:
            n, mean, m2 = batch.n, batch.mean, batch.m2
        else:  # Chan et al.: the batch's moments about its own mean, shifted to the merged one
            n = seen + batch.n
            delta = batch.mean - self.mean_
            mean = self.mean_ + delta * (batch.n / n)
            m2 = self.var_ * seen + batch.m2 + delta * delta * (seen * batch.n / n) if self.with_std else None
        self.n_samples_seen_ = n
        self.mean_ = mean
        if not self.with_std:
            self.var_ = self.scale_ = None
            return self
        self.var_ = m2 / n
        # scikit-learn's bound on the error of a two-pass variance: below it a feature counts as constant
        eps = _np.finfo(_np.float64).eps
        constant = self.var_ <= n * eps * self.var_ + (n * self.mean_ * eps) ** 2
        scale = _np.sqrt(self.var_)
        scale[constant] = 1.0
        self.scale_ = scale
        return self

    def _continues(self, X: Any, checked: _np.ndarray) -> None:
        """Raise ValueError unless a later batch ``X`` has the features of the first (scikit-learn's checks)."""
        _data.check_feature_names(X, self)
        if checked.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {checked.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")

    def get_feature_names_out(self, input_features: Any = None) -> _np.ndarray:
        """Return the output column names: the input's (``feature_names_in_``, else ``x0, x1, ...``)."""
        return self._input_names(input_features)

    def transform(self, X: Any, copy: bool | None = None) -> _np.ndarray:
        """Return this rank's rows standardized (local)."""
        check_is_fitted(self)
        X = self._checked(X, copy)
        if self.with_mean:
            X -= self.mean_.astype(X.dtype)
        if self.with_std:
            X /= self.scale_.astype(X.dtype)
        return X

    def inverse_transform(self, X: Any, copy: bool | None = None) -> _np.ndarray:
        """Return this rank's standardized rows mapped back to the original scale (local)."""
        check_is_fitted(self)
        X = self._checked(X, copy, names=False)  # as scikit-learn: the column names of scaled data are not checked
        if self.with_std:
            X *= self.scale_.astype(X.dtype)
        if self.with_mean:
            X += self.mean_.astype(X.dtype)
        return X

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None, *, comm: Any = None) -> _np.ndarray:
        """Fit (collective), then transform this rank's rows."""
        return self.fit(X, sample_weight=sample_weight, comm=comm).transform(X)

    def _checked(self, X: Any, copy: bool | None, *, names: bool = True) -> _np.ndarray:
        original = X
        X = _data.check_predict_rows(X, self, names=names)
        copy = self.copy if copy is None else copy
        if copy or X is not original or not X.flags.writeable:
            X = X.copy()
        return X

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags
