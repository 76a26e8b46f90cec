"""Counter-based random numbers keyed by global row index (Philox4x32-10), the same however rows are split.

A draw is a pure function of ``(seed, stream, row)``: the rank that holds row ``i`` computes the same number as any
other split would, with no state to carry between ranks. ``stream`` names the purpose of the draw (an init, a
round, a trial), so different purposes never reuse numbers. A weighted pick is then an exponential race: the row
with the smallest ``-log(u) / w`` is a draw proportional to ``w`` (the Gumbel-max trick in another form), and MPI
finds that minimum in one collective however the rows are split. The generator is Philox4x32 with 10 rounds (Salmon et
al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), cuRAND's default (``numpy.random.Philox`` is Philox4x64).
"""

from __future__ import annotations

import numpy as _np
from numba import njit as _njit

__all__ = ["seed_from", "uniform", "uniform_at"]

_M0 = _np.uint64(0xD2511F53)
_M1 = _np.uint64(0xCD9E8D57)
_W0 = _np.uint64(0x9E3779B9)
_W1 = _np.uint64(0xBB67AE85)
_LOW = _np.uint64(0xFFFFFFFF)


#: rows per pass of :func:`_uniform`: the four counter words of this many rows stay in L1
_CHUNK = 256


@_njit(cache=True, nogil=True)
def _uniform(seed, stream, start, out):  # pragma: no cover - compiled by numba
    """Philox4x32-10 of counter (row low, row high, stream low, stream high) under key (seed low, seed high) for each
    row of ``out``, its first two words made a draw in (0, 1].

    The rounds run on the counter words of :data:`_CHUNK` rows at a time, one loop over the rows per round, which
    LLVM vectorizes (each round is a pure function of the row's words): 2.3x the speed of one row's ten rounds at a
    time, the same bits (integer arithmetic; tests/ml/test_random.py checks them against a plain Python Philox and
    Random123's known answers). Every word is held in a uint64 and masked to 32 bits: numba widens uint32 arithmetic.
    """
    k0_first, k1_first = seed & _LOW, seed >> _np.uint64(32)
    s0, s1 = stream & _LOW, stream >> _np.uint64(32)
    c0 = _np.empty(_CHUNK, _np.uint64)
    c1 = _np.empty(_CHUNK, _np.uint64)
    c2 = _np.empty(_CHUNK, _np.uint64)
    c3 = _np.empty(_CHUNK, _np.uint64)
    n = out.shape[0]
    for lo in range(0, n, _CHUNK):
        m = min(_CHUNK, n - lo)
        for i in range(m):
            row = _np.uint64(start + lo + i)
            c0[i] = row & _LOW
            c1[i] = row >> _np.uint64(32)
            c2[i] = s0
            c3[i] = s1
        k0, k1 = k0_first, k1_first
        for _ in range(10):
            for i in range(m):
                p0 = c0[i] * _M0
                p1 = c2[i] * _M1
                n0 = ((p1 >> _np.uint64(32)) ^ c1[i] ^ k0) & _LOW
                n2 = ((p0 >> _np.uint64(32)) ^ c3[i] ^ k1) & _LOW
                c1[i] = p1 & _LOW
                c3[i] = p0 & _LOW
                c0[i] = n0
                c2[i] = n2
            k0 = (k0 + _W0) & _LOW
            k1 = (k1 + _W1) & _LOW
        for i in range(m):
            # 53 random bits, plus one half-step: never exactly 0, so -log(u) is finite (the largest rounds to 1)
            bits = ((c0[i] << _np.uint64(21)) ^ c1[i]) & _np.uint64((1 << 53) - 1)
            out[lo + i] = (_np.int64(bits) + 0.5) * (1.0 / 9007199254740992.0)


def uniform(seed: int, stream: int, start: int, count: int) -> _np.ndarray:
    """Return ``count`` float64 draws in (0, 1] for global rows ``start .. start + count - 1``.

    Never 0 (``-log(u)`` is finite); exactly 1 with probability 2**-53 (the half-step above the largest 53-bit value
    rounds up), where ``-log(u)`` is 0.

    Args:
        seed (int): the 64-bit key (see :func:`seed_from`).
        stream (int): the purpose of the draw, any 64-bit value.
        start (int): the global index of the first row.
        count (int): how many rows.
    """
    out = _np.empty(count, _np.float64)
    _uniform(_np.uint64(seed & (2**64 - 1)), _np.uint64(stream & (2**64 - 1)), _np.int64(start), out)
    return out


@_njit(cache=True, nogil=True)
def _uniform_starts(seed, stream, starts, out):  # pragma: no cover - compiled by numba
    for b in range(starts.shape[0]):
        _uniform(seed, stream, starts[b], out[b])


def uniform_at(seed: int, stream: int, starts: _np.ndarray, count: int) -> _np.ndarray:
    """Return float64 draws ``(len(starts), count)`` whose row ``b`` is ``uniform(seed, stream, starts[b], count)``:
    the draws of many blocks in one compiled call (the same bits)."""
    starts = _np.asarray(starts, _np.int64)
    out = _np.empty((starts.shape[0], count), _np.float64)
    _uniform_starts(_np.uint64(seed & (2**64 - 1)), _np.uint64(stream & (2**64 - 1)), starts, out)
    return out


def seed_from(random_state: object) -> int:
    """Return a 64-bit seed from scikit-learn's ``random_state`` (None, an int or a ``numpy.random.RandomState``).

    ``None`` and a ``RandomState`` draw from NumPy's generators, which differ by rank: callers agree on rank 0's
    seed with a broadcast.
    """
    if random_state is None or random_state is _np.random:
        return int(_np.random.mtrand._rand.randint(0, 2**31 - 1)) * (2**32) + int(_np.random.randint(0, 2**31 - 1))
    if isinstance(random_state, (int, _np.integer)):  # a bool too, as scikit-learn takes it (True: seed 1)
        if random_state < 0 or random_state >= 2**32:
            raise ValueError(f"random_state must be an integer in [0, 2**32 - 1]; got {random_state}")
        return int(random_state)
    if isinstance(random_state, _np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1)) * (2**32) + int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, _np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    raise ValueError(f"random_state must be None, an int, a numpy RandomState or Generator; got {random_state!r}")
