"""The fast lane of :mod:`hpc.mpi.fused` in pure Python, used where ``_fused_queue.c`` was not compiled.

Same names and behaviour as the C module (``Batch``, ``FusedResult``, ``Queue``, ``register``); queuing costs about
about 5x what it costs there (docs/performance.md). ``tests/mpi/test_fused.py`` runs both.
"""

from __future__ import annotations

import array as _array
from typing import Any

__all__ = ["Batch", "FusedResult", "Queue", "register"]

FUSE_MAX = 8192  # as _fused_queue.c: larger arrays take the slow lane
FLUSH_AT = 1 << 19  # a batch this long is reduced at once
_FNV_START, _FNV_PRIME, _MASK = 14695981039346656037, 1099511628211, (1 << 64) - 1

_rebuild: Any = None
_ndarray: Any = None


def register(rebuild: Any, ndarray: Any) -> None:
    """Set the function that turns ``(batch, index, count, shape)`` into an ndarray, and the fast lane's array type."""
    global _rebuild, _ndarray
    _rebuild, _ndarray = rebuild, ndarray


class Batch(_array.array):  # type: ignore[type-arg]
    """The queued float64 values of a fused block, contiguous (a writable buffer)."""

    ready = False
    structure = _FNV_START
    values: Any = None  #: a NumPy copy of the reduced values, made at the first array read (results are views of it)

    def __new__(cls) -> Batch:
        return super().__new__(cls, "d")

    def mix(self, word: int) -> None:
        """Add one word to the hash of the entries' kinds and shapes."""
        self.structure = ((self.structure ^ word) * _FNV_PRIME) & _MASK

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

    __slots__ = ("_known", "_batch", "_index", "_count", "_like")

    def __init__(self, batch: Batch | None = None, index: int = 0, count: int = 0, like: Any = None) -> None:
        self._batch, self._index, self._count, self._like = batch, index, count, like

    @property
    def _value(self) -> Any:
        """The value, or AttributeError while pending (set by the slow lane)."""
        try:
            return self._known
        except AttributeError:
            batch = self._batch
            if batch is None or not batch.ready:
                raise
        like = self._like
        if type(like) is tuple:  # an array of this shape
            value = _rebuild(batch, self._index, self._count, like)
        else:
            value = batch[self._index] if like is None else like(batch[self._index])
        self._known, self._batch = value, None
        return value

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
    """Queues small float64 sums in a :class:`Batch`; hands every other entry to ``self._queue(x, op)``."""

    _fast_batch: Batch | None = None

    def allreduce(self, x: Any, op: Any = "sum") -> Any:
        """Queue an allreduce of ``x`` and return its placeholder."""
        if not (type(op) is str and op == "sum"):  # type first, as in C: no __eq__ of odd ops
            return self._queue(x, op)  # type: ignore[attr-defined]
        kind = type(x)
        if kind is float or isinstance(x, float):
            like, values, shape = (None if kind is float else kind), None, None
        elif kind is _ndarray and x.dtype.char == "d" and x.dtype.isnative and x.flags.c_contiguous and (
            x.size <= FUSE_MAX
        ):
            like, values, shape = x.shape, x.reshape(-1), x.shape
        else:
            return self._queue(x, op)  # type: ignore[attr-defined]
        batch = self._fast_batch
        if batch is None:
            batch = self._fast_batch = Batch()
        result = _new(FusedResult)  # no __init__ call: this is the per-entry cost
        result._batch = batch
        result._index = len(batch)
        result._like = like
        if values is None:
            batch.mix(1)
            _append(batch, x)  # a batch being filled is never ready: no need for Batch.append's check
            result._count = 0
        else:
            batch.mix(2)
            for n in shape:
                batch.mix(n + 3)
            batch.extend(values.tolist())
            result._count = values.shape[0]
        if len(batch) >= FLUSH_AT:
            self._fast_batch = None
            self._flush_batch(batch)  # type: ignore[attr-defined]
        return result

    def _take(self) -> Batch | None:
        """Return the batch of queued floats (None if there is none) and start a new one."""
        batch, self._fast_batch = self._fast_batch, None
        return batch
