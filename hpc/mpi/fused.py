"""Fused collectives: many small allreduces sent as one MPI call per op and dtype."""

from __future__ import annotations

import collections as _collections
import zlib as _zlib
from typing import Any

import numpy as _np

from hpc.mpi import guard as _guard
from hpc.mpi.collectives import _Prepared
from hpc.mpi.ops import resolve

__all__ = ["Fused", "FusedResult"]


class FusedResult:
    """A placeholder returned inside ``with comm.fused() as f``; ``.value`` (or ``result()``) after the block."""

    # One slot, left unset until the fused call ran: creating a placeholder is a bare object.__new__, which
    # matters when a block queues hundreds of them.
    __slots__ = ("_value",)

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


_new_result = object.__new__
_set_value = FusedResult._value.__set__  # type: ignore[attr-defined]  # the slot's setter, called from C by map
_consume = _collections.deque(maxlen=0).extend


class Fused:
    """Created by :meth:`hpc.mpi.Comm.fused`: queues allreduces and runs them together when the block ends.

    Python ``float`` sums, the common case, are queued with almost no work and travel in one float64 buffer; other
    entries with the same op and dtype share one buffer each. 100 scalar sums cost one ``Allreduce``. The structure
    of what was queued must be the same on every rank: a checksum of it travels with the first buffer, so ranks that
    queued different sequences get :class:`~hpc.mpi.guard.RankMismatchError` on every rank.

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
        self._floats: list[float] = []  # Python float sums, the fast lane
        self._float_results: list[FusedResult] = []
        self._entries: list[tuple[Any, _Prepared, FusedResult]] = []

    def allreduce(self, x: Any, op: Any = "sum") -> FusedResult:
        """Queue an allreduce of ``x`` and return its placeholder."""
        result = _new_result(FusedResult)
        if type(x) is float and op == "sum":  # the fast lane: two appends
            self._floats.append(x)
            self._float_results.append(result)
            return result
        o = resolve(op)
        if o.name in ("argmin", "argmax") or o.mpi is None and self._comm.size > 1:
            raise ValueError(f"fused allreduce supports the built-in elementwise ops; got {o.name!r}")
        prep = _Prepared(x, o, "fused allreduce")
        if prep.array is x or prep.array.base is not None:  # the caller's memory: reduce the value it has now
            prep.array = prep.array.copy()
        self._entries.append((o, prep, result))
        return result

    def __enter__(self) -> Fused:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc is None:
            self.flush()

    def _signature(self) -> str:
        return repr((len(self._floats), [(o.name, p.dtype.str, p.shape) for o, p, _ in self._entries]))

    def flush(self) -> None:
        """Run every queued reduction now (called when the ``with`` block ends)."""
        if not self._floats and not self._entries:
            return
        signature = self._signature()
        floats, float_results, entries = self._floats, self._float_results, self._entries
        self._floats, self._float_results, self._entries = [], [], []
        groups: dict[tuple[int, str], list[tuple[Any, _Prepared, FusedResult]]] = {}
        for entry in entries:  # by op object, not name: two user ops may share a name
            groups.setdefault((id(entry[0]), entry[1].array.dtype.str), []).append(entry)
        # A checksum h with h*h, summed over ranks: sum(h*h) * n == sum(h)**2 exactly when every rank has the same h.
        h = float(_zlib.crc32(signature.encode()) & 0xFFFFF)  # 20 bits: h*h and the sums stay exact in float64
        check = [h, h * h, 1.0] if self._comm.size > 1 else []
        if floats or check:
            total = self._comm.allreduce(_np.array(floats + check, dtype=_np.float64))
            if check:
                self._verify(total[len(floats) :], signature)
            _consume(map(_set_value, float_results, total.tolist()))  # map stops at the last float
        for members in groups.values():
            o = members[0][0]
            parts = [p.array.reshape(-1) for _, p, _ in members]
            total = self._comm.allreduce(_np.concatenate(parts) if len(parts) > 1 else parts[0].copy(), op=o)
            offset = 0
            for _, prep, result in members:
                size = prep.array.size
                result._value = prep.give_back(total[offset : offset + size], o)
                offset += size

    @staticmethod
    def _verify(sums: Any, signature: str) -> None:
        if sums[1] * sums[2] != sums[0] * sums[0]:
            raise _guard.RankMismatchError(
                "fused: ranks queued different sequences of reductions (op, dtype, shape); "
                f"this rank queued {signature[:400]}"
            )
