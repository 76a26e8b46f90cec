"""hpc.ml._random.uniform: Philox4x32-10 keyed by global row, checked against a plain Python Philox, which is itself
checked against Random123's known answers (the draws decide every k-means init: a changed bit changes fits)."""

from __future__ import annotations

import numpy as np
import pytest

from hpc.ml import _random

MASK = 0xFFFFFFFF


def philox4x32_10(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, int, int, int]:
    """Philox4x32 with 10 rounds in plain Python integers (Salmon et al., SC'11; Random123's philox4x32)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(10):
        p0, p1 = c0 * 0xD2511F53, c2 * 0xCD9E8D57
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> 32) ^ c3 ^ k1) & MASK, p0 & MASK
        k0, k1 = (k0 + 0x9E3779B9) & MASK, (k1 + 0xBB67AE85) & MASK
    return c0, c1, c2, c3


def test_the_reference_gives_random123s_known_answers():
    """Random123's kat_vectors for philox4x32 with 10 rounds."""
    assert philox4x32_10((0, 0, 0, 0), (0, 0)) == (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)
    assert philox4x32_10((MASK,) * 4, (MASK, MASK)) == (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)
    assert philox4x32_10((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0)) == (
        0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)  # fmt: skip


def reference_uniform(seed: int, stream: int, start: int, count: int) -> np.ndarray:
    """What uniform() promises: row r's draw from the first two words of Philox of (r, stream) under seed."""
    out = []
    for row in range(start, start + count):
        a, b, _, _ = philox4x32_10((row & MASK, row >> 32, stream & MASK, stream >> 32), (seed & MASK, seed >> 32))
        bits = ((a << 21) ^ b) & ((1 << 53) - 1)
        out.append((bits + 0.5) / 2**53)
    return np.array(out)


@pytest.mark.parametrize(
    "seed, stream, start, count",
    [
        (0, 0, 0, 1),
        (1, 2, 0, 600),  # chunks of 256 rows: two whole ones and a ragged one
        (2**64 - 1, 2**64 - 1, 2**62, 257),
        (0x299F31D0A4093822, 0x0370734413198A2E, 2**32 - 100, 300),  # the row's high word changes inside the draw
        (123456789, 7, 4096 * 25, 4096),
    ],
)
def test_uniform_gives_the_reference_bits(seed, stream, start, count):
    got = _random.uniform(seed, stream, start, count)
    assert got.dtype == np.float64 and got.shape == (count,)
    assert got.tobytes() == reference_uniform(seed, stream, start, count).tobytes()
    assert (got > 0).all() and (got <= 1).all()  # 1 itself with probability 2**-53 (documented)


def test_a_row_draws_the_same_number_however_the_rows_are_split():
    """The draw of a row depends on the row alone: one call for 1000 rows equals calls on any cut of them."""
    whole = _random.uniform(42, 9, 1000, 1000)
    cuts = [0, 1, 255, 256, 700, 1000]
    parts = [_random.uniform(42, 9, 1000 + a, b - a) for a, b in zip(cuts, cuts[1:])]
    assert np.concatenate(parts).tobytes() == whole.tobytes()
    assert _random.uniform(42, 9, 0, 0).shape == (0,)


def test_uniform_at_gives_each_start_its_own_draws():
    """uniform_at's row b is uniform(seed, stream, starts[b], count): the same bits, many blocks in one call."""
    starts = np.array([0, 5, 4096 * 256, 2**40 + 3, 5])
    got = _random.uniform_at(2**63 + 11, 2**60 + 9, starts, 7)
    assert got.shape == (5, 7)
    want = np.stack([_random.uniform(2**63 + 11, 2**60 + 9, int(s), 7) for s in starts])
    assert got.tobytes() == want.tobytes()
    assert _random.uniform_at(1, 2, np.empty(0, np.int64), 3).shape == (0, 3)
