"""Reproducible sums: bitwise identical for any number of ranks, any thread count, any split of the data.

The method is binned fixed-point accumulation in the style of ReproBLAS, with one bin pair per element:

1. For every element position, ``E`` is the exponent of the largest magnitude any rank contributes there
   (``|x| < 2**E``); one ``MAX`` allreduce of int16 exponents gives every rank the same ``E``.
2. Every term is scaled by ``2**(62 - E)`` (exact: a power of two) and truncated to an integer ``q`` with
   ``|q| < 2**62``, split into ``hi = q >> 48`` and ``lo = q & (2**48 - 1)``. Truncation depends only on the term and
   ``E``, never on where or in which order the term is summed.
3. ``hi`` and ``lo`` are summed as integers, locally (one numba pass, carries every 2**14 rows) and then with ``SUM``
   allreduces: ``lo`` as int64, ``hi`` as int32 when the term count allows (decided collectively), else int64.
   Integer addition is exact and associative, so the totals are the same for every split and order.
4. The result is ``H * 2**(E-14) + L * 2**(E-62)`` after a canonical carry: one rounding of the exact total, so the
   same integers always round the same.

**Error bound.** Each term loses less than ``2**(E-62)`` to truncation, so for ``n`` terms
``|result - exact| <= n * 2**(E-62) + 0.5 ulp(result)``. Plain floating-point summation is bounded by about
``(n-1) * 2**-53 * sum|x_i|``; ours is tighter by a factor of ~512 per term (tested on hard data).
Non-finite values are summed plainly (any NaN gives NaN; +inf and -inf give NaN), which is also order-independent.

**Cost.** Per element, 2 bytes (the exponent), 8 bytes (``lo``) and usually 4 bytes (``hi``) cross the network
instead of 8 bytes: 1.75x the traffic of a plain ``allreduce``, in three collectives, plus three local passes.
"""

from __future__ import annotations

from typing import Any

import numpy as _np

from hpc.mpi import _binned

__all__ = ["reproducible_sum"]


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
        return comm.allreduce(_np.asarray(rows.sum(axis=0, dtype=_np.int64)))
    if rows.dtype.kind == "c":
        return reproducible_sum(comm, rows.real) + 1j * reproducible_sum(comm, rows.imag)
    out_dtype = rows.dtype
    shape = rows.shape[1:]
    k = rows.shape[0]
    flat = _np.ascontiguousarray(rows.reshape(k, int(_np.prod(shape, dtype=_np.int64))), dtype=_np.float64)
    n = flat.shape[1]
    # Scratch buffers are kept per communicator and size: fresh megabyte arrays would page-fault on every call
    # (glibc hands freed large blocks back to the kernel), which costs more than the arithmetic.
    exps_buf, hi, lo, hi32, f1, f2, bad = _scratch(comm, n)
    # One MAX collective: each position's exponent, plus (last) the bit length of the largest local row count,
    # which decides whether the hi words fit int32 on every rank alike.
    _binned.exponents(flat, exps_buf, f1, bad)
    exps_buf[n] = k.bit_length()
    comm.allreduce(exps_buf, op="max", out=exps_buf)
    exps, count_bits = exps_buf[:n], int(exps_buf[n])
    _binned.accumulate(flat, exps, _binned.POW2, hi, lo, f1, f2)
    comm.allreduce(lo, out=lo)
    if count_bits + comm.size.bit_length() + 15 < 31:  # |hi| < 2**14 per term plus carries: int32 is enough
        hi32[...] = hi
        hi = comm.allreduce(hi32, out=hi32)
    else:
        comm.allreduce(hi, out=hi)
    plain = _NO_PLAIN
    if (exps == _binned.NONFINITE).any():  # every rank sees the same exponents, so all take this branch together
        plain = comm.allreduce(_np.where(exps == _binned.NONFINITE, flat, 0.0).sum(axis=0))
    return _binned.to_float(hi, lo, exps, plain, _binned.POW2).astype(out_dtype, copy=False).reshape(shape)


_NO_PLAIN = _np.zeros(0)


def _scratch(comm: Any, n: int) -> tuple[_np.ndarray, ...]:
    """Return (exponents+1, hi, lo, hi32, float scratch, float scratch, bool scratch), kept on ``comm`` per size."""
    cached = getattr(comm, "_repro_scratch", None)
    if cached is None or cached[1].shape[0] != n:
        cached = (
            _np.empty(n + 1, _np.int16),
            _np.empty(n, _np.int64),
            _np.empty(n, _np.int64),
            _np.empty(n, _np.int32),
            _np.empty(n),
            _np.empty(n),
            _np.empty(n, _np.bool_),
        )
        comm._repro_scratch = cached
    return cached
