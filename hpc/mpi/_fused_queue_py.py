"""The fast lane of :mod:`hpc.mpi.fused` in pure Python, used where ``_fused_queue.c`` was not compiled.

Same names and behaviour as the C module (``Batch``, ``FusedResult``, ``Queue``); queuing costs about 5x what it
costs there (docs/performance.md). ``tests/mpi/test_fused_queue.py`` runs both.
"""

from __future__ import annotations

import array as _array
import threading as _threading
from typing import Any

import numpy as _np

__all__ = ["Batch", "FusedResult", "Queue"]

FUSE_MAX = 8192  # as _fused_queue.c: larger arrays take the slow lane
FLUSH_BYTES = 1 << 22  # a batch this large is reduced at once, with every other
KINDS = "dfli"  # the lane's dtypes by struct format character (float64, float32, int64, int32), in _take()'s order
#: FNV-1a's start and prime, and the 64 bits the structure hashes (and hpc.mpi.fused's checksum) keep
FNV_START, FNV_PRIME, MASK = 14695981039346656037, 1099511628211, (1 << 64) - 1


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finalizer (the C lane's ``fmix64``): every bit of ``h`` reaches the top bits a checksum
    keeps; FNV's multiply carries a difference only upwards."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK
    return h ^ (h >> 33)

_LONG_SIZE = _array.array("l").itemsize


class Batch(_array.array):  # type: ignore[type-arg]
    """The queued values of one dtype of a fused block, contiguous (a writable buffer)."""

    ready = False
    structure = FNV_START
    _values: Any = None  # a NumPy view of the reduced values, made at the first array read: results slice it

    def __new__(cls, kind: str = "d") -> Batch:
        if len(kind) != 1 or kind not in KINDS:
            raise ValueError(f"Batch kind must be one of d, f, l, i; got {kind!r}")
        return super().__new__(cls, kind)

    @property
    def kind(self) -> str:
        """The struct format character of the values: d, f, l or i."""
        return self.typecode

    def mix(self, word: int) -> None:
        """Add one word to the hash of the entries' kinds and shapes."""
        self.structure = ((self.structure ^ word) * FNV_PRIME) & MASK

    def append(self, value: float) -> None:
        """Append one float (before the reduction)."""
        if self.typecode != "d":
            raise TypeError("Batch.append takes floats into a batch of kind 'd' only")
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
        if type(like) is tuple:  # an array of this shape: a view of the batch (which takes no more values)
            values = batch._values
            if values is None:
                values = batch._values = _np.frombuffer(batch, batch.typecode)
            value = values[self._index : self._index + self._count].reshape(like)
        else:  # a float, or a NumPy scalar (a float64 subclass, or float32) of its type
            value = batch[self._index] if like is None else like(batch[self._index])
        if self._batch is None:  # a float32 subclass's constructor set the value meanwhile: it stands, as in C
            return self._known
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
_get_ident = _threading.get_ident
_ENDED = "hpc.mpi fused: this block has ended (its values are ready); queue into a new `with comm.fused()` block"
_OTHER_THREAD = (
    "hpc.mpi fused: a fused block takes entries from the thread that opened it only (entries from several threads "
    "would be queued in a different order on each rank, and wrong sums would come back); queue from one thread"
)


def _lane_kind(x: Any) -> str | None:
    """The batch kind of a NumPy entry the lane takes (as _fused_queue.c decides), or None for the slow lane."""
    dtype = x.dtype
    kind = dtype.char
    if kind == "q" and dtype.itemsize == _LONG_SIZE:
        kind = "l"  # long long where it is long's size, as in C (an unaligned int64 array exports "=q")
    if kind not in KINDS or not dtype.isnative or x.size > FUSE_MAX:
        return None
    if type(x) is _np.ndarray:
        return kind if x.flags.c_contiguous and (kind in "df" or x.ndim > 0) else None
    return kind if kind == "f" else None  # a NumPy scalar: float32 (integers are exact in the slow lane)


class Queue:
    """Queues small sums of the lane's dtypes, one :class:`Batch` per dtype; hands any other entry to ``_queue``."""

    _batches: dict[str, Batch] | None = None

    def __new__(cls, engine: Any = None) -> Queue:
        queue = super().__new__(cls)
        queue._owner = _get_ident()  # the only thread that may queue (as in C)
        queue._engine = engine
        queue._entries, queue._integers = [], []  # the slow lane's, filled by the subclass
        return queue

    def _claim(self) -> None:
        """Make the calling thread the one that may queue (called when the block is entered)."""
        self._owner = _get_ident()

    def __enter__(self) -> Any:
        self._owner = _get_ident()  # the thread that opens the block queues into it
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc is None:
                self.flush()  # type: ignore[attr-defined]  # (C ends a plain engine's fast-lane block itself)
            else:  # a block that raised reduces nothing, now or with the next block on this object
                self._batches = None
                self._entries.clear()
                self._integers.clear()
        finally:
            self._owner = 0  # ended: a later allreduce on this object raises instead of queueing into nothing

    def _check_thread(self) -> None:
        if _get_ident() != self._owner:
            raise RuntimeError(_ENDED if self._owner == 0 else _OTHER_THREAD)

    def allreduce(self, x: Any, op: Any = "sum") -> Any:
        """Queue an allreduce of ``x`` and return its placeholder."""
        if _get_ident() != self._owner:
            raise RuntimeError(_ENDED if self._owner == 0 else _OTHER_THREAD)
        if not (type(op) is str and op == "sum"):  # type first, as in C: no __eq__ of odd ops
            return self._queue(x, op)  # type: ignore[attr-defined]
        kind = type(x)
        if kind is float or isinstance(x, float):
            like, values, shape, kind = (None if kind is float else kind), None, None, "d"
        elif (kind is _np.ndarray or isinstance(x, _np.generic)) and (k := _lane_kind(x)):
            is_array = kind is _np.ndarray
            like, values, shape, kind = (x.shape if is_array else kind), x.reshape(-1), x.shape, k
        else:
            return self._queue(x, op)  # type: ignore[attr-defined]
        batches = self._batches
        if batches is None:
            batches = self._batches = {}
        batch = batches.get(kind)
        if batch is None:
            batch = batches[kind] = Batch(kind)
        result = _new(FusedResult)  # no __init__ call: this is the per-entry cost
        result._batch = batch
        result._index = len(batch)
        result._like = like
        if values is None:
            batch.mix(1)
            _append(batch, x)  # a batch being filled is never ready: no need for Batch.append's check
            result._count = 0
        else:
            if type(like) is tuple and like:  # an array of one dimension or more (a 0-d one hashes as a scalar)
                batch.mix(2)
                for n in shape:
                    batch.mix(n + 3)
            else:
                batch.mix(1)
            batch.extend(values.tolist())
            result._count = values.shape[0]
        if len(batch) * batch.itemsize >= FLUSH_BYTES:
            self._flush_batches(self._take())  # type: ignore[attr-defined]
        return result

    def _take(self) -> tuple[Batch, ...]:
        """Return the queued batches, float64 first, as a tuple (empty if none), and start new ones."""
        self._check_thread()
        batches, self._batches = self._batches or {}, None
        return tuple(batches[k] for k in KINDS if k in batches)
