"""LLVM operations numba does not expose, as numba functions: vectorizable min/max, bitcasts, streaming stores.

Shared by design: ``hpc.kernels`` builds on them, and so does ``hpc.mpi`` (the binned sums' bitcasts, the node
window's streaming copies), which may import this module and nothing else of ``hpc.kernels``' internals.

``fminimum``/``fmaximum``: LLVM vectorizes a ``m = v if v < m else m`` reduction only under ``nnan``/``nsz``
fastmath, which would let it drop NaNs; ``llvm.minimum``/``llvm.maximum`` (IEEE 754-2019 ``minimum``/``maximum``:
a NaN operand gives NaN, ``-0.0 < +0.0``) are associative without those flags, so the loop vectorizer turns a
reduction over them into packed ``vminpd``/``vmaxpd`` (plus a NaN blend) on ymm/zmm registers, with no fastmath.
``bits_to_float``/``float_to_bits``: reinterpret a float64 as its int64 bits and back, in a register.
``stream_axpbyc``/``stream_axpy``/``stream_scal``/``store_fence``: one 64-byte vector of ``a*x + (b*y + c)``,
``a*x + y`` or ``a*x`` written with a non-temporal (streaming) store, which skips the read of the destination
line that an ordinary store of a line not in cache costs (a quarter less memory traffic for ``out = a*x + y``, a
third for ``out = a*x``), and the fence that orders such stores. ``stream_copy``: ``out[i:i+L] = x[i:i+L]`` the
same way (for lines another core has read: an ordinary store must first take them back from its cache).
"""

from __future__ import annotations

import platform as _platform

from llvmlite import ir as _ir
from numba import njit as _njit
from numba.core import cgutils as _cgutils
from numba.core import types as _types
from numba.core.extending import intrinsic as _intrinsic

__all__ = [
    "STREAM_BYTES", "bits_to_float", "float_to_bits", "fmaximum", "fminimum", "store_fence", "stream_axpbyc",
    "stream_axpy", "stream_copy", "stream_scal", "stream_start",
]  # fmt: skip


def _binary(name):
    def typer(typingctx, a, b):
        if not isinstance(a, _types.Float) or a != b:
            return None

        def codegen(context, builder, sig, args):
            lty = context.get_value_type(sig.return_type)
            suffix = "f64" if lty == _ir.DoubleType() else "f32"
            fn = _cgutils.get_or_insert_function(builder.module, _ir.FunctionType(lty, [lty, lty]), f"{name}.{suffix}")
            return builder.call(fn, args)

        return a(a, b), codegen

    typer.__name__ = name.rsplit(".", 1)[-1]
    return _intrinsic(typer)


#: ``fminimum(a, b)``: the smaller of two floats of one type, NaN if either is NaN (``llvm.minimum``)
fminimum = _binary("llvm.minimum")
#: ``fmaximum(a, b)``: the larger of two floats of one type, NaN if either is NaN (``llvm.maximum``)
fmaximum = _binary("llvm.maximum")


@_intrinsic
def bits_to_float(typingctx, a):
    """``bits_to_float(i)``: the float64 whose IEEE bit pattern is the int64 ``i`` (a register bitcast, no memory)."""
    if not isinstance(a, _types.Integer) or a.bitwidth != 64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _ir.DoubleType())

    return _types.float64(a), codegen


@_intrinsic
def float_to_bits(typingctx, a):
    """``float_to_bits(x)``: the IEEE bit pattern of the float64 ``x`` as an int64 (a register bitcast)."""
    if a != _types.float64:
        return None

    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], _ir.IntType(64))

    return _types.int64(a), codegen


#: bytes of one streaming store (a cache line, and a zmm register)
STREAM_BYTES = 64


@_njit(cache=True, nogil=True)
def stream_start(out):  # pragma: no cover - compiled by numba
    """Return the index of ``out``'s first element on a ``STREAM_BYTES`` boundary (``len(out)`` if there is none):
    ordinary stores before it, streaming stores of whole vectors from it, ordinary ones for the tail."""
    n = out.shape[0]
    i = 0
    addr = out.ctypes.data
    while i < n and (addr + i * out.itemsize) % STREAM_BYTES != 0:
        i += 1
    return i


class _Vec:
    """Codegen helpers for one 64-byte vector of ``dtype``: pointers, splats, FMA, the streaming store."""

    def __init__(self, context, builder, dtype, index):
        self.context, self.builder, self.index = context, builder, index
        self.bits = dtype.bitwidth
        self.lanes = STREAM_BYTES * 8 // self.bits
        self.vty = _ir.VectorType(context.get_value_type(dtype), self.lanes)
        self.i32 = _ir.IntType(32)

    def load(self, aryty, value):  # array[i : i + lanes], any alignment
        return self.builder.load(self._at(aryty, value), align=self.bits // 8)

    def splat(self, scalar):
        b = self.builder
        one = b.insert_element(_ir.Constant(self.vty, _ir.Undefined), scalar, _ir.Constant(self.i32, 0))
        mask = _ir.Constant(_ir.VectorType(self.i32, self.lanes), [0] * self.lanes)
        return b.shuffle_vector(one, _ir.Constant(self.vty, _ir.Undefined), mask)

    def fma(self, a, x, y):  # a*x + y, one rounding
        fnty = _ir.FunctionType(self.vty, [self.vty] * 3)
        fn = _cgutils.get_or_insert_function(self.builder.module, fnty, f"llvm.fma.v{self.lanes}f{self.bits}")
        return self.builder.call(fn, [a, x, y])

    def stream(self, aryty, value, vector):  # array[i : i + lanes] = vector, non-temporal, 64-byte aligned
        store = self.builder.store(vector, self._at(aryty, value), align=STREAM_BYTES)
        store.set_metadata("nontemporal", self.builder.module.add_metadata([_ir.Constant(self.i32, 1)]))

    def _at(self, aryty, value):  # &array[i] as a pointer to a vector
        data = self.context.make_array(aryty)(self.context, self.builder, value=value).data
        return self.builder.bitcast(self.builder.gep(data, [self.index]), self.vty.as_pointer())


def _stream_types(scalars, arrays):
    # 1-D C-contiguous arrays of one float dtype and scalars of that dtype, else None (no match)
    if not all(isinstance(t, _types.Array) and t.ndim == 1 and t.layout == "C" for t in arrays):
        return None
    dtype = arrays[-1].dtype
    if not isinstance(dtype, _types.Float) or any(t.dtype != dtype for t in arrays) or any(s != dtype for s in scalars):
        return None
    return dtype


@_intrinsic
def stream_axpbyc(typingctx, a, x, b, y, c, out, i):
    """``stream_axpbyc(a, x, b, y, c, out, i)``: ``out[i:i+L] = a*x[i:i+L] + (b*y[i:i+L] + c)``, ``L = 64 / itemsize``.

    Two vector FMAs, then one non-temporal store. ``x``, ``y``, ``out``: 1-D C-contiguous arrays of one float
    dtype, ``a``, ``b``, ``c`` scalars of it; the caller guarantees ``i + L <= len`` and that ``&out[i]`` is
    64-byte aligned (the store faults otherwise), and calls :func:`store_fence` after its last streaming store.
    The same holds for :func:`stream_axpy` and :func:`stream_scal`.
    """
    dtype = _stream_types((a, b, c), (x, y, out))
    if dtype is None:
        return None

    def codegen(context, builder, sig, args):
        a_, x_, b_, y_, c_, out_, i_ = args
        v = _Vec(context, builder, dtype, i_)
        inner = v.fma(v.splat(b_), v.load(sig.args[3], y_), v.splat(c_))
        v.stream(sig.args[5], out_, v.fma(v.splat(a_), v.load(sig.args[1], x_), inner))
        return context.get_dummy_value()

    return _types.none(a, x, b, y, c, out, i), codegen


@_intrinsic
def stream_axpy(typingctx, a, x, y, out, i):
    """``stream_axpy(a, x, y, out, i)``: ``out[i:i+L] = a*x[i:i+L] + y[i:i+L]`` (one FMA), streamed."""
    dtype = _stream_types((a,), (x, y, out))
    if dtype is None:
        return None

    def codegen(context, builder, sig, args):
        a_, x_, y_, out_, i_ = args
        v = _Vec(context, builder, dtype, i_)
        v.stream(sig.args[3], out_, v.fma(v.splat(a_), v.load(sig.args[1], x_), v.load(sig.args[2], y_)))
        return context.get_dummy_value()

    return _types.none(a, x, y, out, i), codegen


@_intrinsic
def stream_scal(typingctx, a, x, out, i):
    """``stream_scal(a, x, out, i)``: ``out[i:i+L] = a*x[i:i+L]``, streamed."""
    dtype = _stream_types((a,), (x, out))
    if dtype is None:
        return None

    def codegen(context, builder, sig, args):
        a_, x_, out_, i_ = args
        v = _Vec(context, builder, dtype, i_)
        v.stream(sig.args[2], out_, builder.fmul(v.splat(a_), v.load(sig.args[1], x_)))
        return context.get_dummy_value()

    return _types.none(a, x, out, i), codegen


@_intrinsic
def stream_copy(typingctx, x, out, i):
    """``stream_copy(x, out, i)``: ``out[i:i+L] = x[i:i+L]``, streamed (the bits as they are, NaN payloads too)."""
    dtype = _stream_types((), (x, out))
    if dtype is None:
        return None

    def codegen(context, builder, sig, args):
        x_, out_, i_ = args
        v = _Vec(context, builder, dtype, i_)
        v.stream(sig.args[1], out_, v.load(sig.args[0], x_))
        return context.get_dummy_value()

    return _types.none(x, out, i), codegen


_X86 = _platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@_intrinsic
def store_fence(typingctx):
    """``store_fence()``: ``sfence`` on x86 (the fence its manuals name for weakly ordered streaming stores), a
    sequentially consistent fence elsewhere, so the streaming stores before it are visible to whatever follows."""

    def codegen(context, builder, sig, args):
        if _X86:
            fnty = _ir.FunctionType(_ir.VoidType(), [])
            builder.call(_cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence"), [])
        else:
            builder.fence("seq_cst")
        return context.get_dummy_value()

    return _types.none(), codegen
