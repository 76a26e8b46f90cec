"""The estimator protocol of scikit-learn, written out: parameters, tags, fitted checks, the collective score.

scikit-learn is not a runtime dependency of ``hpc.ml``: this base class gives ``get_params``/``set_params``, a
``repr``, pickling and ``__sklearn_tags__`` without importing it, so ``clone``, ``Pipeline`` and ``GridSearchCV``
work on our estimators wherever scikit-learn is installed. The tags are built from scikit-learn's own classes, only
when scikit-learn asks for them.
"""

from __future__ import annotations

import functools as _functools
import importlib.util as _importlib_util
import inspect as _inspect
import threading as _threading
import warnings as _warnings
from collections.abc import Callable
from typing import Any, Self, TypeVar

__all__ = ["Estimator", "check_is_fitted", "one_blas_thread", "sklearn_class"]

F = TypeVar("F", bound=Callable[..., Any])

def _load_scipy_blas() -> None:
    """Load SciPy's BLAS (which the compiled k-means step and L-BFGS use) now, where SciPy works, so that the BLAS
    cap finds it (it caps what is loaded): :func:`hpc.kernels._checks.compiled_blas` imports it once."""
    from hpc.kernels import _checks

    _checks.compiled_blas()


def one_blas_thread(fit: F) -> F:
    """Run ``fit`` with BLAS on one thread per call: the parallelism is the pool's, over row blocks.

    BLAS threads inside pool threads would oversubscribe the cores (and OpenBLAS's spinning threads collapse when
    they do: a 4096 x 101 Gram took 2.6 ms on one thread and 10-16 ms on two beside a busy neighbour). One thread
    per BLAS call also keeps each block's bits independent of how many threads BLAS would have used. The cap is
    process-wide while the fit runs (threadpoolctl has no per-thread setting), shared with the parallel iterators'.
    """

    @_functools.wraps(fit)
    def capped(self: Any, *args: Any, **kwargs: Any) -> Any:
        from hpc import config
        from hpc._core.blas import blas_capped

        _load_scipy_blas()
        with blas_capped(config.available_cpus()):
            return fit(self, *args, **kwargs)

    return capped  # type: ignore[return-value]


class _NotFittedError(ValueError, AttributeError):
    """Raised when a method needs a fitted estimator; like scikit-learn's, a ValueError and an AttributeError."""


_FALLBACKS: dict[str, type] = {
    "NotFittedError": _NotFittedError,
    "ConvergenceWarning": UserWarning,
    "DataConversionWarning": UserWarning,
    "UndefinedMetricWarning": UserWarning,
}
_resolved: dict[str, type] = {}
_PARAM_NAMES: dict[type, tuple[str, ...]] = {}  # per estimator class, by Estimator._param_names


def sklearn_class(name: str) -> Any:
    """Return ``sklearn.exceptions.<name>`` where scikit-learn is installed, else our stand-in (looked up once).

    Our errors and warnings are scikit-learn's own classes, so ``except NotFittedError`` and warning filters written
    for scikit-learn catch them; scikit-learn (a second to import) is imported only when one is first raised.
    """
    if name not in _resolved:
        if _importlib_util.find_spec("sklearn") is not None:
            import sklearn.exceptions

            _resolved[name] = getattr(sklearn.exceptions, name)
        else:
            _resolved[name] = _FALLBACKS[name]
    return _resolved[name]


def __getattr__(name: str) -> Any:
    if name in ("NotFittedError", "ConvergenceWarning"):
        return sklearn_class(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: the parameters of estimator methods that are not metadata for scikit-learn's routing (``comm`` is hpc's: which
#: ranks take part, never routed by a meta-estimator; ``copy`` is an option, as scikit-learn marks it)
_NOT_METADATA = frozenset({"self", "X", "y", "Y", "Xt", "yt", "comm", "copy"})
#: scikit-learn's value for "leave this request as it is" (``sklearn.utils.metadata_routing.UNCHANGED``, compared
#: by value: scikit-learn is not imported for it)
_UNCHANGED = "$UNCHANGED$"
#: the methods whose metadata scikit-learn routes (its private ``SIMPLE_METHODS``; those hpc's estimators have)
_ROUTED_METHODS = ("fit", "partial_fit", "predict", "predict_proba", "predict_log_proba", "decision_function", "score",
                   "transform", "inverse_transform")


class Estimator:
    """Parameters from ``__init__``'s signature, as scikit-learn's ``BaseEstimator`` reads them.

    Subclasses store every ``__init__`` argument unchanged under its own name and do all checking in ``fit``.
    ``_estimator_type`` names the kind ("classifier", "regressor", "clusterer" or "transformer").
    """

    _estimator_type: str = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ("transform", "fit_transform"):  # the container set_output chose, as scikit-learn's mixin does
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_wraps_output", False):
                setattr(cls, name, _output_wrapped(method))

    def set_output(self, *, transform: str | None = None) -> Self:
        """Choose what ``transform`` and ``fit_transform`` return: ``"default"`` (NumPy), ``"pandas"`` or
        ``"polars"`` (a DataFrame whose columns are :meth:`get_feature_names_out`); ``None`` changes nothing.
        scikit-learn's ``Pipeline.set_output`` calls it; ``clone`` keeps the choice."""
        if transform is None:
            return self
        if transform not in ("default", "pandas", "polars"):
            raise ValueError(f"output config must be 'default', 'pandas' or 'polars'; got {transform!r}")
        self._sklearn_output_config = {"transform": transform}
        return self

    def _container(self, out: Any, X: Any) -> Any:
        """``out`` (a transform's 2-D result) in the container :meth:`set_output` chose, else scikit-learn's global
        ``transform_output`` setting when scikit-learn is loaded, else as it is."""
        import sys as _sys

        kind = getattr(self, "_sklearn_output_config", {}).get("transform")  # None: never set on this estimator
        if kind is None:  # the global setting only then: set_output("default") holds inside a pandas config_context
            kind = _sys.modules["sklearn"].get_config().get("transform_output", "default") if (
                "sklearn" in _sys.modules) else "default"
        if kind == "default" or type(out).__module__ != "numpy" or getattr(out, "ndim", 0) != 2:
            return out
        columns = list(self.get_feature_names_out())
        if kind == "polars":
            try:
                import polars
            except ImportError:  # scikit-learn's words: name the package and the setting that asked for it
                raise ImportError("set_output(transform='polars') needs polars, which is not installed: "
                                  "pip install polars") from None

            return polars.DataFrame(out, schema=columns, orient="row")
        import pandas

        index = getattr(X, "index", None)  # a DataFrame's rows keep their labels, as in scikit-learn
        if index is not None and len(index) != len(out):
            index = None
        return pandas.DataFrame(out, columns=columns, index=index)

    @classmethod
    def _param_names(cls) -> tuple[str, ...]:
        """The names of ``__init__``'s parameters, sorted: read once per class (``inspect.signature`` took a tenth of
        a small fit, which asks for them to check that every rank passed the same)."""
        names = _PARAM_NAMES.get(cls)
        if names is None:
            signature = _inspect.signature(cls.__init__)
            names = tuple(sorted(
                p.name for p in signature.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD
            ))
            _PARAM_NAMES[cls] = names
        return names

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Return this estimator's parameters by name (``deep`` is accepted for scikit-learn; none are nested)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set parameters by name and return the estimator; an unknown name raises ``ValueError``."""
        valid = list(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {
            p.name: p.default for p in _inspect.signature(type(self).__init__).parameters.values() if p.name != "self"
        }
        changed = []
        for name, value in self.get_params().items():
            default = defaults.get(name, _inspect.Parameter.empty)
            same = value is default
            if not same:
                try:
                    same = bool(type(value) is type(default) and value == default)
                except Exception:  # an array compared with a default: not the default
                    same = False
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_comm", None)  # a communicator does not travel; score falls back to mpi.world()
        return state

    def _set_features(self, rows: Any) -> None:
        """Record what ``fit`` saw: ``n_features_in_``, and ``feature_names_in_`` when X was a DataFrame with string
        column names (removed when a refit's X has none), as scikit-learn does."""
        self.n_features_in_ = rows.n_features
        if rows.feature_names is not None:
            self.feature_names_in_ = rows.feature_names
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_

    def _input_names(self, input_features: Any) -> Any:
        """The names of the fitted input features: ``input_features`` checked against what ``fit`` saw, else
        ``feature_names_in_``, else ``x0, x1, ...`` (scikit-learn's rules)."""
        import numpy as _np

        check_is_fitted(self)
        seen = getattr(self, "feature_names_in_", None)
        if input_features is None:
            if seen is not None:
                return seen
            return _np.asarray([f"x{i}" for i in range(self.n_features_in_)], dtype=object)
        given = _np.asarray(input_features, dtype=object)
        if seen is not None and (len(given) != len(seen) or (given != seen).any()):
            raise ValueError("input_features is not equal to feature_names_in_")
        if len(given) != self.n_features_in_:
            raise ValueError(f"input_features should have length equal to number of features ({self.n_features_in_}), "
                             f"got {len(given)}")
        return given

    def _prefixed_names(self, input_features: Any, n_out: int) -> Any:
        """Output names ``<class name in lower case><i>`` for ``i < n_out`` (PCA, KMeans), as scikit-learn names
        them; ``input_features`` is checked as :meth:`_input_names` checks it."""
        import numpy as _np

        self._input_names(input_features)
        prefix = type(self).__name__.lower()
        return _np.asarray([f"{prefix}{i}" for i in range(n_out)], dtype=object)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def get_metadata_routing(self) -> Any:
        """scikit-learn's metadata routing, for ``sklearn.set_config(enable_metadata_routing=True)``: each method's
        metadata (``sample_weight``) known, and not requested unless :meth:`set_fit_request` (or
        ``set_score_request``, ``set_partial_fit_request``) asked for it, as scikit-learn's own estimators. Without
        it a Pipeline's ``score`` refused even a call with no metadata. Built from scikit-learn's classes when asked
        (scikit-learn is not a dependency)."""
        import copy as _copy

        from sklearn.utils.metadata_routing import MetadataRequest

        if getattr(self, "_metadata_request", None) is not None:  # set_*_request's (clone copies it)
            return _copy.deepcopy(self._metadata_request)
        request = MetadataRequest(owner=type(self).__name__)
        for method in _ROUTED_METHODS:
            function = getattr(type(self), method, None)
            if function is None:
                continue
            for name, parameter in _inspect.signature(function).parameters.items():
                if name in _NOT_METADATA or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                    continue
                getattr(request, method).add_request(param=name, alias=None)
        return request

    def set_fit_request(self, **requests: Any) -> Self:
        """Say whether ``fit`` takes each metadata a meta-estimator routes (``sample_weight=True``, ``False``, an
        alias, or None: an error if passed), scikit-learn's ``set_fit_request``; only with routing enabled."""
        return self._set_request("fit", requests)

    def set_score_request(self, **requests: Any) -> Self:
        """Say whether ``score`` takes each routed metadata (see :meth:`set_fit_request`)."""
        return self._set_request("score", requests)

    def set_partial_fit_request(self, **requests: Any) -> Self:
        """Say whether ``partial_fit`` takes each routed metadata (see :meth:`set_fit_request`)."""
        return self._set_request("partial_fit", requests)

    def _set_request(self, method: str, requests: dict[str, Any]) -> Self:
        import sklearn

        if not sklearn.get_config().get("enable_metadata_routing", False):  # scikit-learn's rule and words
            raise RuntimeError("This method is only available when metadata routing is enabled. You can enable it "
                               "using sklearn.set_config(enable_metadata_routing=True).")
        routing = self.get_metadata_routing()
        method_request = getattr(routing, method)
        accepted = set(method_request.requests) if hasattr(type(self), method) else set()
        unknown = set(requests) - accepted
        if unknown:
            raise TypeError(f"Unexpected args: {unknown} in {method}. Accepted arguments are: {accepted}")
        for param, alias in requests.items():
            if alias != _UNCHANGED:
                method_request.add_request(param=param, alias=alias)
        self._metadata_request = routing
        return self

    def __sklearn_tags__(self) -> Any:
        from sklearn.utils import (
            ClassifierTags,
            InputTags,
            RegressorTags,
            Tags,
            TargetTags,
            TransformerTags,
        )

        kind = self._estimator_type
        return Tags(
            estimator_type=kind if kind in ("classifier", "regressor", "clusterer") else None,
            # the regressors (LinearRegression, Ridge) take a 1-D y or a 2-D y of several targets, as scikit-learn's
            target_tags=TargetTags(
                required=kind in ("classifier", "regressor"), single_output=True, multi_output=kind == "regressor"
            ),
            transformer_tags=TransformerTags() if hasattr(self, "transform") else None,
            classifier_tags=ClassifierTags() if kind == "classifier" else None,
            regressor_tags=RegressorTags() if kind == "regressor" else None,
            input_tags=InputTags(allow_nan=False),
        )

    def _agreed(self, comm: Any, local: Callable[[], Any]) -> Any:
        """Return ``local()`` once every rank's succeeded; a bad input on any rank raises on all of them.

        The collective methods (``score``) run their local part through this before their reduction, so a rank
        whose rows are bad does not leave the others waiting in it.
        """
        from hpc.ml._data import raise_everywhere

        try:
            value, error = local(), None
        except Exception as exc:  # NotFittedError, bad input, or anything else: agreed, never left to one rank
            value, error = None, exc
        raise_everywhere(comm, error)
        return value

    def _fit_rows(
        self, comm: Any, X: Any, y: Any = None, *, y_kind: str | None = None,
        local_check: Callable[[Any], Any] | None = None,
    ) -> Any:
        """Return ``hpc.ml._data.check_rows`` of a fit's rows (a DeviceArray stays on its device), the ranks agreeing
        also on this estimator's parameters: all but the rank-local ones (``hpc.ml._data.RANK_LOCAL_PARAMS``)."""
        from hpc.ml import _data

        params = {k: v for k, v in self.get_params(deep=False).items() if k not in _data.RANK_LOCAL_PARAMS}
        state = self._continued_state()
        if state is not None:  # a warm start or a later batch: what it continues from must agree too
            params["fitted state continued from"] = state
        return _data.check_rows(
            comm, X, y, estimator=type(self).__name__, y_kind=y_kind, device=True, params=params,
            local_check=local_check,
        )

    def _continued_state(self) -> Any:
        """The fitted attributes this fit continues from (a warm start, a later ``partial_fit`` batch), which every
        rank must hold alike, or None (the default: a fit starts afresh)."""
        return None

    def _comm_for(self, comm: Any, *, fitting: bool = False) -> Any:
        """Return the communicator a collective method runs on: ``comm``, else (``score``, a later ``partial_fit``
        batch) the one ``fit`` used, else world. A ``fit`` (``fitting``) never takes the last fit's: a refit after a
        fit on ``COMM_SELF`` fitted each rank's rows alone again, a model per rank, where the docs promise world."""
        from hpc import _launcher, mpi

        if comm is not None:
            return mpi.as_comm(comm)
        if not fitting and getattr(self, "_comm", None) is not None:
            return self._comm
        parent = _launcher.started_by_rank()
        if parent is not None and _launcher.inherited_job_size() != 1:
            raise RuntimeError(
                f"{type(self).__name__}: this process was started by MPI rank process {parent} and is not a "
                "rank itself (a worker of scikit-learn's n_jobs, say): a fit here would see only the rows "
                "it was given, not every rank's. Under mpiexec keep n_jobs=1 (each fit already runs on "
                "every rank and thread), or pass comm=mpi4py.MPI.COMM_SELF to fit each process's rows alone."
            )
        comm = mpi.world()
        if comm.size > 1 and _threading.current_thread() is not _threading.main_thread():
            raise RuntimeError(
                f"{type(self).__name__}: a collective call over the {comm.size} ranks of the job, made from a "
                "thread other than the main one: fits in several threads at once (scikit-learn's n_jobs with the "
                "threading or hpc backend) would pair one fit's messages with another's across ranks. Under "
                "mpiexec keep n_jobs=1 (each fit already runs on every rank and thread), pass "
                "comm=mpi4py.MPI.COMM_SELF to fit each thread's rows alone, or, from one thread that makes every "
                "collective call of the job, pass comm=hpc.mpi.world() explicitly."
            )
        return comm


def _output_wrapped(method: F) -> F:
    @_functools.wraps(method)
    def wrapped(self: Estimator, X: Any, *args: Any, **kwargs: Any) -> Any:
        return self._container(method(self, X, *args, **kwargs), X)

    wrapped._wraps_output = True  # type: ignore[attr-defined]
    return wrapped  # type: ignore[return-value]


def check_is_fitted(estimator: Estimator, *attributes: str) -> None:
    """Raise :class:`NotFittedError` unless ``estimator`` has been fitted (has every name in ``attributes``)."""
    names = attributes or ("n_features_in_",)
    if not all(hasattr(estimator, name) for name in names):
        raise sklearn_class("NotFittedError")(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' with appropriate arguments "
            "before using this estimator."
        )


def warn_not_converged(what: str, max_iter: int, n_iter: int, status: int, message: str) -> None:
    """Warn that an iterative fit stopped before converging (the same warning on every rank), as scikit-learn words
    it: the solver's status and message; "increase max_iter" only when the fit used every iteration (an aborted line
    search at iteration 0 would not gain from more)."""
    text = f"{what} failed to converge after {n_iter} iteration(s) (status={status}):\n{message}\n"
    if n_iter == max_iter:
        text += f"\nIncrease the number of iterations to improve the convergence (max_iter={max_iter})."
    text += "\nYou might also want to scale the data as shown in:\n    https://scikit-learn.org/stable/modules/preprocessing.html"
    _warnings.warn(text, sklearn_class("ConvergenceWarning"), stacklevel=3)
