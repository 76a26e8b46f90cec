"""Column moments of a block of rows: each column's sum, and its deviations from the column mean, in one kernel.

What hpc.ml's fits merge over row blocks (the scaler's and k-means' means and variances): per column ``j``,
``sums[j] = sum_i x[i, j]``, then with ``mean = sums / m`` the squared deviations ``m2[j] = sum_i (x[i, j] -
mean[j])^2`` and, for the corrected two-pass formula, the deviations themselves ``devs[j] = sum_i (x[i, j] -
mean[j])`` (what the rounding of the mean left out of it). Two passes over the rows, in float64 whatever the input's
float dtype, each column summed in row order: the order of NumPy's ``x.sum(axis=0)`` on C-ordered rows of two
columns or more (a single column is contiguous, and NumPy sums it pairwise) and of the GPU twin (one thread per
column), so all three give the same bits there. NumPy's way (a sum, a centred temporary, then
``einsum``) is several times slower on the ML layer's blocks (``einsum`` reduces short rows poorly; figures in
docs/performance.md).
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

from . import _checks
from ._dispatch import gpu_twin
from ._flags import EXACT
from ._types import AnyArray

__all__ = ["column_moments"]


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _column_moments(x, sums, m2, devs):  # pragma: no cover - numba
    # No fastmath: each column's sums stay in row order (the columns, independent, still vectorize) and diff * diff
    # is not fused into an FMA, so the results are NumPy's bits.
    m, d = x.shape
    for j in range(d):
        sums[j] = 0.0
        m2[j] = 0.0
        devs[j] = 0.0
    for i in range(m):
        for j in range(d):
            sums[j] += x[i, j]
    if m == 0:
        return
    mean = sums / m
    for i in range(m):
        for j in range(d):
            diff = _np.float64(x[i, j]) - mean[j]
            m2[j] += diff * diff
            devs[j] += diff


@gpu_twin
def column_moments(x: AnyArray, *, deviations: bool = False) -> tuple[_np.ndarray, ...]:
    """Return ``(sums, m2)`` of the columns of a 2-D ``x``: each column's sum and its squared deviations about the
    column mean, float64; with ``deviations=True``, ``(sums, m2, devs)``, also each column's sum of deviations
    ``sum_i (x[i, j] - sums[j] / m)`` (near 0; what the rounding of the mean left out: the mean to nearly every
    digit is ``sums / m + devs / m``, and ``m2 - devs**2 / m`` the squared deviations about it).

    Args:
        x (numpy.ndarray): 2-D ``(m, d)``, float32 or float64 (accumulated in float64).
        deviations (bool): also return ``devs``.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> sums, m2 = kernels.column_moments(np.array([[1.0, 2.0], [3.0, 6.0]]))
        >>> sums.tolist(), m2.tolist()
        ([4.0, 8.0], [2.0, 8.0])
    """
    x = _checks.matrix("x", x)
    d = x.shape[1]
    sums, m2, devs = _np.empty(d), _np.empty(d), _np.empty(d)
    _column_moments(x, sums, m2, devs)
    return (sums, m2, devs) if deviations else (sums, m2)
