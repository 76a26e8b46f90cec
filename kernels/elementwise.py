"""Fused elementwise kernels: ``axpbyc`` (``a*x + b*y + c`` in one pass) and ``fuse``, which fuses your own.

NumPy evaluates ``a*x + b*y + c`` as four operations with three temporary arrays; a fused kernel reads ``x`` and
``y`` once and writes once. ``fuse(f)`` turns a scalar function into such a kernel: ``fuse(lambda x, y: x*y + 1)``
returns a callable taking arrays (of one shape) and scalars, compiled by numba into a serial and a ``prange``
loop per pattern of array/scalar arguments.
"""

from __future__ import annotations

import inspect as _inspect
from collections.abc import Callable
from typing import Any

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange
from numba.core.errors import TypingError as _TypingError

from . import _checks
from ._flags import ELEMENTWISE
from ._types import Real
from .intrinsics import STREAM_BYTES as _STREAM_BYTES
from .intrinsics import store_fence as _store_fence
from .intrinsics import stream_axpbyc as _stream_axpbyc
from .intrinsics import stream_start as _stream_start
from .reductions import CHUNK as _CHUNK

__all__ = ["axpbyc", "fuse"]


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpbyc_serial(a, x, b, y, c, out):  # pragma: no cover - compiled by numba
    for i in range(x.shape[0]):
        out[i] = a * x[i] + (b * y[i] + c)


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _axpbyc_parallel(a, x, b, y, c, out):  # pragma: no cover - compiled by numba
    for i in _prange(x.shape[0]):
        out[i] = a * x[i] + (b * y[i] + c)


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpbyc_stream_view(a, x, b, y, c, out):  # pragma: no cover - compiled by numba
    # ordinary stores up to the first 64-byte boundary of out and after the last one; streaming stores between
    n = out.shape[0]
    lanes = _STREAM_BYTES // out.itemsize
    i = _stream_start(out)
    for j in range(i):
        out[j] = a * x[j] + (b * y[j] + c)
    while i + lanes <= n:
        _stream_axpbyc(a, x, b, y, c, out, i)
        i += lanes
    for j in range(i, n):
        out[j] = a * x[j] + (b * y[j] + c)
    _store_fence()


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE)
def _axpbyc_stream_serial(a, x, b, y, c, out):  # pragma: no cover - compiled by numba
    _axpbyc_stream_view(a, x, b, y, c, out)


@_njit(cache=True, nogil=True, fastmath=ELEMENTWISE, parallel=True)
def _axpbyc_stream_parallel(a, x, b, y, c, out):  # pragma: no cover - compiled by numba
    n = out.shape[0]
    for k in _prange((n + _CHUNK - 1) // _CHUNK):
        lo, hi = k * _CHUNK, min(n, (k + 1) * _CHUNK)
        _axpbyc_stream_view(a, x[lo:hi], b, y[lo:hi], c, out[lo:hi])


def axpbyc(
    a: Real, x: _np.ndarray, b: Real, y: _np.ndarray, c: Real = 0.0, *, out: _np.ndarray | None = None,
    parallel: bool | None = None,
) -> _np.ndarray:
    """Return ``a*x + b*y + c`` computed in one pass (two FMAs per element).

    A large output apart from the inputs is written with streaming (non-temporal) stores (see
    ``hpc.kernels._checks.use_streaming``): they bypass the caches, saving the read of each output line, so a
    following read of ``out`` comes from memory (as it would for an output that large anyway).

    Args:
        a, b, c (float): scalars (converted to the arrays' dtype).
        x, y (numpy.ndarray): float32 or float64, one shape and dtype; 1-D of any stride or N-D C-contiguous.
        out (numpy.ndarray or None): where to write, of ``x``'s shape and dtype (may be ``x`` or ``y``;
            any other overlap with them reads a copy of the input, see ``_checks.apart``).
        parallel (bool or None): use the ``prange`` variant; ``None`` decides by size.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.axpbyc(2.0, np.ones(2), 3.0, np.ones(2), 1.0).tolist()
        [6.0, 6.0]
    """
    xv = _checks.as_vector("x", x)
    yv = _checks.as_vector("y", y)
    _checks.check_same_dtype(x=xv, y=yv)
    if x.shape != y.shape:
        raise ValueError(f"y must have the shape of x, {x.shape}; got {y.shape}")
    res = _checks.out_array(out, x.shape, x.dtype)
    ov = _checks.as_vector("out", res)
    xv, yv = _checks.apart(ov, xv), _checks.apart(ov, yv)
    dtype = xv.dtype
    a, b, c = (_checks.real_scalar(name, v, dtype) for name, v in (("a", a), ("b", b), ("c", c)))
    par = _checks.use_parallel(parallel, xv.shape[0])
    if _checks.use_streaming(ov, xv, yv):
        kernel = _axpbyc_stream_parallel if par else _axpbyc_stream_serial
    else:
        kernel = _axpbyc_parallel if par else _axpbyc_serial
    kernel(a, xv, b, yv, c, ov)
    return res


class _Fused:
    """The callable ``fuse`` returns: one scalar function, compiled loops per array/scalar pattern."""

    def __init__(self, fn: Callable[..., Any], fastmath: bool | set[str]) -> None:
        self._fn = fn
        self._nargs = fn.__code__.co_argcount
        self._fastmath = fastmath
        # IEEE division, as NumPy's ufuncs (x / 0 is inf, 0 / 0 NaN): under numba's default a zero divisor raises
        # ZeroDivisionError, which the parallel loop did not report (its results past the failing element were
        # left unwritten)
        self._scalar = _njit(nogil=True, fastmath=fastmath, error_model="numpy")(fn)
        self._loops = {}
        self.__name__ = getattr(fn, "__name__", "fused")
        self.__doc__ = fn.__doc__

    def __repr__(self) -> str:
        return f"<hpc.kernels fused {self.__name__} nargs={self._nargs} compiled={len(self._loops)}>"

    def _loop(self, pattern, parallel):
        key = (pattern, parallel)
        if key not in self._loops:
            args = [f"a{k}" for k in range(len(pattern))]
            items = [f"a{k}[i]" if is_array else f"a{k}" for k, is_array in enumerate(pattern)]
            rng = "_prange" if parallel else "range"
            src = (
                f"def _fused_loop(out, {', '.join(args)}):\n"
                f"    for i in {rng}(out.shape[0]):\n"
                f"        out[i] = _f({', '.join(items)})\n"
            )
            scope = {"_f": self._scalar, "_prange": _prange}
            exec(compile(src, f"<hpc.kernels.fuse {self.__name__}>", "exec"), scope)  # noqa: S102 - our own source
            self._loops[key] = _njit(nogil=True, fastmath=self._fastmath, parallel=parallel, error_model="numpy")(
                scope["_fused_loop"])
        return self._loops[key]

    def __call__(self, *args: Any, out: _np.ndarray | None = None, parallel: bool | None = None) -> _np.ndarray:
        if len(args) != self._nargs:
            raise TypeError(f"args must be {self._nargs} arrays or scalars for {self.__name__}; got {len(args)}")
        # a 0-d array beside arrays of elements is a scalar, as in axpy and NumPy's ufuncs
        arrays = [(k, a) for k, a in enumerate(args) if isinstance(a, _np.ndarray) and a.ndim] or [
            (k, a) for k, a in enumerate(args) if isinstance(a, _np.ndarray)]
        if not arrays:
            kinds = tuple(type(a).__name__ for a in args)
            raise TypeError(f"args must include at least one numpy.ndarray; got {kinds}")
        shape = arrays[0][1].shape
        views = list(args)
        for k, a in arrays:
            if a.shape != shape:
                raise ValueError(f"args[{k}] must have the shape of args[{arrays[0][0]}], {shape}; got {a.shape}")
            views[k] = _checks.as_vector(f"args[{k}]", a)
        _checks.check_same_dtype(**{f"args[{k}]": a for k, a in arrays})
        dtype = arrays[0][1].dtype
        listed = {k for k, _ in arrays}
        for k, a in enumerate(args):
            if k not in listed:  # a complex scalar would lose its imaginary part: refused
                views[k] = _checks.real_scalar(f"args[{k}]", a, dtype)
        res = _checks.out_array(out, shape, dtype)
        ov = _checks.as_vector("out", res)
        views = [_checks.apart(ov, v) if isinstance(v, _np.ndarray) else v for v in views]
        pattern = tuple(k in listed for k in range(len(args)))
        par = _checks.use_parallel(parallel, ov.shape[0])
        try:
            self._loop(pattern, par)(ov, *views)
        except _TypingError as exc:  # fn is not numba's to compile for these scalars: one line, not numba's page
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            call = next((line for line in lines if line.startswith(">>>")), lines[1] if len(lines) > 1 else "")
            raise TypeError(f"fn {self.__name__!r} could not be compiled by numba for {dtype} scalars (failed: "
                            f"{call.lstrip('> ')})") from None
        except SystemError:
            if not par:
                raise
            # an exception raised by fn inside numba's parallel loop comes out as "returned a result with an
            # exception set": the serial loop raises fn's own exception (fn is a function of scalars, run again)
            self._loop(pattern, False)(ov, *views)
            raise
        return res


def fuse(fn: Callable[..., Any], *, fastmath: bool | set[str] = ELEMENTWISE) -> _Fused:
    """Return an elementwise kernel applying the scalar function ``fn`` in one fused, compiled pass.

    The returned callable takes as many arguments as ``fn`` (arrays of one shape and dtype, or scalars, at least
    one array), plus ``out=`` and ``parallel=`` as the other kernels, and returns ``out``. Loops are compiled
    on first use of each array/scalar pattern and serial/parallel choice; they are not cached on disk (the
    function is yours, not a module's).

    Division is IEEE's, as in NumPy's ufuncs (``x / 0`` is inf, ``0 / 0`` NaN, no ``ZeroDivisionError``). An
    exception ``fn`` raises reaches the caller as itself, from the serial and the parallel loop alike (the parallel
    loop's failure is run again serially to raise it); ``out`` is then partly written.

    Args:
        fn (callable): a function of scalars that numba can compile (``math`` functions, arithmetic, ``if``).
        fastmath (set or bool): numba fastmath flags of the loop; default ``{"contract"}`` (FMA only).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> f = kernels.fuse(lambda x, y: x * y + 1.0)
        >>> f(np.arange(3.0), 2.0).tolist()
        [1.0, 3.0, 5.0]
    """
    if not callable(fn) or not hasattr(fn, "__code__"):
        raise TypeError(f"fn must be a Python function of scalars; got {fn!r}")
    flags = fn.__code__.co_flags
    if flags & (_inspect.CO_VARARGS | _inspect.CO_VARKEYWORDS) or fn.__code__.co_kwonlyargcount:
        # the kernel passes one scalar per parameter, by position: *args, **kwargs and keyword-only ones have none
        raise TypeError(f"fn must take a fixed number of positional parameters; got {_inspect.signature(fn)}")
    return _Fused(fn, fastmath)
