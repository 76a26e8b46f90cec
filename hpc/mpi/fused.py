"""Fused collectives: many small allreduces sent as one MPI call per op and dtype."""

from __future__ import annotations

import zlib as _zlib
from typing import Any

import numpy as _np

from hpc.mpi import guard as _guard
from hpc.mpi.collectives import _Prepared
from hpc.mpi.ops import resolve

try:
    from hpc.mpi._fused_queue import Batch, FusedResult, Queue
except ImportError:  # installed without a C compiler: the same lane in Python, about 5x slower to queue
    from hpc.mpi._fused_queue_py import Batch, FusedResult, Queue  # type: ignore[assignment]

__all__ = ["Fused", "FusedResult"]


class Fused(Queue):
    """Created by :meth:`hpc.mpi.Comm.fused`: queues allreduces and runs them together when the block ends.

    Python ``float`` sums, the common case, are queued in C (``_fused_queue.c``: one method call, about 0.03 us) and
    travel in one float64 buffer, reduced in place; other entries with the same op and dtype share one buffer each.
    100 scalar sums cost one ``Allreduce``. The structure of what was queued must be the same on every rank: a
    checksum of it travels with the float buffer, so ranks that queued different sequences get
    :class:`~hpc.mpi.guard.RankMismatchError` on every rank. A different *number* of float sums makes the buffers
    differ in length: the check mode (``HPC_MPI_CHECK=1``) raises RankMismatchError for it on every rank, and
    without it MPI itself fails ("Message truncated") and the job ends.

    Python ints are queued as int64, even for ``op="sum"``: their sums wrap like NumPy int64, and an int beyond
    int64 raises OverflowError when queued. :meth:`hpc.mpi.Comm.allreduce` sums Python ints exactly.

    Example:
        >>> from hpc import mpi
        >>> comm = mpi.world()
        >>> with comm.fused() as f:
        ...     a = f.allreduce(1.0)
        ...     b = f.allreduce(2)
        >>> a.value == comm.size, b.value == 2 * comm.size
        (True, True)
    """

    def __init__(self, comm: Any) -> None:
        self._comm = comm
        self._entries: list[tuple[Any, _Prepared, Any]] = []  # everything but Python float sums

    # allreduce(x, op="sum") is Queue's: Python float sums stay in C, anything else comes to _queue.

    def _queue(self, x: Any, op: Any) -> Any:
        o = resolve(op)
        if o.name in ("argmin", "argmax") or o.mpi is None and self._comm.size > 1:
            raise ValueError(f"fused allreduce supports the built-in elementwise ops; got {o.name!r}")
        prep = _Prepared(x, o, "fused allreduce")
        if prep.array is x or prep.array.base is not None:  # the caller's memory: reduce the value it has now
            prep.array = prep.array.copy()
        result = FusedResult()
        self._entries.append((o, prep, result))
        return result

    def __enter__(self) -> Fused:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.flush()

    def flush(self) -> None:
        """Run every queued reduction now (called when the ``with`` block ends)."""
        batch, entries = self._take(), self._entries
        if batch is None and not entries:
            return
        self._entries = []
        if batch is None:
            batch = Batch()
        count = len(batch)
        if self._comm.size > 1:
            signature = repr((count, [(o.name, p.dtype.str, p.shape) for o, p, _ in entries]) if entries else count)
            # A checksum h and h*h, summed over ranks: sum(h*h) * n == sum(h)**2 exactly when every rank has the
            # same h. 20 bits, so h*h and the sums stay exact in float64.
            h = float(_zlib.crc32(signature.encode()) & 0xFFFFF)
            for word in (h, h * h, 1.0):
                batch.append(word)
        if len(batch):
            self._comm._sum_in_place(batch)
            batch.set_ready()
            if self._comm.size > 1 and batch[-2] * batch[-1] != batch[-3] * batch[-3]:
                raise _guard.RankMismatchError(
                    "fused: ranks queued different sequences of reductions (op, dtype, shape); "
                    f"this rank queued {signature[:400]}"
                )
        groups: dict[tuple[int, str], list[tuple[Any, _Prepared, Any]]] = {}
        for entry in entries:  # by op object, not name: two user ops may share a name
            groups.setdefault((id(entry[0]), entry[1].array.dtype.str), []).append(entry)
        for members in groups.values():
            o = members[0][0]
            parts = [p.array.reshape(-1) for _, p, _ in members]
            total = self._comm.allreduce(_np.concatenate(parts) if len(parts) > 1 else parts[0].copy(), op=o)
            offset = 0
            for _, prep, result in members:
                size = prep.array.size
                result._value = prep.give_back(total[offset : offset + size], o)
                offset += size
