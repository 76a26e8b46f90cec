"""Reproducible sums: bitwise identical for any number of ranks, any thread count, any split of the data.

The method is binned fixed-point accumulation in the style of ReproBLAS, with one bin pair per element:

1. For every element position, ``E`` is the exponent of the largest magnitude any rank contributes there
   (``|x| < 2**E``); one ``MAX`` allreduce of int16 exponents gives every rank the same ``E``.
2. Every term is scaled by ``2**(62 - E)`` (exact: a power of two) and truncated to an integer ``q`` with
   ``|q| < 2**62``, split into ``hi = q >> 40`` and ``lo = q & (2**40 - 1)``. Truncation depends only on the term and
   ``E``, never on where or in which order the term is summed.
3. ``hi`` and ``lo`` are summed as int64, locally and then with one ``SUM`` allreduce. Integer addition is exact and
   associative, so the totals are the same for every split and order (carries are normalised every 2**22 terms).
4. The result is ``H * 2**(E-22) + L * 2**(E-62)`` after a canonical carry: the same integers always round the same.

**Error bound.** Each term loses less than ``2**(E-62)`` to truncation, so for ``n`` terms
``|result - exact| <= n * 2**(E-62) + 0.5 ulp(result)``. Plain floating-point summation is bounded by about
``(n-1) * 2**-53 * sum|x_i|``; ours is tighter by a factor of ~512 per term (tested on hard data).
Non-finite values are summed plainly (any NaN gives NaN; +inf and -inf give NaN), which is also order-independent.

**Cost.** Per element, 2 bytes (the exponent) plus 16 bytes (``hi``, ``lo``) cross the network instead of 8 bytes,
plus the local scaling: about 2.25x the traffic of a plain ``allreduce``.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

__all__ = ["reproducible_sum"]

_BLOCK = 1 << 22  # terms per local block before carries are normalised (keeps lo sums below 2**62)
_NONFINITE = _np.int16(4000)  # exponent marker for positions where some rank holds inf or NaN
_EMPTY = _np.int16(-2000)  # exponent of an all-zero position


def _exponents(rows: _np.ndarray) -> _np.ndarray:
    if rows.shape[0] == 0:
        return _np.full(rows.shape[1:], _EMPTY, dtype=_np.int16)
    with _np.errstate(invalid="ignore"):
        peak = _np.max(_np.abs(rows), axis=0)
    exp = _np.frexp(peak)[1].astype(_np.int16)  # peak < 2**exp
    exp[peak == 0] = _EMPTY
    exp[~_np.isfinite(peak)] = _NONFINITE
    return exp


def _fixed_point(rows: _np.ndarray, exp: _np.ndarray) -> tuple[_np.ndarray, _np.ndarray]:
    shift = (62 - exp.astype(_np.int64))[None, :]
    q = _np.trunc(_np.ldexp(rows, shift)).astype(_np.int64)
    return q >> 40, q & ((1 << 40) - 1)


def _carry(hi: _np.ndarray, lo: _np.ndarray) -> None:
    hi += lo >> 40
    lo &= (1 << 40) - 1


def reproducible_sum(comm: Any, rows: _np.ndarray) -> _np.ndarray:
    """Return the sum over every rank's ``rows`` (axis 0, then across ranks), reproducibly.

    Args:
        comm (hpc.mpi.Comm): the communicator.
        rows (numpy.ndarray): this rank's terms, shape ``(k, *shape)``, ``k >= 0`` (may differ by rank).

    Returns:
        numpy.ndarray of shape ``shape`` and the floating dtype of ``rows`` (integers are summed exactly as int64).
    """
    rows = _np.asarray(rows)
    if rows.dtype.kind in "biu":
        total = _np.asarray(rows.sum(axis=0, dtype=_np.int64))
        return comm.allreduce(total)
    if rows.dtype.kind == "c":
        return reproducible_sum(comm, rows.real) + 1j * reproducible_sum(comm, rows.imag)
    out_dtype = rows.dtype
    shape = rows.shape[1:]
    flat = rows.reshape(rows.shape[0], int(_np.prod(shape, dtype=_np.int64))).astype(_np.float64, copy=False)
    exp = comm.allreduce(_exponents(flat), op="max")
    finite = exp < _NONFINITE
    hi = _np.zeros(flat.shape[1], _np.int64)
    lo = _np.zeros(flat.shape[1], _np.int64)
    safe_exp = _np.where(finite & (exp > _EMPTY), exp, 0)
    for start in range(0, flat.shape[0], _BLOCK):
        block = _np.where(finite[None, :], flat[start : start + _BLOCK], 0.0)
        h, low = _fixed_point(block, safe_exp)
        hi += h.sum(axis=0)
        lo += low.sum(axis=0)
        _carry(hi, lo)
    both = comm.allreduce(_np.stack([hi, lo]))
    hi, lo = both[0], both[1]
    _carry(hi, lo)
    e = safe_exp.astype(_np.int64)
    result = _np.ldexp(hi.astype(_np.float64), e - 22) + _np.ldexp(lo.astype(_np.float64), e - 62)
    if not finite.all():
        plain = comm.allreduce(_np.where(finite[None, :], 0.0, flat).sum(axis=0))
        result = _np.where(finite, result, plain)
    return result.astype(out_dtype).reshape(shape)
