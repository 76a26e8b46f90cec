"""NumPy-style reductions over all elements: ``sum`` (fast or compensated), ``min``/``max``/``argmin``/``argmax``,
``mean``/``var`` in one pass.

Every kernel has a serial variant, vectorized by LLVM, and a parallel one that cuts the input into fixed chunks of
``CHUNK`` elements (the boundaries depend only on the length, so a parallel result is the same on any number of
threads), runs the serial kernel on each chunk under ``numba.prange`` and combines the partial results in chunk
order. float32 input is accumulated in float64 and the result returned as float32. NaN semantics follow
``numpy.min``/``numpy.argmin``: a NaN anywhere makes ``min``/``max`` NaN and ``argmin``/``argmax`` the index of
the first NaN. See ``hpc.kernels._flags`` for the fastmath flags.
"""

from __future__ import annotations

import builtins as _builtins
import math as _math
import warnings as _warnings

import numpy as _np
from numba import njit as _njit
from numba import prange as _prange

from . import _checks
from ._dispatch import gpu_twin
from ._flags import EXACT, REDUCE
from ._types import Array, Int, Scalar
from .intrinsics import fmaximum as _fmaximum
from .intrinsics import fminimum as _fminimum

__all__ = ["ARG_BLOCK", "CHUNK", "BLOCK", "LANES", "argmax", "argmin", "max", "mean", "mean_var", "min", "sum", "var"]

_cmin, _cmax = _builtins.min, _builtins.max  # this module defines its own min/max/sum

#: elements per parallel chunk (64 Ki: 512 KiB of float64, fits L2)
CHUNK = 1 << 16
#: independent compensated accumulators of ``sum(accurate=True)`` (one loop LLVM vectorizes)
LANES = 64
#: elements per block of the one-pass mean/var (two sweeps over a block read memory once)
BLOCK = 1024
#: elements per block of argmin/argmax (16 KiB of float64: the block is still in L1 when its index is sought)
ARG_BLOCK = 2048


# Parallel variants hand each chunk to the range kernel as a slice view starting at 0: with offsets into the
# whole array numba did not vectorize the inner loop inside prange (10 GB/s instead of 35 here).


# ------------------------------------------------------------------------------------------------------ sum
@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sum_range(x, lo, hi):  # pragma: no cover - compiled by numba
    acc = 0.0
    for i in range(lo, hi):
        acc += x[i]
    return acc


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _sum_serial(x):  # pragma: no cover - compiled by numba
    return _sum_range(x, 0, x.shape[0])


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _sum_parallel(x):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    parts = _np.empty(nchunks, _np.float64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, _cmin(n, (c + 1) * CHUNK)
        parts[c] = _sum_range(x[lo:hi], 0, hi - lo)
    return _sum_range(parts, 0, nchunks)


@_njit(cache=True, nogil=True, fastmath=EXACT, inline="always")
def _neumaier_add(s, c, v):  # pragma: no cover - compiled by numba
    # one compensated step: s + v, with what its rounding lost added to c
    t = s + v
    return t, c + ((s - t) + v if abs(s) >= abs(v) else (v - t) + s)


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _neumaier_lanes(x, rows, width, sums, comps):  # pragma: no cover - compiled by numba
    # width independent compensated accumulators over x[:rows * width], element i going to lane i % width. width
    # is a run-time argument on purpose: with a constant, LLVM unrolls the lane loop fully and leaves it scalar;
    # as a loop of unknown length it vectorizes (the select becomes a masked blend; docs/performance.md).
    for r in range(rows):
        base = r * width
        for j in range(width):
            sums[j], comps[j] = _neumaier_add(sums[j], comps[j], _np.float64(x[base + j]))


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _neumaier(x):  # pragma: no cover - compiled by numba
    # the compensated sum of one chunk as (sum, compensation), the compensation not yet added
    n = x.shape[0]
    rows = n // LANES
    sums = _np.zeros(LANES + 1, _np.float64)  # the last slot takes the elements after the last full row
    comps = _np.zeros(LANES + 1, _np.float64)
    _neumaier_lanes(x, rows, LANES, sums, comps)
    _neumaier_lanes(x[rows * LANES :], n - rows * LANES, 1, sums[LANES:], comps[LANES:])  # the tail: one lane
    return _neumaier_merge(sums, comps)


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _neumaier_merge(sums, comps):  # pragma: no cover - compiled by numba
    # (sums[k], comps[k]) pairs merged in order by the same compensated step: (sum, compensation)
    s = 0.0
    c = 0.0
    for k in range(sums.shape[0]):
        s, c = _neumaier_add(s, c, sums[k])
        s, c = _neumaier_add(s, c, comps[k])
    return s, c


# Serial and parallel variants both sum CHUNK-element chunks on their own and merge the chunks' (sum, compensation)
# pairs in order: the same operations, so the same bits, on any number of threads or none.
@_njit(cache=True, nogil=True, fastmath=EXACT)
def _chunk_sum(x, c, sums, comps):  # pragma: no cover - compiled by numba
    lo, hi = c * CHUNK, _cmin(x.shape[0], (c + 1) * CHUNK)
    sums[c], comps[c] = _neumaier(x[lo:hi])


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _accurate_serial(x):  # pragma: no cover - compiled by numba
    sums, comps = _np.empty((2, _cmax(1, (x.shape[0] + CHUNK - 1) // CHUNK)), _np.float64)
    for c in range(sums.shape[0]):
        _chunk_sum(x, c, sums, comps)
    s, c = _neumaier_merge(sums, comps)
    return s + c


@_njit(cache=True, nogil=True, fastmath=EXACT, parallel=True)
def _accurate_parallel(x):  # pragma: no cover - compiled by numba
    sums, comps = _np.empty((2, _cmax(1, (x.shape[0] + CHUNK - 1) // CHUNK)), _np.float64)
    for c in _prange(sums.shape[0]):
        _chunk_sum(x, c, sums, comps)
    s, c = _neumaier_merge(sums, comps)
    return s + c


def _accurate(v, par):
    """The compensated sum of ``v`` as a float64, or NumPy's answer where the data hold non-finite values."""
    total = _accurate_parallel(v) if par else _accurate_serial(v)
    if _math.isfinite(total):
        return total
    if bool(_np.isfinite(v).all()):
        # finite data whose partial sums overflowed (1e308 + 1e308 - 1e308), in the lanes or their merge: the
        # compensated sum of the data scaled by 2**-64 (exact but for values below 2**-958, far under the rounding
        # of such a total), scaled back. Not the plain sum, even where its other order happened to stay finite: its
        # cancellation can be as wrong as the compensation was meant to prevent.
        scaled = _np.multiply(v, 2.0**-64, dtype=_np.float64)
        small = _accurate_parallel(scaled) if par else _accurate_serial(scaled)
        return small * 2.0**64  # inf when the true sum overflows
    # an infinity or NaN in the data turns the compensation into inf - inf: NumPy's answer is the plain sum's
    # (inf, -inf or NaN)
    return _sum_parallel(v) if par else _sum_serial(v)


@gpu_twin
def sum(x: Array, *, accurate: bool = False, parallel: bool | None = None) -> Scalar:  # noqa: A001 - NumPy's name on purpose
    """Return the sum of all elements of ``x``.

    Args:
        x (numpy.ndarray): float32 or float64; 1-D of any stride, or N-D C-contiguous.
        accurate (bool): ``False``: a vectorized sum (float64 accumulators, reassociated: error grows like
            ``n * eps`` in the worst case, as for NumPy's pairwise sum it is far smaller in practice). ``True``: a
            compensated (Neumaier) sum: error at most about one rounding of the result plus ``n * eps**2 *
            sum(|x|)``, so one rounding unless the sum cancels by a factor near ``1 / (n * eps)``; the same bits
            serially and in parallel; finite data whose partial sums overflow are summed scaled (a finite answer
            where the true sum is finite).
        parallel (bool or None): run the chunked ``prange`` variant; ``None`` decides by size.

    Returns:
        A scalar of ``x``'s dtype.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.sum(np.array([1e16, 1.0, -1e16]), accurate=True))
        1.0

    .. seealso:: :func:`numpy.sum`, :func:`math.fsum`
    """
    v = _checks.as_vector("x", x)
    par = _checks.use_parallel(parallel, v.shape[0])
    if accurate:
        total = _accurate(v, par)
    else:
        total = _sum_parallel(v) if par else _sum_serial(v)
    return v.dtype.type(total)


# ------------------------------------------------------------------------------------------------ min, max
# min/max reduce with llvm.minimum/llvm.maximum (see hpc.kernels.intrinsics): NaN-propagating and associative, so
# LLVM vectorizes the loop (packed vminpd/vmaxpd) without fastmath. argmin/argmax read memory once per block of
# ARG_BLOCK elements (16 KiB of float64: fits L1) for the block's extreme, and look for its first index only when
# the block beats the best so far or holds a NaN: that second pass finds the block in L1, and it runs for a few
# blocks only on most data (each new record; every block only when the data keeps falling).


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _min_view(v, sign):  # pragma: no cover - compiled by numba
    # NaN if v holds one; sign=+1 min, -1 max; v non-empty (a view from 0: the loop vectorizes)
    m = v[0]
    if sign > 0:
        for i in range(v.shape[0]):
            m = _fminimum(m, v[i])
    else:
        for i in range(v.shape[0]):
            m = _fmaximum(m, v[i])
    return m


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _min_serial(x, sign):  # pragma: no cover - compiled by numba
    return _min_view(x, sign)


@_njit(cache=True, nogil=True, fastmath=EXACT, parallel=True)
def _min_parallel(x, sign):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    parts = _np.empty(nchunks, x.dtype)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, _cmin(n, (c + 1) * CHUNK)
        parts[c] = _min_view(x[lo:hi], sign)
    return _min_view(parts, sign)


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _first_index(v, m):  # pragma: no cover - compiled by numba
    # the first index of v holding m (the first NaN when m is NaN); m is in v. A branch-free integer min over the
    # whole view (vectorized; the view is a block in L1) rather than an early-exit scalar search
    n = v.shape[0]
    first = n
    if m != m:
        for i in range(n):
            first = _cmin(first, i if v[i] != v[i] else n)
    else:
        for i in range(n):
            first = _cmin(first, i if v[i] == m else n)
    return first


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _argmin_view(x, sign):  # pragma: no cover - compiled by numba
    # index into x (non-empty) of the first NaN, else of the first smallest (sign=+1) / largest (-1) element
    n = x.shape[0]
    best = x[0]
    at = 0
    for b in range(0, n, ARG_BLOCK):
        v = x[b : _cmin(n, b + ARG_BLOCK)]
        m = _min_view(v, sign)
        if m != m:
            return b + _first_index(v, m)
        if b == 0 or ((m < best) if sign > 0 else (m > best)):  # strictly better: ties keep the earlier block
            best = m
            at = b + _first_index(v, m)
    return at


@_njit(cache=True, nogil=True, fastmath=EXACT)
def _argmin_serial(x, sign):  # pragma: no cover - compiled by numba
    return _argmin_view(x, sign)


@_njit(cache=True, nogil=True, fastmath=EXACT, parallel=True)
def _argmin_parallel(x, sign):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    nchunks = (n + CHUNK - 1) // CHUNK
    idx = _np.empty(nchunks, _np.int64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, _cmin(n, (c + 1) * CHUNK)
        idx[c] = lo + _argmin_view(x[lo:hi], sign)
    best = idx[0]
    for c in range(1, nchunks):  # chunk order: the first NaN, else the first index of the extreme value
        m, v = x[best], x[idx[c]]
        if m != m:
            break
        if v != v or ((v < m) if sign > 0 else (v > m)):
            best = idx[c]
    return best


def _extreme(name, x, parallel, sign, arg):
    v = _checks.as_vector("x", x)
    if v.shape[0] == 0:
        raise ValueError(f"x must be non-empty for {name}; got an empty array")
    par = _checks.use_parallel(parallel, v.shape[0])
    if arg:
        return int(_argmin_parallel(v, sign) if par else _argmin_serial(v, sign))
    return v.dtype.type(_min_parallel(v, sign) if par else _min_serial(v, sign))


@gpu_twin
def min(x: Array, *, parallel: bool | None = None) -> Scalar:  # noqa: A001 - NumPy's name on purpose
    """Return the smallest element of ``x``; NaN if ``x`` holds a NaN (as :func:`numpy.min`).

    Args:
        x (numpy.ndarray): float32 or float64, non-empty; 1-D of any stride, or N-D C-contiguous.
        parallel (bool or None): run the chunked ``prange`` variant; ``None`` decides by size.

    Raises:
        ValueError: ``x`` is empty.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.min(np.array([3.0, -1.0, 2.0])))
        -1.0
    """
    return _extreme("min", x, parallel, 1, False)


@gpu_twin
def max(x: Array, *, parallel: bool | None = None) -> Scalar:  # noqa: A001 - NumPy's name on purpose
    """Return the largest element of ``x``; NaN if ``x`` holds a NaN (as :func:`numpy.max`).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.max(np.array([3.0, -1.0, 2.0])))
        3.0
    """
    return _extreme("max", x, parallel, -1, False)


def argmin(x: _np.ndarray, *, parallel: bool | None = None) -> int:
    """Return the flat index of the first smallest element of ``x``, or of its first NaN (as :func:`numpy.argmin`).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.argmin(np.array([3.0, -1.0, -1.0]))
        1
    """
    return _extreme("argmin", x, parallel, 1, True)


def argmax(x: _np.ndarray, *, parallel: bool | None = None) -> int:
    """Return the flat index of the first largest element of ``x``, or of its first NaN (as :func:`numpy.argmax`).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> kernels.argmax(np.array([3.0, np.nan, 5.0]))
        1
    """
    return _extreme("argmax", x, parallel, -1, True)


# ------------------------------------------------------------------------------------------------ mean, var
# The moments are those of x - p, p a pilot value (x[0]; 0 where x[0] is not finite), added back to the mean at the
# end: the variance does not change under a shift, and the shifted data's block means are of the size of the
# spread, not of the mean. Without it each block's mean s / nb is rounded to a unit of the mean's magnitude, and
# Chan's merge term delta * delta * count * nb / total carries that rounding at first order (500x NumPy's two-pass
# error on 1e12 + 1e-2 * normal). x - p is exact for data within a factor 2 of p; otherwise its rounding is a unit
# of |x - p| <= |x - mean| + sqrt(n * var) (x[0] is a datum), so the relative error does not grow with the mean.
# The subtraction is written in both loops, (v[i] - p) - mb, never v[i] - (p + mb): p + mb would be rounded to a
# unit of the mean again (REDUCE lacks nsz, so LLVM does not reassociate it into that form).
@_njit(cache=True, nogil=True, fastmath=EXACT)
def _pilot(x):  # pragma: no cover - compiled by numba
    # x non-empty. A non-finite x[0] makes the answer NumPy's anyway; 0 keeps the kernel's arithmetic as unshifted
    p = _np.float64(x[0])
    return p if _math.isfinite(p) else 0.0


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _moments_range(x, lo, hi, p):  # pragma: no cover - compiled by numba
    # (count, mean, M2) of x[lo:hi] - p. Blocks of BLOCK elements: sum, then squared deviations from the block mean
    # (the block is in L1 by then), merged into the running (count, mean, M2) with Chan et al.'s formula
    count = 0.0
    mu = 0.0
    m2 = 0.0
    for b in range(lo, hi, BLOCK):
        e = _cmin(hi, b + BLOCK)
        v = x[b:e]  # a view from 0: numba vectorizes loops over it, not loops with an offset into x
        s = 0.0
        for i in range(v.shape[0]):
            s += v[i] - p
        nb = float(e - b)
        mb = s / nb
        q = 0.0
        for i in range(v.shape[0]):
            d = (v[i] - p) - mb
            q += d * d
        total = count + nb
        delta = mb - mu
        mu += delta * (nb / total)
        m2 += q + delta * delta * (count * nb / total)
        count = total
    return count, mu, m2


@_njit(cache=True, nogil=True, fastmath=REDUCE)
def _moments_serial(x):  # pragma: no cover - compiled by numba
    p = _pilot(x)
    count, mu, m2 = _moments_range(x, 0, x.shape[0], p)
    return count, p + mu, m2


@_njit(cache=True, nogil=True, fastmath=REDUCE, parallel=True)
def _moments_parallel(x):  # pragma: no cover - compiled by numba
    n = x.shape[0]
    p = _pilot(x)  # one pilot for every chunk: the chunks' means are merged shifted too
    nchunks = (n + CHUNK - 1) // CHUNK
    parts = _np.empty((nchunks, 3), _np.float64)
    for c in _prange(nchunks):
        lo, hi = c * CHUNK, _cmin(n, (c + 1) * CHUNK)
        k, mu, m2 = _moments_range(x[lo:hi], 0, hi - lo, p)
        parts[c, 0] = k
        parts[c, 1] = mu
        parts[c, 2] = m2
    count, mu, m2 = parts[0, 0], parts[0, 1], parts[0, 2]
    for c in range(1, nchunks):
        nb = parts[c, 0]
        total = count + nb
        delta = parts[c, 1] - mu
        mu += delta * (nb / total)
        m2 += parts[c, 2] + delta * delta * (count * nb / total)
        count = total
    return count, p + mu, m2


def mean_var(x: _np.ndarray, *, ddof: Int = 0, parallel: bool | None = None) -> tuple[Scalar, Scalar]:
    """Return ``(mean, var)`` of all elements of ``x`` in one pass over memory.

    Blocks of ``BLOCK`` elements are summed and their squared deviations taken while in cache; block and chunk
    moments are merged with Chan's formula. The moments are those of ``x - x[0]`` (``x[0]`` added back to the mean),
    so block means are of the spread's size, not the mean's: as accurate as a two-pass variance on data of a large
    mean and a small spread (unshifted, each block mean's rounding reached the merge term at first order).

    Args:
        x (numpy.ndarray): float32 or float64; 1-D of any stride, or N-D C-contiguous.
        ddof (int): delta degrees of freedom, as in :func:`numpy.var`.
        parallel (bool or None): run the chunked ``prange`` variant; ``None`` decides by size.

    Returns:
        Two scalars of ``x``'s dtype; NaN for an empty ``x``. ``ddof >= len(x)`` warns and divides by 0, as NumPy
        does: ``inf`` (NaN when every element is equal). Non-finite data (or a shift that overflows) give NumPy's
        answer; finite data whose plain sum overflows but whose spread does not give their true mean and variance.

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> [float(v) for v in kernels.mean_var(np.array([1.0, 2.0, 3.0, 4.0]))]
        [2.5, 1.25]
    """
    v = _checks.as_vector("x", x)
    if not isinstance(ddof, (int, _np.integer)) or isinstance(ddof, bool) or ddof < 0:  # NumPy integers too, as np.var
        raise ValueError(f"ddof must be a non-negative int; got {ddof!r}")
    ddof = int(ddof)
    n = v.shape[0]
    if n == 0:
        return v.dtype.type(_np.nan), v.dtype.type(_np.nan)
    par = _checks.use_parallel(parallel, n)
    _, mu, m2 = _moments_parallel(v) if par else _moments_serial(v)
    if not (_math.isfinite(mu) and _math.isfinite(m2)):  # inf, NaN or overflow: the merge's differences of means
        with _np.errstate(all="ignore"), _warnings.catch_warnings():  # are inf - inf; NumPy's answer instead
            _warnings.simplefilter("ignore", RuntimeWarning)
            return v.dtype.type(_np.mean(v)), v.dtype.type(_np.var(v, ddof=ddof))
    if n > ddof:
        variance = m2 / (n - ddof)
    else:  # as NumPy: a warning, and m2 / 0 (inf, or NaN for m2 == 0)
        _warnings.warn("Degrees of freedom <= 0 for slice", RuntimeWarning, stacklevel=2)
        variance = _math.inf if m2 > 0 else _math.nan
    return v.dtype.type(mu), v.dtype.type(variance)


def mean(x: _np.ndarray, *, parallel: bool | None = None) -> Scalar:
    """Return the mean of all elements of ``x`` (NaN when empty).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.mean(np.array([1.0, 2.0, 6.0])))
        3.0
    """
    return mean_var(x, parallel=parallel)[0]


def var(x: _np.ndarray, *, ddof: Int = 0, parallel: bool | None = None) -> Scalar:
    """Return the variance of all elements of ``x``, one pass (see :func:`mean_var`).

    Example:
        >>> import numpy as np; from hpc import kernels
        >>> float(kernels.var(np.array([1.0, 2.0, 3.0, 4.0]), ddof=1))
        1.6666666666666667
    """
    return mean_var(x, ddof=ddof, parallel=parallel)[1]
