"""What crosses a process boundary: a worker process or another MPI rank.

:func:`shippable` turns an exception into something that always pickles, with its traceback as text, and
:func:`revived` raises it again on the other side, the remote traceback set as its cause (as ``concurrent.futures``
shows a worker's frames). :func:`spmd_dumps` pickles for another rank of the same program.
"""

from __future__ import annotations

import io as _io
import sys as _sys
import traceback as _traceback
from typing import Any

__all__ = ["RemoteTraceback", "revived", "shippable", "spmd_dumps"]


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


def spmd_dumps(obj: Any) -> bytes:
    """``obj`` pickled for another rank of the same program (``pickle.loads`` reads it back there).

    cloudpickle, so lambdas and closures travel, but the script's own top-level classes and functions go by name, as
    the standard pickle sends them: every rank runs the same ``__main__``, so the other rank's ``Point`` and
    ``MyError`` are the very classes it knows (``isinstance`` and ``except`` work), where cloudpickle would send a
    copy of each class (it cannot know that the receiver runs the same script; the processes backend's workers do
    not).
    """
    import cloudpickle

    class _Pickler(cloudpickle.Pickler):
        def reducer_override(self, value: Any) -> Any:
            if isinstance(value, type) or callable(value) and hasattr(value, "__qualname__"):
                if getattr(value, "__module__", None) == "__main__" and _named_in_main(value):
                    return NotImplemented  # the standard pickle's way: by name
            return super().reducer_override(value)

    out = _io.BytesIO()
    _Pickler(out).dump(obj)
    return out.getvalue()


def _named_in_main(value: Any) -> bool:
    """Whether ``value`` is what its qualified name finds in ``__main__`` (not a lambda, a closure or a local class)."""
    found: Any = _sys.modules.get("__main__")
    for part in value.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is value
