"""LLVM's NaN-propagating ``minimum``/``maximum`` as numba functions, so that min/max reductions vectorize.

LLVM vectorizes a ``m = v if v < m else m`` reduction only under ``nnan``/``nsz`` fastmath, which would let it
drop NaNs; ``llvm.minimum``/``llvm.maximum`` (IEEE 754-2019 ``minimum``/``maximum``: a NaN operand gives NaN,
``-0.0 < +0.0``) are associative without those flags, so the loop vectorizer turns a reduction over them into
packed ``vminpd``/``vmaxpd`` (plus a NaN blend) on ymm/zmm registers, with no fastmath at all.
"""

from __future__ import annotations

from llvmlite import ir as _ir
from numba.core import cgutils as _cgutils
from numba.core import types as _types
from numba.core.extending import intrinsic as _intrinsic

__all__ = ["bits_to_float", "float_to_bits", "fmaximum", "fminimum"]


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
