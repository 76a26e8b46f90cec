"""Fixed-width histogram, bin for bin the counts of ``numpy.histogram(x, bins=int, range=...)``.

The bin index is computed as NumPy computes it (scaled offset, then corrected against the exact bin edges), so
the counts match NumPy's exactly, edges included. The parallel variant gives each chunk of the input a private
histogram (no atomics, no false sharing on a shared one) and adds them up at the end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._flags import EXACT
from ._types import Int, Real
from .reductions import CHUNK

__all__ = ["histogram"]

#: most private histograms the parallel variant keeps (chunks are grouped onto them)
MAX_PARTS = 64
#: most bytes the private histograms may take together: with many bins, fewer of them (one: the serial variant),
#: where 64 histograms of 10 million bins took 5 GiB for a 76 MiB result
PRIVATE_BYTES = 64 << 20


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _hist_range(x, lo, hi, first, last, width, edges, counts):  # pragma: no cover - compiled by numba
    nb = edges.shape[0] - 1
    for i in range(lo, hi):
        v = x[i]
        if not (v >= first and v <= last):  # outside, or NaN
            continue
        # NumPy 2's form, offset over width, then times the count: a tiny or huge width does not overflow a factor
        f = (_np.float64(v) - _np.float64(first)) / width * nb
        k = int(f) if f >= 0.0 and f < nb else (nb - 1 if f >= nb else 0)  # in range, whatever f is
        while k > 0 and v < edges[k]:  # corrected against the exact edges (at most one step unless f was garbage)
            k -= 1
        while k < nb - 1 and v >= edges[k + 1]:
            k += 1
        counts[k] += 1


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _hist_serial(x, first, last, width, edges, counts):  # pragma: no cover - compiled by numba
    _hist_range(x, 0, x.shape[0], first, last, width, edges, counts)


@_njit(cache=True, nogil=True, fastmath=EXACT, parallel=True)
def _hist_parallel(x, first, last, width, edges, counts, parts):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nb = counts.shape[0]
    per = (n + parts - 1) // parts
    private = _np.zeros((parts, nb), _np.int64)
    for p in _prange(parts):
        _hist_range(x, p * per, min(n, (p + 1) * per), first, last, width, edges, private[p])
    for p in range(parts):
        for k in range(nb):
            counts[k] += private[p, k]


def histogram(
    x: _np.ndarray, bins: Int = 10, range: Sequence[Real] | None = None, *, parallel: bool | None = None,
) -> tuple[_np.ndarray, _np.ndarray]:  # noqa: A002 - NumPy's name on purpose
    """Return ``(counts, edges)`` of ``x`` in ``bins`` equal-width bins, as :func:`numpy.histogram`.

    Args:
        x (numpy.ndarray): float32 or float64; 1-D of any stride or N-D C-contiguous.
        bins (int): number of bins, at least 1.
        range (tuple of two floats or None): ``(lo, hi)``; values outside are ignored, the last bin includes
            ``hi``. ``None``: the data's min and max (NaN or inf in ``x`` is then an error, as in NumPy).
        parallel (bool or None): private histograms per chunk, merged; ``None`` decides by size.

    Returns:
        ``counts`` (int64, ``(bins,)``) and ``edges`` (``x``'s dtype, ``(bins + 1,)``). NaN values are never counted.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.histogram(np.array([0.0, 0.5, 1.0, 2.0]), bins=2)[0].tolist()
        [2, 2]
    """
    from . import reductions

    v = _checks.as_vector("x", x)
    if not isinstance(bins, (int, _np.integer)) or isinstance(bins, bool) or bins < 1:
        raise ValueError(f"bins must be a positive int; got {bins!r}")
    if range is None:
        if v.shape[0] == 0:
            first, last = 0.0, 1.0
        else:
            first, last = reductions.min(v), reductions.max(v)  # x's dtype, as NumPy's edges then are
    else:
        try:
            # NumPy scalars stay what they are: NumPy makes the edges from them in their own precision
            first, last = (e if isinstance(e, _np.floating) else float(e) for e in range)
        except (TypeError, ValueError):
            raise ValueError(f"range must be a (lo, hi) pair of floats or None; got {range!r}") from None
    if not (_np.isfinite(first) and _np.isfinite(last)):  # NumPy's words
        given = "autodetected" if range is None else "supplied"
        raise ValueError(f"{given} range of [{first}, {last}] is not finite")
    if first > last:
        raise ValueError("max must be larger than min in range parameter.")
    if first == last:
        first, last = first - 0.5, last + 0.5
    # edges and range as NumPy 2 computes them: in the type of the range and x together (a Python float range is a
    # weak scalar there: x's dtype), by linspace from the range as given
    bin_type = _np.result_type(first, last, v.dtype)
    with _np.errstate(invalid="ignore", over="ignore"):  # edges beyond float32: refused just below
        edges = _np.linspace(first, last, int(bins) + 1, dtype=bin_type)
        increasing = bool((edges[1:] > edges[:-1]).all()) and bool(_np.isfinite(edges).all())
    if not increasing:  # a range too small for that many distinct edges, or too wide for the dtype: as NumPy
        raise ValueError(f"Too many bins for data range. Cannot create {int(bins)} finite-sized bins.")
    counts = _np.zeros(int(bins), _np.int64)
    width = float(last) - float(first)
    lo, hi = bin_type.type(first), bin_type.type(last)
    par = _checks.use_parallel(parallel, v.shape[0])  # (checks parallel= too)
    parts = max(1, min(MAX_PARTS, -(-v.shape[0] // CHUNK), PRIVATE_BYTES // (8 * int(bins))))
    if par and parts > 1:
        _hist_parallel(v, lo, hi, width, edges, counts, parts)
    else:
        _hist_serial(v, lo, hi, width, edges, counts)
    return counts, edges
