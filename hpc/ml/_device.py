"""Row blocks in device memory: the few operations :class:`hpc.ml._blocks.Blocks` needs on a ``DeviceArray``.

A fit on the GPU keeps each rank's rows where they are; its blocks are views of them (no copy), except the one
block a rank completes with leading rows of later ranks, which is assembled in new device memory. Rows cross to
the host only to travel between ranks (at most a block's worth per rank, once) and when a single row is fetched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as _np

__all__ = ["host", "host_rows", "join_rows", "row", "rows"]


def rows(a: Any, lo: int, hi: int) -> Any:
    """Return rows ``lo:hi`` of ``a``: a view of a DeviceArray, a C-contiguous array for NumPy."""
    if isinstance(a, _np.ndarray):
        return _np.ascontiguousarray(a[lo:hi])
    return a[lo:hi]


def host(a: Any) -> _np.ndarray:
    """Return ``a`` on the host: itself for a NumPy array, a copy of a DeviceArray."""
    return a if isinstance(a, _np.ndarray) else a.get()


def host_rows(a: Any, n: int) -> _np.ndarray:
    """Return the first ``n`` rows of ``a`` as a NumPy array (to send to another rank)."""
    return a[:n] if isinstance(a, _np.ndarray) else a[:n].get()


def row(a: Any, i: int) -> _np.ndarray:
    """Return row ``i`` of ``a`` as float64 on the host."""
    return _np.asarray(a[i] if isinstance(a, _np.ndarray) else a[i].get(), dtype=_np.float64)


def join_rows(first: Any, more: Sequence[_np.ndarray]) -> Any:
    """Return ``first``'s rows followed by the host arrays ``more``'s, in ``first``'s kind of memory."""
    if isinstance(first, _np.ndarray):
        return _np.concatenate([first, *more])
    from hpc.cuda import DeviceArray

    total = first.shape[0] + sum(part.shape[0] for part in more)
    out = DeviceArray((total, *first.shape[1:]), first.dtype, device_index=first.device_index)
    at = first.shape[0]
    if at:
        first.copy_to(out[:at])
    for part in more:
        if not part.shape[0]:
            continue
        out[at : at + part.shape[0]].set(_np.ascontiguousarray(part, dtype=first.dtype))
        at += part.shape[0]
    return out
