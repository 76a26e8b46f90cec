"""Exceptions that cross a process boundary: a worker process or another MPI rank.

:func:`shippable` turns an exception into something that always pickles, with its traceback as text, and
:func:`revived` raises it again on the other side, the remote traceback set as its cause (as ``concurrent.futures``
shows a worker's frames).
"""

from __future__ import annotations

import traceback as _traceback
from typing import Any

__all__ = ["RemoteTraceback", "revived", "shippable"]


class RemoteTraceback(Exception):
    """The traceback, as text, of an exception raised in a worker process or on another rank: set as that
    exception's ``__cause__`` in the caller, so the worker's frames show (as ``concurrent.futures`` shows them)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return f'\n"""\n{self.text}"""'


def shippable(error: BaseException) -> tuple[Any, ...]:
    """What the driver needs to raise ``error`` again, with its traceback text: the exception itself if it survives a
    pickle round trip; else its type, args and attributes, to rebuild it without calling ``__init__`` (an exception
    whose ``__init__`` wants other arguments pickles but fails to unpickle); else its type's name and message."""
    import cloudpickle as pickler  # imported when first needed, as the processes backend does

    text = "".join(_traceback.format_exception(type(error), error, error.__traceback__))
    for spec in (("exception", error), ("parts", type(error), error.args, dict(getattr(error, "__dict__", {})))):
        try:
            pickler.loads(pickler.dumps(spec))
            return (*spec, text)
        except Exception:
            continue
    return ("text", f"{type(error).__name__}: {error} (the original exception could not be pickled)", text)


def revived(shipped: tuple[Any, ...]) -> BaseException:
    """The exception :func:`shippable` describes, its worker's traceback as its cause."""
    kind, *parts, text = shipped
    error: BaseException
    if kind == "exception":
        error = parts[0]
    elif kind == "parts":
        cls, args, state = parts
        try:
            error = cls.__new__(cls)
            error.args = args
            error.__dict__.update(state)
        except Exception:
            error = RuntimeError(f"{cls.__name__}: {args} (the original exception could not be rebuilt)")
    else:
        error = RuntimeError(parts[0])
    if error.__cause__ is None:
        error.__cause__ = RemoteTraceback(text)
    return error
