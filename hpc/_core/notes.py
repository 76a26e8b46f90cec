"""PEP 678 notes on exceptions (``exc.add_note``), also on Python 3.10, which has no ``add_note``."""

from __future__ import annotations

__all__ = ["add_note"]


def add_note(exc: BaseException, note: str) -> None:
    """Add ``note`` to ``exc``'s notes: ``add_note`` where Python has it, else the ``__notes__`` list that 3.11's
    traceback prints (and that tools reading notes on 3.10 look for)."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)
    else:
        exc.__notes__ = [*getattr(exc, "__notes__", []), note]  # type: ignore[attr-defined]
