"""One rule for the kernels that have GPU twins: given an ``hpc.cuda.DeviceArray``, run ``hpc.cuda.twins.<name>``.

:func:`gpu_twin` decorates the CPU kernel. The wrapper keeps the kernel's signature: the arguments are bound to it
first, so a wrong or missing argument fails the same way for host and device arrays, and every argument but the
host-only ``parallel`` goes on, by name, to the twin (which takes the same names, plus ``stream``: call
:mod:`hpc.cuda.twins` directly to queue work on a stream). A scalar result comes back as the CPU kernel's does, a
NumPy scalar of the input's dtype; array results are DeviceArrays. ``tests/kernels/test_dispatch.py`` checks the
signatures and the return types of every twin.

Host arrays pay one dictionary lookup: ``hpc.cuda`` is never imported here, and no DeviceArray can exist before it is.
"""

from __future__ import annotations

import functools as _functools
import inspect as _inspect
import sys as _sys
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["HOST_ONLY", "gpu_twin", "twinned"]

F = TypeVar("F", bound=Callable[..., Any])

#: Arguments of the CPU kernels that mean nothing on a device (host threads); the twins do not take them.
HOST_ONLY = frozenset({"parallel"})

#: The names of the kernels decorated with :func:`gpu_twin`, in the order they were defined.
twinned: list[str] = []


def gpu_twin(cpu: F) -> F:
    """Return ``cpu`` wrapped to run ``hpc.cuda.twins.<cpu.__name__>`` when any argument is a DeviceArray."""
    name = cpu.__name__
    signature = _inspect.signature(cpu)

    @_functools.wraps(cpu)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        arrays = _sys.modules.get("hpc.cuda.array")  # a DeviceArray exists only once this module was imported
        if arrays is None:
            return cpu(*args, **kwargs)
        device = arrays.DeviceArray
        first = next((a for a in (*args, *kwargs.values()) if isinstance(a, device)), None)
        if first is None:
            return cpu(*args, **kwargs)
        from hpc.cuda import twins

        bound = signature.bind(*args, **kwargs)
        result = getattr(twins, name)(**{k: v for k, v in bound.arguments.items() if k not in HOST_ONLY})
        if type(result) is float:  # the twins' reductions: a NumPy scalar of the input's dtype, as on the host
            return first.dtype.type(result)
        return result

    if name not in twinned:
        twinned.append(name)
    return dispatch  # type: ignore[return-value]
