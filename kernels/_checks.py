"""Argument checks shared by the kernels: dtype, shape, layout, ``out=``, the serial/parallel and streaming choices."""

from __future__ import annotations

import importlib.util as _importlib_util
import math as _math
import numbers as _numbers
import os as _os
import sys as _sys
import threading as _threading

import numba as _numba
import numpy as _np

from hpc import _numba_probe
from hpc import config as _config

__all__ = [
    "BLOCK_ELEMENTS",
    "COMPILED_BLAS",
    "F32",
    "F64",
    "FLOATS",
    "PARALLEL_MIN_ELEMENTS",
    "STREAM_MIN_BYTES",
    "TILE_PRODUCTS",
    "apart",
    "as_vector",
    "check_float",
    "check_parallel",
    "check_same_dtype",
    "compiled_blas",
    "matrix",
    "out_array",
    "owned_apart",
    "plain",
    "plain_vectors",
    "use_parallel",
    "use_streaming",
    "writeable",
]

#: the dtypes every kernel accepts
FLOATS = (_np.dtype(_np.float32), _np.dtype(_np.float64))
#: NumPy's own float32 and float64 dtype objects (arrays of those dtypes in native order hold these very objects)
F32, F64 = FLOATS

#: ``parallel=None`` runs the parallel variant from this many elements of work on (1 MiB of float64)
PARALLEL_MIN_ELEMENTS = 1 << 17
#: the elements of one block of a pass that converts or shifts its input a block at a time (1 MiB of float64: it
#: stays in cache, and the pass needs a few blocks of memory beside its input, not a copy of it)
BLOCK_ELEMENTS = 1 << 17

#: elementwise kernels write an output of at least this many bytes with streaming stores (see use_streaming)
STREAM_MIN_BYTES = 16 << 20

#: products per tile of the GEMM-form kernels (rows x points: ``sqdist``, ``kmeans_assign``, ``kmeans_step``):
#: 32 K float64 are 256 KiB, a core's L2 on the machines we measured, so a tile's products stay in cache between
#: the BLAS call that makes them and the compiled pass that reads them
TILE_PRODUCTS = 1 << 15

#: numba calls BLAS (``np.dot`` in compiled code) through SciPy's bindings: with SciPy a kernel's products and its
#: pass over them are one compiled call that never takes the GIL, and a parallel kernel's threads each make their own
#: products (no hand-over between BLAS's threads and numba's); without SciPy the products come from NumPy. ``None``
#: until :func:`compiled_blas` first asks (tests set it to choose a path).
COMPILED_BLAS: bool | None = None


def compiled_blas() -> bool:
    """Return whether compiled kernels may call BLAS: SciPy's ``scipy.linalg.cython_blas`` imports here.

    Asked on first use, by importing it (about 0.2 s, which numba's first compiled BLAS call would spend anyway). An
    installed SciPy that fails to import (built against another NumPy, a partial install) counts as none: numba's
    BLAS wrapper cannot report that failure, and ends the process ("Fatal Python error: BLAS wrapper returned with
    an error"). Where SciPy is not installed at all, nothing is imported.
    """
    global COMPILED_BLAS
    if COMPILED_BLAS is None:
        usable = False
        if _importlib_util.find_spec("scipy") is not None:
            try:
                import scipy.linalg.cython_blas  # noqa: F401 - the module numba takes its BLAS pointers from

                usable = True
            except Exception:  # any failure of a broken install: the kernels take NumPy's products instead
                usable = False
        COMPILED_BLAS = usable
    return COMPILED_BLAS


def plain(name: str, x: _np.ndarray) -> _np.ndarray:
    """Return ndarray ``x`` as a base-class ndarray over the same memory: a subclass (``numpy.matrix``, a memmap)
    becomes a view that the compiled loops can type (``matrix.reshape(-1)`` stays 2-D, and loops that took it so
    wrote past their buffer); a masked array raises ``TypeError`` (the kernels cannot honour its mask)."""
    if type(x) is _np.ndarray:
        return x
    if isinstance(x, _np.ma.MaskedArray):
        raise TypeError(f"{name} is a masked array, whose mask the kernels would ignore; pass numpy.ma.filled({name}, "
                        f"value) or {name}.compressed()")
    return x.view(_np.ndarray)


def check_float(name: str, x: object) -> _np.ndarray:
    """Return ``x`` if it is a float32 or float64 ndarray (a subclass as a plain view, see :func:`plain`), else raise
    ``TypeError``."""
    if not isinstance(x, _np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray of float32 or float64; got {_what(x)}")
    if x.dtype not in FLOATS:
        raise TypeError(f"{name} must be a float32 or float64 array; got dtype {x.dtype}")
    return plain(name, x)


def _what(x: object) -> str:
    """Name what was passed where an array was expected, with the way out where there is one."""
    kind = type(x)
    if isinstance(x, _np.generic):  # "got float64" read as if a float64 array had been refused
        return f"a numpy.{kind.__name__} scalar (pass numpy.asarray(x))"
    if kind.__name__ == "DeviceArray":  # hpc.cuda's, which only the kernels with GPU twins take
        return "an hpc.cuda.DeviceArray; this kernel has no GPU twin (docs/cuda.md lists them): pass x.get()"
    return kind.__name__


def check_same_dtype(**arrays: _np.ndarray) -> None:
    """Raise ``TypeError`` when the named arrays do not share one dtype."""
    values = iter(arrays.values())
    dtype = next(values).dtype
    for a in values:
        if a.dtype != dtype:
            listed = ", ".join(f"{name}: {a.dtype}" for name, a in arrays.items())
            raise TypeError(f"{', '.join(arrays)} must have the same dtype; got {listed}")


def as_vector(name: str, x: object) -> _np.ndarray:
    """Return a 1-D view of float array ``x``: any 1-D array (any stride), or an N-D C-contiguous one flattened.

    Raises:
        TypeError: not a float32/float64 ndarray.
        ValueError: N-D and not C-contiguous (flattening it would need a hidden copy).
    """
    x = check_float(name, x)
    if x.ndim == 1:
        return x
    if x.flags.c_contiguous:
        return x.reshape(-1)
    raise ValueError(f"{name} must be 1-D (any stride) or C-contiguous; got shape {x.shape} with strides {x.strides}")


def matrix(name: str, x: object) -> _np.ndarray:
    """Return float array ``x`` if it is 2-D, else raise (``TypeError`` for dtype, ``ValueError`` for shape)."""
    x = check_float(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array; got shape {x.shape}")
    return x


def out_array(out: object, shape: tuple[int, ...], dtype: _np.dtype, name: str = "out") -> _np.ndarray:
    """Return ``out`` checked against ``shape`` and ``dtype``, or a new empty array when ``out`` is ``None``."""
    if out is None:
        return _np.empty(shape, dtype)
    if not isinstance(out, _np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray or None; got {type(out).__name__}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have dtype {dtype}; got dtype {out.dtype}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {out.shape}")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable; got a read-only array")
    return plain(name, out)


def real_scalar(name: str, value: object, dtype: _np.dtype) -> _np.generic:
    """Return ``value`` as a scalar of ``dtype``: a Python or NumPy real number, or a 0-d array of one; anything else
    (None, a bool, a string, an array with elements) raises TypeError naming ``name`` (NumPy's float64(None) is NaN,
    and numba's refusal of an array is a page of typing errors)."""
    kind = type(value)
    if kind in _FAST_SCALARS:  # the common cases, fast (float32's range: OverflowError below)
        if dtype is F64 or not abs(value) > _F32_MAX or _math.isinf(value):
            return dtype.type(value)
        return _narrowed(name, value, dtype)
    if kind is int:
        if -(1 << 24) <= value <= 1 << 24:  # exact in every float dtype
            return dtype.type(value)
        try:
            return _narrowed(name, value, dtype)
        except OverflowError:  # NumPy's words name no argument
            raise OverflowError(f"{name} is too large for {dtype}; got an int of {value.bit_length()} bits") from None
    if isinstance(value, _np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf":
        return real_scalar(name, value[()], dtype)  # a 0-d array: its scalar
    if isinstance(value, _numbers.Real) and not isinstance(value, (bool, _np.bool_)):  # Fraction too
        return _narrowed(name, value, dtype)
    what = f"an array of shape {value.shape}" if isinstance(value, _np.ndarray) else type(value).__name__
    raise TypeError(f"{name} must be a real number; got {what}")


_F32_MAX = float(_np.finfo(_np.float32).max)
#: the scalar types real_scalar takes on its fast path (a frozenset: one lookup, where each ``_np.float64`` is two)
_FAST_SCALARS = frozenset({float, _np.float64, _np.float32, _np.int64})
#: the largest finite value of each float dtype the kernels take (read once: np.finfo costs a microsecond)
_FLOAT_MAX = {F32: _F32_MAX, F64: float(_np.finfo(_np.float64).max)}


def _narrowed(name: str, value: object, dtype: _np.dtype) -> _np.generic:
    """``value`` as ``dtype``; a finite value beyond its range raises OverflowError naming ``name`` (float32 turned
    ``10**40`` into inf with a warning, where ``2**1024`` raised), an infinity or NaN given as such is taken."""
    try:
        wide = float(value)
    except OverflowError:
        raise OverflowError(f"{name} is too large for {dtype}; got {value!r}") from None
    if _math.isfinite(wide) and abs(wide) > _FLOAT_MAX.get(dtype, _math.inf):
        raise OverflowError(f"{name} is too large for {dtype}; got {value!r}")
    return dtype.type(wide) if not isinstance(value, _np.floating) else dtype.type(value)


def plain_vectors(a: object, b: object, c: object = None) -> bool:
    """Whether ``a``, ``b`` (and ``c`` if given) are the common case that needs no other check: exact 1-D ndarrays
    of one length whose dtype is NumPy's own float64 or float32 object (byte-swapped or other float dtypes are other
    objects). A ``False`` means: check them one by one. (It runs on every small call: fixed arguments, no loop, each
    attribute read once, lengths compared with ``len`` rather than building shape tuples.)"""
    if type(a) is not _np.ndarray or type(b) is not _np.ndarray:
        return False
    dtype = a.dtype
    if (dtype is not F64 and dtype is not F32) or b.dtype is not dtype or a.ndim != 1 or b.ndim != 1:
        return False
    n = len(a)
    if len(b) != n:
        return False
    return c is None or (type(c) is _np.ndarray and c.ndim == 1 and c.dtype is dtype and len(c) == n)


def owned_apart(out: _np.ndarray, *inputs: _np.ndarray) -> bool:
    """Whether ``out`` is writeable and it and every input own their memory, no input being ``out``: then no input
    overlaps ``out`` (arrays that own their memory never share it) and :func:`apart` would copy none."""
    flags = out.flags
    if not (flags.owndata and flags.writeable):
        return False
    for v in inputs:
        if v is out or not v.flags.owndata:
            return False
    return True


def block_rows(value: object, m: int) -> int:
    """Return the rows per block of a blocked kernel call: ``value`` (an int >= 1), or every row (None)."""
    if value is None:
        return max(m, 1)
    if isinstance(value, bool) or not isinstance(value, (int, _np.integer)) or value < 1:
        raise ValueError(f"block_rows must be an int >= 1 or None; got {value!r}")
    return int(value)


def writeable(name: str, a: _np.ndarray, why: str, remedy: str = "pass out= or a copy") -> _np.ndarray:
    """Return ``a`` if it is writeable, else raise ``ValueError`` naming it, why it is written and what to do."""
    if not a.flags.writeable:
        raise ValueError(f"{name} must be writeable: {why}; got a read-only array ({remedy})")
    return a


def same_elements(a: _np.ndarray, b: _np.ndarray) -> bool:
    """Whether two arrays are the very same elements in the same order (a kernel writing its own input)."""
    return a is b or (a.shape == b.shape and a.strides == b.strides and a.ctypes.data == b.ctypes.data)


def apart(out: _np.ndarray, v: _np.ndarray) -> _np.ndarray:
    """Return input ``v`` of a kernel writing ``out``, copied if the two overlap other than element for element.

    ``out`` may be ``v`` itself (or a view of the very same elements): each element is read before it is written.
    A partial overlap (``out`` a shifted or reversed view of ``v``'s memory) would let the kernel read elements it
    has already overwritten; NumPy's ufuncs compute as if from a copy, and so do the kernels.
    """
    if out is v:
        return v
    if out.flags.owndata and v.flags.owndata or not _np.may_share_memory(out, v):  # two arrays that own their
        return v  # memory never share it
    return v if same_elements(out, v) else v.copy()


def use_parallel(parallel: object, work: int, min_work: int = PARALLEL_MIN_ELEMENTS) -> bool:
    """Return whether to run the parallel variant: ``parallel`` if given, else ``work >= min_work`` with 2+ threads
    for the calling thread. Inside a worker of hpc's pool numba's count is 1 where the pool uses the cores: the
    serial variant then (a team of one is overhead, and numba's workqueue layer aborts on parallel kernels entered
    from several threads at once); on that layer, threads other than the main one take the serial variant too."""
    if parallel is None:
        if work < min_work or _config.num_threads() <= 1 or _forked_after_gnu_openmp:
            return False
        # numba's count for this thread (0.75 us, beside the 1 MiB of work this takes): 1 in hpc's pool workers,
        # under NUMBA_NUM_THREADS=1, or after numba.set_num_threads(1) on the main thread too. Asking starts numba's
        # layer: in a pool worker it starts with the worker's count (else a full team per worker, once)
        wanted = _config.pool_numba_threads()
        if wanted is not None and not _numba_probe.layer_started():
            _numba.set_num_threads(max(1, min(wanted, _numba.config.NUMBA_NUM_THREADS)))
        if _numba.get_num_threads() <= 1:
            return False
        if _forked_beside_gnu_openmp and _child_on_gnu_openmp():
            return False
        return not _on_workqueue() or _threading.current_thread() is _threading.main_thread()
    if parallel is True and (_forked_after_gnu_openmp or _forked_beside_gnu_openmp and _child_on_gnu_openmp()):
        raise RuntimeError(
            "parallel=True cannot run in this process: it was forked from one that had started numba's threads on "
            "GNU OpenMP (numba ends a parallel kernel here, SIGTERM), or that had GNU OpenMP's libgomp.so.1 loaded "
            "(torch's, say), whose threads, if it had started them, a parallel kernel here would wait for forever; "
            "use parallel=None or False here, start processes with the 'spawn' or 'forkserver' method, or use "
            "numba's 'tbb' threading layer"
        )
    return check_parallel(parallel)


#: whether this process was forked from one whose numba threading layer had started on GNU OpenMP: numba ends a
#: parallel kernel there ("fork() called from a process already using GNU OpenMP"), so the serial variants only
_forked_after_gnu_openmp = False


#: whether this process was forked from one that had a GNU OpenMP runtime loaded (a ``libgomp.so.1``: torch's CPU
#: wheels bring their own by that name) while numba's layer had not started. numba's OpenMP layer binds to that very
#: library here; if the parent had started its threads (one torch op does), this process's first parallel region
#: waits for them forever. Whether it had cannot be read, so such a child takes the serial variants once its own
#: layer turns out to be GNU OpenMP (:func:`_child_on_gnu_openmp`).
_forked_beside_gnu_openmp = False


def _layer_is_gnu_openmp() -> bool:
    """Whether numba's threading layer, started, is GNU OpenMP (libgomp; Intel's and LLVM's runtimes survive fork)."""
    if _sys.modules["numba.np.ufunc.parallel"]._threading_layer != "omp":
        return False
    omppool = _sys.modules.get("numba.np.ufunc.omppool")
    return omppool is not None and getattr(omppool, "openmp_vendor", "GNU") == "GNU"


def _gnu_openmp_loaded() -> bool:
    """Whether a ``libgomp.so.1`` is mapped in this process (a renamed copy, as scikit-learn's wheels bundle, is a
    runtime of its own that numba does not bind to)."""
    try:
        with open("/proc/self/maps") as maps:
            return any("/libgomp.so" in line for line in maps)
    except OSError:
        return False


def _child_on_gnu_openmp() -> bool:
    """In a child forked beside a loaded GNU OpenMP: start numba's layer and say whether it is GNU OpenMP, the case
    where a parallel kernel could wait forever (decided once; then ``_forked_after_gnu_openmp`` holds the answer)."""
    global _forked_after_gnu_openmp, _forked_beside_gnu_openmp
    _numba.get_num_threads()  # starts the layer: numba's choice is what decides
    _forked_after_gnu_openmp = _layer_is_gnu_openmp()
    _forked_beside_gnu_openmp = False  # only now: another thread asking meanwhile decides for itself, not wrongly
    return _forked_after_gnu_openmp


def _note_fork_in_child() -> None:
    global _forked_after_gnu_openmp, _forked_beside_gnu_openmp
    if not _numba_probe.layer_started():
        _forked_beside_gnu_openmp = _gnu_openmp_loaded()  # the parent's libraries, as the fork left them
    elif _layer_is_gnu_openmp():
        _forked_after_gnu_openmp = True


if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_note_fork_in_child)


_workqueue: bool | None = None


def _on_workqueue() -> bool:
    """Whether numba runs parallel code on its workqueue layer, which aborts the process when two threads enter
    parallel code at once (a fitted model's ``predict`` called from a server's threads): there only the main thread
    takes parallel variants by default. Asked after ``numba.get_num_threads()``, which starts the layer (running a
    parallel probe here instead raced with the main thread's kernels, and aborted)."""
    global _workqueue
    if _workqueue is None:
        _workqueue = _numba.threading_layer() == "workqueue"
    return _workqueue


def check_parallel(parallel: object) -> object:
    """Return ``parallel`` if it is True, False or None, else raise ``TypeError`` (every kernel's ``parallel=``,
    also where it only pins BLAS's threads or means nothing, on a device)."""
    if parallel is None or isinstance(parallel, bool):
        return parallel
    raise TypeError(f"parallel must be True, False or None; got {parallel!r}")


def use_streaming(out: _np.ndarray, *inputs: _np.ndarray) -> bool:
    """Return whether an elementwise kernel writes ``out`` with streaming (non-temporal) stores.

    Yes for an output of ``STREAM_MIN_BYTES`` or more (larger than the caches keep for long: the read of each
    destination line, which an ordinary store costs, is waste), with ``out`` and ``inputs`` C-contiguous and ``out``
    apart from every input (in place the lines were just read into cache, there is no read to save, and bypassing
    the cache only costs).
    """
    return (
        out.nbytes >= STREAM_MIN_BYTES
        and all(v.flags.c_contiguous for v in (out, *inputs))
        and not any(_np.may_share_memory(out, v) for v in inputs)
    )
