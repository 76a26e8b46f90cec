"""Least squares and ridge regression by the normal equations over every rank's rows (``LinearRegression``, ``Ridge``).

One pass over the data gives the centred Gram matrix of ``[X | y]`` (block moments, merged without cancellation);
every rank then solves the same small system by Cholesky. When that system is ill-conditioned (condition number
above :data:`MAX_CONDITION` (1e8), or singular), or its entries overflowed or went subnormal (data beyond about
1e154 or below about 1e-146 in scale), a second pass takes the stable route instead: each block's QR factor,
gathered in global block order and factored again (TSQR), then a least-squares solve of the small triangular
system, which gives the minimum-norm solution as ``scipy.linalg.lstsq`` on the whole data would.
"""

from __future__ import annotations

import numbers as _numbers
import warnings as _warnings
from typing import Any

import numpy as _np

from hpc.ml import _data
from hpc.ml._base import Estimator, check_is_fitted, one_blas_thread, sklearn_class
from hpc.ml._blocks import Blocks
from hpc.ml._moments import centered_moments
from hpc.ml._tsqr import lost_to_range, tsqr

__all__ = ["LinearRegression", "MAX_CONDITION", "Ridge"]

#: Above this condition number of the regularized Gram matrix the normal equations lose too many digits (their
#: relative error grows as it times the rounding unit: the data's condition number squared), and the fit takes
#: TSQR: below 1e8 the coefficients stay within ~1e-8 of a least-squares solve on all the rows.
MAX_CONDITION = 1e8


class _LinearModel(Estimator):
    """What LinearRegression and Ridge share: the fit's passes, predict and the collective R^2 score."""

    _estimator_type = "regressor"

    def _checked_params(self) -> tuple[Any, float | None]:
        """Return ``(alpha, cutoff)``: the penalty (None for none), and the lstsq cutoff of singular values (None
        for none), after checking the parameters."""
        raise NotImplementedError

    def _fit_linear(self, X: Any, y: Any, sample_weight: Any, comm: Any) -> float | None:
        """Fit on every rank's rows and return the ``cutoff``, which truncates singular values below it times the
        largest (lstsq). The parameters are checked inside ``check_rows``: a bad one on one rank raises on every
        rank. Weighted rows (``sample_weight``) count as scikit-learn's do: the weighted means, then the rows
        scaled by the weights' square roots."""
        comm = self._comm_for(comm, fitting=True)
        rows = self._fit_rows(comm, X, y, y_kind="continuous", local_check=lambda X: self._checked_params())
        alpha, cutoff = rows.checked
        weight = _data.agreed_sample_weight(comm, sample_weight, rows.X.shape[0])
        if weight is not None:
            _data.total_weight(comm, weight)
        max_condition = MAX_CONDITION if cutoff is None else min(MAX_CONDITION, cutoff**-2)
        self._comm = comm
        d = rows.n_features
        y_local = rows.y
        single = y_local.ndim == 1
        Y = y_local.reshape(-1, 1) if single else y_local
        t = Y.shape[1]
        if comm.size > 1:  # every rank's y must have the same number of targets
            widths = comm.allgather(_np.array([t if not single else -1], _np.int64))
            if len(set(widths.tolist())) > 1:
                raise ValueError(f"{type(self).__name__}: ranks disagree on y's shape (targets per rank: {widths})")
        alphas = None
        if alpha is not None:
            alphas = _np.asarray(alpha, dtype=_np.float64).reshape(-1)
            if alphas.shape[0] == 1:
                alphas = _np.repeat(alphas, t)
            if alphas.shape != (t,):
                raise ValueError(f"alpha must be a scalar or have one value per target ({t}); got {alpha!r}")
        if _data.is_device_array(rows.X):  # a fit on the GPU: the targets go where the rows are
            from hpc import cuda

            Y = cuda.to_device(_np.ascontiguousarray(Y, dtype=_np.float64), device=rows.X.device_index)
        weighted = weight is not None  # the weights stay on the host, where the weighted moments are taken
        blocks = Blocks(comm, rows.counts, [rows.X, Y] + ([weight] if weighted else []))
        moments = centered_moments(blocks, d + t, _columns, centred=self.fit_intercept, weighted=weighted)
        gram, cross = moments.m2[:d, :d], moments.m2[:d, d:]
        mean_x, mean_y = moments.mean[:d], moments.mean[d:]
        coef = _np.empty((t, d))
        same_alpha = alphas is None or bool((alphas == alphas[0]).all())
        groups = [(slice(0, t), 0.0 if alphas is None else float(alphas[0]))] if same_alpha else [
            (slice(j, j + 1), float(alphas[j])) for j in range(t)
        ]
        stable = None
        # data so large or small that the Gram matrix overflowed or went subnormal: TSQR, whatever its condition
        in_range = not lost_to_range(moments.m2)
        eigenvalues = _np.linalg.eigvalsh(gram) if d and in_range else _np.zeros(0)
        for columns_of, a in groups:
            system = gram + a * _np.eye(d)
            solved = None
            if (in_range or _penalty_dominates(moments.m2, gram, a)) and _well_conditioned(eigenvalues + a,
                                                                                      max_condition):
                solved = _cholesky_solve(system, cross[:, columns_of])
            if solved is None:  # ill-conditioned or singular: TSQR on the data (one more pass, computed once)
                if stable is None:
                    stable = _tsqr(blocks, d + t, moments.mean if self.fit_intercept else None, weighted)
                solved = _lstsq_from_r(stable, d, columns_of, a, cutoff)
            coef[columns_of] = solved.T
        self._set_features(rows)
        dtype = rows.X.dtype  # scikit-learn's coefficients take the input's float dtype
        # scikit-learn's Ridge flattens the coefficients of one target given as a column (its intercept_ keeps its
        # shape (1,)); LinearRegression keeps them (1, d)
        flat = single or (alpha is not None and t == 1)
        self.coef_ = (coef[0] if flat else coef).astype(dtype)
        if self.fit_intercept:
            intercept = (mean_y - coef @ mean_x).astype(dtype)
            self.intercept_ = intercept[0] if single else intercept
        else:
            self.intercept_ = 0.0  # as scikit-learn, for one target or several
        self._singular_from = (eigenvalues, stable, rows.n_total)
        return cutoff

    def predict(self, X: Any) -> _np.ndarray:
        """Return predictions for this rank's rows (local)."""
        check_is_fitted(self)
        X = _data.check_predict_rows(X, self)
        return X @ _np.asarray(self.coef_).T + self.intercept_

    def score(self, X: Any, y: Any, sample_weight: Any = None, *, comm: Any = None) -> float:
        """Return R^2 of the predictions over every rank's rows (collective; targets averaged uniformly), weighted
        by ``sample_weight`` as scikit-learn's ``r2_score`` when given (the weighted mean, then the weighted sums
        of squares: two reproducible sums)."""
        from hpc import mpi

        comm = self._comm_for(comm)

        def local() -> tuple[_np.ndarray, _np.ndarray, _np.ndarray | None]:
            prediction = self.predict(X)
            Y = _np.asarray(y, dtype=_np.float64)
            if Y.ndim == 0 or Y.shape[0] != prediction.shape[0]:
                raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                 f"{[prediction.shape[0], Y.shape[0] if Y.ndim else 0]}")
            if Y.ndim > 2:
                raise ValueError(f"y must be 1-D or 2-D; got shape {Y.shape}")
            if not _np.isfinite(Y).all():
                raise ValueError("Input y contains NaN or infinity.")
            Y = Y[:, None] if Y.ndim == 1 else Y
            P = prediction[:, None] if prediction.ndim == 1 else prediction
            if Y.shape[1] != P.shape[1]:  # (Y - P) would broadcast one column against several
                raise ValueError(f"y_true and y_pred have different number of output ({Y.shape[1]}!={P.shape[1]})")
            if sample_weight is None:
                return Y, P, None
            w = _data.checked_sample_weight(sample_weight, Y.shape[0])
            return Y, P, w[:, None]

        Y, P, w = self._agreed(comm, local)
        # weights on some ranks only (a rank without rows may pass None, as to fit): weight 1 on the others, so that
        # every rank takes the same branch and the same reductions (the weighted one hung against the plain one)
        if comm.size > 1 and comm.allreduce(int(w is not None), op="max") and w is None:
            w = _np.ones((Y.shape[0], 1))
        if w is None:
            count, _, var = mpi.moments(comm, Y.astype(_np.float64, copy=False))  # R^2 in float64, as before
            _data.refuse_no_rows(_np.ravel(count)[0], self)  # on every rank alike: the count is global
            total = _np.atleast_1d(var) * count
            residual = mpi.sum(comm, ((Y - P) ** 2), reproducible=True)
        else:
            ones = _np.ones_like(w)
            weighted = mpi.sum(comm, _np.hstack([ones, w, w * Y]), reproducible=True)
            count = weighted[0]
            _data.refuse_no_rows(count, self)  # before the weights' test: no rows at all is the first error
            _data.refuse_zero_weight(weighted[0], weighted[1])  # on every rank alike: the totals are global
            mean = weighted[2:] / weighted[1]
            sums = mpi.sum(comm, _np.hstack([w * (Y - P) ** 2, w * (Y - mean) ** 2]), reproducible=True)
            residual, total = sums[: Y.shape[1]], sums[Y.shape[1] :]
        if _np.ravel(count)[0] < 2:  # as scikit-learn's r2_score
            _warnings.warn("R^2 score is not well-defined with less than two samples.",
                           sklearn_class("UndefinedMetricWarning"), stacklevel=2)
            return float("nan")
        with _np.errstate(divide="ignore", invalid="ignore"):
            r2 = _np.where(total > 0, 1.0 - residual / _np.where(total > 0, total, 1.0),
                           _np.where(residual == 0, 1.0, 0.0))
        return float(r2.mean())


def _penalty_dominates(m2: _np.ndarray, gram: _np.ndarray, alpha: float) -> bool:
    """Whether a Gram matrix that went subnormal (data near 1e-150) is below the rounding of ``alpha`` on its
    diagonal: the normal equations ``(gram + alpha I) w = X^T y`` are then as exact as any route (what they lose
    of the Gram matrix is below alpha's last bit), where TSQR's least squares on ``[R; sqrt(alpha) I]`` gave 0."""
    if alpha <= 0 or not _np.isfinite(m2).all() or gram.size == 0:
        return False
    return float(_np.abs(_np.diagonal(gram)).max()) <= alpha * _np.finfo(_np.float64).eps


def _well_conditioned(eigenvalues: _np.ndarray, max_condition: float) -> bool:
    """Return whether a symmetric system with these eigenvalues is safe for the normal equations."""
    if eigenvalues.size == 0:
        return True
    top = float(eigenvalues.max())
    return top > 0 and float(eigenvalues.min()) * max_condition > top


def _cholesky_solve(system: _np.ndarray, rhs: _np.ndarray) -> _np.ndarray | None:
    """Return ``system^-1 rhs`` by Cholesky, or None when the factorization fails (not positive definite)."""
    d = system.shape[0]
    if d == 0:
        return _np.zeros((0, rhs.shape[1]))
    try:
        factor = _np.linalg.cholesky(system)
    except _np.linalg.LinAlgError:
        return None
    half = _np.linalg.solve(factor, rhs)  # forward (a triangular factor solves exactly as a general one)
    return _np.linalg.solve(factor.T, half)


def _columns(Xb: _np.ndarray, Yb: _np.ndarray) -> _np.ndarray:
    """Return a block's ``[X | Y]`` in float64, the columns whose moments (or QR factor) the fit takes."""
    return _np.hstack([Xb.astype(_np.float64, copy=False), Yb])


def _tsqr(blocks: Blocks, width: int, mean: Any, weighted: bool) -> _np.ndarray:
    """Return R of the QR factorization of ``[X | Y]`` over every rank (centred on ``mean`` unless None; the rows
    scaled by the square roots of their weights, the blocks' last array, when ``weighted``)."""
    return tsqr(blocks, width, mean, _columns, weighted=weighted)


def _lstsq_from_r(r: _np.ndarray, d: int, targets: slice, alpha: float, cutoff: float | None) -> _np.ndarray:
    """Return the minimum-norm least-squares coefficients ``(d, k)`` from the TSQR factor of ``[X | Y]``.

    ``cutoff`` (relative to the largest singular value) zeroes the smaller ones, as ``scipy.linalg.lstsq``'s
    ``cond``; None keeps all but those at rounding level.
    """
    system = r[:d, :d]
    rhs = r[:d, d:][:, targets]
    if alpha > 0:  # ridge: the least squares of [X; sqrt(alpha) I] against [y; 0]
        system = _np.vstack([system, _np.sqrt(alpha) * _np.eye(d)])
        rhs = _np.vstack([rhs, _np.zeros((d, rhs.shape[1]))])
    solution, *_ = _np.linalg.lstsq(system, rhs, rcond=cutoff)
    return solution


class LinearRegression(_LinearModel):
    """Ordinary least squares over every rank's rows.

    ``fit`` and ``score`` are collective; ``predict`` is local. ``coef_`` and ``intercept_`` are the same bits on
    every rank and for any number of ranks or threads.

    Args:
        fit_intercept (bool): fit an intercept (the data are centred in the moments, never copied).
        tol (float): singular values of the centred X below ``tol`` times the largest count as zero (the ``cond`` of
            scikit-learn's ``scipy.linalg.lstsq``): such a fit takes the TSQR route and truncates them.
        copy_X, n_jobs: accepted for scikit-learn; not used (the input is never modified).
        positive (bool): must be False (non-negative least squares is not offered).

    Attributes:
        coef_ (ndarray (n_features,) or (n_targets, n_features)), intercept_ (float or ndarray),
        rank_ (int), singular_ (ndarray): the rank and singular values of the centred X, n_features_in_ (int).

    Example:
        >>> import numpy as np
        >>> from hpc import ml
        >>> X = np.array([[0.0], [1.0], [2.0]])
        >>> [round(v, 12) for v in ml.LinearRegression().fit(X, 2 * X[:, 0] + 1).coef_.tolist()]
        [2.0]
    """

    def __init__(
        self, *, fit_intercept: bool = True, copy_X: bool = True, tol: float = 1e-6, n_jobs: Any = None,
        positive: bool = False,
    ) -> None:
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.tol = tol
        self.n_jobs = n_jobs
        self.positive = positive

    def _checked_params(self) -> tuple[Any, float | None]:
        if self.positive:
            raise ValueError("positive=True (non-negative least squares) is not supported by hpc.ml.LinearRegression")
        tol = self.tol
        if not isinstance(tol, _numbers.Real) or isinstance(tol, bool) or not 0 <= tol < _np.inf:
            raise ValueError(f"tol must be a float >= 0; got {tol!r}")
        return None, max(float(tol), float(_np.finfo(_np.float64).eps))

    @one_blas_thread
    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, comm: Any = None) -> LinearRegression:
        """Fit on every rank's rows (collective), each weighted by ``sample_weight`` if given; return self."""
        cutoff = self._fit_linear(X, y, sample_weight, comm)
        eigenvalues, stable, n = self._singular_from
        d = self.n_features_in_
        if stable is not None:
            singular = _np.linalg.svd(stable[:d, :d], compute_uv=False)
        else:
            singular = _np.sqrt(_np.clip(eigenvalues[::-1], 0.0, None))
        singular = singular[: min(n, d)]  # scikit-learn's lstsq gives min(n_samples, n_features) of them
        self.singular_ = singular.astype(self.coef_.dtype)
        self.rank_ = int((singular > (singular[0] if singular.size else 0.0) * cutoff).sum())
        del self._singular_from
        return self


class Ridge(_LinearModel):
    """Linear least squares with an L2 penalty ``alpha * ||w||^2``, over every rank's rows.

    ``fit`` and ``score`` are collective; ``predict`` is local. ``coef_`` and ``intercept_`` are the same bits on
    every rank and for any number of ranks or threads.

    Args:
        alpha (float or ndarray (n_targets,)): the penalty, one per target if an array.
        fit_intercept (bool): fit an unpenalized intercept.
        solver (str): ``"auto"``, ``"cholesky"`` or ``"svd"``; all solve the normal equations by Cholesky and take
            the stable TSQR route when those are ill-conditioned.
        copy_X, max_iter, tol, random_state: accepted for scikit-learn; the direct solvers do not use them.
        positive (bool): must be False.

    Attributes:
        coef_, intercept_, n_features_in_: as scikit-learn's; n_iter_ (None: a direct solver); solver_ (str).

    Example:
        >>> import numpy as np
        >>> from hpc import ml
        >>> X = np.array([[0.0], [1.0], [2.0]])
        >>> round(float(ml.Ridge(alpha=1.0).fit(X, 2 * X[:, 0]).coef_[0]), 12)
        1.333333333333
    """

    def __init__(
        self, alpha: Any = 1.0, *, fit_intercept: bool = True, copy_X: bool = True, max_iter: Any = None,
        tol: float = 1e-4, solver: str = "auto", positive: bool = False, random_state: Any = None,
    ) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.positive = positive
        self.random_state = random_state

    def _checked_params(self) -> tuple[Any, float | None]:
        if self.positive:
            raise ValueError("positive=True is not supported by hpc.ml.Ridge")
        if self.solver not in ("auto", "cholesky", "svd"):
            raise ValueError(f"solver must be 'auto', 'cholesky' or 'svd' in hpc.ml.Ridge; got {self.solver!r}")
        alpha = self.alpha
        values = None if isinstance(alpha, (str, bytes, bool, _np.bool_)) else _np.asarray(alpha)
        if values is None or values.dtype.kind not in "iuf" or values.ndim > 1:
            raise ValueError(f"alpha must be a float >= 0 or a 1-D array of them; got {alpha!r}")
        if not (_np.isfinite(values).all() and (values >= 0).all()):
            raise ValueError(f"alpha must be finite and non-negative; got {alpha!r}")
        return alpha, None

    @one_blas_thread
    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, comm: Any = None) -> Ridge:
        """Fit on every rank's rows (collective), each weighted by ``sample_weight`` if given; return self."""
        self._fit_linear(X, y, sample_weight, comm)
        del self._singular_from
        self.n_iter_ = None  # a direct solver, as scikit-learn's Ridge(solver="cholesky") says
        self.solver_ = "cholesky"
        return self
