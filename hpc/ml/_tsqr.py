"""TSQR: the R factor of the rows of every rank, from each block's own R, in global block order.

The stable route where the normal equations or the covariance matrix lose the answer: an ill-conditioned least-squares
system (``linear``), or data whose Gram or covariance matrix overflows or falls to subnormal numbers (|x| * sqrt(n)
beyond about 1e154, or below about 1e-146), where a QR factorization, scaled by LAPACK as it goes, does not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as _np

from hpc.ml import _device
from hpc.ml._blocks import Blocks

__all__ = ["lost_to_range", "r_factor", "tsqr"]

#: below this largest entry a Gram or covariance matrix holds subnormal numbers where it should hold digits
_SMALLEST_SAFE = float(_np.finfo(_np.float64).tiny / _np.finfo(_np.float64).eps)


def lost_to_range(m2: _np.ndarray) -> bool:
    """Whether second moments overflowed (inf, NaN) or some column's are so small that they hold subnormal numbers:
    the data's scale, not its conditioning, has cost the normal equations their digits. A column's own sum of
    squares bounds its products with the others, so the diagonal tells (a tiny column beside normal ones is fine in
    its cross products, not in its own)."""
    if not _np.isfinite(m2).all():
        return True
    own = _np.abs(_np.diagonal(m2) if m2.ndim == 2 else m2)
    return bool(((own > 0.0) & (own < _SMALLEST_SAFE)).any())


def r_factor(Z: _np.ndarray, width: int) -> _np.ndarray:
    """Return R of the QR factorization of ``Z``, padded with zero rows to ``(width, width)``."""
    r = _np.linalg.qr(Z, mode="r")
    out = _np.zeros((width, width))
    out[: r.shape[0]] = r
    return out


def tsqr(
    blocks: Blocks, width: int, mean: Any, columns: Callable[..., _np.ndarray] | None = None, *, weighted: bool = False
) -> _np.ndarray:
    """Return R of the QR factorization of ``columns(*block arrays)`` (default: the first array, as float64) over
    every rank, centred on ``mean`` unless None, by TSQR in global block order (collective). ``weighted``: the
    blocks' last array holds the rows' weights (not passed to ``columns``), and each row is scaled by the square root
    of its weight after centring."""
    build = columns or (lambda X, *rest: X.astype(_np.float64, copy=False))

    def factor(*arrays: Any) -> _np.ndarray:
        hosted = [_device.host(a) for a in arrays]  # device blocks: QR on the host (no GPU twin)
        w = hosted.pop() if weighted else None
        Z = build(*hosted)
        Z = Z if mean is None else Z - mean
        return r_factor(Z if w is None else Z * _np.sqrt(w)[:, None], width)

    parts = blocks.map(factor)
    stacked = _np.concatenate(parts) if parts else _np.empty((0, width))
    gathered = blocks.comm.allgather(stacked) if blocks.comm.size > 1 else stacked  # global block order
    return r_factor(gathered, width)
