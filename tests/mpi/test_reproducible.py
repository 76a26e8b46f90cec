"""Reproducible sums: identical bits for any number of ranks and any split, and at least as accurate as plain sums."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpc import mpi
from hpc.mpi.comm import Comm, LocalComm
from hpc.mpi.reproducible import reproducible_sum

from .conftest import NONFINITE_COLUMNS, gathered, one_process_sum


def _hard(rows: int, cols: int, seed: int = 7) -> np.ndarray:
    """Badly conditioned data: magnitudes spanning 1e-12..1e12 with heavy cancellation."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, cols)) * 10.0 ** rng.integers(-12, 13, (rows, cols))
    x[rows // 2 :] = -x[: rows - rows // 2] * (1 + 1e-9)  # near-cancelling halves
    return x


def _one_process() -> Comm:
    return Comm(LocalComm())


def _split(comm, n):
    bounds = np.linspace(0, n, comm.size + 1).astype(int)
    return slice(bounds[comm.rank], bounds[comm.rank + 1])


@pytest.mark.mpi
def test_same_global_array_split_across_ranks_gives_identical_bits(comm):
    """mpi.sum(reproducible=True) of one global array equals the one-process result bit for bit, on 1..4 ranks."""
    data = _hard(1001, 17)
    reference = one_process_sum(data)
    mine = data[_split(comm, len(data))]
    got = mpi.sum(comm, mine, reproducible=True)
    assert got.tobytes() == reference.tobytes()
    # a very uneven split: three rows on each rank but the last, which holds the rest
    uneven = data[3 * comm.rank : 3 * comm.rank + 3] if comm.rank < comm.size - 1 else data[3 * comm.rank :]
    assert mpi.sum(comm, uneven, reproducible=True).tobytes() == reference.tobytes()


@pytest.mark.mpi
def test_allreduce_reproducible_is_order_independent(comm):
    """allreduce(reproducible=True) gives the same bits whichever rank holds which contribution."""
    rows = _hard(comm.size, 9, seed=3)
    forward = comm.allreduce(rows[comm.rank], reproducible=True)
    backward = comm.allreduce(rows[comm.size - 1 - comm.rank], reproducible=True)
    assert forward.tobytes() == backward.tobytes()
    assert forward.tobytes() == one_process_sum(rows).tobytes()


@pytest.mark.mpi
def test_reproducible_float32_and_non_finite(comm):
    """float32 keeps its dtype; inf and NaN propagate like a plain sum."""
    x = np.array([1.5, np.inf if comm.rank == 0 else 1.0, np.nan if comm.rank == 0 else 2.0], dtype=np.float32)
    got = comm.allreduce(x, reproducible=True)
    assert got.dtype == np.float32
    assert got[0] == np.float32(1.5 * comm.size) and np.isinf(got[1]) and np.isnan(got[2])


def test_reproducible_is_at_least_as_accurate_as_plain_summation():
    """On hard data the binned sum's error against the exact sum is no larger than numpy's plain sum's."""
    data = _hard(4000, 12, seed=11)
    exact = np.array([math.fsum(col) for col in data.T])
    ours = one_process_sum(data)
    plain = data.sum(axis=0)
    assert np.all(np.abs(ours - exact) <= np.abs(plain - exact))
    scale = np.abs(data).max(axis=0)
    assert np.all(np.abs(ours - exact) <= len(data) * np.ldexp(scale, -60) + np.spacing(np.abs(exact)))


def test_reproducible_integers_are_exact_and_zeros_stay_zero():
    """Integer input sums exactly; all-zero and empty inputs give zeros."""
    local = _one_process()
    ints = np.arange(12, dtype=np.int32).reshape(4, 3)
    np.testing.assert_array_equal(reproducible_sum(local._engine, ints), ints.sum(axis=0))
    assert (reproducible_sum(local._engine, np.zeros((5, 2))) == 0).all()
    assert reproducible_sum(local._engine, np.zeros((0, 3))).shape == (3,)


def test_reproducible_needs_sum():
    """reproducible=True with another op is refused."""
    with pytest.raises(ValueError, match="reproducible=True needs op='sum'"):
        _one_process().allreduce(np.ones(2), op="max", reproducible=True)


@pytest.mark.mpi
def test_one_word_and_two_word_forms_give_the_same_bits(comm):
    """Seven terms per position travel as one int64 on one rank but as hi/lo words on 2-4 ranks: same bits."""
    data = _hard(7, 33, seed=5)
    reference = one_process_sum(data)  # 7 terms: the one-word form
    padded = np.vstack([data, np.zeros((1, 33))])  # 8 terms: the two-word form, the same exact total
    assert one_process_sum(padded).tobytes() == reference.tobytes()
    assert mpi.sum(comm, data[_split(comm, len(data))], reproducible=True).tobytes() == reference.tobytes()


def test_reproducible_is_exact_where_every_term_fits_the_grid():
    """Terms within 7 binades of a column's largest (subnormals too) sum exactly: fsum's correctly rounded value."""
    local = _one_process()
    columns = [
        [5e-324, 5e-324, -1e-323, 3e-320],  # subnormals
        [2.2250738585072014e-308, -5e-324, 1e-310, 1e-309],  # the normal/subnormal border
        [1.0, 2.0**-52, 2.0**-53, -(2.0**-54)],  # an exact sum that plain summation rounds
        [1e300, 3e299, -7e299, 1.25e300],
        [0.1, 0.2, 0.3, -0.6],
    ]
    data = np.array(columns).T
    got = reproducible_sum(local._engine, data)
    assert got.tolist() == [math.fsum(col) for col in columns]


def test_reproducible_extremes():
    """Overflowing totals give inf like a plain sum; huge and tiny terms together stay within the error bound."""
    local = _one_process()
    assert reproducible_sum(local._engine, np.array([[1.7e308], [1.7e308]]))[0] == np.inf
    assert reproducible_sum(local._engine, np.array([[-1.7e308], [-1.7e308]]))[0] == -np.inf
    mixed = np.array([[1.5e308], [-1.5e308], [3.0]])
    assert abs(reproducible_sum(local._engine, mixed)[0] - 3.0) <= 3 * 2.0**-60 * 1.5e308


def test_a_held_result_is_never_overwritten():
    """The result buffer is recycled only when the caller dropped it: a result still held stays intact."""
    comm = _one_process()
    x = np.linspace(-1.0, 1.0, 1 << 17)
    first = comm.allreduce(x, reproducible=True)
    kept = first.copy()
    second = comm.allreduce(2.0 * x, reproducible=True)
    assert first.tobytes() == kept.tobytes() and not np.shares_memory(first, second)
    np.testing.assert_array_equal(second, 2.0 * x)
    del first, second
    third = comm.allreduce(x, reproducible=True)
    assert third.tobytes() == kept.tobytes()


@pytest.mark.mpi
def test_positions_far_below_the_largest_exponent_are_exact_and_agree(comm):
    """A position ~660 binades below the largest value in the array gets its own exact exponent, agreed by all ranks.

    Its largest term sits on the last rank, so a rank that kept its own exponent would add integers on another
    grid: the sum would be wrong, not merely differ in the last bit.
    """
    rows = np.array([[1e100 * (r + 1), 1e-100 * (r + 1), -3.0 * r] for r in range(comm.size)])
    got = comm.allreduce(rows[comm.rank], reproducible=True)
    assert got.tobytes() == one_process_sum(rows).tobytes()
    assert got.tolist() == [math.fsum(col) for col in rows.T]  # every column within 7 binades: exact


@pytest.mark.mpi
def test_reproducible_complex_with_infinite_parts(comm):
    """An infinite imaginary part leaves the real part alone (1j * inf is nan + inf*j, so no re + 1j * im)."""
    x = np.array([complex(1.0, np.inf), complex(2.0, -3.0)])
    got = comm.allreduce(x, reproducible=True)
    want = np.sum(gathered(comm, x), axis=0)
    assert got.real.tolist() == want.real.tolist() and got.imag.tolist() == want.imag.tolist()
    single = comm.allreduce(x.astype(np.complex64)[0], reproducible=True)
    assert single.dtype == np.complex64 and single.real == comm.size and np.isposinf(single.imag)


@pytest.mark.mpi
@pytest.mark.parametrize("two_words", [False, True], ids=["one-word", "two-word"])
def test_blocks_of_columns_give_the_same_bits(comm, monkeypatch, two_words):
    """A long row is summed in column blocks (the last one short): the same bits as one pass, non-finite included."""
    from hpc.mpi import _binned
    from hpc.mpi import _engine as engine_module

    if two_words:  # the hi/lo form, which one row takes only from 8 ranks up
        monkeypatch.setattr(_binned, "ONE_WORD_TERMS", 0)
    rows = _hard(comm.size, 103, seed=13)
    rows[:, 50] = 1.0
    rows[-1, 50] = np.inf
    rows[0, 77] = np.nan
    whole = comm.allreduce(rows[comm.rank], reproducible=True).copy()
    monkeypatch.setattr(engine_module, "_BLOCKED_FROM", 64)
    monkeypatch.setattr(engine_module, "BLOCK_BYTES", 80)  # 10 columns
    monkeypatch.setattr(comm._engine, "one_node", True)
    blocked = comm.allreduce(rows[comm.rank], reproducible=True)
    assert blocked.tobytes() == whole.tobytes()
    assert blocked.tobytes() == one_process_sum(rows).tobytes()
    assert np.isinf(blocked[50]) and np.isnan(blocked[77])


@pytest.mark.mpi
def test_blocks_are_cut_alike_when_ranks_hold_different_row_counts(comm, monkeypatch):
    """Whether a long row is cut into blocks never depends on this rank's row count (0, 1 or 2 rows here).

    A rank holding one row while another holds two must still run the same collectives: blocks on one rank and a
    single pass on another would pair collectives of different lengths.
    """
    from hpc.mpi import _engine as engine_module

    counts = [(1, 2, 0)[r % 3] for r in range(comm.size)]
    rows = _hard(sum(counts), 103, seed=17)
    rows[:, 40] = 2.0
    rows[0, 40] = -np.inf
    reference = one_process_sum(rows)
    start = sum(counts[: comm.rank])
    monkeypatch.setattr(engine_module, "_BLOCKED_FROM", 64)
    monkeypatch.setattr(engine_module, "BLOCK_BYTES", 80)  # 10 columns
    monkeypatch.setattr(comm._engine, "one_node", True)
    got = mpi.sum(comm, rows[start : start + counts[comm.rank]], reproducible=True)
    assert got.tobytes() == reference.tobytes()
    assert np.isneginf(got[40])


@pytest.mark.mpi
def test_reproducible_sums_of_empty_arrays(comm):
    """Arrays with no elements sum to empty results of their shape, on every rank (no zero-width column blocks)."""
    for x in (np.zeros(0), np.zeros((3, 0)), np.zeros((0, 2), np.float32), np.zeros(0, np.complex128)):
        got = comm.allreduce(x, reproducible=True)
        assert got.shape == x.shape and got.dtype == x.dtype
    got = mpi.sum(comm, np.zeros((comm.rank, 0)), reproducible=True)
    assert got.shape == (0,) and got.dtype == np.float64
    assert one_process_sum(np.zeros((2, 4, 0))).shape == (4, 0)


def _window_data(comm, n: int) -> np.ndarray:
    """Every rank's row of hard data with tiles the fast kernel path cannot take: inf, NaN, subnormal, tiny."""
    rows = _hard(comm.size, n, seed=23)
    rows[:, 5] = np.inf
    rows[-1, 6] = -np.inf
    rows[0, 200] = np.nan
    rows[:, 220:240] = 5e-324 * np.arange(1, 21)
    rows[:, 250:260] *= 1e-300
    return rows


@pytest.mark.mpi
def test_shared_memory_and_message_lanes_give_the_same_bits(node_comm, monkeypatch):
    """On one node the ranks sum in a shared-memory window; the bits equal the message lane's and one process's.

    A 700-column chunk cuts the 2500 columns unevenly across the ranks and across the kernel's tiles; float32 and
    complex take the same lane; a result still held survives the next call.
    """
    from hpc.mpi import _node_window
    from hpc.mpi import reproducible as repro

    comm = node_comm  # all ranks on one host; across hosts, this node's
    rows = _window_data(comm, 2500)
    mine = rows[comm.rank]
    window = _node_window.node_window(comm._engine)
    assert (window is None) == (comm.size == 1)
    if window is not None:
        monkeypatch.setattr(window, "chunk", 700)
    through_window = comm.allreduce(mine, reproducible=True)
    kept = through_window.copy()
    assert through_window.tobytes() == one_process_sum(rows).tobytes()
    assert comm.allreduce(mine[::-1], reproducible=True).tobytes() == kept[::-1].tobytes()  # non-contiguous
    mixed = np.empty(9, np.complex128)  # parts assigned: 1j * inf is nan + inf*j
    mixed.real, mixed.imag = mine[:9], rows[comm.size - 1 - comm.rank, :9]
    cases = (mine.astype(np.float32), mixed, mine.reshape(50, 50))
    window_results = [comm.allreduce(x, reproducible=True) for x in cases]
    monkeypatch.setattr(repro, "USE_NODE_WINDOW", False)
    through_messages = comm.allreduce(mine, reproducible=True)
    assert through_messages.tobytes() == kept.tobytes() == through_window.tobytes()
    for x, got in zip(cases, window_results):
        want = comm.allreduce(x, reproducible=True)
        assert got.dtype == want.dtype and got.shape == want.shape and got.tobytes() == want.tobytes()


@pytest.mark.mpi
def test_the_window_lane_under_the_watchdog(node_comm, monkeypatch):
    """With HPC_MPI_TIMEOUT set the window's barriers are watched (non-blocking barriers): same bits."""
    comm = node_comm  # all ranks on one host; across hosts, this node's
    monkeypatch.setenv("HPC_MPI_TIMEOUT", "60")
    watched = mpi.Comm(comm.mpi)
    assert watched.timeout > 0
    rows = _window_data(comm, 1600)
    got = watched.allreduce(rows[comm.rank], reproducible=True)
    assert got.tobytes() == one_process_sum(rows).tobytes()


@pytest.mark.mpi
@pytest.mark.parametrize("window", [True, False], ids=["window", "messages"])
def test_non_finite_positions_give_the_same_bits_for_any_rank_count(comm, monkeypatch, window):
    """The review's cases: an overflow into -inf's column and NaNs of both signs give fixed bits on 1-4 ranks."""
    from hpc.mpi import reproducible as repro

    monkeypatch.setattr(repro, "USE_NODE_WINDOW", window)
    terms = np.array([column for column, _ in NONFINITE_COLUMNS]).T  # 4 terms per position
    want = np.array([total for _, total in NONFINITE_COLUMNS])
    mine = terms[_split(comm, len(terms))]  # 4, 2+2, 1+1+2 or 1+1+1+1 terms per rank
    assert mpi.sum(comm, mine, reproducible=True).tobytes() == want.tobytes()
    if comm.size == len(terms):  # one term per rank: the allreduce of one row each
        assert comm.allreduce(terms[comm.rank], reproducible=True).tobytes() == want.tobytes()


@pytest.mark.parametrize("k", [0, 1, 2, 7, 8, 33, 128])
def test_one_rank_sums_every_term_at_hand_with_the_message_lanes_bits(k):
    """One rank holds every term: its sum is one kernel call with no collective, the bits of the message lane."""
    from hpc.mpi import reproducible as repro

    engine = _one_process()._engine
    rows = _hard(max(k, 2), 1500, seed=k)[:k] if k else np.zeros((0, 1500))
    if k:
        rows[:, 5] = np.inf
        rows[-1, 6] = -np.inf
        rows[0, 200] = np.nan
        rows[:, 220:240] = 5e-324 * np.arange(1, 21)
        rows[:, 250:260] *= 1e-300
        rows[:, 300] = 0.0
    here = reproducible_sum(engine, rows)
    assert here.tobytes() == repro._sum_in_messages(engine, rows).tobytes()
    single = reproducible_sum(engine, rows.astype(np.float32))
    assert single.dtype == np.float32
    assert single.tobytes() == repro._sum_in_messages(engine, rows.astype(np.float32).astype(np.float64)).astype(
        np.float32).tobytes()


def test_reproducible_sums_refuse_long_doubles(comm):
    """They were summed in float64 words without a word: 1e400 became inf, 2**-60 beside 1 was lost."""
    for x in (np.array([1.0, 1e400], np.longdouble), np.array([1.0j], np.clongdouble)):
        with pytest.raises(TypeError, match="reproducible sums work in float64 words"):
            comm.allreduce(x, reproducible=True)
        with pytest.raises(TypeError, match="reproducible sums work in float64 words"):
            mpi.sum(comm, x, reproducible=True)
    assert comm.allreduce(np.array([1e400], np.longdouble))[0] == np.longdouble(1e400) * comm.size
