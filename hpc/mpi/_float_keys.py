"""Floats as integer keys that order as the floats do, so that MPI's integer MIN and MAX reduce them like NumPy.

MPI's MIN and MAX on floats keep or drop a NaN by the order in which the ranks' values meet (MPICH's ``a < b ? a :
b``), so ranks got different answers, and elements of one array disagreed. The bits of a float read as a signed
integer order as the float for positive values; for negative ones, flipping the bits below the sign reverses their
order. Every NaN becomes the key that wins under the op (the smallest integer for ``min``, the largest for
``max``), and comes back as NumPy's ``nan``; -0.0 orders below +0.0. One compiled pass each way.
"""

from __future__ import annotations

import struct as _struct
from typing import Any

import numpy as _np
from numba import njit as _njit

__all__ = ["KEY_TYPES", "from_keys", "scalar_key", "scalar_value", "to_keys"]

#: the integer type of the keys, and the float type they stand for, by item size
KEY_TYPES = {4: (_np.dtype(_np.int32), _np.dtype(_np.float32)), 8: (_np.dtype(_np.int64), _np.dtype(_np.float64))}


@_njit(cache=True, nogil=True)
def _encode(bits: Any, highest: Any, inf_bits: Any, nan_key: Any, out: Any) -> None:  # pragma: no cover - compiled
    shift = bits.itemsize * 8 - 1
    for i in range(bits.shape[0]):
        b = bits[i]
        # a NaN: above the bits of +inf once the sign is cleared (every exponent bit set, and a fraction)
        out[i] = nan_key if (b & highest) > inf_bits else b ^ ((b >> shift) & highest)


@_njit(cache=True, nogil=True)
def _decode(keys: Any, lowest: Any, highest: Any, nan_bits: Any, out: Any) -> None:  # pragma: no cover - compiled
    shift = keys.itemsize * 8 - 1
    for i in range(keys.shape[0]):
        k = keys[i]
        out[i] = nan_bits if (k == lowest or k == highest) else k ^ ((k >> shift) & highest)


def _constants(ints: _np.dtype, floats: _np.dtype) -> tuple[Any, ...]:
    info = _np.iinfo(ints)
    bits = _np.array([_np.inf, _np.nan], floats).view(ints)
    return int(info.min), int(info.max), int(bits[0]), int(bits[1])  # Python ints: numba types them fastest


#: by item size: the lowest and highest keys, and the bits of +inf and of NumPy's nan (made once: np.iinfo alone
#: costs more than a small key pass)
_CONSTANTS = {size: _constants(ints, floats) for size, (ints, floats) in KEY_TYPES.items()}


def to_keys(values: _np.ndarray, op: str, out: _np.ndarray | None = None) -> _np.ndarray:
    """Return C-contiguous float32/float64 ``values`` as keys (into ``out``, a C-contiguous integer array of their
    size, if given); each NaN as the key that wins under ``op`` ("min" or "max")."""
    ints, _ = KEY_TYPES[values.itemsize]
    lowest, highest, inf_bits, _ = _CONSTANTS[values.itemsize]
    if out is None:
        out = _np.empty(values.shape, ints)
    bits = (values if values.ndim == 1 else values.reshape(-1)).view(ints)
    _encode(bits, highest, inf_bits, lowest if op == "min" else highest, out if out.ndim == 1 else out.reshape(-1))
    return out


def from_keys(keys: _np.ndarray, out: _np.ndarray | None = None) -> _np.ndarray:
    """Return the floats of C-contiguous ``keys``: written into ``out`` (a C-contiguous float array of their size)
    if given, else in place over the keys (their float view is returned)."""
    ints, floats = KEY_TYPES[keys.itemsize]
    lowest, highest, _, nan_bits = _CONSTANTS[keys.itemsize]
    flat = keys if keys.ndim == 1 else keys.reshape(-1)
    target = flat if out is None else (out if out.ndim == 1 else out.reshape(-1)).view(ints)
    _decode(flat, lowest, highest, nan_bits, target)
    return keys.view(floats) if out is None else out


#: a float scalar's bits, and back: struct's codes by item size
_PACK = {4: (_struct.Struct("<f"), _struct.Struct("<i")), 8: (_struct.Struct("<d"), _struct.Struct("<q"))}


def scalar_key(value: float, itemsize: int, op: str) -> int:
    """Return the key of one float (of ``itemsize`` bytes) as a Python int; see :func:`to_keys`."""
    lowest, highest, _, _ = _CONSTANTS[itemsize]
    if value != value:
        return lowest if op == "min" else highest
    as_float, as_int = _PACK[itemsize]
    bits = as_int.unpack(as_float.pack(value))[0]
    return bits ^ highest if bits < 0 else bits  # Python ints: the flip keeps the sign, as in int64


def scalar_value(key: int, itemsize: int) -> float:
    """Return the float of one key (a Python int); see :func:`from_keys`."""
    lowest, highest, _, _ = _CONSTANTS[itemsize]
    if key == lowest or key == highest:
        return float("nan")
    as_float, as_int = _PACK[itemsize]
    return as_float.unpack(as_int.pack(key ^ highest if key < 0 else key))[0]
