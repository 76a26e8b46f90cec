"""Means and centred second moments over row blocks, merged exactly as Chan et al. do, reproducibly.

Each block centres its rows on its own mean before the products, so no term cancels (``E[x^2] - E[x]^2`` loses
every digit of data with a large offset); the blocks' moments then merge around the global mean:
``M = sum_b (M_b + n_b (mean_b - mean)(mean_b - mean)^T)``. Two reductions: the sums (for the mean), then ``M``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as _np

from hpc.ml._blocks import Blocks

__all__ = ["Moments", "centered_moments"]


@dataclass
class Moments:
    """Count, mean and centred second moments of the columns over every rank's rows."""

    n: int
    mean: _np.ndarray  #: (d,)
    m2: _np.ndarray  #: (d, d) centred cross-products, or (d,) squared deviations with ``diagonal=True``


def _device_block_moments(arrays: tuple[Any, ...], diagonal: bool, centred: bool) -> tuple[int, Any, Any]:
    """The moments of device blocks, whose columns are the block's arrays side by side (``X`` or ``[X | Y]``)."""
    from hpc.cuda import twins

    n = arrays[0].shape[0]
    if diagonal:
        if len(arrays) != 1 or not centred:
            raise NotImplementedError("device row blocks have centred diagonal moments of X only")
        return (n, *twins.column_moments(arrays[0]))
    return (n, *twins.gram(*arrays, centred=centred))


def _block_moments(Z: _np.ndarray, diagonal: bool, centred: bool) -> tuple[int, _np.ndarray, _np.ndarray]:
    n = Z.shape[0]
    total = Z.sum(axis=0, dtype=_np.float64)
    if not centred:
        Z = _np.asarray(Z, dtype=_np.float64)
        return n, total, _np.einsum("ij,ij->j", Z, Z) if diagonal else Z.T @ Z
    if Z.dtype == _np.float32 and not diagonal:
        # float32 data: the block's products in float32, as scikit-learn's whole Gram matrix is (twice the speed
        # of float64 and half the memory traffic); only 4096 rows accumulate in float32, and the blocks then meet
        # in float64
        # in float64. The shift is the block mean rounded to float32, so the products are about it, not the mean:
        # the merge wants them about the mean, n (mean - shift)(mean - shift)^T less (the parallel-axis rule)
        shift = (total / n).astype(_np.float32)
        centred32 = Z - shift
        offset = total / n - shift.astype(_np.float64)
        return n, total, (centred32.T @ centred32).astype(_np.float64) - n * _np.outer(offset, offset)
    centred = Z - total / n  # float64 whatever Z's float dtype: the cast and the centring in one pass
    if diagonal:
        return n, total, _np.einsum("ij,ij->j", centred, centred)
    return n, total, centred.T @ centred


def centered_moments(
    blocks: Blocks,
    width: int,
    columns: Callable[..., _np.ndarray] | None = None,
    *,
    diagonal: bool = False,
    centred: bool = True,
) -> Moments:
    """Return the :class:`Moments` of ``columns(*block_arrays)`` (default: the first array), as float64.

    Args:
        blocks: the fit's row blocks.
        width (int): the number of columns ``columns`` returns (ranks without blocks need it too).
        columns: builds a block's float columns from its arrays (default: ``X`` itself; ``X`` beside ``y``). Device
            blocks take their arrays side by side as the columns (:func:`hpc.cuda.twins.gram`), which is what
            both builders in use make.
        diagonal (bool): only the squared deviations of each column (a ``(d,)`` vector), not the ``(d, d)`` matrix.
        centred (bool): False gives the raw products ``Z^T Z`` instead (for models without an intercept).
    """
    build = columns or (lambda X, *rest: X)
    if blocks.on_device:  # the twins take the block's arrays as its columns: X, or [X | Y] (what `columns` builds)
        parts = blocks.map(lambda *arrays: _device_block_moments(arrays, diagonal, centred))
    else:
        parts = blocks.map(lambda *arrays: _block_moments(build(*arrays), diagonal, centred))
    shape = (width,) if diagonal else (width, width)
    sums = blocks.sum([total for _, total, _ in parts], (width,))
    n = blocks.n_total
    mean = sums / n

    def merged(part: tuple[int, _np.ndarray, _np.ndarray]) -> Any:
        nb, total, m2 = part
        if not centred:
            return m2
        delta = total / nb - mean
        return m2 + nb * (delta * delta if diagonal else _np.outer(delta, delta))

    m2 = blocks.sum([merged(p) for p in parts], shape)
    return Moments(n, mean, m2)
