"""Fused collectives: many small allreduces sent as one MPI call per op and dtype."""

from __future__ import annotations

import zlib as _zlib
from typing import TYPE_CHECKING, Any

import numpy as _np

from hpc.mpi import guard as _guard
from hpc.mpi._fused_queue_py import FNV_PRIME, FUSE_MAX, KINDS, MASK, _lane_kind, fmix64
from hpc.mpi.collectives import (
    _integer_result,
    _integer_total,
    _integer_words,
    _is_integer_scalar,
    _Prepared,
    allgather_objects,
)
from hpc.mpi.ops import resolve

try:
    import hpc.mpi._fused_queue as _lane
except ImportError:  # installed without a C compiler: the same lane in Python, about 5x slower to queue
    import hpc.mpi._fused_queue_py as _lane  # type: ignore[no-redef]

if TYPE_CHECKING:  # the C lane's classes have the Python lane's interface, which type checkers can read
    from hpc.mpi._fused_queue_py import Batch, FusedResult, Queue
else:
    Batch, FusedResult, Queue = _lane.Batch, _lane.FusedResult, _lane.Queue


__all__ = ["Fused", "FusedResult"]


class Fused(Queue):
    """Created by :meth:`hpc.mpi.Comm.fused`: queues allreduces and runs them together when the block ends.

    Sums of the common kinds (Python floats, NumPy float64 and float32 scalars, and arrays of float64, float32,
    int64 or int32 of up to 8192 elements, C-contiguous) are queued in C (``_fused_queue.c``: one C method call per
    entry) and travel in one buffer per dtype, reduced in place; each placeholder gives back its caller's type (a
    float, a NumPy scalar, an array of the caller's shape and dtype). Other entries with the same op and dtype share
    one buffer each. 100 small sums cost one ``Allreduce`` per dtype; when a buffer reaches 4 MiB, every buffer of the
    fast lane is reduced at once, inside the block. The structure of what was queued (each entry's kind and shape, the
    length of every buffer) must be the same on every rank: a checksum of it travels with the float64 buffer, which
    is reduced first, so ranks that queued different sequences get :class:`~hpc.mpi.guard.RankMismatchError` on every
    rank before any other buffer moves. A different *number* of float64 values makes that buffer differ in length:
    the check mode (``HPC_MPI_CHECK=1``) raises RankMismatchError for it on every rank, and without it MPI itself
    fails ("Message truncated") and the job ends. The block is collective: on several ranks even a block with
    nothing queued exchanges its checksum when it ends. Only the thread that opened it may queue (RuntimeError).

    Sums of integer scalars are exact, as in :meth:`hpc.mpi.Comm.allreduce` (one int64 buffer of words for all of
    them); other ops take Python ints as int64 (docs/differences.md, "Python ints in hpc.mpi: one rule").

    Example:
        >>> from hpc import mpi
        >>> comm = mpi.world()
        >>> with comm.fused() as f:
        ...     a = f.allreduce(1.0)
        ...     b = f.allreduce(2)
        >>> a.value == comm.size, b.value == 2 * comm.size
        (True, True)
    """

    # Queue(engine) holds the engine (``_engine``) and the slow lane's lists: ``_entries``, what the fast lane does not
    # take, as (op, flat values, dtype str, shape, how, _Prepared or None, result); ``_integers``, the sums of integer
    # scalars (exact, as in allreduce), as (value, the scalar as queued, result).

    # allreduce(x, op="sum") is Queue's: small float64 sums stay in C, anything else comes to _queue.

    def _queue(self, x: Any, op: Any) -> Any:
        o = _BUILTIN.get(op) if type(op) is str else None
        if o is None:
            o = resolve(op)
            if o.builtin in ("argmin", "argmax") or o.mpi is None and self._engine.size > 1:
                raise ValueError(f"fused allreduce supports the built-in elementwise ops; got {o.name!r}")
        if (
            o is _SUM
            and type(x) is _np.ndarray
            and x.size <= FUSE_MAX
            and (not x.flags.c_contiguous or not x.dtype.isnative)
        ):
            # another layout or byte order: if the lane takes the native C-ordered copy (the lane's own rule,
            # _lane_kind), it gets that, so the ranks' batches agree whatever layout each rank's array has (a Fortran
            # array on one rank and a C one on another made buffers of different lengths: "Message truncated")
            native = _np.ascontiguousarray(x, dtype=x.dtype.newbyteorder("="))
            if _lane_kind(native):
                return Queue.allreduce(self, native)
        result = FusedResult()
        if o is _SUM and _is_integer_scalar(x):  # exact, any size, as in allreduce (any kind mixes with any)
            self._integers.append((int(x), x, result))
            return result
        if (
            (type(x) is _np.ndarray or isinstance(x, _np.generic))
            and x.dtype.char in _PLAIN
            and (x.dtype.isnative and o.builtin not in ("land", "lor"))
            and not (o.builtin in ("min", "max") and x.dtype.kind == "f")  # floats as keys, as in allreduce
        ):  # an array or NumPy scalar MPI reduces as it is: copied flat, given back as a view or a scalar
            o.check_dtype(x.dtype)
            flat = _np.array(x, copy=True, order="C").reshape(-1)
            how = _SCALAR if isinstance(x, _np.generic) else _ARRAY
            self._entries.append((o, flat, x.dtype.str, x.shape, how, None, result))
            return result
        prep = _Prepared(x, o, "fused allreduce")  # Python ints, bools, float16, byte-swapped, logical ops...
        if prep.array is x or prep.array.base is not None:  # the caller's memory: reduce the value it has now
            prep.array = prep.array.copy()
        self._entries.append((o, prep.array.reshape(-1), prep.array.dtype.str, prep.shape, _PREPARED, prep, result))
        return result

    # __enter__ and __exit__ are Queue's: the block's end reduces a block of fast-lane entries in C, calling MPI
    # directly where the engine allows it (engine.fused_lane), and calls flush() for any other.

    def _flush_batches(self, batches: tuple[Any, ...], entries: list[Any] | None = None) -> None:
        """Reduce the fast lane's ``batches`` in place now: the float64 one first, with the checksum of them all."""
        engine = self._engine
        if batches and batches[0].kind == "d":
            doubles, others = batches[0], batches[1:]
        else:
            doubles, others = Batch(), batches
        if engine.size > 1:
            # A checksum h and h*h, summed over ranks: sum(h*h) * n == sum(h)**2 exactly when every rank has the
            # same h. 20 bits, so h*h and the sums stay exact in float64.
            h = _checksum(doubles, others, entries, len(self._integers))
            doubles.append(h)
            doubles.append(h * h)
            doubles.append(1.0)
        if len(doubles):
            engine.sum_in_place(doubles)
            doubles.set_ready()
            if engine.size > 1 and doubles[-2] * doubles[-1] != doubles[-3] * doubles[-3]:
                self._mismatch(doubles, others, entries)
        else:
            doubles.set_ready()
        for batch in others:  # the checksum agreed: every rank holds batches of these kinds and lengths
            engine.sum_in_place(batch)
            batch.set_ready()

    def _mismatch(self, doubles: Any, others: tuple[Any, ...], entries: list[Any] | None = None) -> None:
        """Raise RankMismatchError: the checksum summed with ``doubles`` says the ranks queued different blocks."""
        lanes = [(doubles, len(doubles) - 3), *((b, len(b)) for b in others)]
        queued = ", ".join(f"{n} {_KIND_NAMES[b.kind]} values (structure {b.structure & 0xFFFFFFFF:08x})"
                           for b, n in lanes)
        raise _guard.RankMismatchError(
            "fused: ranks queued different sequences of reductions (op, dtype, shape); this rank queued "
            f"{queued}, other entries {_slow(entries)[:20]}, {len(self._integers)} integer sums (the "
            "structure is a digest of each entry's kind and shape, in order: compare it between ranks)"
        )

    def flush(self) -> None:
        """Run every queued reduction now (called when the ``with`` block ends)."""
        batches, entries, integers = self._take(), self._entries, self._integers
        if not batches and not entries and not integers and self._engine.size == 1:
            return  # on several ranks even an empty block exchanges its checksum: another rank may have queued
        self._flush_batches(batches, entries)
        self._entries, self._integers = [], []
        if integers:
            self._sum_integers(integers)
        groups: dict[tuple[int, str], list[Any]] = {}
        for entry in entries:  # by op object, not name: two user ops may share a name
            groups.setdefault((id(entry[0]), entry[2]), []).append(entry)
        for members in groups.values():
            o = members[0][0]
            parts = [entry[1] for entry in members]
            total = self._engine.allreduce(_np.concatenate(parts) if len(parts) > 1 else parts[0], op=o)
            offset = 0
            for _, flat, _, shape, how, prep, result in members:
                end = offset + flat.shape[0]
                if how == _ARRAY:  # a view of the group's result (disjoint from every other result)
                    result._value = total[offset:end].reshape(shape)
                elif how == _SCALAR:
                    result._value = total[offset]
                else:
                    result._value = prep.give_back(total[offset:end], o)
                offset = end


    def _sum_integers(self, integers: list[tuple[int, Any, Any]]) -> None:
        """Sum the queued integer scalars exactly: one int64 allreduce of their words, pickled if one is too big."""
        engine = self._engine
        if engine.size == 1:
            totals = [value for value, _, _ in integers]
        else:
            words = _np.concatenate([_integer_words(engine, value) for value, _, _ in integers])
            engine.allreduce(words, "sum", words)
            totals = [_integer_total(words[3 * i : 3 * i + 3]) for i in range(len(integers))]
            if None in totals:  # some rank queued an int too big for the words: on every rank alike
                everyone = allgather_objects(engine, "fused allreduce", [value for value, _, _ in integers])
                totals = [sum(column) for column in zip(*everyone)]
        for (_, x, result), total in zip(integers, totals):
            result._value = _integer_result(x, total)


def _slow(entries: list[Any] | None) -> list[tuple[str, str, tuple[int, ...]]]:
    """What the slow lane's entries are, as every rank must agree: (op name, dtype, shape) each."""
    return [(e[0].name, e[2], e[3]) for e in entries or ()]


def _checksum(doubles: Any, others: Any, entries: list[Any] | None, integers: int) -> float:
    """A 20-bit checksum of what a block queued: each fast-lane batch's length and structure hash (FNV-1a over its
    entries' kinds and shapes, kept by the lane), then, only when there are any, the slow entries and the count of
    integer sums (their text through CRC-32; the common block, fast lane only, needs no text at all)."""
    h = ((doubles.structure ^ len(doubles)) * FNV_PRIME) & MASK
    for batch in others:
        h = ((h ^ batch.structure ^ (len(batch) << 3) ^ KINDS.index(batch.kind)) * FNV_PRIME) & MASK
    if entries or integers:
        h = ((h ^ _zlib.crc32(repr((_slow(entries), integers)).encode())) * FNV_PRIME) & MASK
    return float(fmix64(h) >> 44)



#: dtypes MPI reduces as they are, which the slow lane copies flat (float16, bool and long double take _Prepared's
#: route)
_PLAIN = frozenset("bBhHiIlLqQfdFD")
_ARRAY, _SCALAR, _PREPARED = 0, 1, 2
_KIND_NAMES = {"d": "float64", "f": "float32", "l": "int64", "i": "int32"}
_BUILTIN = {name: resolve(name) for name in ("sum", "prod", "min", "max", "band", "bor")}
_SUM = _BUILTIN["sum"]
