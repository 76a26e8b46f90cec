"""Reduction operations: names, MPI ops, NumPy equivalents, and user ops compiled with numba."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as _np

from hpc.mpi import _mpi

__all__ = ["BUILTIN_OPS", "Op", "op", "resolve"]

#: the names ``op=`` takes besides an :class:`Op` (``mpi.op(fn)``)
BUILTIN_OPS = ("sum", "prod", "min", "max", "land", "lor", "band", "bor", "argmin", "argmax")

_UFUNCS = {
    "sum": _np.add,
    "prod": _np.multiply,
    "min": _np.minimum,
    "max": _np.maximum,
    "land": _np.logical_and,
    "lor": _np.logical_or,
    "band": _np.bitwise_and,
    "bor": _np.bitwise_or,
}


class Op:
    """A reduction: its name, the MPI op, the NumPy ufunc that computes it locally, and which dtypes it allows."""

    def __init__(self, name: str, ufunc: Any, commute: bool = True, mpi_op: Any = None, builtin: bool = False) -> None:
        self.name, self.ufunc, self.commute = name, ufunc, commute
        #: the built-in op's name ("sum", ...), or None for an :func:`op`: what the code paths decide on (a user
        #: function may well be called ``sum`` or ``land``; its name is only for messages)
        self.builtin: str | None = name if builtin else None
        self._mpi_op = mpi_op
        #: for an :func:`op`, its compiled combine loop (numba, nopython and nogil); ``None`` for built-in ops
        self.kernel: Any = None
        self._compiled_for: set[_np.dtype] = set()  # the dtypes compile_for has seen compile (a set test a call)

    @property
    def mpi(self) -> Any:
        """The mpi4py op (``None`` without an MPI library)."""
        if self._mpi_op is None:  # a built-in op (a user op got its MPI op when made, where MPI is)
            self._mpi_op = _mpi.builtin_op(self.builtin)
        return self._mpi_op

    def check_dtype(self, dtype: _np.dtype) -> None:
        """Raise TypeError when this op is not defined for ``dtype``."""
        kind = dtype.kind
        if self.builtin in ("band", "bor", "land", "lor") and kind not in "biu":
            raise TypeError(f"op {self.name!r} needs an integer or bool dtype; got {dtype}")
        if self.builtin in ("min", "max", "argmin", "argmax") and kind == "c":
            raise TypeError(f"op {self.name!r} is not defined for complex dtype {dtype}")

    def compile_for(self, dtype: _np.dtype) -> None:
        """For a user op, compile its combine loop for ``dtype`` now, before any rank enters MPI: numba's error
        inside MPI's reduction callback cannot be caught, and ends the job. Raise TypeError naming the op if numba
        cannot compile it."""
        if self.kernel is None or dtype in self._compiled_for:
            return
        import numba

        try:
            array = numba.types.Array(numba.from_dtype(dtype), 1, "C")  # long double: numba has no type for it
            self.kernel.compile((array, array))  # returns at once where MPI's callback compiled it already
        except numba.core.errors.TypingError as exc:  # NumbaNotImplementedError (a dtype numba lacks) is one too
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            if isinstance(exc, numba.core.errors.NumbaNotImplementedError):  # from_dtype: no numba type
                call = f"numba has no type for {dtype}"
            else:
                call = next((line for line in lines if line.startswith(">>>")), lines[1] if len(lines) > 1 else "")
            raise TypeError(
                f"op {self.name!r} cannot combine {dtype} values: numba could not compile its function (failed: "
                f"{call.lstrip('> ')})"
            ) from None
        self._compiled_for.add(dtype)

    def identity(self, dtype: _np.dtype) -> Any:
        """Return the identity element of this op for ``dtype`` (used for exscan on rank 0), or None."""
        if self.builtin in ("sum", "bor", "lor"):
            return _np.zeros((), dtype)
        if self.builtin == "prod":
            return _np.ones((), dtype)
        if self.builtin == "band":
            return _np.array(-1).astype(dtype)
        if self.builtin == "land":
            return _np.ones((), dtype)
        if self.builtin == "min":
            return _np.array(_np.inf if dtype.kind == "f" else _np.iinfo(dtype).max).astype(dtype)
        if self.builtin == "max":
            return _np.array(-_np.inf if dtype.kind == "f" else _np.iinfo(dtype).min).astype(dtype)
        return None

    def __repr__(self) -> str:
        return f"<hpc.mpi op {self.name}>"


_BUILTINS = {name: Op(name, _UFUNCS.get(name), builtin=True) for name in BUILTIN_OPS}


def resolve(op_: Any) -> Op:
    """Return the :class:`Op` for a name or an :class:`Op`; raise ValueError naming the accepted ops."""
    if isinstance(op_, Op):
        return op_
    if isinstance(op_, str) and op_.lower() in _BUILTINS:
        return _BUILTINS[op_.lower()]
    raise ValueError(f"op must be one of {', '.join(BUILTIN_OPS)} or an hpc.mpi.op(...); got {op_!r}")


def op(fn: Callable[[Any, Any], Any], commute: bool = True, name: str | None = None) -> Op:
    """Return a user reduction op from a binary elementwise function ``fn(a, b)``.

    ``fn`` is compiled with numba (``nopython``, ``nogil``); MPI calls the combine loop on raw buffers, and the loop
    runs without the GIL. ``commute=False`` tells MPI the op is not commutative (it then combines in rank order).

    Example:
        >>> from hpc import mpi
        >>> absmax = mpi.op(lambda a, b: max(abs(a), abs(b)))
        >>> float(mpi.world().allreduce(-3.0, op=absmax)) in (-3.0, 3.0)   # one rank: the value itself
        True

    .. seealso:: :meth:`mpi4py.MPI.Op.Create`
    """
    import numba

    scalar = fn if hasattr(fn, "py_func") else numba.njit(nogil=True, cache=False)(fn)

    @numba.njit(nogil=True)
    def combine(inbuf: Any, inout: Any) -> None:  # MPI semantics: inout = in (op) inout
        for i in range(inout.shape[0]):
            inout[i] = scalar(inbuf[i], inout[i])

    def local(a: Any, b: Any) -> Any:
        a1, b1 = _np.array(a, copy=True).reshape(-1), _np.array(b, copy=True).reshape(-1)
        combine(a1, b1)
        return b1.reshape(_np.shape(b))

    mpi_op = _mpi.create_op(combine, commute)
    user = Op(name or getattr(fn, "__name__", "user_op"), None, commute, mpi_op)
    user.ufunc = _UfuncLike(local)
    user.kernel = combine
    return user


class _UfuncLike:
    """Gives a user op the ``reduce``/``accumulate``/call surface the local code paths use."""

    def __init__(self, pairwise: Callable[[Any, Any], Any]) -> None:
        self.pairwise = pairwise

    def __call__(self, a: Any, b: Any) -> Any:
        return self.pairwise(a, b)

    def reduce(self, stack: Any, axis: int = 0) -> Any:
        acc = stack[-1].copy()
        for row in stack[-2::-1]:
            acc = self.pairwise(row, acc)
        return acc

    def accumulate(self, stack: Any, axis: int = 0) -> Any:
        out = [stack[0].copy()]
        for row in stack[1:]:
            out.append(self.pairwise(out[-1], row))
        return _np.stack(out)
