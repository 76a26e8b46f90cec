"""Distributed statistics over an array split along axis 0 across ranks: moments, sum, histogram, dot, norm."""

from __future__ import annotations

from typing import Any

import numpy as _np

from hpc.kernels import _checks
from hpc.mpi import guard as _guard
from hpc.mpi.collectives import agreed_dtype
from hpc.mpi.comm import as_comm
from hpc.mpi.reproducible import reproducible_sum

__all__ = ["dot", "histogram", "moments", "norm", "sum"]


def moments(comm: Any, x: Any, axis: int = 0, ddof: int = 0) -> tuple[Any, Any, Any]:
    """Return ``(count, mean, var)`` of the distributed array ``x`` along ``axis``, in one collective.

    Each rank computes its count, mean and sum of squared deviations with two passes over each block of its rows
    while it is in cache (stable, and a few MiB of memory beside the data whatever its size or dtype), then one
    allgather brings every rank's triple to every rank, where they merge with Chan's pairwise formula in rank order.
    Complex data take two such collectives (the real and imaginary parts), as NumPy's complex mean and variance.
    The sums are in float64; the mean and variance come back in the dtype NumPy gives (float32 for float32 data,
    float64 for integers).
    Stable for data with a large offset (mean 1e9 with small noise), unlike the one-pass ``E[x^2] - E[x]^2``.

    Args:
        comm (Comm or mpi4py communicator): the ranks that hold parts of ``x``.
        x (array-like): this rank's part; parts are stacked along ``axis``.
        axis (int): the distributed axis.
        ddof (int): delta degrees of freedom of the variance (0: population, 1: sample).

    Example:
        >>> import numpy as np
        >>> from hpc import mpi
        >>> n, mean, var = mpi.moments(mpi.world(), np.array([1.0, 2.0, 3.0, 4.0]))
        >>> int(n) // mpi.world().size, float(mean), float(var)
        (4, 2.5, 1.25)
    """
    comm = as_comm(comm)
    given = _np.asarray(x)
    if given.dtype.kind not in "biufc":
        raise TypeError(f"moments takes numeric data; got dtype {given.dtype}")
    part = given.real if given.dtype.kind == "c" else given
    count, mean_total, var, dtypes = _moments_of_reals(comm, part, axis, ddof, given.dtype)
    # the gathered array's dtype, as NumPy would make it from every rank's part (empty parts count too): every rank
    # decides alike, the complex second collective included (a rank of real data joins it with imaginary zeros)
    dtype = _np.result_type(*dtypes)
    if dtype.kind == "c":  # NumPy's: the mean is complex, the variance that of the real part plus the imaginary's
        imag = given.imag if given.dtype.kind == "c" else _np.zeros_like(part, dtype=_np.float64)
        _, mean_im, var_im, _ = _moments_of_reals(comm, imag, axis, ddof, given.dtype)
        mean_total, var = mean_total + 1j * mean_im, var + var_im
    if dtype.kind in "fc" and dtype.itemsize != (8 if dtype.kind == "f" else 16):  # computed in float64: NumPy's dtype
        mean_total = mean_total.astype(dtype)
        var = var.astype(_np.empty(0, dtype).real.dtype)
    if _np.ndim(count) == 0:
        return int(count), mean_total[()], var[()]
    return count.astype(_np.int64), mean_total, var


def _moments_of_reals(comm: Any, values: Any, axis: int, ddof: int, dtype: _np.dtype) -> tuple[Any, ...]:
    """Return ``(count, mean, var, dtypes)`` of real ``values`` in float64 (redone scaled where finite data
    overflowed), and every rank's ``dtype`` (the caller's data's), gathered in the same collective."""
    a = _np.moveaxis(_np.asarray(values), axis, 0)
    count, mean_total, var, overflowed, dtypes = _merged_moments(comm, a, ddof, dtype)
    if overflowed.any():  # the same on every rank (merged data): each takes this second collective, or none does
        _, mean_scaled, var_scaled, _, _ = _merged_moments(comm, a, ddof, dtype, _SCALE)
        with _np.errstate(over="ignore"):
            mean_total = _np.where(overflowed, mean_scaled / _SCALE, mean_total)
            var = _np.where(overflowed, var_scaled / _SCALE / _SCALE, var)
    return count, mean_total, var, dtypes


#: the dtypes moments takes, by the code each rank sends of its own (NumPy's type characters)
_DTYPE_CHARS = "?bhilqBHILQefdgFDG"


#: Finite data near the float64 limit overflow in the shifted values or the squares (1e308 - (-1e308)); scaled by
#: this power of two (exact, but for values below 2**-510, negligible beside those) they do not.
_SCALE = 2.0**-512


def _local_moments(a: _np.ndarray, scale: float) -> tuple[int, Any, Any, Any, Any, Any]:
    """Return ``(n, ref, mean, m2, plain, flagged)`` of this rank's real ``a`` (along axis 0, any dtype), in
    float64 times ``scale``: ``ref`` the first row, ``mean`` and ``m2`` of the values shifted by it, ``plain`` the
    plain sums, ``flagged`` 1.0 where a column holds an inf or NaN. Block by block (Chan's formula merges them)."""
    n = a.shape[0]
    rest = a.shape[1:]
    if not n:
        return 0, _np.zeros(rest), _np.zeros(rest), _np.zeros(rest), _np.zeros(rest), _np.zeros(rest)
    # Shift by a local reference value (the first row): means near 1e9 are then computed as small numbers, so the
    # differences of means in the merge keep their digits. Differences of references are exact in floating point.
    ref = a[0].astype(_np.float64) * scale
    mean, m2, plain = _np.zeros(rest), _np.zeros(rest), _np.zeros(rest)
    flagged = _np.zeros(rest, dtype=bool)
    # blocks of rows (a rank's extra memory: a few blocks, not copies of its whole part: float32 data made six)
    rows = max(1, _checks.BLOCK_ELEMENTS // max(1, int(_np.prod(rest))))
    done = 0
    with _np.errstate(invalid="ignore", over="ignore"):
        for lo in range(0, n, rows):
            block = a[lo : lo + rows].astype(_np.float64)  # a copy of the block: shifted in place below
            if scale != 1.0:
                block *= scale
            nb = block.shape[0]
            # columns holding an inf or NaN: NumPy's mean there is the plain sum over the count (Chan's merge would
            # meet inf - inf), and its variance NaN; each rank's plain sum and a flag travel in the same collective
            plain += block.sum(axis=0)
            flagged |= ~_np.isfinite(block).all(axis=0)
            block -= ref
            mean_b = block.mean(axis=0)
            block -= mean_b
            m2_b = (block * block).sum(axis=0)
            total = done + nb
            delta = mean_b - mean
            mean = mean + delta * (nb / total)
            m2 = m2 + m2_b + delta * delta * (done * nb / total)
            done = total
    return n, ref, mean, m2, plain, flagged.astype(_np.float64)


def _merged_moments(
    comm: Any, a: _np.ndarray, ddof: int, dtype: _np.dtype, scale: float = 1.0
) -> tuple[Any, Any, Any, Any, Any]:
    """Return ``(count, mean, var, overflowed, dtypes)`` of the real ``a`` (distributed along axis 0) in float64
    times ``scale``, in one allgather; ``overflowed`` marks the columns of finite data whose mean or variance came
    out non-finite, and ``dtypes`` lists every rank's ``dtype``, which travels in the same allgather."""
    rest = a.shape[1:]
    n, ref, mean, m2, plain, flagged = _local_moments(a, scale)
    local = _np.stack([_np.full(rest, float(n)), ref, mean, m2, plain, flagged])
    code = float(_DTYPE_CHARS.index(dtype.char)) if dtype.char in _DTYPE_CHARS else -1.0
    if code < 0:
        raise TypeError(f"moments takes bool, integer, float and complex data; got dtype {dtype}")
    gathered = comm.allgather(_np.append(local.reshape(-1), code)[None, :])  # one collective: (size, 6 * rest + 1)
    dtypes = [_np.dtype(_DTYPE_CHARS[int(c)]) for c in gathered[:, -1]]
    parts = gathered[:, :-1].reshape(gathered.shape[0], *local.shape)
    count = _np.zeros(rest)
    base = None
    mu = _np.zeros(rest)  # the running mean, relative to base
    m2_total = _np.zeros(rest)
    plain_total = _np.zeros(rest)
    nonfinite = _np.zeros(rest, dtype=bool)
    for nb, ref_b, mean_b, m2b, plain_b, flag_b in parts:
        if not _np.any(nb):
            continue
        with _np.errstate(invalid="ignore", over="ignore"):
            plain_total = plain_total + plain_b
        nonfinite |= flag_b > 0
        if base is None:
            base = ref_b
        total = count + nb
        with _np.errstate(invalid="ignore", divide="ignore", over="ignore"):  # an overflow is redone scaled
            delta = (ref_b - base) + mean_b - mu
            weight = _np.where(total > 0, nb / _np.where(total > 0, total, 1), 0.0)
            mu = mu + delta * weight
            m2_total = m2_total + m2b + delta * delta * count * weight
        count = total
    mean_total = mu if base is None else base + mu
    with _np.errstate(invalid="ignore", divide="ignore"):
        # NumPy's degrees of freedom: max(count - ddof, 0), so ddof >= count gives inf (or NaN), never a negative
        var = m2_total / _np.maximum(count - ddof, 0)
        if base is None:
            mean_total = mean_total / 0.0 * 0.0  # no data anywhere: NaN, like numpy.mean of an empty array
        else:
            mean_total = _np.where(nonfinite, plain_total / count, mean_total)
            var = _np.where(nonfinite, _np.nan, var)
    defined = count > ddof if base is not None else _np.zeros(rest, dtype=bool)
    overflowed = defined & ~nonfinite & ~(_np.isfinite(mean_total) & _np.isfinite(var))
    return count, mean_total, var, overflowed, dtypes


def sum(comm: Any, x: Any, *, reproducible: bool = False) -> Any:  # noqa: A001 - mirrors numpy.sum
    """Return the sum along axis 0 of the distributed array ``x`` (every rank's rows), on every rank.

    With ``reproducible=True`` the result is bitwise identical for any number of ranks and any split of the rows
    across them (binned exact accumulation, see :mod:`hpc.mpi.reproducible`).
    """
    comm = as_comm(comm)
    a = _np.asarray(x)
    if a.ndim == 0:  # a scalar is one row
        a = a.reshape(1)
    if reproducible:
        # named as the caller wrote it: the first check inside would be the exponent step's, "allreduce ('max', ...)"
        _guard.check_agreement(comm._engine, "mpi.sum", (agreed_dtype(a.dtype), a.shape[1:], True))
        return reproducible_sum(comm._engine, a)  # the engine: the handle hpc.mpi's modules take
    return comm.allreduce(_np.asarray(a.sum(axis=0)))


def histogram(comm: Any, x: Any, bins: int = 10, range: tuple[float, float] | None = None) -> tuple[Any, Any]:  # noqa: A002
    """Return ``(counts, edges)`` of the distributed data ``x``, like :func:`numpy.histogram` on the whole array.

    Without ``range`` the global min and max come from one extra collective, so every rank uses the same edges.
    """
    comm = as_comm(comm)
    a = _np.asarray(x).reshape(-1)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"histogram takes real numeric data; got dtype {a.dtype}")
    if isinstance(bins, str):  # a rule of numpy's ('auto', 'fd', ...) reads the data: each rank's would differ
        raise ValueError(
            f"bins must be an int or a sequence of edges; got {bins!r} (a rule such as 'auto' sizes the bins from "
            "the data, which every rank holds a different part of: compute the edges first)"
        )
    if range is None and _np.ndim(bins) == 0:  # with edges given there is no range to find
        lo = float(a.min()) if a.size else _np.inf
        hi = float(a.max()) if a.size else -_np.inf
        if lo != lo:  # a NaN: an infinite range, refused below on every rank
            lo, hi = -_np.inf, _np.inf
        # NumPy computes the edges in the data's float dtype (float64 for integers): the gathered array's, which
        # travels with the range (the widest float any rank's dtype needs, and whether any rank holds floats), so
        # every rank makes the same edges
        both = comm.allreduce(_np.array([-lo, hi, _float_width(a.dtype), float(a.dtype.kind == "f")]), op="max")
        lo, hi = -both[0], both[1]
        common = _np.dtype(f"f{int(both[2])}") if both[3] else _np.dtype(_np.float64)
        if a.dtype != common:
            a = a.astype(common)
        if lo > hi:  # no data anywhere: numpy uses (0, 1)
            lo, hi = 0.0, 1.0
        elif not (_np.isfinite(lo) and _np.isfinite(hi)):  # numpy.histogram refuses these too, on every rank alike
            raise ValueError(f"autodetected range of [{lo}, {hi}] is not finite (inf or NaN in the data)")
        range = (a.dtype.type(lo), a.dtype.type(hi))  # NumPy's edges from scalars of the data's type, as its own
    counts, edges = _np.histogram(a, bins=bins, range=range)
    return comm.allreduce(counts.astype(_np.int64)), edges


def _float_width(dtype: _np.dtype) -> float:
    """The bytes of the narrowest float that holds ``dtype``'s values as NumPy promotes it beside floats
    (``result_type(int8, float16)`` is float16, of int16 float32, of int32 and wider float64)."""
    if dtype.kind == "f":
        return float(dtype.itemsize)
    return float(_np.result_type(dtype, _np.float16).itemsize)


def dot(comm: Any, a: Any, b: Any, *, reproducible: bool = False) -> Any:
    """Return the dot product of two distributed vectors (each rank holds matching parts of ``a`` and ``b``)."""
    comm = as_comm(comm)
    a, b = _np.asarray(a), _np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same local shape; got {a.shape} and {b.shape}")
    if a.dtype == bool and b.dtype == bool:  # NumPy's dot of booleans is an OR of ANDs, not a count
        return comm.allreduce(_np.asarray(_np.dot(a.reshape(-1), b.reshape(-1))), op="lor")[()]
    if reproducible and _np.result_type(a, b).kind in "fc":  # integer sums are exact in any order: NumPy's dtype
        return sum(comm, (a * b).reshape(-1), reproducible=True)[()]
    return comm.allreduce(_np.asarray(_np.dot(a.reshape(-1), b.reshape(-1))))[()]


def norm(comm: Any, x: Any) -> float:
    """Return the 2-norm of a distributed vector, without overflow or underflow (scaled by the global max)."""
    comm = as_comm(comm)
    a = _np.asarray(x)
    if a.dtype.kind in "biu":  # in float64 first: abs of the most negative integer wraps to itself
        a = a.astype(_np.float64)
    a = _np.abs(a).astype(_np.float64, copy=False).reshape(-1)  # complex: the modulus
    local_max = float(a.max()) if a.size else 0.0
    # MPI's MAX may drop a NaN depending on rank order: a second entry carries it, so every rank returns NaN
    nan = local_max != local_max
    scale, any_nan = comm.allreduce(_np.array([_np.inf if nan else local_max, float(nan)]), op="max").tolist()
    if any_nan:
        return _np.nan
    if scale == 0.0 or not _np.isfinite(scale):
        return float(scale)
    local = float(_np.sum((a / scale) ** 2))
    return float(scale * _np.sqrt(comm.allreduce(local)))
