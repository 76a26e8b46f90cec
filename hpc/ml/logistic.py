"""Logistic regression, binary and multinomial, with an L2 penalty, by L-BFGS (scikit-learn's LogisticRegression)."""

from __future__ import annotations

import numbers as _numbers
import warnings as _warnings
from typing import Any

import numpy as _np

from hpc.ml import _data
from hpc.ml._base import Estimator, check_is_fitted, one_blas_thread, warn_not_converged
from hpc.ml._blocks import Blocks
from hpc.ml._progress import Progress as _Progress

__all__ = ["LogisticRegression"]


class LogisticRegression(Estimator):
    """Logistic regression over every rank's rows: L2 penalty ``1 / (2C) ||w||^2``, fitted by L-BFGS.

    The objective is scikit-learn's: the mean half-binomial (two classes) or half-multinomial (more) loss plus
    ``||W||^2 / (2 C n)``, the intercept unpenalized. Every rank runs the same L-BFGS (SciPy's ``L-BFGS-B`` with
    scikit-learn's options), and each evaluation's loss and gradient come from one pass over the local blocks
    (:func:`hpc.kernels.logistic_loss_grad`, :func:`hpc.kernels.softmax_loss_grad`) and one reproducible
    reduction, so every rank takes the same steps and ends with the same bits, for any number of ranks or threads.

    An :class:`hpc.cuda.DeviceArray` ``X`` is fitted on its device: each block's loss and gradient come from the
    GPU twins of the loss kernels (docs/ml.md, "Fits on the GPU").

    ``fit`` and ``score`` are collective; ``predict``, ``predict_proba``, ``predict_log_proba`` and
    ``decision_function`` are local.

    Args:
        penalty: deprecated in scikit-learn 1.8; ``"deprecated"`` (default), ``"l2"`` or None (no penalty).
        C (float): inverse regularization strength; ``numpy.inf`` means no penalty.
        l1_ratio (float): must be 0 (the L2 penalty).
        dual (bool): must be False.
        tol (float): L-BFGS's ``gtol``.
        fit_intercept (bool): fit an unpenalized intercept per class.
        intercept_scaling, random_state, n_jobs: accepted for scikit-learn; not used by L-BFGS.
        class_weight (dict, "balanced" or None): weights of the classes; "balanced" uses
            ``n_samples / (n_classes * count)`` over every rank's rows.
        solver (str): must be ``"lbfgs"``.
        max_iter (int): L-BFGS iterations.
        verbose (int): report each iteration's objective and time on rank 0 (a tqdm bar on a terminal).
        warm_start (bool): start from the previous fit's coefficients.

    Attributes:
        classes_ (ndarray), coef_ (ndarray (1, n_features) or (n_classes, n_features)), intercept_ (ndarray),
        n_iter_ (ndarray (1,)), n_features_in_ (int).

    Example:
        >>> import numpy as np
        >>> from hpc import ml
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> ml.LogisticRegression().fit(X, [0, 0, 1, 1]).predict(X).tolist()
        [0, 0, 1, 1]
    """

    _estimator_type = "classifier"

    def __init__(
        self,
        penalty: Any = "deprecated",
        *,
        C: float = 1.0,
        l1_ratio: float = 0.0,
        dual: bool = False,
        tol: float = 1e-4,
        fit_intercept: bool = True,
        intercept_scaling: float = 1,
        class_weight: Any = None,
        random_state: Any = None,
        solver: str = "lbfgs",
        max_iter: int = 100,
        verbose: int = 0,
        warm_start: bool = False,
        n_jobs: Any = None,
    ) -> None:
        self.penalty = penalty
        self.C = C
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.tol = tol
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.class_weight = class_weight
        self.random_state = random_state
        self.solver = solver
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs

    def _penalty_strength(self) -> float:
        """Return ``1 / C`` (0 for no penalty), after checking the parameters."""
        if self.solver != "lbfgs":
            raise ValueError(f"solver must be 'lbfgs' in hpc.ml.LogisticRegression; got {self.solver!r}")
        if self.dual:
            raise ValueError("dual=True is not supported by the lbfgs solver")
        if self.penalty not in ("deprecated", "l2", None):
            raise ValueError(f"penalty must be 'l2' or None in hpc.ml.LogisticRegression; got {self.penalty!r}")
        if self.l1_ratio not in (0, 0.0, None):
            raise ValueError(f"l1_ratio must be 0 (L2 penalty) in hpc.ml.LogisticRegression; got {self.l1_ratio!r}")
        C = self.C
        if not isinstance(C, _numbers.Real) or isinstance(C, bool) or not C > 0:
            raise ValueError(f"C must be a positive float; got {C!r}")
        max_iter, tol = self.max_iter, self.tol
        if not isinstance(max_iter, _numbers.Integral) or isinstance(max_iter, bool) or max_iter < 0:
            raise ValueError(f"max_iter must be an int >= 0; got {max_iter!r}")
        if not isinstance(tol, _numbers.Real) or isinstance(tol, bool) or not tol >= 0:
            raise ValueError(f"tol must be a float >= 0; got {tol!r}")
        if self.penalty is None or C == _np.inf:
            return 0.0
        return 1.0 / float(C)

    def _continued_state(self) -> Any:
        """With ``warm_start``, the coefficients the fit starts from (ranks starting from different ones hung in
        L-BFGS, each rank taking other steps)."""
        if self.warm_start and getattr(self, "coef_", None) is not None:
            return {"coef_": self.coef_, "intercept_": getattr(self, "intercept_", None)}
        return None

    @one_blas_thread
    def fit(self, X: Any, y: Any, sample_weight: Any = None, *, comm: Any = None) -> LogisticRegression:
        """Fit on every rank's rows (collective); return self."""
        from hpc._optional import require

        optimize = require("scipy.optimize", "hpc.ml.LogisticRegression (its L-BFGS)")
        comm = self._comm_for(comm, fitting=True)
        # the parameters checked there too: a bad one on one rank raises on every rank
        rows = self._fit_rows(comm, X, y, y_kind="classes", local_check=lambda X: self._penalty_strength())
        inverse_c = rows.checked
        classes = _global_classes(comm, rows.y)
        n_classes = classes.shape[0]
        if n_classes < 2:
            raise ValueError(
                "This solver needs samples of at least 2 classes in the data, but the data contains only one "
                f"class: {classes[0]!r}"
            )
        codes = _np.searchsorted(classes, rows.y).astype(_np.int64)
        weight = self._row_weights(comm, rows, codes, classes, sample_weight)
        d = rows.n_features
        n = rows.n_total
        weight_sum = _data.total_weight(comm, weight) if weight is not None else float(n)
        binary = n_classes == 2
        targets = codes.astype(_np.float64) if binary else codes  # what the loss kernels take
        arrays = [rows.X, targets] + ([weight] if weight is not None else [])
        if _data.is_device_array(rows.X):  # a fit on the GPU: the targets and weights go where the rows are
            from hpc import cuda

            arrays = [rows.X] + [cuda.to_device(a, device=rows.X.device_index) for a in arrays[1:]]
        blocks = Blocks(comm, rows.counts, arrays)
        k = 1 if binary else n_classes
        size = k * (d + 1)
        l2 = inverse_c / weight_sum
        fit_intercept = bool(self.fit_intercept)

        def loss_grad(params: _np.ndarray) -> tuple[float, _np.ndarray]:
            W = params.reshape(k, d + 1)
            coef, intercept = W[:, :d], (W[:, d] if fit_intercept else _np.zeros(k))
            parts = blocks.map(lambda *arrays: _block_loss_grad(binary, coef, intercept, *arrays))
            total = blocks.sum(parts, (1 + size,))
            loss = total[0] / weight_sum + 0.5 * l2 * float(_np.sum(coef * coef))
            grad = total[1:].reshape(k, d + 1) / weight_sum
            grad[:, :d] += l2 * coef
            if not fit_intercept:
                grad[:, d] = 0.0
            last[0] = loss
            return loss, grad.ravel()

        start = _np.zeros(size)
        if self.warm_start and getattr(self, "coef_", None) is not None and self.coef_.shape != (k, d):
            # as scikit-learn, which refuses it too (a model fitted before on other data cannot start this one);
            # on every rank alike: the previous coef_ and this fit's shape are the same everywhere
            raise ValueError(f"warm_start: the previous fit's coef_ has shape {self.coef_.shape}, this fit needs "
                             f"{(k, d)} (other features or classes); fit with warm_start=False")
        if self.warm_start and getattr(self, "coef_", None) is not None:
            previous = start.reshape(k, d + 1)
            previous[:, :d] = self.coef_
            previous[:, d] = self.intercept_ if fit_intercept else 0.0
        last = [_np.nan]  # the objective of the latest evaluation, for the progress report
        progress = _Progress(type(self).__name__, self.max_iter, self.verbose, comm.rank)
        iterations = iter(range(1 << 62))
        result = optimize.minimize(
            loss_grad,
            start,
            method="L-BFGS-B",
            jac=True,
            options={"maxiter": self.max_iter, "maxls": 50, "gtol": self.tol, "ftol": 64 * _np.finfo(float).eps},
            callback=lambda _: progress.step(next(iterations), last[0]),
        )
        progress.close()
        n_iter = min(int(result.nit), self.max_iter)
        if result.status != 0:
            warn_not_converged("lbfgs", self.max_iter, n_iter, int(result.status), str(result.message))
        W = result.x.reshape(k, d + 1)
        self._comm = comm
        self.classes_ = classes
        self._set_features(rows)
        self.coef_ = W[:, :d].astype(rows.X.dtype)  # the input's float dtype, as scikit-learn's
        self.intercept_ = (W[:, d] if fit_intercept else _np.zeros(k)).astype(rows.X.dtype)
        self.n_iter_ = _np.array([n_iter], dtype=_np.int32)
        return self

    def _row_weights(self, comm: Any, rows: Any, codes: _np.ndarray, classes: _np.ndarray, sample_weight: Any) -> Any:
        """Return the per-row weights (sample weights times class weights), or None when all are 1.

        The ranks agree in one collective on both the errors and whether any rank has weights: a rank that passes
        None beside ranks with weights (an empty rank, typically) takes weights of 1, so every rank runs the same
        reductions.
        """
        weight = _data.agreed_sample_weight(comm, sample_weight, codes.shape[0])
        cw = self.class_weight
        if cw is None:
            return weight
        if isinstance(cw, str) and cw == "balanced":
            # scikit-learn's compute_class_weight: sum of the weights over (classes x each class's weighted count)
            from hpc import mpi

            if weight is None:  # counts: integers, exact in float64 however the rows are split
                local = _np.bincount(codes, minlength=classes.shape[0]).astype(_np.float64)
                counts = mpi.sum(comm, local[None, :], reproducible=True)
            else:  # each class's weights summed as one reproducible sum: the same bits for any split of the rows
                counts = _np.array(
                    [mpi.sum(comm, weight[codes == c][:, None], reproducible=True)[0] for c in range(classes.shape[0])]
                )
            empty = counts == 0  # global sums: the same on every rank
            if empty.any() and not empty.all():  # (all weights 0: refused by total_weight, in scikit-learn's words)
                raise ValueError(
                    f"class_weight='balanced' cannot weigh class {classes.tolist()[int(empty.argmax())]!r}: its sample "
                    "weights sum to 0 (its balanced weight would be infinite)"
                )
            with _np.errstate(divide="ignore", invalid="ignore"):  # all weights 0: NaN, refused by total_weight
                per_class = counts.sum() / (classes.shape[0] * counts)
        elif isinstance(cw, dict):
            known = set(classes.tolist())
            if any(key not in known for key in cw):  # a key that names no class: scikit-learn's error
                unweighted = [c for c in classes.tolist() if c not in cw]
                raise ValueError(f"The classes, {unweighted}, are not in class_weight")
            per_class = _np.array([float(cw.get(c, 1.0)) for c in classes.tolist()])
            if not (_np.isfinite(per_class).all() and (per_class >= 0).all()):  # alike on every rank (agreed)
                raise ValueError(f"class_weight must hold finite, non-negative weights; got {cw!r}")
        else:
            raise ValueError(f"class_weight must be None, 'balanced' or a dict; got {cw!r}")
        per_row = per_class[codes]
        return per_row if weight is None else weight * per_row

    def decision_function(self, X: Any) -> _np.ndarray:
        """Return the scores ``X coef_^T + intercept_`` of this rank's rows (1-D for two classes; local)."""
        check_is_fitted(self, "coef_")
        X = _data.check_predict_rows(X, self)
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X: Any) -> _np.ndarray:
        """Return the most likely class of each of this rank's rows (local)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(_np.int64) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]

    def predict_proba(self, X: Any) -> _np.ndarray:
        """Return the class probabilities of this rank's rows, ``(rows, n_classes)`` (local)."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            positive = _np.exp(-_np.logaddexp(0.0, -scores))  # the logistic function, without overflow
            return _np.stack([1.0 - positive, positive], axis=1)
        shifted = scores - scores.max(axis=1, keepdims=True)
        e = _np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> _np.ndarray:
        """Return the log of :meth:`predict_proba` (local)."""
        with _warnings.catch_warnings():
            _warnings.simplefilter("ignore", RuntimeWarning)
            return _np.log(self.predict_proba(X))

    def score(self, X: Any, y: Any, sample_weight: Any = None, *, comm: Any = None) -> float:
        """Return the accuracy over every rank's rows (collective)."""
        comm = self._comm_for(comm)

        def local() -> _np.ndarray:
            predicted = self.predict(X)
            labels = _np.asarray(y)
            if labels.ndim == 2 and labels.shape[1] == 1:  # a column of labels, as scikit-learn takes it
                labels = labels.ravel()
            if labels.ndim != 1:
                raise ValueError(f"y should be a 1d array, got an array of shape {labels.shape} instead.")
            if labels.shape != predicted.shape:
                raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                                 f"{[predicted.shape[0], labels.shape[0]]}")
            _check_true_labels(labels, self.classes_)
            correct = (predicted == labels).astype(_np.float64)
            weight = (_np.ones_like(correct) if sample_weight is None  # checked as Ridge's and KMeans' scores do
                      else _data.checked_sample_weight(sample_weight, correct.shape[0]))
            return _np.array([float(correct @ weight), float(weight.sum()), float(correct.shape[0])])

        totals = self._agreed(comm, local)
        totals = comm.allreduce(totals, reproducible=True) if comm.size > 1 else totals
        _data.refuse_no_rows(totals[2], self)  # on every rank alike: the totals are global
        _data.refuse_zero_weight(totals[2], totals[1])
        return float(totals[0] / totals[1])


def _check_true_labels(labels: _np.ndarray, classes: _np.ndarray) -> None:
    """Raise scikit-learn's accuracy errors for true labels that no classifier's predictions can be scored against:
    NaN or infinite values, continuous values, strings against numeric classes or numbers against string ones."""
    if labels.dtype.kind == "f":
        _data._check_finite(labels, "y_true")
        if _np.any(labels != _np.floor(labels)):
            kind = "binary" if classes.shape[0] <= 2 else "multiclass"
            raise ValueError(f"Classification metrics can't handle a mix of continuous and {kind} targets")
    if labels.size and _is_text(labels) != _is_text(classes):
        raise ValueError("Mix of label input types (string and number)")


def _is_text(values: _np.ndarray) -> bool:
    if values.dtype.kind in "US":
        return True
    return values.dtype.kind == "O" and any(isinstance(v, str) for v in values.tolist())


def _block_loss_grad(binary: bool, coef: _np.ndarray, intercept: _np.ndarray, X: Any, targets: Any,
                     weight: Any = None) -> _np.ndarray:
    """Return a block's ``[loss, *grad]``; ``targets`` are float64 0/1 (binary) or int64 class codes."""
    from hpc import kernels

    if binary:
        loss, grad = kernels.logistic_loss_grad(X, targets, coef[0], float(intercept[0]), weight)
    else:
        loss, grad = kernels.softmax_loss_grad(X, targets, coef, intercept, weight)
    return _np.concatenate([[loss], grad.ravel()])


def _label_kind(labels: _np.ndarray) -> str:
    """The dtype kind of a rank's labels, an object array of strings (as pandas gives them) counting as strings."""
    kind = labels.dtype.kind
    if kind == "O":
        values = labels.tolist()
        if all(isinstance(v, str) for v in values):
            return "U"
        if all(isinstance(v, _numbers.Integral) and not isinstance(v, bool) for v in values):
            return "i"  # ints in an object array (a pandas object column) beside int64 labels: one kind
    return kind


def _global_classes(comm: Any, y: _np.ndarray) -> _np.ndarray:
    """Return the sorted union of every rank's labels (the same array on every rank); labels that do not sort on
    some rank (``None`` among them, say) raise on every rank."""
    if comm.size == 1:
        return _np.unique(y)
    error = None
    try:
        local = _np.unique(y)
    except Exception as exc:  # raised on that rank alone, the others would wait in the allgather below
        local, error = _np.empty(0, y.dtype), exc
    _data.raise_everywhere(comm, error)
    every = _data.allgather_objects(comm, local)
    kinds = {_label_kind(a) for a in every if a.size}
    if len(kinds) > 1 and not kinds <= {"i", "u", "f", "b"}:
        raise ValueError(f"ranks pass labels of different types: {sorted(kinds)}")
    return _np.unique(_np.concatenate([a for a in every if a.size] or [local]))
