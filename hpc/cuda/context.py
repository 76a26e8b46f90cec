"""Primary contexts on a thread-local stack, like ``cupy.cuda.Device``'s ``with`` block.

hpc never creates a context of its own: each device's *primary* context (the one the CUDA runtime, CuPy, numba and
torch use) is retained once per process and pushed onto the calling thread's context stack for the duration of a
``with Device(i):`` block or of one hpc call. The stack kept here mirrors what hpc pushed on each thread, so every
push is matched by a pop, also when an exception is raised, and no context is left on a stack at exit.
"""

from __future__ import annotations

import contextlib as _contextlib
import threading as _threading
from collections.abc import Iterator as _Iterator
from typing import Any as _Any

from hpc.cuda import _backend

__all__ = ["active", "current_index", "default_index", "device_index", "pop", "push", "set_default_index", "stack"]

_local = _threading.local()
_lock = _threading.Lock()
_primary: dict[int, _Any] = {}
_default = 0


def _stack() -> list[int]:
    try:
        return _local.stack
    except AttributeError:
        _local.stack = []
        return _local.stack


def stack() -> tuple[int, ...]:
    """Return the device indices hpc has pushed on this thread, innermost last."""
    return tuple(_stack())


def current_index() -> int | None:
    """Return the device whose context hpc made current on this thread, or ``None``."""
    s = _stack()
    return s[-1] if s else None


def default_index() -> int:
    """Return the device used on threads that entered no ``with Device(i):`` block (set by ``bind_rank``)."""
    return _default


def set_default_index(index: int) -> None:
    """Make ``index`` the device of threads that entered no ``with Device(i):`` block.

    This affects the whole process; there is no per-thread isolation (a ``with Device(i):`` block still wins).

    Raises:
        TypeError, ValueError: ``index`` is not an int, or names no device (as :class:`~hpc.cuda.Device`).
    """
    from hpc.cuda.device import Device

    _set_default(Device(_as_index(index)).index)


def _set_default(index: int) -> None:
    # an index already checked against the device count (bind_rank's local rank modulo that count)
    global _default
    _default = index


def _as_index(device: _Any) -> int:
    if isinstance(device, bool) or not isinstance(device, int):
        import numpy as np

        if not isinstance(device, np.integer):
            raise TypeError(f"device must be an int index, an hpc.cuda.Device or None; got {device!r}")
    return int(device)


def device_index(device: _Any = None) -> int:
    """Return the index of ``device``: an int (or NumPy integer), an :class:`~hpc.cuda.Device`, or ``None`` for
    the current device (the innermost ``with Device(i):`` block on this thread, else the default).

    Raises:
        TypeError: ``device`` is none of those (a string, a float).
    """
    if device is None:
        top = current_index()
        return default_index() if top is None else top
    from hpc.cuda.device import Device

    if isinstance(device, Device):
        return device.index
    return _as_index(device)


def _retained(index: int) -> _Any:
    with _lock:
        if index not in _primary:
            from hpc.cuda.device import Device

            Device(index)  # ValueError for a device that does not exist (only 0 on the host fallback)
            _primary[index] = _backend.get().retain_primary(index)
        return _primary[index]


def push(index: int) -> None:
    """Push device ``index``'s primary context on this thread (retaining it the first time)."""
    ctx = _retained(index)
    _backend.get().push(ctx)
    _stack().append(index)


def pop() -> int:
    """Pop the context hpc pushed last on this thread and return its device index.

    Raises:
        RuntimeError: hpc pushed no context on this thread.
    """
    s = _stack()
    if not s:
        raise RuntimeError("cannot pop: hpc pushed no context on this thread")
    _backend.get().pop()
    return s.pop()


@_contextlib.contextmanager
def active(index: int | None = None) -> _Iterator[int]:
    """Make a context current for the block: ``index``'s, or this thread's current one, or the default device's.

    Nothing is pushed when the wanted context is already on top, so nested hpc calls inside ``with Device(i):``
    cost nothing; otherwise one push and one pop (about a microsecond each on a GPU).
    """
    top = current_index()
    want = (top if top is not None else _default) if index is None else index
    if top == want:
        yield want
        return
    push(want)
    try:
        yield want
    finally:
        pop()
