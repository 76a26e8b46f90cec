"""Reproducible sums: bitwise identical for any number of ranks, any thread count, any split of the data.

The method is binned fixed-point accumulation in the style of ReproBLAS, with one bin per element:

1. For every element position, ``E`` is the exponent of the largest magnitude any rank contributes there
   (``|x| < 2**E``): one ``MAX`` allreduce of the int16 exponent fields gives every rank the same ``E`` (in the
   shared-memory lane below, the rank that sums a position reads every term there and finds ``E`` itself).
2. Every term is rounded to an integer multiple of ``2**(E-60)``: ``q = round(x * 2**(60-E))``, ``|q| <= 2**60``,
   computed by two exact multiplications by powers of two (built from their bits) and one rounding to nearest
   (half to even). The rounding depends only on the term and ``E``, never on where or in which order the term is
   summed.
3. The ``q`` are summed as integers, locally and then with one ``SUM`` allreduce (or by that one rank). Integer
   addition is exact and associative, so the total is the same for every split and order. Up to 7 terms per
   position in all (the common ``allreduce`` of one array per rank on up to 7 ranks) fit one int64; with more,
   each ``q`` travels as ``hi * 2**48 + lo`` (``lo`` int64, ``hi`` int32 when the term count allows, else int64).
   Which form is used is decided collectively and never changes the total.
4. The result is the total times ``2**(E-60)``: one rounding of the exact total (a second one only for results
   below ``2**-1022``), so the same integers always give the same bits.

**Error bound.** Each term loses at most ``2**(E-61) <= 2**-60 * max|x|`` to rounding, so for ``n`` terms
``|result - exact| <= n * 2**-60 * max|x| + 0.5 ulp(result)``. Plain floating-point summation is bounded by about
``(n-1) * 2**-53 * sum|x_i|``; ours is tighter by a factor of ~128 per term, and its rounding errors are
unbiased (tested on hard data).

**Dtypes.** The words are float64's: float16 and float32 results are rounded from the float64 result, a second
rounding (within half an ulp of their dtype and ``2**-53`` of the result: ``1 + 2**-24 + 2**-54`` in float32 gives
``1.0``, the correctly rounded sum ``1 + 2**-23``). A zero total is ``+0.0``, also where every term is ``-0.0``
(IEEE's sum, which ranks would have to agree on at the cost of another collective). ``longdouble`` and
``clongdouble`` are refused (``TypeError``): float64 words would drop their range and their extra bits.

**Non-finite values.** A position holding a NaN, or both +inf and -inf, sums to NaN, always the same one
(``0x7FF8000000000000``: a plain sum would pass on one operand's sign and payload, which one depending on the
order); a position holding infinities of one sign sums to that infinity. Its finite terms cannot change either
(in exact arithmetic, as here, ``inf + x = inf``), so a plain sum's overflow of finite terms into the opposite
infinity never happens. In the message lane each rank reports what its terms hold (a 3-bit mask per position,
OR-ed across ranks); in the window lane the rank that sums a position reads every term.

**Cost.** Two lanes, the same bits (and on one rank holding up to 128 rows, no collective at all: the window lane's
one-pass kernel over the terms at hand):

- *One node* (every rank of the communicator shares memory, the usual ``mpiexec`` on one machine): ``allreduce``
  of one array per rank goes through a shared-memory window (:mod:`hpc.mpi._node_window`), in chunks of up to
  2**18 columns. Each rank copies into its slot the columns the other ranks sum, sums its own share of the
  columns in one numba call with every term at hand (:func:`hpc.mpi._binned.sum_columns`: exponents, rounding
  and conversion tile by tile in L1), and copies the others' shares of the result out: about the bytes a plain
  allreduce moves, two barriers per chunk (one for arrays of up to 512 elements, which every rank sums whole), no
  exponent collective. How that compares with a plain allreduce, per size and machine: docs/performance.md
  (``hpc bench mpi``).
- *Elsewhere* (across nodes, and ``mpi.sum`` of many rows per rank): per element, 2 bytes (the exponent) and 8
  bytes (the integer) cross the network instead of 8 bytes: 1.25x the traffic of a plain ``allreduce``, in two
  collectives, plus three vectorized local passes. With more than 7 terms per position, 14 bytes (1.75x) in three
  collectives. When every rank is on one node by the launcher's word, rows longer than 2**21 elements (16 MiB,
  the plain allreduce's rule) are summed in blocks of 2**18 columns, each block through all the steps above
  while it is in cache; every rank cuts the same blocks whatever its row count, and blocking never changes a bit
  (each column is summed on its own). A hierarchical lane (each node's terms met first, one leader per node on the
  network) was prototyped and measured slower than this one across test hosts: MPICH's collectives already meet a
  node's ranks in shared memory (docs/performance.md, "A hierarchical reproducible lane?").
"""

from __future__ import annotations

import math as _math
from typing import Any

import numpy as _np

from hpc.mpi import _binned, _mpi, _node_window
from hpc.mpi.ops import Op

__all__ = ["reproducible_allreduce", "reproducible_sum"]

#: Whether one array per rank on one node is summed through a shared-memory window (tests turn it off to check
#: that both lanes give the same bits).
USE_NODE_WINDOW = True


def _refuse_wide(dtype: _np.dtype) -> None:
    """Raise TypeError for long double data (see "Dtypes" above): on every rank alike, as the dtypes agree."""
    if dtype.kind in "fc" and dtype.itemsize > (8 if dtype.kind == "f" else 16):
        raise TypeError(f"reproducible sums work in float64 words, which would drop {dtype}'s range and precision; "
                        "pass float64 data, or sum with reproducible=False")


def reproducible_allreduce(engine: Any, x: _np.ndarray) -> _np.ndarray:
    """Return the reproducible sum of every rank's ``x`` (``comm.allreduce(x, reproducible=True)``), on every rank.

    Where every rank is on one node, the terms meet in a shared-memory window (:mod:`hpc.mpi._node_window`) and
    each rank sums its share of the columns with every term at hand: no exponent collective, one pass instead of
    three. Elsewhere, :func:`reproducible_sum` of one row per rank. Both give the same bits.
    """
    _refuse_wide(x.dtype)
    if x.size and x.dtype.kind in "fc" and USE_NODE_WINDOW:
        window = _node_window.node_window(engine)
        if window is not None:
            if x.dtype.kind == "c":  # parts assigned, as in reproducible_sum
                total = _np.empty(x.shape, x.dtype)
                total.real = _sum_in_window(engine, window, x.real)
                total.imag = _sum_in_window(engine, window, x.imag)
                return total
            return _sum_in_window(engine, window, x)
    return reproducible_sum(engine, x.reshape((1, *x.shape)))


def _sum_in_window(engine: Any, window: _node_window.NodeWindow, x: _np.ndarray) -> _np.ndarray:
    """Sum ``x`` over the ranks through ``window``, chunk by chunk (small arrays: see ``NodeWindow.small_slots``).

    Each rank sums a share of a chunk's columns. It copies into its slot only the columns the other ranks sum,
    sums its own share reading its terms from ``x`` and theirs from their slots, writes that share to the result
    and to the output slot, and copies the other shares out. Two barriers per chunk keep the steps apart: no slot
    is read before its rank has written it, and no rank writes the next chunk's slots before every rank has read
    this chunk's.
    """
    flat = _np.ascontiguousarray(x.reshape(-1), dtype=_np.float64)  # no copy for a contiguous float64 x
    n = flat.shape[0]
    result = engine.new_result(flat.reshape(x.shape))  # recycled from 16 KiB: a fresh one page-faults
    total = result.reshape(-1)
    rank, size = engine.rank, engine.size
    if n <= _node_window.SMALL:  # one barrier: every rank sums every column from the small slots
        terms = window.next_small_slots()
        _node_window.write(terms[rank, :n], flat)
        window.sync(engine)
        _binned.sum_columns(terms, flat, rank, 0, n, total)
        return result.astype(x.dtype, copy=False)
    slots = window.slots
    terms, mine, output = slots[:size], slots[rank], slots[size]
    step = window.chunk
    for start in range(0, n, step):
        m = min(step, n - start)
        chunk, done = flat[start : start + m], total[start : start + m]
        lo, hi = m * rank // size, m * (rank + 1) // size
        _node_window.write(mine[:lo], chunk[:lo])
        _node_window.write(mine[hi:m], chunk[hi:])
        window.sync(engine)
        _binned.sum_columns(terms, chunk, rank, lo, hi, done[lo:hi])
        _node_window.write(output[lo:hi], done[lo:hi])
        window.sync(engine)
        done[:lo] = output[:lo]
        done[hi:] = output[hi:m]
    return result.astype(x.dtype, copy=False)


def reproducible_sum(engine: Any, rows: _np.ndarray) -> _np.ndarray:
    """Return the sum over every rank's ``rows`` (axis 0, then across ranks), reproducibly.

    Args:
        engine (hpc.mpi._engine.Engine): the communicator's engine.
        rows (numpy.ndarray): this rank's terms, shape ``(k, *shape)``, ``k >= 0`` (may differ by rank).

    Returns:
        numpy.ndarray of shape ``shape`` and the floating dtype of ``rows`` (integers are summed as NumPy sums
        them, in int64, or uint64 for unsigned ones: exact modulo 2**64, whatever the order).
    """
    rows = _np.asarray(rows)
    _refuse_wide(rows.dtype)
    if rows.dtype.kind in "biu":  # NumPy's sum (int64; uint64 for unsigned): integer sums need no care for order
        return engine.allreduce(_np.asarray(rows.sum(axis=0)))
    if rows.dtype.kind == "c":  # parts assigned, not `re + 1j * im`: 1j * inf is nan + inf*j
        total = _np.empty(rows.shape[1:], rows.dtype)
        total.real = reproducible_sum(engine, rows.real)
        total.imag = reproducible_sum(engine, rows.imag)
        return total
    out_dtype = rows.dtype
    shape = rows.shape[1:]
    k = rows.shape[0]
    n = _math.prod(shape)
    flat = _np.ascontiguousarray(rows.reshape(k, n), dtype=_np.float64)
    here = engine.size == 1 and k <= _HERE_ROWS
    out = _sum_here(flat) if here else _sum_in_messages(engine, flat)
    return out.astype(out_dtype, copy=False).reshape(shape)


def _sum_here(flat: _np.ndarray) -> _np.ndarray:
    """The column sums of ``flat`` (k, n) when one rank holds every term: the window lane's one-pass kernel, with
    no collective (the bits of :func:`_sum_in_messages`)."""
    total = _np.empty(flat.shape[1])
    _binned.sum_columns(flat, _NO_ROW, -1, 0, flat.shape[1], total)
    return total


def _sum_in_messages(engine: Any, flat: _np.ndarray) -> _np.ndarray:
    """The column sums of every rank's ``flat`` (k, n) through collectives (float64, a view of recycled words)."""
    n = flat.shape[1]
    # Long rows are cut into column blocks, on the rule of the plain allreduce (hpc.mpi._engine). The rule reads only
    # what every rank shares (n, one node), never this rank's row count k: ranks holding 1 and 2 rows (or 0) must
    # cut the same blocks, or their collectives would pair up with different lengths.
    block = max(n, 1)  # no elements: one empty block (every rank still joins its collectives)
    if engine.in_blocks(n * 8):
        block = engine.block_items(8)
    scratch = _scratch(engine, block)
    words = _words(engine, n)  # the one-word totals, turned in place into the result's float64 bits
    for start in range(0, n, block) or (0,):  # every rank has the same n: the same blocks, the same collectives
        stop = start + block
        _sum_block(engine, flat[:, start:stop], words[start:stop], scratch)
    return words.view(_np.float64)  # a view made here: its base is `words`, which is what _words counts on


#: Why blocks: one block of 2 MiB and its int64 totals stay in the last-level cache through the two collectives
#: and three passes, and MPICH's scratch buffers stay small (docs/performance.md, "Design choices measured").


def _sum_block(engine: Any, flat: _np.ndarray, words: _np.ndarray, scratch: tuple[_np.ndarray, ...]) -> None:
    """Sum the columns of ``flat`` (k, m) over the rows and the ranks into ``words`` as float64 bits, in place."""
    k, m = flat.shape
    fields, lo, hi32 = (a[: m + 1] for a in scratch)
    # One MAX collective: each position's exponent field, plus (last) the bit length of the largest local row
    # count, which bounds the number of terms per position on every rank alike.
    _binned.exponents(flat, fields)
    fields[m] = k.bit_length()
    _allreduce_max(engine, fields)
    count_bits = int(fields[m])
    if engine.size * ((1 << count_bits) - 1) <= _binned.ONE_WORD_TERMS:
        any_nonfinite = _binned.quantize(flat, fields, words)
        engine.allreduce(words, out=words)
        _binned.to_float(words, fields, _nonfinite_sums(engine, flat, fields, m) if any_nonfinite else _NONE_NONFINITE)
        return
    lo, hi = lo[:m], words
    any_nonfinite = _binned.quantize_split(flat, fields, hi, lo)
    engine.allreduce(lo, out=lo)
    if count_bits + engine.size.bit_length() + 15 < 31:  # |hi| <= 2**12 per term plus carries: int32 is enough
        hi32 = hi32[:m]
        hi32[...] = hi
        hi = engine.allreduce(hi32, out=hi32)
    else:
        engine.allreduce(hi, out=hi)
    # When hi is `words`, out is the same memory: each total is read before its float is written over it.
    nonfinite = _nonfinite_sums(engine, flat, fields, m) if any_nonfinite else _NONE_NONFINITE
    _binned.to_float_split(hi, lo, fields, nonfinite, words.view(_np.float64))


def _allreduce_max(engine: Any, fields: _np.ndarray) -> None:
    """MAX-allreduce the int16 ``fields`` in place, combined by :func:`hpc.mpi._binned.max_into`."""
    global _FIELD_MAX
    if _FIELD_MAX is None:

        def combine(inbuf: Any, inout: Any) -> None:
            _binned.max_into(inbuf, inout)  # int16 views: the op only ever sees the int16 fields

        _FIELD_MAX = Op("max", _np.maximum, True, _mpi.create_op(combine, commute=True))
    if engine.plain:  # no check mode, no watchdog: straight to MPI
        engine.allreduce_in_place(fields, _FIELD_MAX.mpi)
    else:
        engine.allreduce(fields, _FIELD_MAX, fields)


_FIELD_MAX: Op | None = None


def _nonfinite_sums(engine: Any, flat: _np.ndarray, fields: _np.ndarray, n: int) -> _np.ndarray:
    """The sums of the non-finite columns, from one ``BOR`` collective of what each column holds (NaN, +inf,
    -inf) on every rank: see :data:`hpc.mpi._binned.NAN_BITS` for the rule (every rank calls this together: they
    agree on the fields)."""
    flags = _np.empty(n, _np.uint8)
    _binned.nonfinite_flags(flat, fields[:n], flags)
    flags = engine.allreduce(flags, op="bor")
    totals = _np.zeros(n)
    _binned.nonfinite_totals(flags, fields[:n], totals)
    return totals


def _words(engine: Any, n: int) -> _np.ndarray:
    """The int64 buffer the totals travel in and the one-word result is written to, recycled when unheld."""
    # a result the caller still holds is a view of `words`: it is not reused while held
    return engine.unheld("reproducible words", lambda: _np.empty(n, _np.int64), lambda w: w.shape[0] == n)


#: The most rows one rank sums in one pass with every term at hand (:func:`_sum_here`); more take the message lane's
#: three whole-array passes, which stream tall arrays faster (docs/performance.md, "hpc bench ml", the third session of
#: 2026-12-07).
_HERE_ROWS = 128
_NO_ROW = _np.zeros(0)  # sum_columns' own row, unused: every row is read from the terms (me = -1)
_NONE_NONFINITE = _np.zeros(0)  # no non-finite column: to_float and to_float_split skip the step


def _scratch(engine: Any, size: int) -> tuple[_np.ndarray, ...]:
    """Return (exponent fields, int64 lo, int32 hi) of ``size + 1`` entries, kept on ``engine`` per size.

    Fresh megabyte arrays would page-fault on every call (glibc hands freed large blocks back to the kernel),
    which costs more than the arithmetic.
    """
    return engine.scratch(
        "reproducible fields",
        lambda: (_np.empty(size + 1, _np.int16), _np.empty(size + 1, _np.int64), _np.empty(size + 1, _np.int32)),
        lambda kept: kept[0].shape[0] == size + 1,
    )
