"""LLVM operations numba does not expose, as numba functions: vectorizable min/max, bitcasts, streaming stores.

``fminimum``/``fmaximum``: LLVM vectorizes a ``m = v if v < m else m`` reduction only under ``nnan``/``nsz``
fastmath, which would let it drop NaNs; ``llvm.minimum``/``llvm.maximum`` (IEEE 754-2019 ``minimum``/``maximum``:
a NaN operand gives NaN, ``-0.0 < +0.0``) are associative without those flags, so the loop vectorizer turns a
reduction over them into packed ``vminpd``/``vmaxpd`` (plus a NaN blend) on ymm/zmm registers, with no fastmath.
``bits_to_float``/``float_to_bits``: reinterpret a float64 as its int64 bits and back, in a register.
``stream_axpbyc``/``store_fence``: one 64-byte vector of ``a*x + (b*y + c)`` written with a non-temporal
(streaming) store, which skips the read of the destination line that an ordinary store of a line not in cache
costs (a quarter less memory traffic for ``out = a*x + b*y + c``), and the fence that orders such stores.
"""

from __future__ import annotations

from llvmlite import ir as _ir
from numba.core import cgutils as _cgutils
from numba.core import types as _types
from numba.core.extending import intrinsic as _intrinsic

__all__ = ["bits_to_float", "float_to_bits", "fmaximum", "fminimum", "store_fence", "stream_axpbyc"]


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


@_intrinsic
def stream_axpbyc(typingctx, a, x, b, y, c, out, i):
    """``stream_axpbyc(a, x, b, y, c, out, i)``: ``out[i:i+L] = a*x[i:i+L] + (b*y[i:i+L] + c)``, ``L = 64 / itemsize``.

    Two vector FMAs, then one non-temporal store. ``x``, ``y``, ``out``: 1-D C-contiguous arrays of one float
    dtype, ``a``, ``b``, ``c`` scalars of it; the caller guarantees ``i + L <= len`` and that ``&out[i]`` is
    64-byte aligned (the store faults otherwise), and calls :func:`store_fence` after its last streaming store.
    """
    arrays = (x, y, out)
    if not all(isinstance(t, _types.Array) and t.ndim == 1 and t.layout == "C" for t in arrays):
        return None
    dtype = out.dtype
    if not isinstance(dtype, _types.Float) or any(t.dtype != dtype for t in (x, y)) or not (a == b == c == dtype):
        return None

    def codegen(context, builder, sig, args):
        a_, x_, b_, y_, c_, out_, i_ = args
        lty = context.get_value_type(dtype)
        bits = dtype.bitwidth
        lanes = STREAM_BYTES * 8 // bits
        vty = _ir.VectorType(lty, lanes)
        idx_ty = _ir.IntType(32)

        def at(aryty, value):  # &array[i] as a pointer to a vector
            data = context.make_array(aryty)(context, builder, value=value).data
            return builder.bitcast(builder.gep(data, [i_]), vty.as_pointer())

        def splat(scalar):
            one = builder.insert_element(_ir.Constant(vty, _ir.Undefined), scalar, _ir.Constant(idx_ty, 0))
            mask = _ir.Constant(_ir.VectorType(idx_ty, lanes), [0] * lanes)
            return builder.shuffle_vector(one, _ir.Constant(vty, _ir.Undefined), mask)

        fma = _cgutils.get_or_insert_function(
            builder.module, _ir.FunctionType(vty, [vty, vty, vty]), f"llvm.fma.v{lanes}f{bits}"
        )
        xv = builder.load(at(sig.args[1], x_), align=bits // 8)
        yv = builder.load(at(sig.args[3], y_), align=bits // 8)
        value = builder.call(fma, [splat(a_), xv, builder.call(fma, [splat(b_), yv, splat(c_)])])
        store = builder.store(value, at(sig.args[5], out_), align=STREAM_BYTES)
        store.set_metadata("nontemporal", builder.module.add_metadata([_ir.Constant(idx_ty, 1)]))
        return context.get_dummy_value()

    return _types.none(a, x, b, y, c, out, i), codegen


@_intrinsic
def store_fence(typingctx):
    """``store_fence()``: a sequentially consistent fence (``mfence`` on x86, which also orders streaming stores),
    so that the streaming stores before it are visible to whatever follows (another thread reading ``out``)."""

    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return _types.none(), codegen
