"""Means and centred second moments over row blocks, merged as Chan et al. do, reproducibly and with no cancellation.

Each block centres its rows on its own rounded mean ``a`` and also sums the deviations: ``s = sum(z - a)`` is what
the rounding of ``a`` (and of the block's plain sum, 1e16-scale values lose units there) left out, so the block's mean
is ``a + s / n_b`` to nearly every digit and its squared deviations about that mean are ``sum((z - a)^2) - s^2 / n_b``
(the corrected two-pass formula scikit-learn uses). Without ``s`` a column of 1e16 + 150 * N(0, 1) had its variance
off in the fourth digit. The blocks then meet about ``r``, the mean of the plain sums (the first reduction): each
brings ``n_b d_b`` and ``M_b + n_b d_b d_b^T`` with ``d_b = (a - r) + s / n_b`` small, and the second reduction's
totals ``A`` and ``B`` give ``mean = r + A / n`` and ``M = B - A A^T / n``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as _np
from numba import njit as _njit

from hpc.ml import _device
from hpc.ml._blocks import Blocks

__all__ = ["Moments", "centered_moments"]


@dataclass
class Moments:
    """Count (the weights' total for weighted rows), mean and centred second moments of the columns over every
    rank's rows."""

    n: int | float
    mean: _np.ndarray  #: (d,)
    m2: _np.ndarray  #: (d, d) centred cross-products, or (d,) squared deviations with ``diagonal=True``


#: a block's (rows, column sums, the rounded mean a it centred on, s = the deviations' sum, their products about a)
_Block = tuple[int, _np.ndarray, _np.ndarray, _np.ndarray, _np.ndarray]


def _device_block_moments(arrays: tuple[Any, ...], diagonal: bool, centred: bool) -> _Block:
    """The moments of device blocks, whose columns are the block's arrays side by side (``X`` or ``[X | Y]``)."""
    from hpc.cuda import twins

    n = arrays[0].shape[0]
    if diagonal:  # of X, the first array, as on the host (KMeans' weights ride beside it)
        if not centred:
            raise NotImplementedError("device row blocks have centred diagonal moments of X only")
        total, m2, s = twins.column_moments(arrays[0], deviations=True)
    else:
        total, m2, s = twins.gram(*arrays, centred=centred, deviations=True)
    return n, total, total / max(n, 1), s, m2  # the twins centre on the block's mean, total / n


def _block_moments(Z: _np.ndarray, diagonal: bool, centred: bool) -> _Block:
    n = Z.shape[0]
    if diagonal and centred:  # one compiled kernel, in row order: the bits of the GPU twin and of its NumPy fallback
        from hpc import kernels

        total, m2, s = kernels.column_moments(_np.ascontiguousarray(Z), deviations=True)
        return n, total, total / max(n, 1), s, m2
    if not centred:
        total = Z.sum(axis=0, dtype=_np.float64)
        Z = _np.asarray(Z, dtype=_np.float64)
        return n, total, total, total, _np.einsum("ij,ij->j", Z, Z) if diagonal else Z.T @ Z
    if Z.dtype not in (_np.float32, _np.float64):
        Z = Z.astype(_np.float64)
    # The rows are centred on the block mean rounded to their dtype. float32 data keep the block's products in
    # float32, as scikit-learn's whole Gram matrix is (twice the speed of float64 and half the memory traffic); only
    # 4096 rows accumulate in float32, and the blocks then meet in float64.
    total, shift, shifted, s = _centre(_np.ascontiguousarray(Z))
    a = shift.astype(_np.float64)
    with _np.errstate(over="ignore", invalid="ignore"):  # data near 1e155 overflow the Gram: callers take TSQR
        products = shifted.T @ shifted
    return n, total, a, s, products.astype(_np.float64, copy=False)


def _centre(Z: _np.ndarray) -> tuple[_np.ndarray, _np.ndarray, _np.ndarray, _np.ndarray]:
    """Return a C-ordered ``Z``'s column sums (float64), its column means rounded to ``Z``'s dtype (the shift),
    ``Z`` minus the shift, and the sums of those deviations (float64): NumPy's ``Z.sum(axis=0)``, ``Z - shift`` and
    the deviations' ``sum(axis=0)``, bit for bit. Two or more columns take one compiled call (NumPy adds those row
    by row; its three steps, with their float32-to-float64 casting sums, took 3-7 times as long on a block); a
    single column, which NumPy sums pairwise, takes NumPy's own steps."""
    n = max(Z.shape[0], 1)
    if Z.shape[1] == 1:
        total = Z.sum(axis=0, dtype=_np.float64)
        shift = (total / n).astype(Z.dtype)
        shifted = Z - shift
        return total, shift, shifted, shifted.sum(axis=0, dtype=_np.float64)
    d = Z.shape[1]
    total, s = _np.empty(d), _np.empty(d)
    shifted = _np.empty_like(Z)
    _centre_columns(Z, total, shifted, s)
    return total, (total / n).astype(Z.dtype), shifted, s


@_njit(cache=True, nogil=True)
def _centre_columns(z, total, shifted, s):  # pragma: no cover - numba
    # No fastmath: each column summed in row order (NumPy's order on C-ordered rows); the columns vectorize.
    m, d = z.shape
    for j in range(d):
        total[j] = 0.0
        s[j] = 0.0
    for i in range(m):
        for j in range(d):
            total[j] += z[i, j]
    shift = (total / max(m, 1)).astype(z.dtype)
    for i in range(m):
        for j in range(d):
            c = z[i, j] - shift[j]
            shifted[i, j] = c
            s[j] += c


def _weighted_block_moments(Z: _np.ndarray, w: _np.ndarray, diagonal: bool, centred: bool) -> _Block:
    """A block's moments with row weights ``w``, in float64: its total weight in place of its row count, its
    weighted column sums, the weighted mean it centred on, the weighted deviations' sums and the weighted products
    about that mean (the rows scaled by ``sqrt(w)``, as scikit-learn rescales weighted data)."""
    Z = _np.asarray(Z, dtype=_np.float64)
    weight = float(w.sum())
    total = w @ Z
    if not centred:
        root = Z * _np.sqrt(w)[:, None]
        return weight, total, total, total, _np.einsum("ij,ij->j", root, root) if diagonal else root.T @ root
    width = Z.shape[1]
    if weight == 0:  # nothing to centre on: the block adds nothing (about_reference skips it)
        return 0.0, total, total, total, _np.zeros(width if diagonal else (width, width))
    a = total / weight
    shifted = Z - a
    root = shifted * _np.sqrt(w)[:, None]
    with _np.errstate(over="ignore", invalid="ignore"):  # data near 1e155 overflow the Gram: callers take TSQR
        products = _np.einsum("ij,ij->j", root, root) if diagonal else root.T @ root
    return weight, total, a, w @ shifted, products


def centered_moments(
    blocks: Blocks,
    width: int,
    columns: Callable[..., _np.ndarray] | None = None,
    *,
    diagonal: bool = False,
    centred: bool = True,
    weighted: bool = False,
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
        weighted (bool): the blocks' last array holds the rows' weights (float64, non-negative; not passed to
            ``columns``): the weighted mean and the weighted products about it, ``n`` the weights' total. Computed on
            the host (device blocks are copied over).
    """
    build = columns or (lambda X, *rest: X)
    if weighted:

        def weighted_part(*arrays: Any) -> _Block:
            *data, w = (_device.host(a) for a in arrays)
            return _weighted_block_moments(build(*data), w, diagonal, centred)

        parts = blocks.map(weighted_part)
    elif blocks.on_device:  # the twins take the block's arrays as its columns: X, or [X | Y] (what `columns` builds)
        parts = blocks.map(lambda *arrays: _device_block_moments(arrays, diagonal, centred))
    else:
        parts = blocks.map(lambda *arrays: _block_moments(build(*arrays), diagonal, centred))
    shape = (width,) if diagonal else (width, width)
    if weighted:  # the blocks' weights summed with their column sums, in one reduction
        counted = blocks.sum([_np.concatenate([[p[0]], p[1]]) for p in parts], (width + 1,))
        n: int | float = float(counted[0])
        sums = counted[1:]
    else:
        sums = blocks.sum([p[1] for p in parts], (width,))
        n = blocks.n_total
    with _np.errstate(invalid="ignore", divide="ignore"):  # no rows, or weights all 0: NaN (callers refuse those)
        reference = sums / n
    if not centred:
        return Moments(n, reference, blocks.sum([p[4] for p in parts], shape))

    def about_reference(part: _Block) -> _np.ndarray:
        """A block's ``[n_b d_b, M_b + n_b d_b d_b^T]``, flat: its mean's deviation from the reference, and its
        moments about that mean, ``a + s / n_b``."""
        nb, _, a, s, products = part
        if nb == 0:
            return _np.zeros(width + products.size)
        d = (a - reference) + s / nb
        m2 = products - (s * s if diagonal else _np.outer(s, s)) / nb
        return _np.concatenate([nb * d, (m2 + nb * (d * d if diagonal else _np.outer(d, d))).ravel()])

    # an overflowing Gram matrix (data near 1e155) is its callers' to handle: they take TSQR then
    quiet = {} if diagonal else {"over": "ignore", "invalid": "ignore"}
    with _np.errstate(**quiet):
        totals = blocks.sum([about_reference(p) for p in parts], (width + int(_np.prod(shape)),))
        shift, spread = totals[:width], totals[width:].reshape(shape)
        m2 = spread - (shift * shift if diagonal else _np.outer(shift, shift)) / n
    if diagonal:  # a constant column's weighted deviations can round below 0 (never without weights)
        m2[m2 < 0.0] = 0.0
    return Moments(n, reference + shift / n, m2)
