"""DLPack capsules made and read with ctypes (the legacy unversioned ``"dltensor"`` ABI), for any device.

The same code exports host memory on the fallback (NumPy consumes it) and device memory on a GPU (CuPy, torch),
so the struct layout and the capsule protocol are tested without a GPU.
"""

from __future__ import annotations

import ctypes as _ctypes
from typing import Any as _Any

import numpy as _np

__all__ = ["DLPackTensor", "export", "import_capsule"]

KDLCPU, KDLCUDA, KDLCUDAHOST = 1, 2, 3
_CODES = {"i": 0, "u": 1, "f": 2, "c": 5, "b": 6}
_KINDS = {v: k for k, v in _CODES.items()}
#: the bit widths NumPy holds as DLPack means them, per type code: no 128-bit float (NumPy's float128 is x87's
#: 80-bit extended, not IEEE quad) and no bit-packed bool (1 bit)
_BITS = {0: (8, 16, 32, 64), 1: (8, 16, 32, 64), 2: (16, 32, 64), 5: (64, 128), 6: (8,)}


class _DLDevice(_ctypes.Structure):
    _fields_ = [("device_type", _ctypes.c_int32), ("device_id", _ctypes.c_int32)]


class _DLDataType(_ctypes.Structure):
    _fields_ = [("code", _ctypes.c_uint8), ("bits", _ctypes.c_uint8), ("lanes", _ctypes.c_uint16)]


class _DLTensor(_ctypes.Structure):
    _fields_ = [
        ("data", _ctypes.c_void_p),
        ("device", _DLDevice),
        ("ndim", _ctypes.c_int32),
        ("dtype", _DLDataType),
        ("shape", _ctypes.POINTER(_ctypes.c_int64)),
        ("strides", _ctypes.POINTER(_ctypes.c_int64)),
        ("byte_offset", _ctypes.c_uint64),
    ]


class _DLManagedTensor(_ctypes.Structure):
    pass


_DELETER_T = _ctypes.CFUNCTYPE(None, _ctypes.c_void_p)
_DLManagedTensor._fields_ = [
    ("dl_tensor", _DLTensor),
    ("manager_ctx", _ctypes.c_void_p),
    ("deleter", _DELETER_T),
]

_api = _ctypes.pythonapi
_api.PyCapsule_New.restype = _ctypes.py_object
_api.PyCapsule_New.argtypes = [_ctypes.c_void_p, _ctypes.c_char_p, _ctypes.c_void_p]
_api.PyCapsule_IsValid.restype = _ctypes.c_int
_api.PyCapsule_IsValid.argtypes = [_ctypes.py_object, _ctypes.c_char_p]
_api.PyCapsule_GetPointer.restype = _ctypes.c_void_p
_api.PyCapsule_GetPointer.argtypes = [_ctypes.py_object, _ctypes.c_char_p]
_api.PyCapsule_SetName.restype = _ctypes.c_int
_api.PyCapsule_SetName.argtypes = [_ctypes.py_object, _ctypes.c_char_p]

_NAME = b"dltensor"
_USED = b"used_dltensor"
_alive: dict[int, tuple[object, ...]] = {}  # managed-tensor address -> what must live until its deleter runs


@_DELETER_T
def _deleter(address: int) -> None:
    _alive.pop(address, None)


_CAPSULE_DESTRUCTOR_T = _ctypes.CFUNCTYPE(None, _ctypes.c_void_p)


@_CAPSULE_DESTRUCTOR_T
def _capsule_destructor(capsule: int) -> None:
    # An unconsumed capsule still owns its tensor: run the deleter. A consumer renames the capsule first.
    obj = _ctypes.cast(capsule, _ctypes.py_object)
    if _api.PyCapsule_IsValid(obj, _NAME):
        _alive.pop(_api.PyCapsule_GetPointer(obj, _NAME), None)


def dtype_to_dl(dtype: _np.dtype) -> tuple[int, int, int]:
    """Return DLPack's ``(code, bits, lanes)`` for a NumPy dtype; BufferError (the DLPack standard's error for a
    tensor it cannot export) for any other dtype or byte order."""
    dtype = _np.dtype(dtype)
    if dtype.kind not in _CODES:
        raise BufferError(f"dtype must be a bool, integer, float or complex dtype for DLPack; got {dtype}")
    if not dtype.isnative:
        raise BufferError(f"dtype must be in native byte order for DLPack (it has no byte order); got {dtype.str}")
    code, bits = _CODES[dtype.kind], dtype.itemsize * 8
    if bits not in _BITS[code]:  # longdouble: its bytes are not DLPack's IEEE quad
        raise BufferError(f"dtype {dtype} has no DLPack type (DLPack's {bits}-bit type means another format)")
    return code, bits, 1


def export(ptr: int, shape: tuple, strides: tuple, dtype: _np.dtype, device: tuple[int, int], owner: object) -> _Any:
    """Return a ``"dltensor"`` capsule describing memory at ``ptr``; ``owner`` is kept alive until it is deleted.

    ``strides`` are in bytes (NumPy's convention) and must be multiples of the item size.
    """
    dtype = _np.dtype(dtype)
    ndim = len(shape)
    shape_arr = (_ctypes.c_int64 * max(ndim, 1))(*shape)
    if any(s % dtype.itemsize for s in strides):
        raise ValueError(f"strides must be multiples of the item size {dtype.itemsize} for DLPack; got {strides}")
    strides_arr = (_ctypes.c_int64 * max(ndim, 1))(*(s // dtype.itemsize for s in strides))
    managed = _DLManagedTensor()
    t = managed.dl_tensor
    t.data = ptr or None
    t.device = _DLDevice(*device)
    t.ndim = ndim
    t.dtype = _DLDataType(*dtype_to_dl(dtype))
    t.shape = _ctypes.cast(shape_arr, _ctypes.POINTER(_ctypes.c_int64))
    t.strides = _ctypes.cast(strides_arr, _ctypes.POINTER(_ctypes.c_int64))
    t.byte_offset = 0
    managed.manager_ctx = None
    managed.deleter = _deleter
    address = _ctypes.addressof(managed)
    _alive[address] = (managed, shape_arr, strides_arr, owner)
    return _api.PyCapsule_New(address, _NAME, _ctypes.cast(_capsule_destructor, _ctypes.c_void_p))


class DLPackTensor:
    """A consumed DLPack tensor: where it is and what it holds; its producer's deleter runs when this goes.

    Attributes:
        ptr (int): the address of element ``[0, ..., 0]`` (``data + byte_offset``).
        shape (tuple[int, ...]), strides (tuple[int, ...]): strides in bytes.
        dtype (numpy.dtype), device (tuple[int, int]): ``(device_type, device_id)``.
    """

    def __init__(self, capsule: _Any) -> None:
        address = _api.PyCapsule_GetPointer(capsule, _NAME)  # raises ValueError on a used or foreign capsule
        managed = _DLManagedTensor.from_address(address)
        t = managed.dl_tensor
        code, bits = t.dtype.code, t.dtype.bits
        if t.dtype.lanes != 1 or bits not in _BITS.get(code, ()):
            raise TypeError(f"DLPack dtype code {code} of {bits} bits with {t.dtype.lanes} lanes is not supported")
        self.dtype = _np.dtype(f"{_KINDS[code]}{bits // 8}") if code != 6 else _np.dtype("?")
        self.shape = tuple(int(t.shape[i]) for i in range(t.ndim))
        if t.strides:
            self.strides = tuple(int(t.strides[i]) * self.dtype.itemsize for i in range(t.ndim))
        else:  # NULL strides mean C order
            strides, acc = [], self.dtype.itemsize
            for n in reversed(self.shape):
                strides.append(acc)
                acc *= max(n, 1)
            self.strides = tuple(reversed(strides))
        self.ptr = int(t.data or 0) + int(t.byte_offset)
        self.device = (int(t.device.device_type), int(t.device.device_id))
        _api.PyCapsule_SetName(capsule, _USED)
        self._managed = managed
        self._address = address

    def __del__(self) -> None:
        managed = getattr(self, "_managed", None)  # absent where __init__ refused the capsule (left unconsumed)
        if managed is not None and managed.deleter:
            managed.deleter(self._address)


def import_capsule(capsule: _Any) -> DLPackTensor:
    """Consume a ``"dltensor"`` capsule and return its :class:`DLPackTensor`."""
    return DLPackTensor(capsule)
