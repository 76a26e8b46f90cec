"""Array collectives on mpi4py's buffer path, for every numeric dtype, any layout, and Python scalars."""

from __future__ import annotations

import operator as _operator
import threading as _threading
from typing import Any

import numpy as _np

from hpc.mpi import _float_keys, _mpi
from hpc.mpi import guard as _guard
from hpc.mpi.ops import Op, resolve

__all__ = [
    "agreed_dtype", "allgather", "allgather_objects", "allreduce", "bcast", "iallreduce", "reduce", "reduce_scatter",
    "scan",
]

_SUPPORTED = "numpy arrays of bool, integer, floating and complex dtypes, and Python scalars"
_SCALARS = (bool, int, float, complex)
_INT64 = _np.iinfo(_np.int64)


def _asarray(x: Any, what: str) -> Any:
    """``numpy.asarray(x)``, but a Python int is always int64: OverflowError outside its range.

    NumPy would make ``2**63`` a uint64 and ``2**64`` an object array: the first would pair with other ranks' int64
    as a different dtype, the second cannot travel.
    """
    if isinstance(x, int) and not isinstance(x, bool):
        if not _INT64.min <= x <= _INT64.max:
            raise OverflowError(
                f"{what} takes Python ints as int64 (-2**63 to 2**63-1); got {x!r:.40}. Only op='sum' sums Python "
                "ints exactly, any size (in iallreduce below 2**80 in magnitude); numpy object arrays are not "
                "supported."
            )
        return _np.asarray(x, _np.int64)
    return _np.asarray(x)


def agreed_dtype(dtype: _np.dtype) -> str:
    """The dtype ranks must agree on, as text: the caller's in native byte order (a ``>f8`` rank and a ``<f8`` one send
    the same native values, and agree)."""
    return dtype.newbyteorder("=").str


class _Prepared:
    """A contribution made ready for MPI: a contiguous array of a dtype MPI reduces, and how to give it back."""

    __slots__ = ("array", "shape", "dtype", "python_scalar", "numpy_scalar", "keyed")

    @property
    def agreed(self) -> str:
        """The dtype the ranks must agree on (see :func:`agreed_dtype`)."""
        return agreed_dtype(self.dtype)

    def __init__(self, x: Any, op: Op | None, what: str) -> None:
        self.numpy_scalar = isinstance(x, _np.generic)
        # numpy.float64 and numpy.complex128 subclass float and complex: they come back as NumPy scalars
        self.python_scalar = isinstance(x, _SCALARS) and not self.numpy_scalar
        if self.python_scalar:
            arr = _asarray(x, what)
        else:
            try:
                arr = _np.asarray(x)
            except (OverflowError, ValueError) as exc:
                raise TypeError(f"{what} supports {_SUPPORTED}; got {type(x).__name__}: {exc}") from None
        if arr.dtype.kind not in "biufc":
            raise TypeError(f"{what} supports {_SUPPORTED}; got dtype {arr.dtype}")
        if op is not None:
            op.check_dtype(arr.dtype)
        self.shape, self.dtype = arr.shape, arr.dtype
        if op is not None and op.builtin in ("land", "lor"):
            arr = arr != 0  # logical ops give 0/1 (numpy.logical_and semantics), whatever the integer values
        work = _working_dtype(arr.dtype, op)
        if op is not None:
            op.compile_for(work)
        if work != arr.dtype:
            arr = arr.astype(work)
        self.array = _np.ascontiguousarray(arr)
        # float min/max travel as integer keys (hpc.mpi._float_keys): MPI's MIN and MAX drop or keep a NaN by the
        # order the ranks' values meet in, so ranks got different answers, and elements of one array disagreed
        self.keyed = op is not None and op.builtin in ("min", "max") and work.kind == "f" and work.itemsize in (4, 8)
        if self.keyed:
            self.array = _float_keys.to_keys(self.array, op.builtin)

    def to_working(self, value: Any) -> Any:
        """Return ``value`` (of the caller's dtype) as this contribution travels: in the working dtype, as a key."""
        if not self.keyed:
            return _np.asarray(value, self.array.dtype)
        return _float_keys.to_keys(_np.asarray(value, _float_keys.KEY_TYPES[self.array.itemsize][1]), "max")

    def in_dtype(self, result: Any, op: Op | None) -> Any:
        """Return ``result`` in the dtype the caller gets: ``x``'s, except bool sum/prod, which count (int64)."""
        if self.keyed:
            result = _float_keys.from_keys(_np.ascontiguousarray(result))
        if result.dtype != self.dtype and not (self.dtype.kind == "b" and op is not None and op.builtin in _COUNTING):
            return result.astype(self.dtype)
        return result

    def give_back(self, result: Any, op: Op | None) -> Any:
        """Return ``result`` in the caller's type: a Python scalar, a NumPy scalar, or an array of ``x``'s shape."""
        result = self.in_dtype(result, op).reshape(self.shape)
        if self.python_scalar:
            return result.item()
        if self.numpy_scalar:
            return result[()]
        return result


def _prepared(engine: Any, x: Any, op: Op | None, what: str) -> _Prepared:
    """Return ``_Prepared(x, op, what)``; where it refuses ``x`` on a guarded communicator (check mode or the
    watchdog), first tell the other ranks, which wait in the agreement step: they raise RankMismatchError there
    instead of entering the collective alone (and pairing with this rank's next one), and this rank raises its own
    error. Without guards the error ends the job unless caught (docs/mpi.md, "Guarded collectives")."""
    try:
        return _Prepared(x, op, what)
    except (TypeError, ValueError, OverflowError) as exc:
        if engine.size > 1 and (engine.check or engine.watchdog):
            try:
                _guard.check_agreement(engine, what, (getattr(op, "name", None), f"refused: {type(exc).__name__}"))
            except _guard.RankMismatchError:
                pass
        raise


_COUNTING = ("sum", "prod")


def _working_dtype(dtype: _np.dtype, op: Op | None) -> _np.dtype:
    # MPI has no float16 reductions and no SUM/MIN/MAX on C_BOOL; bool sum/prod count like numpy.sum (int64).
    # mpi4py refuses buffers of non-native byte order: they travel (and are reduced) in native order.
    if not dtype.isnative:
        dtype = dtype.newbyteorder("=")
    if dtype == _np.float16:
        return _np.dtype(_np.float32)
    if dtype.kind == "b":
        return _np.dtype(_np.int64) if op is not None and op.builtin in _COUNTING else _np.dtype(_np.uint8)
    return dtype


def _check_root(engine: Any, root: Any) -> int:
    """Return ``root`` as an int (NumPy integers accepted); raise ValueError unless it is a rank of ``engine``."""
    try:
        index = _operator.index(root)
    except TypeError:
        index = None
    if index is None or isinstance(root, (bool, _np.bool_)) or not 0 <= index < engine.size:
        raise ValueError(f"root must be an int in 0..{engine.size - 1}; got {root!r}")
    return index


# --------------------------------------------------------------------------------------------------- allreduce


def allreduce(engine: Any, x: Any, op: Any = "sum", out: Any = None, reproducible: bool = False) -> Any:
    """See :meth:`hpc.mpi.Comm.allreduce`."""
    o = resolve(op)
    if o.builtin in ("argmin", "argmax"):
        if out is not None:
            raise ValueError(f"allreduce with op={o.name!r} returns (value, index) and takes no out=")
        return _arg(engine, x, o, "allreduce")
    if o is _SUM and _is_integer_scalar(x):  # the built-in sum, not a user op named "sum"; exact is reproducible
        return _integer_scalar_sum(engine, x, "allreduce", (o.name, "integer scalar", (), bool(reproducible)), out)
    prep = _prepared(engine, x, o, "allreduce")
    _guard.check_agreement(engine, "allreduce", (o.name, prep.agreed, prep.shape, bool(reproducible)))
    if reproducible:
        if o.builtin != "sum":
            what = f"op={o.name!r}" if o.builtin else f"the user op {o.name!r}"
            raise ValueError(f"reproducible=True needs op='sum'; got {what}")
        from hpc.mpi.reproducible import reproducible_allreduce

        result = reproducible_allreduce(engine, prep.array)
    else:
        send = prep.array
        if out is x and send is x and x.flags.writeable:  # in place: no result of x's size beside it
            if not _mpi.is_local(engine.mpi):
                engine.allreduce_in_place(x, o.mpi)
            return out
        result = _np.empty_like(send)
        engine.run(
            "allreduce",
            lambda: engine.mpi.Allreduce(send, result, o.mpi),
            lambda: engine.mpi.Iallreduce(send, result, o.mpi),
        )
    if out is not None:
        # checked after the collective: a rank with a bad `out` raises alone instead of leaving the others waiting
        result = prep.in_dtype(result, o).reshape(prep.shape)
        _check_out(out, x, result.dtype, prep.dtype)
        out[...] = result
        return out
    return prep.give_back(result, o)


_SUM = resolve("sum")
_INT_SPLIT = 31  # a Python int travels as hi = x >> 31 and lo = x & (2**31 - 1)
_INT_EXACT_BITS = 80  # |x| below 2**80: |hi| < 2**49, so up to 2**13 ranks sum without int64 overflow


def _is_integer_scalar(x: Any) -> bool:
    """A Python int or bool, or a NumPy integer or bool scalar or 0-d array: the values that take the exact sum.

    0-d arrays belong here with the NumPy scalars they stand for (``numpy.asarray(3)``, ``a.sum(keepdims=False)``
    wrapped by ``asarray``): a 0-d array on one rank and a scalar on another must travel the same way.
    """
    if isinstance(x, int):
        return True
    return isinstance(x, (_np.generic, _np.ndarray)) and x.ndim == 0 and x.dtype.kind in "biu"


def _integer_scalar_sum(engine: Any, x: Any, what: str, signature: tuple[Any, ...], out: Any = None) -> Any:
    """Return the sum of every rank's integer scalar, exact, in the caller's type (or written to ``out``).

    Every kind of integer scalar travels the same way, so ranks may mix them (a Python int on one rank, the
    ``numpy.int64`` of an ``ndarray.sum()`` or a 0-d array on another; ``out=`` or not): one int64 allreduce of
    (hi, lo, too_big) words; if any rank's value is too big for them, every rank then sums the values as Python ints
    pickled (mpi4py's lower-case allreduce), which is exact for any size. A Python int gets the exact sum (an int64
    sum would wrap: 2**62 on 2 ranks is -2**63), a bool the count; a NumPy scalar or 0-d array gets the sum in its
    own dtype (int64 for bool), wrapped as NumPy wraps. Check mode compares ``signature`` (``"integer scalar"`` in
    place of a dtype), so an array on another rank is reported, not summed with the words. ``reduce`` of integer
    scalars takes this allreduce too (``what`` names the caller in reports); ``iallreduce`` takes the words only.
    """
    value = int(x)
    if engine.size == 1:
        total = value
    else:
        _guard.check_agreement(engine, what, signature)
        send = _integer_words(engine, value)
        summed = _np.empty_like(send)
        engine.run(
            what,
            lambda: engine.mpi.Allreduce(send, summed, _SUM.mpi),
            lambda: engine.mpi.Iallreduce(send, summed, _SUM.mpi),
        )
        total = _integer_total(summed)
        if total is None:  # the same on every rank: all take this branch together
            engine.seq += 1
            _guard.arrive(engine, what)  # mpi4py's pickled allreduce has no non-blocking form
            total = engine.mpi.allreduce(value)
    return _integer_result(x, total, out)


def _integer_scalar_scan(engine: Any, x: Any, what: str, exclusive: bool) -> Any:
    """The exact prefix sum of every rank's integer scalar, in the caller's type (see :func:`_integer_scalar_sum`).

    One allgather of (value, too_big) int64 pairs: each rank adds the values of the ranks before it as Python ints.
    If some rank's value is beyond int64, every rank then gathers the values pickled (exact for any size).
    """
    value = int(x)
    values = [value]
    if engine.size > 1:
        _guard.check_agreement(engine, what, ("sum", "integer scalar", ()))
        fits = _INT64.min <= value <= _INT64.max
        send = _np.array([value, 0] if fits else [0, 1], _np.int64)
        pairs = _np.empty((engine.size, 2), _np.int64)
        engine.run(what, lambda: engine.mpi.Allgather(send, pairs), lambda: engine.mpi.Iallgather(send, pairs))
        if pairs[:, 1].any():  # on every rank alike
            values = allgather_objects(engine, what, value)
        else:
            values = [int(v) for v in pairs[:, 0]]
    total = sum(values[: engine.rank + (0 if exclusive else 1)])
    return _integer_result(x, total)


def _integer_words(engine: Any, value: int) -> Any:
    """The int64 words (hi, lo, too_big) ``value`` travels as; ``too_big`` is 1 when the words cannot carry it."""
    # the hi words of `size` ranks must sum within int64: fewer bits from 8192 ranks up (2**72 on 2**20 ranks)
    fits = abs(value) < 1 << min(_INT_EXACT_BITS, 93 - engine.size.bit_length())
    return _np.array([value >> _INT_SPLIT, value & ((1 << _INT_SPLIT) - 1), 0] if fits else [0, 0, 1], _np.int64)


def _integer_total(summed: Any) -> int | None:
    """The exact sum from the summed words, or None when some rank's value was too big for them."""
    if summed[2]:
        return None
    return (int(summed[0]) << _INT_SPLIT) + int(summed[1])


def _integer_result(x: Any, total: int, out: Any = None) -> Any:
    """``total`` in the type of the integer scalar ``x`` (a NumPy one wraps to its dtype), or written to ``out``."""
    numpy = isinstance(x, (_np.generic, _np.ndarray))
    if not numpy and out is None:
        return total
    x_dtype = x.dtype if numpy else _np.dtype(_np.bool_ if isinstance(x, bool) else _np.int64)
    dtype = _np.dtype(_np.int64) if x_dtype.kind == "b" else x_dtype  # numpy.sum of bools counts in int64
    bits = 8 * dtype.itemsize
    total &= (1 << bits) - 1
    if dtype.kind == "i" and total >> (bits - 1):
        total -= 1 << bits
    result = _np.array(total, dtype)
    if out is not None:
        # checked after the collective: a rank with a bad `out` raises alone instead of leaving the others waiting
        _check_out(out, x, dtype, x_dtype)
        out[...] = result
        return out
    return result if isinstance(x, _np.ndarray) else result[()]


def _check_out(out: Any, x: Any, dtype: _np.dtype, x_dtype: _np.dtype) -> None:
    if not isinstance(out, _np.ndarray) or out.shape != _np.shape(x):
        raise ValueError(f"out must be a numpy array of shape {_np.shape(x)}; got {type(out).__name__} {out!r:.60}")
    if out.dtype != x_dtype and not _np.can_cast(dtype, out.dtype, "same_kind"):
        raise TypeError(f"out of dtype {out.dtype} cannot hold the {dtype} result (numpy's same_kind casting rule)")


def _arg(engine: Any, x: Any, o: Op, what: str, root: int | None = None) -> tuple[Any, int]:
    """argmin or argmax: every rank's best candidate and length, allgathered (pickled), then the best of them.

    Check mode compares (op, dtype, root): lengths may differ, dtypes may not. With the watchdog on, a watched
    barrier goes first, since the pickled allgather has no non-blocking form.
    """
    arr = _asarray(x, o.name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{o.name} supports real numeric arrays and scalars; got dtype {arr.dtype}")
    if arr.ndim > 1:
        raise ValueError(f"{o.name} needs a 1-D local array or a scalar; got shape {arr.shape}")
    _guard.agree(engine, what, (o.name, agreed_dtype(arr.dtype), root))
    flat = arr.reshape(-1)
    local = None
    if flat.size:
        i = int(_np.argmin(flat) if o.builtin == "argmin" else _np.argmax(flat))
        local = (flat[i].item(), i)
    engine.seq += 1
    everyone = engine.mpi.allgather((local, int(flat.size)))
    best, offset = None, 0
    for candidate, n in everyone:  # rank order = global index order, so the first best wins ties
        if candidate is not None:
            value, i = candidate
            if best is None or _better(value, best[0], o.builtin):
                best = (value, offset + i)
        offset += n
    if best is None:
        raise ValueError(f"{o.name} of an empty distributed array")
    value = _np.asarray(best[0], dtype=arr.dtype)
    python_scalar = isinstance(x, _SCALARS) and not isinstance(x, _np.generic)
    return (value.item() if python_scalar else value[()]), best[1]


def _better(value: Any, best: Any, name: str) -> bool:
    if best != best:  # NaN already found: numpy's argmin/argmax return the first NaN
        return False
    if value != value:
        return True
    return value < best if name == "argmin" else value > best


class CollectiveFuture:
    """Returned by :meth:`hpc.mpi.Comm.iallreduce`: ``result()`` waits and returns the reduced value."""

    def __init__(self, engine: Any, request: Any, send: Any, recv: Any, finish: Any) -> None:
        # `send` is held until the request completes: MPI reads it meanwhile
        self._engine, self._request, self._send, self._recv, self._finish = engine, request, send, recv, finish
        self._done = False
        self._outcome: tuple[bool, Any] | None = None  # (raised, the value or the exception), made once
        self._lock = _threading.Lock()  # result() from two threads: made once all the same

    def done(self) -> bool:
        """Return whether the collective has completed (never blocks)."""
        if not self._done:
            self._done = bool(self._request.Test())
        return self._done

    def result(self) -> Any:
        """Wait for the collective and return what :meth:`~hpc.mpi.Comm.allreduce` would have returned; every call
        returns that same value (or raises the same exception), as :class:`concurrent.futures.Future` does."""
        if not self._done:
            _guard.wait(self._engine, self._request, "iallreduce")
            self._done = True
        with self._lock:
            if self._outcome is None:  # finished once: float min/max decode their keys in place
                try:
                    self._outcome = (False, self._finish(self._recv))
                except Exception as exc:
                    self._outcome = (True, exc)
        raised, value = self._outcome
        if raised:
            raise value
        return value

    def __repr__(self) -> str:
        return f"<hpc.mpi CollectiveFuture {'done' if self._done else 'pending'}>"


def _elementwise(op: Any, what: str) -> Op:
    o = resolve(op)
    if o.builtin in ("argmin", "argmax"):
        raise ValueError(f"{what} does not support op={o.name!r}; use allreduce or reduce")
    return o


def iallreduce(engine: Any, x: Any, op: Any = "sum") -> CollectiveFuture:
    """See :meth:`hpc.mpi.Comm.iallreduce`."""
    o = _elementwise(op, "iallreduce")
    if o is _SUM and _is_integer_scalar(x):  # allreduce's exact words; no room for its pickled fallback
        _guard.check_agreement(engine, "iallreduce", (o.name, "integer scalar", ()))
        send = _integer_words(engine, int(x))

        def finish(summed: Any) -> Any:
            total = _integer_total(summed)
            if total is None:  # on every rank alike
                raise OverflowError(
                    "iallreduce sums integer scalars exactly below 2**80 in magnitude (2**(93 - size.bit_length()) "
                    "from 8192 ranks up); a rank passed a larger one: allreduce sums any size"
                )
            return _integer_result(x, total)
    else:
        prep = _prepared(engine, x, o, "iallreduce")
        _guard.check_agreement(engine, "iallreduce", (o.name, prep.agreed, prep.shape))
        send = prep.array

        def finish(recv: Any) -> Any:
            return prep.give_back(recv, o)

    recv = _np.empty_like(send)
    engine.seq += 1
    return CollectiveFuture(engine, engine.mpi.Iallreduce(send, recv, o.mpi), send, recv, finish)


# --------------------------------------------------------------------------------------------------- rooted


def reduce(engine: Any, x: Any, op: Any = "sum", root: int = 0) -> Any:
    """See :meth:`hpc.mpi.Comm.reduce`."""
    root = _check_root(engine, root)
    o = resolve(op)
    if o.builtin in ("argmin", "argmax"):
        result = _arg(engine, x, o, "reduce", root)
        return result if engine.rank == root else None
    if o is _SUM and _is_integer_scalar(x):  # exact, as in allreduce, whose words it shares (every rank gets them)
        total = _integer_scalar_sum(engine, x, "reduce", (o.name, "integer scalar", (), root))
        return total if engine.rank == root else None
    prep = _prepared(engine, x, o, "reduce")
    _guard.check_agreement(engine, "reduce", (o.name, prep.agreed, prep.shape, root))
    recv = _np.empty_like(prep.array)
    engine.run(
        "reduce",
        lambda: engine.mpi.Reduce(prep.array, recv, o.mpi, root=root),
        lambda: engine.mpi.Ireduce(prep.array, recv, o.mpi, root=root),
    )
    return prep.give_back(recv, o) if engine.rank == root else None


def bcast(engine: Any, x: Any, root: int = 0) -> Any:
    """See :meth:`hpc.mpi.Comm.bcast`. Numeric arrays and scalars travel as buffers; other objects are pickled."""
    root = _check_root(engine, root)
    meta = None
    if engine.rank == root:
        if isinstance(x, _np.generic) and x.dtype.kind not in "biufc":  # a NumPy string, datetime, void scalar
            meta = ("object", x)  # any other Python object, pickled (only arrays of such dtypes are refused)
        elif isinstance(x, (_np.ma.MaskedArray, _np.matrix)):  # pickled, as mpi4py sends them: a buffer would drop
            meta = ("object", x)  # the mask, or the class (a memmap's or a pinned array's data go as a buffer)
        elif isinstance(x, (_np.ndarray, _np.generic, *_SCALARS)):
            try:
                prep = _Prepared(x, None, "bcast")
                meta = ("buffer", prep.dtype.str, prep.shape, prep.python_scalar, prep.numpy_scalar)
            except TypeError as exc:  # sent on, so that every rank raises instead of waiting for the buffer
                meta = ("error", str(exc))
            except OverflowError:  # a Python int beyond int64: pickled, exact
                meta = ("object", x)
        else:
            meta = ("object", x)
    # Check mode compares roots (each rank would otherwise take its own root's data); the watchdog watches a
    # barrier first: the pickled bcast below has no non-blocking form, and on the root it returns without waiting.
    _guard.agree(engine, "bcast", (root,))
    engine.seq += 1
    meta = engine.mpi.bcast(meta, root=root)
    if meta[0] == "object":
        return meta[1]
    if meta[0] == "error":
        raise TypeError(meta[1] if engine.rank == root else f"{meta[1]} (on the root, rank {root})")
    _, dtype, shape, python_scalar, numpy_scalar = meta
    buf = prep.array if engine.rank == root else _np.empty(shape, _working_dtype(_np.dtype(dtype), None))
    engine.run("bcast", lambda: engine.mpi.Bcast(buf, root=root), lambda: engine.mpi.Ibcast(buf, root=root))
    out = buf.astype(dtype, copy=engine.rank == root).reshape(shape)  # the root's too is new memory, as mpi4py's
    if python_scalar:
        return out.item()
    return out[()] if numpy_scalar else out


# --------------------------------------------------------------------------------------------------- gathers


def allgather_objects(engine: Any, what: str, obj: Any) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order (mpi4py's pickled ``allgather``), arrived at under ``what``."""
    _guard.arrive(engine, what)  # the pickled allgather has no non-blocking form
    engine.seq += 1
    return engine.mpi.allgather(obj)


def allgather(engine: Any, x: Any) -> Any:
    """See :meth:`hpc.mpi.Comm.allgather`."""
    try:
        prep = _Prepared(x, None, "allgather")
    except (TypeError, ValueError, OverflowError) as exc:  # the others learn it from the layouts, below
        allgather_objects(engine, "allgather", ("allgather", f"refused: {type(exc).__name__}"))
        raise
    arr = prep.array.reshape(1) if prep.array.ndim == 0 else prep.array
    # The layout of every rank's part is needed anyway (counts for Allgatherv); checking it costs nothing more. It
    # starts with the collective's name, as check mode's signatures do: a rank in another collective's check is
    # reported on every rank, here and there.
    layouts = allgather_objects(engine, "allgather", ("allgather", arr.shape[0], arr.shape[1:], prep.agreed))
    if any(lay[0] != "allgather" or lay[2:] != layouts[0][2:] for lay in layouts):
        lines = "\n".join(f"  rank {r}: {lay[0]} {lay[1:]}" for r, lay in enumerate(layouts))
        raise _guard.RankMismatchError(
            f"allgather: ranks disagree on (collective, rows, trailing shape, dtype):\n{lines}"
        )
    row = int(_np.prod(arr.shape[1:], dtype=_np.int64))
    counts = [lay[1] * row for lay in layouts]
    total = sum(lay[1] for lay in layouts)
    recv = _np.empty((total, *arr.shape[1:]), dtype=arr.dtype)
    engine.run(
        "allgather",
        lambda: engine.mpi.Allgatherv(arr, (recv, counts)),
        lambda: engine.mpi.Iallgatherv(arr, (recv, counts)),
    )
    return recv.astype(prep.dtype, copy=False)


def reduce_scatter(engine: Any, x: Any, op: Any = "sum") -> Any:
    """See :meth:`hpc.mpi.Comm.reduce_scatter`."""
    o = _elementwise(op, "reduce_scatter")
    if _np.ndim(x) == 0:  # before _Prepared, whose contiguous copy of a 0-d array has shape (1,)
        raise ValueError("reduce_scatter needs an array with at least one dimension; got a scalar")
    prep = _prepared(engine, x, o, "reduce_scatter")
    _guard.check_agreement(engine, "reduce_scatter", (o.name, prep.agreed, prep.shape))
    n = prep.array.shape[0]
    row = int(_np.prod(prep.array.shape[1:], dtype=_np.int64))
    rows = [len(b) for b in _np.array_split(_np.arange(n), engine.size)]
    recv = _np.empty((rows[engine.rank], *prep.array.shape[1:]), dtype=prep.array.dtype)
    counts = [r * row for r in rows]
    engine.run(
        "reduce_scatter",
        lambda: engine.mpi.Reduce_scatter(prep.array, recv, counts, o.mpi),
        lambda: engine.mpi.Ireduce_scatter(prep.array, recv, counts, o.mpi),
    )
    return prep.in_dtype(recv, o)


def scan(engine: Any, x: Any, op: Any = "sum", exclusive: bool = False) -> Any:
    """See :meth:`hpc.mpi.Comm.scan` and :meth:`hpc.mpi.Comm.exscan`."""
    what = "exscan" if exclusive else "scan"
    o = _elementwise(op, what)
    if o is _SUM and _is_integer_scalar(x):  # exact, as in allreduce
        return _integer_scalar_scan(engine, x, what, exclusive)
    prep = _prepared(engine, x, o, what)
    _guard.check_agreement(engine, what, (o.name, prep.agreed, prep.shape))
    recv = _np.empty_like(prep.array)
    if exclusive:
        engine.run(
            what,
            lambda: engine.mpi.Exscan(prep.array, recv, o.mpi),
            lambda: engine.mpi.Iexscan(prep.array, recv, o.mpi),
        )
        if engine.rank == 0:  # MPI leaves rank 0's buffer undefined; give the op's identity instead
            identity = o.identity(_working_dtype(prep.dtype, o))
            if identity is None:
                return None
            recv[...] = prep.to_working(identity)
    else:
        engine.run(
            what, lambda: engine.mpi.Scan(prep.array, recv, o.mpi), lambda: engine.mpi.Iscan(prep.array, recv, o.mpi)
        )
    return prep.give_back(recv, o)
