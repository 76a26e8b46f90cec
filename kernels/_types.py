"""The types in the kernels' signatures, for type checkers. Nothing here is checked at run time: ``_checks`` does that
(float32 or float64 arrays, shapes, ``out=``), with errors that name the argument."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as _np

__all__ = ["AnyArray", "Array", "Int", "Real", "Scalar"]

#: An array argument of a kernel that has a GPU twin: a NumPy array, or an :class:`hpc.cuda.DeviceArray` (the twin
#: then runs on its device). The kernel's array results are of the same kind as its array arguments.
Array = TypeVar("Array", _np.ndarray, "DeviceArray")
if TYPE_CHECKING:
    from hpc.cuda.array import DeviceArray

    #: An array argument whose kind does not decide the results' (a kernel whose results stay on the host).
    AnyArray: TypeAlias = _np.ndarray | DeviceArray
else:  # what typing.get_type_hints and documentation tools evaluate, without importing hpc.cuda
    AnyArray = _np.ndarray | Any
#: A reduction's result: a NumPy scalar of the input's dtype (float32 or float64), on the host and from a device.
Scalar: TypeAlias = _np.floating[Any]
#: A real scalar argument (``a``, ``b``, ``c``, ``eps``, ``intercept``): a Python or NumPy float or int.
Real: TypeAlias = float | _np.floating[Any] | _np.integer[Any]
#: A count argument (``ddof``, ``bins``, ``block_rows``): a Python or NumPy int.
Int: TypeAlias = int | _np.integer[Any]
