"""The fast lane of :mod:`hpc.mpi.fused` in pure Python, used where ``_fused_queue.c`` was not compiled.

Same names and behaviour as the C module (``Batch``, ``FusedResult``, ``Queue``); queuing costs about 0.17 us per
entry here against 0.03 us there. ``tests/mpi/test_fused.py`` runs both.
"""

from __future__ import annotations

import array as _array
from typing import Any

__all__ = ["Batch", "FusedResult", "Queue"]


class Batch(_array.array):  # type: ignore[type-arg]
    """The queued Python floats of a fused block, as contiguous float64 (a writable buffer)."""

    ready = False

    def __new__(cls) -> Batch:
        return super().__new__(cls, "d")

    def append(self, value: float) -> None:
        """Append one float (before the reduction)."""
        if self.ready:
            raise BufferError("hpc.mpi fused batch: cannot append while reduced or exported")
        super().append(value)

    def set_ready(self) -> None:
        """Mark the values as reduced: the placeholders of this batch may now read them."""
        self.ready = True


class FusedResult:
    """A placeholder returned inside ``with comm.fused() as f``; ``.value`` (or ``result()``) after the block."""

    __slots__ = ("_known", "_batch", "_index")

    def __init__(self, batch: Batch | None = None, index: int = 0) -> None:
        self._batch, self._index = batch, index

    @property
    def _value(self) -> Any:
        """The value, or AttributeError while pending (set by the slow lane)."""
        try:
            return self._known
        except AttributeError:
            batch = self._batch
            if batch is None or not batch.ready:
                raise
        self._known, self._batch = batch[self._index], None
        return self._known

    @_value.setter
    def _value(self, value: Any) -> None:
        self._known, self._batch = value, None

    @property
    def value(self) -> Any:
        """The reduced value; raises RuntimeError inside the ``with`` block, before the fused call ran."""
        try:
            return self._value
        except AttributeError:
            raise RuntimeError("a fused result is available only after the `with comm.fused()` block ends") from None

    def result(self) -> Any:
        """Return :attr:`value` (the ``concurrent.futures`` spelling)."""
        return self.value

    def __repr__(self) -> str:
        try:
            return f"<hpc.mpi FusedResult {self._value!r}>"
        except AttributeError:
            return "<hpc.mpi FusedResult pending>"


_append = _array.array.append
_new = object.__new__


class Queue:
    """Queues Python float sums in a :class:`Batch`; hands every other entry to ``self._queue(x, op)``."""

    _fast_batch: Batch | None = None

    def allreduce(self, x: Any, op: Any = "sum") -> Any:
        """Queue an allreduce of ``x`` and return its placeholder."""
        if type(x) is float and type(op) is str and op == "sum":  # type first, as in C: no __eq__ of odd ops
            batch = self._fast_batch
            if batch is None:
                batch = self._fast_batch = Batch()
            _append(batch, x)  # a batch being filled is never ready: no need for Batch.append's check
            result = _new(FusedResult)  # no __init__ call: this is the per-entry cost
            result._batch = batch
            result._index = len(batch) - 1
            return result
        return self._queue(x, op)  # type: ignore[attr-defined]

    def _take(self) -> Batch | None:
        """Return the batch of queued floats (None if there is none) and start a new one."""
        batch, self._fast_batch = self._fast_batch, None
        return batch
