"""Principal component analysis by the covariance route (scikit-learn's ``PCA(svd_solver="covariance_eigh")``)."""

from __future__ import annotations

import math as _math
import numbers as _numbers
from typing import Any

import numpy as _np

from hpc.ml import _data
from hpc.ml._base import Estimator, check_is_fitted, one_blas_thread
from hpc.ml._blocks import Blocks
from hpc.ml._moments import centered_moments
from hpc.ml._tsqr import lost_to_range, tsqr

__all__ = ["PCA"]


class PCA(Estimator):
    """Linear dimensionality reduction onto the top eigenvectors of the covariance of every rank's rows.

    One pass over the data gives the block moments (each block centred on its own mean, then merged: no
    cancellation even for data far from the origin), two reductions give the covariance, and every rank then
    solves the same small ``(n_features, n_features)`` eigenproblem. ``fit`` and ``score`` are collective;
    ``transform``, ``inverse_transform`` and ``score_samples`` are local. The fitted attributes are the same bits
    on every rank and for any number of ranks or threads.

    Args:
        n_components (int, float or None): components kept; a float in (0, 1) keeps the fewest whose explained
            variance ratio exceeds it; None keeps ``min(n_samples, n_features)``.
        copy (bool): accepted for scikit-learn; the input is never modified.
        whiten (bool): scale the projections to unit variance.
        svd_solver (str): ``"auto"``, ``"covariance_eigh"`` or ``"full"``; all run the covariance route here
            (``"full"``'s SVD of the data would need every row on one rank), with the conventions of the route
            scikit-learn would take: ``explained_variance_ratio_`` and ``noise_variance_`` over ``min(n, d)``
            eigenvalues for ``"full"`` (and ``"auto"`` below ``10 * n_features`` rows), over all ``d`` for
            ``"covariance_eigh"``; the two differ only when ``n < d``.
        tol, iterated_power, n_oversamples, power_iteration_normalizer, random_state: accepted for scikit-learn's
            parameter set; the covariance route does not use them.

    Attributes:
        components_ (ndarray (n_components, n_features)), explained_variance_, explained_variance_ratio_,
        singular_values_, mean_, n_components_, n_samples_, noise_variance_, n_features_in_: as scikit-learn's,
        in the input's float dtype; component signs follow scikit-learn's ``svd_flip`` (the largest entry of each
        component is positive).

    Example:
        >>> import numpy as np
        >>> from hpc import ml
        >>> X = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
        >>> ml.PCA(n_components=1).fit(X).explained_variance_ratio_.tolist()
        [1.0]
    """

    _estimator_type = "transformer"

    def __init__(
        self,
        n_components: int | float | None = None,
        *,
        copy: bool = True,
        whiten: bool = False,
        svd_solver: str = "auto",
        tol: float = 0.0,
        iterated_power: Any = "auto",
        n_oversamples: int = 10,
        power_iteration_normalizer: str = "auto",
        random_state: Any = None,
    ) -> None:
        self.n_components = n_components
        self.copy = copy
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.tol = tol
        self.iterated_power = iterated_power
        self.n_oversamples = n_oversamples
        self.power_iteration_normalizer = power_iteration_normalizer
        self.random_state = random_state

    def _check_solver(self) -> None:
        if self.svd_solver not in ("auto", "covariance_eigh", "full"):
            raise ValueError(
                f"svd_solver must be 'auto', 'covariance_eigh' or 'full' in hpc.ml.PCA; got {self.svd_solver!r}"
            )

    def _check_components_kind(self) -> None:
        """Refuse an ``n_components`` of no kind :meth:`_components_wanted` takes, in the local check that every rank
        agrees on: ranks compare parameters by value (``2`` and ``2.0`` alike), so ``2.0`` on one rank beside ``2``
        elsewhere was refused on that rank alone, after the check, and the others waited in the next collective.
        (None, strings and ints, whose refusals compare alike on every rank, are left to it.)"""
        k = self.n_components
        if k is None or isinstance(k, str) or (isinstance(k, _numbers.Integral) and not isinstance(k, bool)):
            return
        if not (isinstance(k, _numbers.Real) and not isinstance(k, bool) and 0.0 < k < 1.0):
            raise ValueError(f"n_components must be an int in [0, min(n_samples, n_features)], a float in (0, 1) or "
                             f"None; got {k!r}")

    @one_blas_thread
    def fit(self, X: Any, y: Any = None, *, comm: Any = None) -> PCA:
        """Fit the model on every rank's rows (collective); return self."""
        comm = self._comm_for(comm, fitting=True)
        # the parameters checked there too: a bad one on one rank raises on every rank
        rows = self._fit_rows(comm, X, local_check=lambda X: (self._check_solver(), self._check_components_kind()))
        n, d = rows.n_total, rows.n_features
        limit = min(n, d)
        k = self._components_wanted(limit, self._sklearn_route(n, d))
        blocks = Blocks(comm, rows.counts, [rows.X])
        moments = centered_moments(blocks, d)
        dtype = rows.X.dtype
        self._comm = comm
        self._set_features(rows)
        self.n_samples_ = n
        self.mean_ = moments.mean.astype(dtype)
        singular = None
        if lost_to_range(moments.m2) or _vanished(moments.m2):
            # data so large or small that the covariance overflowed or went subnormal, or a column whose squared
            # deviations are all 0 (constant, or tiny values whose squares underflowed: the factor tells which): the
            # SVD of the centred rows' TSQR factor instead (one more pass), whose squares may overflow as
            # scikit-learn's do; its singular values are kept as they are (their squares may over- or underflow)
            singular, vt = _np.linalg.svd(tsqr(blocks, d, moments.mean), full_matrices=False)[1:]
            with _np.errstate(over="ignore", under="ignore"):
                eigenvalues = singular * singular / max(n - 1, 1)
            eigenvectors = vt.T
        else:
            eigenvalues, eigenvectors = _np.linalg.eigh(moments.m2 / max(n - 1, 1))
            eigenvalues = eigenvalues[::-1].copy()
            eigenvectors = eigenvectors[:, ::-1]
        eigenvalues[eigenvalues < 0.0] = 0.0
        components = _flip_signs(eigenvectors.T.copy())
        # scikit-learn's "full" solver (its choice under "auto" unless n >= 10 d and d <= 1000) has min(n, d)
        # eigenvalues; its covariance route has d, the extra ones (near) zero: the ratios' total and the noise
        # variance follow whichever route scikit-learn would have taken
        kept = limit if self._sklearn_route(n, d) == "full" else d
        total = eigenvalues[:kept].sum()
        with _np.errstate(invalid="ignore", divide="ignore"):
            ratio = eigenvalues / total
        if isinstance(k, float):  # a fraction of the variance: the fewest components whose ratio exceeds it
            k = int(_np.searchsorted(_np.cumsum(ratio), k, side="right")) + 1
            k = min(k, limit)
        self.noise_variance_ = dtype.type(eigenvalues[k:kept].mean() if k < limit else 0.0)
        self.n_components_ = k
        self.components_ = components[:k].astype(dtype)
        # one row: scikit-learn divides its zero sum of squares by n - 1 = 0
        self.explained_variance_ = (eigenvalues[:k] if n > 1 else _np.full(k, _np.nan)).astype(dtype)
        self.explained_variance_ratio_ = ratio[:k].astype(dtype)
        with _np.errstate(over="ignore"):
            self.singular_values_ = (
                _np.sqrt(eigenvalues[:k] * max(n - 1, 1)) if singular is None else singular[:k]
            ).astype(dtype)
        return self

    def _sklearn_route(self, n: int, d: int) -> str:
        """Return the solver scikit-learn would run for this shape: "covariance_eigh" or "full"."""
        if self.svd_solver == "auto":
            return "covariance_eigh" if d <= 1_000 and n >= 10 * d else "full"
        return self.svd_solver

    def _components_wanted(self, limit: int, route: str) -> int | float:
        k = self.n_components
        if k is None:
            return limit
        if isinstance(k, str):
            raise ValueError(f"n_components={k!r} is not supported by hpc.ml.PCA (an int, a float or None)")
        if isinstance(k, _numbers.Integral) and not isinstance(k, bool):
            if not 0 <= k <= limit:
                raise ValueError(
                    f"n_components={k} must be between 0 and min(n_samples, n_features)={limit} with "
                    f"svd_solver={route!r}"  # the route scikit-learn names for this shape, as its message
                )
            return int(k)
        return float(k)  # a float in (0, 1): fit's local check refused every other kind

    def fit_transform(self, X: Any, y: Any = None, *, comm: Any = None) -> _np.ndarray:
        """Fit (collective), then project this rank's rows."""
        return self.fit(X, comm=comm).transform(X)

    def get_feature_names_out(self, input_features: Any = None) -> _np.ndarray:
        """Return the output column names, ``pca0, pca1, ...``, one per component (scikit-learn's names)."""
        check_is_fitted(self)
        return self._prefixed_names(input_features, self.n_components_)

    def transform(self, X: Any) -> _np.ndarray:
        """Return this rank's rows projected on the components (local)."""
        check_is_fitted(self)
        X = _data.check_predict_rows(X, self)
        components = self.components_.astype(X.dtype, copy=False)
        projected = X @ components.T
        projected -= self.mean_.astype(X.dtype) @ components.T
        if self.whiten:
            scale = _np.sqrt(self.explained_variance_).astype(X.dtype)
            scale[scale < _np.finfo(scale.dtype).eps] = _np.finfo(scale.dtype).eps
            projected /= scale
        return projected

    def inverse_transform(self, X: Any) -> _np.ndarray:
        """Return projections mapped back to the feature space (local)."""
        check_is_fitted(self)
        Z = _data._as_2d(X, (self.components_.dtype, _np.float32, _np.float64))  # 2-D, numbers, as check_array
        _data._check_finite(Z, "X")  # as scikit-learn's check_array: NaN or inf in projections is refused
        if Z.shape[1] != self.n_components_:
            raise ValueError(f"X has {Z.shape[1]} components, but PCA has {self.n_components_} (n_components_)")
        if self.whiten:
            scaled = _np.sqrt(self.explained_variance_[:, None]) * self.components_
            return Z @ scaled + self.mean_
        return Z @ self.components_ + self.mean_

    def get_covariance(self) -> _np.ndarray:
        """Return the data covariance of the generative model (``components_.T * S**2 * components_ + noise``), in
        the fitted dtype (computed in float64)."""
        check_is_fitted(self)
        return self._covariance().astype(self.components_.dtype, copy=False)

    def get_precision(self) -> _np.ndarray:
        """Return the precision (inverse covariance) of the generative model, in the fitted dtype (computed in
        float64)."""
        check_is_fitted(self)
        return self._precision().astype(self.components_.dtype, copy=False)

    def _covariance(self) -> _np.ndarray:
        components = self.components_.astype(_np.float64)
        variance = self.explained_variance_.astype(_np.float64)
        if self.whiten:
            components = components * _np.sqrt(variance[:, None])
        excess = _np.where(variance > self.noise_variance_, variance - self.noise_variance_, 0.0)
        cov = (components.T * excess) @ components
        cov.flat[:: cov.shape[0] + 1] += self.noise_variance_
        return cov

    def _precision(self) -> _np.ndarray:
        d = self.n_features_in_
        if self.n_components_ == 0:
            return _np.eye(d) / self.noise_variance_
        if self.noise_variance_ == 0.0:
            return _np.linalg.inv(self._covariance())
        components = self.components_.astype(_np.float64)
        variance = self.explained_variance_.astype(_np.float64)
        if self.whiten:
            components = components * _np.sqrt(variance[:, None])
        excess = _np.where(variance > self.noise_variance_, variance - self.noise_variance_, 0.0)
        precision = components @ components.T / self.noise_variance_
        precision.flat[:: precision.shape[0] + 1] += 1.0 / excess
        precision = components.T @ _np.linalg.inv(precision) @ components
        precision /= -(self.noise_variance_**2)
        precision.flat[:: d + 1] += 1.0 / self.noise_variance_
        return precision

    def score_samples(self, X: Any) -> _np.ndarray:
        """Return the log-likelihood of each of this rank's rows under the model (local), in X's dtype (computed in
        float64)."""
        check_is_fitted(self)
        X = _data.check_predict_rows(X, self)
        return self._log_likelihood(X).astype(X.dtype, copy=False)

    def _log_likelihood(self, X: _np.ndarray) -> _np.ndarray:
        """The rows' log-likelihoods in float64 (X checked): what score sums, before score_samples' cast."""
        centred = X - self.mean_
        precision = self._precision()
        log_like = -0.5 * _np.sum(centred * (centred @ precision), axis=1)
        sign, logdet = _np.linalg.slogdet(precision)
        log_like -= 0.5 * (self.n_features_in_ * _math.log(2.0 * _math.pi) - (logdet if sign > 0 else -_np.inf))
        return log_like

    def score(self, X: Any, y: Any = None, *, comm: Any = None) -> float:
        """Return the average log-likelihood over every rank's rows (collective)."""
        comm = self._comm_for(comm)

        def local_rows() -> _np.ndarray:  # in float64: a float32 fit's score is not summed from rounded values
            check_is_fitted(self)
            return self._log_likelihood(_data.check_predict_rows(X, self))

        local = self._agreed(comm, local_rows)
        total, count = comm.allreduce(_np.array([local.sum(), float(local.shape[0])]), reproducible=True)
        _data.refuse_no_rows(count, self)  # on every rank alike: the count is global
        return float(total / count)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _vanished(m2: _np.ndarray) -> bool:
    """Whether some column's squared deviations sum to exactly 0: a constant column, or values so small (below
    about 1e-162) that every square underflowed, which the covariance cannot tell apart."""
    return bool(m2.size) and bool((_np.diagonal(m2) == 0.0).any())


def _flip_signs(components: _np.ndarray) -> _np.ndarray:
    """Make the largest-magnitude entry of each component positive (scikit-learn's ``svd_flip`` on ``V``)."""
    biggest = _np.argmax(_np.abs(components), axis=1)
    signs = _np.sign(components[_np.arange(components.shape[0]), biggest])
    signs[signs == 0] = 1.0
    return components * signs[:, None]
