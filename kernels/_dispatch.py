"""One rule for the kernels that have GPU twins: given an ``hpc.cuda.DeviceArray``, run ``hpc.cuda.twins.<name>``.

:func:`gpu_twin` decorates the CPU kernel. The wrapper keeps the kernel's signature: the arguments are bound to it
first, so a wrong or missing argument fails the same way for host and device arrays, and every argument but the
host-only ``parallel`` goes on, by name, to the twin (which takes the same names, plus ``stream``: call
:mod:`hpc.cuda.twins` directly to queue work on a stream). A scalar result comes back as the CPU kernel's does, a
NumPy scalar of the input's dtype; array results are DeviceArrays, but for the small host results of
``column_moments`` and the two losses' gradients (NumPy arrays). ``tests/kernels/test_dispatch.py`` checks the
signatures and the return types of every twin.

Host arrays pay one dictionary lookup: ``hpc.cuda`` is never imported here, and no DeviceArray can exist before it is.
"""

from __future__ import annotations

import functools as _functools
import inspect as _inspect
import sys as _sys
from collections.abc import Callable
from typing import Any, TypeVar

from . import _checks

__all__ = ["HOST_ONLY", "gpu_twin", "twinned"]

F = TypeVar("F", bound=Callable[..., Any])

#: Arguments of the CPU kernels that mean nothing on a device (host threads); the twins do not take them.
HOST_ONLY = frozenset({"parallel"})

#: Scalar arguments of the CPU kernels, checked as the CPU kernel checks them before a twin gets them (None or an
#: array there would become NaN or be broadcast on the device, where the host refuses them): in every kernel, and
#: in one kernel only (softmax_loss_grad's intercept is an array)
SCALARS = frozenset({"a"})
KERNEL_SCALARS = {"logistic_loss_grad": frozenset({"intercept"})}

#: The names of the kernels decorated with :func:`gpu_twin`, in the order they were defined.
twinned: list[str] = []


def gpu_twin(cpu: F) -> F:
    """Return ``cpu`` wrapped to run ``hpc.cuda.twins.<cpu.__name__>`` when any argument is a DeviceArray."""
    name = cpu.__name__
    signature = _inspect.signature(cpu)

    def on_device(**arguments: Any) -> Any:  # called when one argument at least is a DeviceArray
        device = _sys.modules["hpc.cuda.array"].DeviceArray
        first = next(a for a in arguments.values() if isinstance(a, device))
        for scalar in (SCALARS | KERNEL_SCALARS.get(name, frozenset())).intersection(arguments):
            arguments[scalar] = _checks.real_scalar(scalar, arguments[scalar], first.dtype)
        if "parallel" in arguments:  # meaningless on a device, but checked as the host checks it
            _checks.check_parallel(arguments["parallel"])
        from hpc.cuda import twins

        result = getattr(twins, name)(**{k: v for k, v in arguments.items() if k not in HOST_ONLY})
        if type(result) is float:  # the twins' reductions: a NumPy scalar of the input's dtype, as on the host
            return first.dtype.type(result)
        return result

    dispatch = _exact_wrapper(name, signature, cpu, on_device)
    _functools.update_wrapper(dispatch, cpu)
    if name not in twinned:
        twinned.append(name)
    return dispatch  # type: ignore[return-value]


def _exact_wrapper(name: str, signature: _inspect.Signature, cpu: Callable[..., Any], on_device: Callable[..., Any]):
    """A function with ``cpu``'s own parameters that calls ``on_device`` with every argument by name when one of
    them is a DeviceArray, else ``cpu``.

    Written out with the kernel's parameters (as :mod:`dataclasses` writes ``__init__``) rather than as
    ``*args, **kwargs``: repacking the arguments cost host calls about 0.2 us each, a fifth of a small kernel's call;
    and the test is one ``isinstance`` per parameter, so host calls stay cheap once ``hpc.cuda`` is imported too
    (a generator over a dict of the arguments cost them about 0.9 us). A wrong or missing argument fails as it does
    for the kernel itself.
    """
    params, call = [], []
    for p in signature.parameters.values():
        if p.kind is p.KEYWORD_ONLY and "*" not in params:
            params.append("*")
        if p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            raise TypeError(f"gpu_twin: {name} takes *args or **kwargs; a twin needs named parameters")
        params.append(p.name if p.default is p.empty else f"{p.name}=_defaults[{p.name!r}]")
        call.append(f"{p.name}={p.name}")
    arguments = ", ".join(call)
    on_device_test = " or ".join(f"isinstance({p}, device)" for p in signature.parameters)
    source = (
        f"def {name}({', '.join(params)}):\n"
        f"    arrays = _modules.get('hpc.cuda.array')\n"
        f"    if arrays is not None:  # else no DeviceArray can exist yet\n"
        f"        device = arrays.DeviceArray\n"
        f"        if {on_device_test}:\n"
        f"            return _on_device({arguments})\n"
        f"    return _cpu({arguments})\n"
    )
    scope = {
        "_cpu": cpu,
        "_on_device": on_device,
        "_modules": _sys.modules,
        "_defaults": {p.name: p.default for p in signature.parameters.values()},
    }
    exec(compile(source, f"<hpc.kernels gpu_twin {name}>", "exec"), scope)  # noqa: S102 - our own source
    return scope[name]
