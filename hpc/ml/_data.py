"""Input checks for collective fits: every rank checks its own rows, then one collective makes the verdict common.

A bad input on one rank (NaN, a wrong dtype, another feature count, a y of the wrong length) must not leave the
other ranks waiting in the fit's first reduction: each rank catches its own error, the ranks exchange a few words
(rows, features, dtype, error flag, a digest of the column names and one of the estimator's parameters), and then
every rank raises, the failing rank its own exception and the others one that names the failing ranks and what they
said. Ranks whose column names or parameters differ would fit a model that is wrong, or differs by rank, or wait
forever in a collective the others never enter: they get a ValueError on every rank that names the difference. On
one process the original exception is raised unchanged, with scikit-learn's wording where its checks look for it.
"""

from __future__ import annotations

import hashlib as _hashlib
import numbers as _numbers
import warnings as _warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as _np

from hpc.ml._base import sklearn_class

__all__ = [
    "RANK_LOCAL_PARAMS",
    "Rows",
    "allgather_objects",
    "check_predict_rows",
    "check_rows",
    "fingerprint",
    "is_device_array",
    "raise_everywhere",
]

_FLOATS = (_np.dtype(_np.float64), _np.dtype(_np.float32))

#: Parameters that may differ by rank in a collective fit: they change nothing the ranks compute together (what is
#: printed, whether the input is copied, the seed, which rank 0 gives every rank, a thread count).
RANK_LOCAL_PARAMS = frozenset({"verbose", "random_state", "copy", "copy_x", "copy_X", "n_jobs"})


@dataclass
class Rows:
    """This rank's checked rows and what every rank agreed on."""

    X: Any  #: this rank's rows, 2-D float32 or float64 (a DeviceArray in a fit on the GPU)
    y: Any  #: this rank's targets (None without y)
    counts: _np.ndarray  #: rows per rank, int64, the same on every rank
    n_features: int
    comm: Any  #: the hpc.mpi.Comm of the fit
    feature_names: Any = None  #: the column names (a DataFrame with string names), else None; alike on every rank
    checked: Any = None  #: what ``check_rows``'s ``local_check`` returned

    @property
    def n_total(self) -> int:
        """Return the number of rows over every rank."""
        return int(self.counts.sum())

    @property
    def offset(self) -> int:
        """Return the global index of this rank's first row."""
        return int(self.counts[: self.comm.rank].sum())


def allgather_objects(comm: Any, obj: Any) -> list[Any]:
    """Return every rank's ``obj`` (pickled), in rank order."""
    if comm.size == 1:
        return [obj]
    from hpc.mpi.collectives import allgather_objects as gather  # watched: a rank that never comes is reported

    return gather(comm._engine, "hpc.ml allgather", obj)


def raise_everywhere(comm: Any, error: BaseException | None, *, any_error: bool | None = None) -> None:
    """Raise on every rank if any rank passed an ``error``: that rank its own, the others a summary.

    Args:
        comm (hpc.mpi.Comm): the ranks.
        error: this rank's exception, or None.
        any_error (bool, optional): whether some rank has an error, when the caller already agreed on it (saves
            one collective); ``None`` asks the ranks.
    """
    if comm.size == 1:
        if error is not None:
            raise error
        return
    if any_error is None:
        any_error = bool(comm.allreduce(int(error is not None), op="max"))
    if not any_error:
        return
    said = allgather_objects(comm, None if error is None else (type(error).__name__, str(error)))
    if error is not None:
        raise error
    failing = [(rank, what) for rank, what in enumerate(said) if what is not None]
    kind = ValueError
    if all(name == "TypeError" for _, (name, _) in failing):
        kind = TypeError
    lines = "\n".join(f"  rank {rank}: {name}: {text}" for rank, (name, text) in failing)
    raise kind(f"bad input on {len(failing)} of {comm.size} ranks:\n{lines}")


def is_device_array(X: Any) -> bool:
    """Return whether ``X`` is an :class:`hpc.cuda.DeviceArray` (without importing hpc.cuda when none exists)."""
    import sys

    module = sys.modules.get("hpc.cuda.array")
    return module is not None and isinstance(X, module.DeviceArray)


def _device_2d(X: Any, dtype: tuple[Any, ...]) -> Any:
    """Return the DeviceArray ``X`` checked where it lies: a float dtype, 2-D, C-contiguous, finite."""
    from hpc.cuda import twins

    if X.dtype not in dtype:
        raise TypeError(f"a DeviceArray X must be {' or '.join(map(str, dtype))}; got {X.dtype} (convert it on the "
                        "host, or pass a NumPy array)")
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D DeviceArray instead (shape {X.shape}).")
    if not X.c_contiguous:
        raise ValueError(f"a DeviceArray X must be C-contiguous; got strides {X.strides} for shape {X.shape}")
    with _np.errstate(over="ignore", invalid="ignore"):
        if X.size and not _np.isfinite(twins.sum(X)):  # one pass on the device; the host looks closer only if not
            _check_finite(X.get(), "X")
    return X


def _as_2d(X: Any, dtype: tuple[Any, ...], name: str = "X") -> _np.ndarray:
    """Return ``X`` as a 2-D float array, converting integers and object arrays like scikit-learn's check_array."""
    if is_device_array(X):  # the fits run on the host: the device rows are copied over
        X = X.get()
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is a sparse matrix; hpc.ml takes dense arrays only (use X.toarray())")
    times = _time_columns(X)
    if times:  # a DataFrame's dates would become nanoseconds since 1970 in the object array below, silently
        raise TypeError(f"{name} must hold numbers; got dates or durations in column(s) {times}")
    array = _np.asarray(X)
    if array.dtype == object:
        array = _missing_as_nan(X, array, dtype[0])
    if array.dtype.kind == "c":
        raise ValueError("Complex data not supported")
    if array.dtype.kind in "VMm":
        raise TypeError(f"{name} must hold numbers; got dtype {array.dtype}")
    if array.dtype not in dtype:
        # object arrays of numbers and strings of numbers convert, as in scikit-learn; other strings raise NumPy's
        # ValueError ("could not convert string to float: 'a'"), scikit-learn's too
        array = array.astype(dtype[0])
    if array.ndim != 2:
        if array.ndim == 1:
            raise ValueError(
                f"Expected 2D array, got 1D array instead:\narray={array!r}.\n"
                "Reshape your data either using array.reshape(-1, 1) if your data has a single feature or "
                "array.reshape(1, -1) if it contains a single sample."
            )
        raise ValueError(f"Found array with dim {array.ndim}. Expected <= 2.")
    return array


def _time_columns(X: Any) -> list[Any]:
    """The names of a pandas DataFrame's date, time-zone-aware date and duration columns (none for anything else)."""
    dtypes = getattr(X, "dtypes", None)
    if not type(X).__module__.startswith("pandas") or dtypes is None or not hasattr(dtypes, "items"):
        return []
    return [column for column, dt in dtypes.items() if getattr(dt, "kind", None) in ("M", "m")]


def _missing_as_nan(X: Any, array: _np.ndarray, dtype: Any) -> _np.ndarray:
    """Return the pandas object ``X`` as ``dtype`` numbers with its missing values (``pd.NA`` of the nullable
    Int64, Float64 and boolean columns) as NaN, as scikit-learn reads them (then "Input X contains NaN"); anything
    else (not pandas, strings) ``array`` unchanged, for the other checks to word."""
    if not (type(X).__module__.startswith("pandas") and hasattr(X, "to_numpy")):
        return array
    try:
        return X.to_numpy(dtype=dtype, na_value=_np.nan)
    except (TypeError, ValueError):
        return array


def _check_finite(array: _np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``array`` holds NaN or infinity (sums first, on the pool: one pass if all is well)."""
    from hpc.ml._blocks import run_blocks

    rows = array.shape[0] if array.ndim else 1
    parts = max(1, min(64, array.size // (1 << 16)))  # chunks of 64 K elements or more
    compiled = array.dtype in (_np.float32, _np.float64) and array.flags.c_contiguous

    def total(chunk: _np.ndarray) -> Any:
        """The chunk's sum: kernels.sum's float64 accumulators where it takes the chunk (5x NumPy's
        float32-to-float64 sum), NumPy's otherwise."""
        from hpc import kernels

        with _np.errstate(over="ignore", invalid="ignore"):  # per thread: the pool's don't see the caller's
            if compiled:
                return kernels.sum(chunk, parallel=False) if chunk.size else 0.0
            return chunk.sum(dtype=_np.float64)

    with _np.errstate(over="ignore", invalid="ignore"):
        if array.ndim and parts > 1:
            sums = run_blocks(lambda p: total(array[rows * p // parts : rows * (p + 1) // parts]), parts)
            finite = _np.isfinite(sums).all()
        else:
            finite = _np.isfinite(array.sum(dtype=_np.float64))
        if finite:
            return
    if _np.isnan(array).any():
        raise ValueError(f"Input {name} contains NaN.")
    if not _np.isfinite(array).all():
        raise ValueError(f"Input {name} contains infinity or a value too large for {array.dtype!r}.")


def _check_y(y: Any, n_rows: int, y_kind: str, estimator: str) -> Any:
    if y is None:
        raise ValueError(f"{estimator} requires y to be passed, but the target y is None.")
    values = _np.asarray(y)
    if values.dtype == object and getattr(getattr(y, "dtype", None), "kind", "O") in "iufb":  # nullable numbers
        values = _missing_as_nan(y, values, _np.float64)
    y = values
    if y_kind == "classes":
        if y.ndim == 2 and y.shape[1] == 1:
            _warnings.warn(
                "A column-vector y was passed when a 1d array was expected. Please change the shape of y to "
                "(n_samples, ), for example using ravel().",
                sklearn_class("DataConversionWarning"),
                stacklevel=4,
            )
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"y should be a 1d array, got an array of shape {y.shape} instead.")
        if y.dtype.kind == "f":
            _check_finite(y, "y")
            if _np.any(y != _np.floor(y)):
                raise ValueError("Unknown label type: continuous. Maybe you are trying to fit a classifier, which "
                                 "expects discrete classes on a regression target with continuous values.")
        elif y.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        elif y.dtype.kind == "O":
            kinds = {type(v) for v in y.tolist()}
            if len(kinds) > 1 and not all(issubclass(k, (int, _np.integer)) for k in kinds):
                raise ValueError(f"y mixes label types {sorted(k.__name__ for k in kinds)}; use one type")
            if kinds and all(issubclass(k, (float, _np.floating)) for k in kinds):  # floats in an object array
                numbers = _np.asarray(y, dtype=_np.float64)  # as a float y: NaN never equals itself, nor a class
                _check_finite(numbers, "y")
                if _np.any(numbers != _np.floor(numbers)):
                    raise ValueError("Unknown label type: unknown. Maybe you are trying to fit a classifier, which "
                                     "expects discrete classes on a regression target with continuous values.")
    else:  # continuous targets, one column or several
        if y.dtype.kind == "c":
            raise ValueError("Complex data not supported")
        y = _np.asarray(y, dtype=_np.float64)
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}")
        if y.ndim == 2 and y.shape[1] == 0:  # scikit-learn's check_array words it so for y too
            raise ValueError(f"Found array with 0 feature(s) (shape={y.shape}) while a minimum of 1 is required by "
                             f"{estimator}.")
        _check_finite(y, "y")
    if y.shape[0] != n_rows:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n_rows}, {y.shape[0]}]")
    return y


def check_rows(
    comm: Any,
    X: Any,
    y: Any = None,
    *,
    estimator: str,
    y_kind: str | None = None,
    dtype: tuple[Any, ...] = _FLOATS,
    device: bool = False,
    params: Mapping[str, Any] | None = None,
    local_check: Callable[[Any], Any] | None = None,
) -> Rows:
    """Check this rank's ``X`` (and ``y``) and agree with the other ranks, in one small collective.

    Args:
        comm (hpc.mpi.Comm): the fit's ranks.
        X: this rank's rows (2-D; a rank may hold zero rows, shape ``(0, n_features)``).
        y: this rank's targets, when ``y_kind`` is given.
        estimator (str): the estimator's name, for messages.
        y_kind (str or None): ``"classes"`` (labels), ``"continuous"`` (numbers, 1-D or 2-D) or None (no y).
        dtype (tuple): accepted float dtypes; others convert to the first.
        device (bool): the fit runs on the GPU: an :class:`hpc.cuda.DeviceArray` ``X`` stays on its device (checked
            there) instead of being copied to the host.
        params (mapping, optional): the estimator's parameters that every rank must share (``get_params`` but
            :data:`RANK_LOCAL_PARAMS`), compared by :func:`fingerprint`.
        local_check (callable, optional): run on this rank's checked ``X`` (the parameters against the data, say);
            its ``TypeError``/``ValueError`` counts as a bad input, its result is :attr:`Rows.checked`.

    Raises:
        ValueError or TypeError on every rank if any rank's input is bad or the ranks disagree on the number of
        features, the dtype, the column names or the parameters.
    """
    error: BaseException | None = None
    array = names = checked = None
    try:
        names = feature_names(X)
        if device and is_device_array(X):
            array = _device_2d(X, dtype)
        else:
            array = _as_2d(X, dtype)
            _check_finite(array, "X")
        if y_kind is not None:
            y = _check_y(y, array.shape[0], y_kind, estimator)
        if local_check is not None:
            checked = local_check(array)
    except Exception as exc:  # any failure here (OverflowError of a huge int, say) is agreed, never left to one rank
        error = exc
    n_rows = -1 if array is None else array.shape[0]
    n_features = -1 if array is None else array.shape[1]
    dtype_code = -1 if array is None else dtype.index(array.dtype)
    if comm.size == 1:
        gathered = _np.array([[n_rows, n_features, dtype_code, int(error is not None), 0, 0]], _np.int64)
    else:
        shared = (_digest(fingerprint(names)), _digest(fingerprint(dict(params or {}))))
        info = _np.array([[n_rows, n_features, dtype_code, int(error is not None), *shared]], _np.int64)
        gathered = comm.allgather(info)
    raise_everywhere(comm, error, any_error=bool(gathered[:, 3].any()))
    counts = gathered[:, 0].copy()
    features = gathered[:, 1]
    if comm.size > 1 and (len(set(features.tolist())) > 1 or len(set(gathered[:, 2].tolist())) > 1):
        lines = "\n".join(
            f"  rank {r}: {features[r]} features, {dtype[gathered[r, 2]]}" for r in range(comm.size)
        )
        raise ValueError(f"{estimator}: ranks disagree on the number of features or the dtype of X:\n{lines}")
    if comm.size > 1 and len(set(gathered[:, 4].tolist())) > 1:
        said = allgather_objects(comm, None if names is None else names.tolist())
        lines = "\n".join(f"  rank {r}: {_short(what)}" for r, what in enumerate(said))
        raise ValueError(
            f"{estimator}: ranks disagree on the feature names of X (pass the same columns, in the same order, "
            f"on every rank, or arrays without names everywhere):\n{lines}"
        )
    if comm.size > 1 and len(set(gathered[:, 5].tolist())) > 1:
        said = allgather_objects(comm, {k: (fingerprint(v), _short(repr(v))) for k, v in (params or {}).items()})
        differ = sorted({k for what in said for k in what if len({str(other.get(k, (0,))[0]) for other in said}) > 1})
        lines = "\n".join(
            f"  rank {r}: " + ", ".join(f"{k}={what[k][1] if k in what else '(none)'}" for k in differ)
            for r, what in enumerate(said)
        )
        raise ValueError(
            f"{estimator}: ranks disagree on the parameters {differ}; a collective fit needs the same estimator "
            f"on every rank:\n{lines}"
        )
    assert array is not None
    if array.shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={array.shape}) while a minimum of 1 is required by {estimator}."
        )
    total = int(counts.sum())
    if total < 1:
        where = "" if comm.size == 1 else f" over {comm.size} ranks"
        raise ValueError(
            f"Found array with {total} sample(s) (shape={(total, array.shape[1])}){where} while a minimum of "
            f"1 is required by {estimator}."
        )
    return Rows(array, y, counts, int(array.shape[1]), comm, names, checked)


def checked_sample_weight(sample_weight: Any, n: int) -> _np.ndarray:
    """Return ``sample_weight`` as ``n`` float64 weights (a scalar is every row's), or raise ValueError saying what is
    wrong with them, in scikit-learn's words where it has some: the shape, a NaN, an infinity; a negative weight is
    refused here (scikit-learn takes one: docs/ml.md)."""
    weight = _np.asarray(sample_weight, dtype=_np.float64)
    if weight.ndim == 0:
        weight = _np.full(n, float(weight))
    if weight.ndim != 1:
        raise ValueError(f"Sample weights must be 1D array or scalar, got {weight.ndim}D array. Expected either a "
                         f"scalar value or a 1D array of length {n}.")
    if weight.shape != (n,):
        raise ValueError(f"sample_weight.shape == {weight.shape}, expected ({n},)!")
    if not _np.isfinite(weight).all():
        raise ValueError(f"Input sample_weight contains {'NaN' if _np.isnan(weight).any() else 'infinity'}.")
    if (weight < 0).any():
        raise ValueError("sample_weight must be non-negative in hpc.ml; got a negative weight")
    return weight


def agreed_sample_weight(comm: Any, sample_weight: Any, n: int) -> _np.ndarray | None:
    """Return this rank's checked ``sample_weight`` for its ``n`` rows (:func:`checked_sample_weight`), or None
    when no rank passed any (collective).

    The ranks agree in one small collective on the errors and on whether any rank has weights: a bad weight on one
    rank raises on every rank, and a rank that passes None beside ranks with weights (an empty rank, typically) takes
    weights of 1, so every rank runs the same reductions.
    """
    weight, error = None, None
    if sample_weight is not None:
        try:
            weight = checked_sample_weight(sample_weight, n)
        except Exception as exc:  # agreed below, whatever it is
            error = exc
    flags = _np.array([error is not None, weight is not None], _np.int64)
    if comm.size > 1:
        flags = comm.allreduce(flags, op="max")
    raise_everywhere(comm, error, any_error=bool(flags[0]))  # before the fit's other collectives
    if flags[1] and weight is None:
        weight = _np.ones(n)
    return weight


def total_weight(comm: Any, weight: _np.ndarray) -> float:
    """Return the sum of every rank's ``weight`` (a reproducible sum: the same bits for any split of the rows), or
    raise ValueError on every rank when it is not positive (collective)."""
    from hpc import mpi

    total = float(mpi.sum(comm, weight, reproducible=True))
    refuse_zero_weight(1, total)
    return total


def refuse_no_rows(rows: float, estimator: Any) -> None:
    """Raise scikit-learn's ValueError where no rank holds a row to score (``rows``, a global count): a score over
    nothing has no value (NaN, or 0.0 for an inertia, before). Ranks without rows beside others are fine."""
    if not rows > 0:
        raise ValueError(f"Found array with 0 sample(s) (on every rank) while a minimum of 1 is required by "
                         f"{type(estimator).__name__}.")


def refuse_zero_weight(rows: float, total: float) -> None:
    """Raise scikit-learn's ValueError where ``rows`` (a global count) is positive and their total weight is not:
    all weights 0, or a NaN made of them (``class_weight="balanced"`` over weights that are all 0)."""
    if rows > 0 and not total > 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")


def fingerprint(value: Any) -> str:
    """Return a text that is the same on every rank exactly when ``value`` means the same there.

    Numbers compare by value (``1``, ``1.0`` and ``numpy.float64(1)`` alike), mappings whatever their order,
    arrays by dtype kind, shape and values (a digest of their bytes as float64 where numeric), nested lists or tuples
    of numbers as the array they make, callables by name; anything else by ``repr``. Python's ``hash`` would not do:
    string hashes differ between processes.
    """
    if value is None or isinstance(value, (bool, _np.bool_, str)):
        return repr(value)
    if isinstance(value, _numbers.Real):
        try:
            return repr(float(value)) if float(value) == value else repr(value)
        except OverflowError:  # an int beyond float's range
            return repr(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(sorted(f"{fingerprint(k)}: {fingerprint(v)}" for k, v in value.items())) + "}"
    if isinstance(value, (list, tuple)):
        numeric = _numeric_array(value)
        if numeric is not None:  # nested lists of numbers mean the array they make (an init given either way)
            return fingerprint(numeric)
        return "[" + ", ".join(fingerprint(v) for v in value) + "]"
    if isinstance(value, _np.ndarray):
        if value.dtype.kind in "biuf":
            data = _np.ascontiguousarray(value, dtype=_np.float64)
        elif value.dtype.kind == "O":
            return f"array{value.shape}" + fingerprint(value.ravel().tolist())
        else:
            data = _np.ascontiguousarray(value)
        return f"array{value.shape}:{value.dtype.kind}:{_hashlib.blake2b(data.tobytes(), digest_size=16).hexdigest()}"
    if type(value).__module__.startswith("pandas") and hasattr(value, "to_numpy"):
        # a DataFrame or Series as its values, as the array it holds (an init given as a DataFrame on one rank and
        # as an array elsewhere is the same init); pandas' repr elides the middle rows, and an init of 100 rows that
        # differed in row 50 had passed as the same
        return fingerprint(_np.asarray(value.to_numpy()))
    if callable(value):
        return f"callable {getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    return repr(value)


def _numeric_array(value: list[Any] | tuple[Any, ...]) -> _np.ndarray | None:
    """The array of numbers that nested lists or tuples make, or None: ragged, empty, or holding anything else
    (bools, strings, objects)."""
    try:
        array = _np.asarray(value)
    except (ValueError, TypeError):  # ragged
        return None
    return array if array.size and array.dtype.kind in "iuf" else None


def _digest(text: str) -> int:
    """Return 63 bits of a digest of ``text``, as an int64 that fits the ranks' agreement row."""
    return int.from_bytes(_hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") >> 1


def _short(value: Any, limit: int = 120) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_predict_rows(X: Any, fitted: Any, *, names: bool = True) -> _np.ndarray:
    """Return this rank's ``X`` for a local method (predict, transform) of the estimator ``fitted``, checked against
    its fitted feature count and, as scikit-learn checks them, its feature names (:func:`check_feature_names`;
    ``names=False`` for the methods scikit-learn does not check them in, such as ``inverse_transform``)."""
    estimator = type(fitted).__name__
    if names:
        check_feature_names(X, fitted)
    array = _as_2d(X, _FLOATS)
    _check_finite(array, "X")
    n_features = fitted.n_features_in_
    if array.shape[1] != n_features:
        raise ValueError(
            f"X has {array.shape[1]} features, but {estimator} is expecting {n_features} features as input."
        )
    return array


def feature_names(X: Any) -> _np.ndarray | None:
    """Return the column names of ``X`` (a pandas DataFrame, or anything with ``columns``) as scikit-learn keeps
    them: an object array when every name is a string, else None; names of mixed types raise TypeError."""
    columns = getattr(X, "columns", None)
    if columns is None or is_device_array(X):
        return None
    names = _np.asarray(columns, dtype=object)
    if names.ndim != 1 or names.shape[0] == 0:
        return None
    kinds = sorted({type(name).__name__ for name in names})
    if kinds == ["str"]:
        return names
    if "str" in kinds:
        raise TypeError(
            "Feature names are only supported if all input features have string names, but your input has "
            f"{kinds} as feature name / column name types. If you want feature names to be stored and validated, "
            "you must convert them all to strings, by using X.columns = X.columns.astype(str) for example. "
            "Otherwise you can remove feature / column names from your input data, or convert them all to a "
            "non-string data type."
        )
    return None


def check_feature_names(X: Any, fitted: Any) -> None:
    """Check ``X``'s column names against those ``fitted`` was fitted with, with scikit-learn's rules and words: a
    different set or order raises ValueError; names on one side only warn."""
    estimator = type(fitted).__name__
    seen = getattr(fitted, "feature_names_in_", None)
    given = feature_names(X)
    if seen is None and given is None:
        return
    if seen is None:
        message = f"X has feature names, but {estimator} was fitted without feature names"
        _warnings.warn(message, UserWarning, stacklevel=4)
        return
    if given is None:
        message = f"X does not have valid feature names, but {estimator} was fitted with feature names"
        _warnings.warn(message, UserWarning, stacklevel=4)
        return
    if len(seen) == len(given) and (seen == given).all():
        return
    unseen = [name for name in given if name not in set(seen)]
    missing = [name for name in seen if name not in set(given)]
    message = "The feature names should match those that were passed during fit.\n"
    if unseen:
        message += "Feature names unseen at fit time:\n" + "".join(f"- {name}\n" for name in unseen[:5])
    if missing:
        message += "Feature names seen at fit time, yet now missing:\n" + "".join(f"- {name}\n" for name in missing[:5])
    if not unseen and not missing:
        message += "Feature names must be in the same order as they were in fit.\n"
    raise ValueError(message)
