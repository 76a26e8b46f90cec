"""Fused collectives: many small allreduces sent as one MPI call per op and dtype."""

from __future__ import annotations

import zlib as _zlib
from typing import Any

import numpy as _np

from hpc.mpi import guard as _guard
from hpc.mpi.collectives import _Prepared
from hpc.mpi.ops import resolve

__all__ = ["Fused", "FusedResult"]


class FusedResult:
    """A placeholder returned inside ``with comm.fused() as f``; ``.value`` (or ``result()``) after the block."""

    __slots__ = ("_value", "_ready")

    def __init__(self) -> None:
        self._value: Any = None
        self._ready = False

    @property
    def value(self) -> Any:
        """The reduced value; raises RuntimeError inside the ``with`` block, before the fused call ran."""
        if not self._ready:
            raise RuntimeError("a fused result is available only after the `with comm.fused()` block ends")
        return self._value

    def result(self) -> Any:
        """Return :attr:`value` (the ``concurrent.futures`` spelling)."""
        return self.value

    def __repr__(self) -> str:
        return f"<hpc.mpi FusedResult {self._value!r}>" if self._ready else "<hpc.mpi FusedResult pending>"


class Fused:
    """Created by :meth:`hpc.mpi.Comm.fused`: queues allreduces and runs them together when the block ends.

    Entries with the same op and dtype share one buffer and one ``Allreduce``; 100 scalar sums cost one call. The
    call order must be the same on every rank: a checksum of the queued (op, dtype, shape) sequence travels in the
    first buffer, so a different order raises :class:`~hpc.mpi.guard.RankMismatchError` on every rank.

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
        self._entries: list[tuple[Any, _Prepared, FusedResult]] = []

    def allreduce(self, x: Any, op: Any = "sum") -> FusedResult:
        """Queue an allreduce of ``x`` and return its placeholder."""
        o = resolve(op)
        if o.name in ("argmin", "argmax") or o.mpi is None and self._comm.size > 1:
            raise ValueError(f"fused allreduce supports the built-in elementwise ops; got {o.name!r}")
        prep = _Prepared(x, o, "fused allreduce")
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
        entries, self._entries = self._entries, []
        if not entries:
            return
        groups: dict[tuple[str, str], list[tuple[Any, _Prepared, FusedResult]]] = {}
        for entry in entries:
            o, prep, _ = entry
            groups.setdefault((o.name, prep.array.dtype.str), []).append(entry)
        signature = repr([(o.name, p.dtype.str, p.shape) for o, p, _ in entries]).encode()
        # A checksum h and h*h summed over ranks: equal on every rank exactly when sum(h^2)*n == sum(h)^2.
        h = float(_zlib.crc32(signature) & 0xFFFFF)  # 20 bits: h*h and its sums stay exact in float64
        check = self._comm.size > 1
        for index, ((_, _), members) in enumerate(groups.items()):
            o = members[0][0]
            parts = [p.array.reshape(-1) for _, p, _ in members]
            buf = _np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
            extra = None
            if check and index == 0:
                extra = _np.array([h, h * h, 1.0])
            total = self._comm.allreduce(buf, op=o.name) if extra is None else None
            if extra is not None:
                if buf.dtype.kind == "f" and buf.dtype.itemsize == 8 and o.name == "sum":
                    both = self._comm.allreduce(_np.concatenate([buf, extra]), op="sum")
                    total, sums = both[: buf.size], both[buf.size :]
                else:
                    total = self._comm.allreduce(buf, op=o.name)
                    sums = self._comm.allreduce(extra, op="sum")
                n = sums[2]
                if sums[1] * n != sums[0] * sums[0]:
                    raise _guard.RankMismatchError(
                        "fused: ranks queued different sequences of reductions (op, dtype, shape); "
                        f"this rank queued {signature.decode()[:400]}"
                    )
            offset = 0
            for _, prep, result in members:
                size = prep.array.size
                result._value = prep.give_back(total[offset : offset + size], members[0][0])
                result._ready = True
                offset += size
