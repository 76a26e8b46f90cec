"""hpc.kernels row kernels against NumPy references: softmax, logsumexp, layernorm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpc import kernels as k


def ref_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def ref_lse(x):
    m = x.max(axis=-1)
    return m + np.log(np.exp(x - m[..., None]).sum(axis=-1))


def ref_layernorm(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(x.var(axis=-1, keepdims=True) + eps) * gamma + beta


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_match_numpy(rng, dtype, parallel):
    """softmax, logsumexp and layernorm of random rows (a wide value range) match the NumPy formulas."""
    x = (rng.standard_normal((70, 1037)) * 30).astype(dtype)
    x64 = x.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    tiny = np.finfo(dtype).tiny  # float32 output flushes what float64 still resolves
    np.testing.assert_allclose(k.softmax(x, parallel=parallel), ref_softmax(x64), rtol=rtol, atol=tiny)
    np.testing.assert_allclose(k.logsumexp(x, parallel=parallel), ref_lse(x64), rtol=rtol)
    g = rng.standard_normal(1037).astype(dtype)
    b = rng.standard_normal(1037).astype(dtype)
    np.testing.assert_allclose(k.layernorm(x, g, b, parallel=parallel), ref_layernorm(x64, g, b), rtol=rtol, atol=rtol)


def test_softmax_extreme_values_are_stable():
    """Rows with huge, tiny and -inf entries give finite probabilities summing to 1 (no overflow)."""
    x = np.array([[1000.0, 999.0, -1000.0], [-1e300, 0.0, -np.inf], [-745.0, 0.0, -700.0]])
    got = k.softmax(x)
    np.testing.assert_allclose(got, ref_softmax(x), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(k.logsumexp(x), ref_lse(x), rtol=1e-15)


def test_rows_nan_and_inf():
    """A NaN makes its row NaN; +inf and all -inf rows follow the reference formulas; other rows are unaffected."""
    x = np.array([[1.0, np.nan, 2.0], [np.inf, 1.0, 2.0], [-np.inf, -np.inf, -np.inf], [0.0, 0.0, 0.0]])
    with np.errstate(invalid="ignore"):
        want_sm = ref_softmax(x)
    got = k.softmax(x)
    assert np.isnan(got[0]).all() and np.isnan(got[2]).all()
    np.testing.assert_array_equal(np.isnan(got[1]), np.isnan(want_sm[1]))
    np.testing.assert_allclose(got[3], 1 / 3)
    lse = k.logsumexp(x)
    assert math.isnan(lse[0]) and lse[1] == np.inf and lse[2] == -np.inf
    np.testing.assert_allclose(lse[3], math.log(3.0))
    assert np.isnan(k.layernorm(x[:1])).all()


def test_rows_one_d_strided_out_and_shapes():
    """A 1-D input is one row, a strided 2-D view is read correctly, out= is used, and one column is handled."""
    v = np.array([0.0, math.log(3.0)])
    np.testing.assert_allclose(k.softmax(v), [0.25, 0.75])
    assert isinstance(k.logsumexp(v), np.floating)
    base = np.random.default_rng(1).standard_normal((20, 30))
    view = base[::2, ::3]
    out = np.empty(view.shape)
    assert k.softmax(view, out=out) is out
    np.testing.assert_allclose(out, ref_softmax(view), rtol=1e-13)
    np.testing.assert_allclose(k.layernorm(view), ref_layernorm(view, 1.0, 0.0), rtol=1e-12)
    np.testing.assert_allclose(k.softmax(np.ones((3, 1))), 1.0)
    assert k.softmax(np.empty((0, 4))).shape == (0, 4)
    assert k.logsumexp(np.empty((2, 0))).tolist() == [-np.inf, -np.inf]


def test_rows_errors():
    """3-D input, a wrong gamma length, a negative eps and a 2-D out for logsumexp are refused."""
    with pytest.raises(ValueError, match=r"x must be a 1-D or 2-D array; got shape \(2, 2, 2\)"):
        k.softmax(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\)"):
        k.layernorm(np.ones((2, 3)), np.ones(4))
    with pytest.raises(ValueError, match="eps must be a non-negative float; got -1.0"):
        k.layernorm(np.ones((2, 3)), eps=-1.0)
    with pytest.raises(ValueError, match=r"out must have shape \(2,\)"):
        k.logsumexp(np.ones((2, 3)), out=np.empty((2, 3)))


ROW_BLOCK = k.rows.ROW_BLOCK


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rows_online_max_across_blocks(rng, dtype, parallel):
    """Rows spanning several blocks, with the maximum in the first, a middle or the last block, or rising in every
    block (the running sum and the written blocks rescaled each time), match the two-pass reference."""
    cols = 3 * ROW_BLOCK + 17
    x = (rng.standard_normal((6, cols)) * 5).astype(dtype)
    x[0, 3] = 40.0
    x[1, ROW_BLOCK + 1] = 40.0
    x[2, -1] = 40.0
    x[3] = np.linspace(-30.0, 30.0, cols)  # rising: every block a new maximum
    x[4] = np.linspace(30.0, -700.0, cols)  # falling into the flushed range
    x[5, : ROW_BLOCK + 5] = -np.inf  # a first block of -inf only, then finite values
    x64 = x.astype(np.float64)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    tiny = np.finfo(dtype).tiny
    with np.errstate(under="ignore"):
        np.testing.assert_allclose(k.softmax(x, parallel=parallel), ref_softmax(x64), rtol=rtol, atol=tiny)
        np.testing.assert_allclose(k.logsumexp(x, parallel=parallel), ref_lse(x64), rtol=rtol)
        np.testing.assert_allclose(k.softmax(x[3], parallel=parallel), ref_softmax(x64[3]), rtol=rtol, atol=tiny)
        np.testing.assert_allclose(k.logsumexp(x[3], parallel=parallel), ref_lse(x64[3]), rtol=rtol)


@pytest.mark.parametrize("parallel", [False, True])
def test_rows_nan_and_inf_in_a_later_block(rng, parallel):
    """A NaN or +inf found after blocks were already written (also in place, out=x) still makes the softmax row
    all NaN as the reference does; logsumexp gives NaN for a NaN anywhere, +inf for +inf, -inf for all -inf."""
    cols = 2 * ROW_BLOCK + 9
    x = rng.standard_normal((5, cols))
    x[0, 2 * ROW_BLOCK + 3] = np.nan
    x[1, ROW_BLOCK + 3] = np.inf
    x[2, 5] = np.inf
    x[2, -1] = np.nan
    x[3] = -np.inf
    with np.errstate(invalid="ignore"):
        want = ref_softmax(x)
    assert np.isnan(want[:4]).all()
    lse = k.logsumexp(x, parallel=parallel)
    assert math.isnan(lse[0]) and lse[1] == np.inf and math.isnan(lse[2]) and lse[3] == -np.inf
    np.testing.assert_allclose(lse[4], ref_lse(x[4]), rtol=1e-13)
    for out in (None, x):
        got = k.softmax(x, out=out, parallel=parallel)
        assert np.isnan(got[:4]).all()
        np.testing.assert_allclose(got[4], want[4], rtol=1e-13)


def test_softmax_in_place_and_strided_long_rows(rng):
    """out=x overwrites the input with the right result; strided rows of several blocks are read correctly."""
    base = rng.standard_normal((8, 4 * ROW_BLOCK)) * 10
    want = ref_softmax(base[::2, ::3])
    np.testing.assert_allclose(k.softmax(base[::2, ::3]), want, rtol=1e-13)
    np.testing.assert_allclose(k.logsumexp(base[::2, ::3]), ref_lse(base[::2, ::3]), rtol=1e-13)
    x = base.copy()
    assert k.softmax(x, out=x) is x
    np.testing.assert_allclose(x, ref_softmax(base), rtol=1e-13)


def test_vexp_accuracy_flush_and_nan():
    """The vector exp is within 1 ulp-ish of NumPy's on [-708, 0], flushes below exp(-708) (and -inf) to 0, keeps
    NaN, and its sum-only twin returns the same sum; float32 input and output work."""
    from hpc.kernels import _vexp

    v = np.concatenate([np.linspace(-708.0, 0.0, 100_003), -np.geomspace(1e-300, 1.0, 1000), [0.0, -0.0]])
    out = np.empty_like(v)
    s = _vexp.exp_shifted(v + 2.5, 2.5, out, _vexp.flush_for(np.float64))
    np.testing.assert_allclose(out, np.exp(v), rtol=4e-16, atol=0)
    np.testing.assert_allclose(s, np.exp(v).sum(), rtol=1e-15)
    assert _vexp.exp_shifted_sum(v + 2.5, 2.5) == pytest.approx(s, rel=1e-15)
    special = np.array([-708.5, -745.0, -1e308, -np.inf, np.nan, -1.0])
    got = np.empty_like(special)
    _vexp.exp_shifted(special, 0.0, got, _vexp.flush_for(np.float64))
    assert got[:4].tolist() == [0.0, 0.0, 0.0, 0.0] and math.isnan(got[4]) and got[5] == math.exp(-1.0)
    f = np.linspace(-80.0, 0.0, 999, dtype=np.float32)
    fo = np.empty_like(f)
    flush32 = _vexp.flush_for(np.float32)
    assert math.exp(flush32) > float(np.finfo(np.float32).tiny) > math.exp(flush32 - 1e-11)
    assert _vexp.exp_shifted(f, 0.0, fo, flush32) == pytest.approx(np.exp(f.astype(np.float64)).sum(), rel=1e-7)
    np.testing.assert_allclose(fo, np.exp(f.astype(np.float64)), rtol=1e-7)
    below = np.array([-87.0, -87.5, -100.0, np.nan], np.float32)  # exp(-87.5) is a float32 subnormal: stored as 0
    bo = np.empty_like(below)
    _vexp.exp_shifted(below, 0.0, bo, flush32)
    assert bo[0] == np.float32(math.exp(-87.0)) and bo[1:3].tolist() == [0.0, 0.0] and math.isnan(bo[3])


@pytest.mark.parametrize("parallel", [False, True])
def test_softmax_stores_no_subnormal_probabilities(parallel):
    """Probabilities below the dtype's smallest normal are 0 (NumPy gives subnormals, each a microcode assist on
    Intel), in float32 from the exp itself and in float64 from the final scaling; the others are NumPy's."""
    x32 = np.array([[0.0, -86.0, -88.0, -100.0], [0.0, -1.0, -2.0, -3.0]], np.float32)
    got = k.softmax(x32, parallel=parallel)
    want = ref_softmax(x32.astype(np.float64))
    assert 0 < want[0, 2] < np.finfo(np.float32).tiny and got[0, 2] == 0 and got[0, 3] == 0
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=np.finfo(np.float32).tiny)
    # float64: exp(-707.5) is normal, divided by the row's sum of 1000 it is not
    x64 = np.zeros((2, 1001))
    x64[:, -1] = -707.5
    got = k.softmax(x64, parallel=parallel)
    assert 0 < ref_softmax(x64)[0, -1] < np.finfo(np.float64).tiny
    assert (got[:, -1] == 0).all()
    np.testing.assert_allclose(got[:, :-1], 1 / 1000, rtol=1e-13)


@pytest.mark.parametrize("parallel", [False, True])
def test_rows_out_partially_overlapping_x(rng, parallel):
    """softmax/layernorm into out= a shifted view of x's memory (a column over, or 1-D one element over) give the
    reference result, as if from a copy of x."""
    base = rng.standard_normal((4, 2 * ROW_BLOCK + 9))
    x0 = base[:, :-1].copy()
    buf = base.copy()
    out = buf[:, 1:]
    assert k.softmax(buf[:, :-1], out=out, parallel=parallel) is out
    np.testing.assert_allclose(out, ref_softmax(x0), rtol=1e-13)
    buf = base.copy()
    out = buf[:, 1:]
    k.layernorm(buf[:, :-1], out=out, parallel=parallel)
    np.testing.assert_allclose(out, ref_layernorm(x0, 1.0, 0.0), rtol=1e-12, atol=1e-12)
    flat = base[0].copy()
    out = flat[:-1]
    k.softmax(flat[1:], out=out, parallel=parallel)
    np.testing.assert_allclose(out, ref_softmax(base[0, 1:]), rtol=1e-13)
    buf = base.copy()
    out = buf[-1, :4]  # logsumexp of row 0 would land in the last row before it is read
    k.logsumexp(buf, out=out, parallel=parallel)
    np.testing.assert_allclose(out, ref_lse(base), rtol=1e-13)


def test_layernorm_of_rows_without_columns_is_empty():
    """Zero columns: an empty result of x's shape (it divided by the zero column count)."""
    assert k.layernorm(np.ones((3, 0))).shape == (3, 0)
    assert k.layernorm(np.array([])).shape == (0,)


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layernorm_eps_zero_on_a_constant_row_is_nan(dtype, parallel):
    """eps=0.0 on a constant row gives the formula's (x - mean) / sqrt(0) = 0 / 0 = NaN, serially and in parallel
    (the serial variant raised ZeroDivisionError, the parallel one returned 0.0), with or without gamma and beta;
    the other rows are unaffected. One column makes every row constant."""
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0], [-0.5, -0.5, -0.5]], dtype)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = ref_layernorm(x.astype(np.float64), 1.0, 0.0, eps=0.0)
    assert np.isnan(want[[0, 2]]).all()
    for g, b in ((None, None), (np.full(3, 2.0, dtype), np.full(3, 1.0, dtype))):
        got = k.layernorm(x, g, b, eps=0.0, parallel=parallel)
        assert np.isnan(got[[0, 2]]).all()
        np.testing.assert_allclose(got[1], want[1] * (1.0 if g is None else 2.0) + (0.0 if b is None else 1.0),
                                   rtol=1e-6)
    column = np.array([[1.0], [2.0], [-3.0]], dtype)
    assert np.isnan(k.layernorm(column, eps=0.0, parallel=parallel)).all()
    assert np.isnan(k.layernorm(np.full(5, 7.0, dtype), eps=0.0, parallel=parallel)).all()


def test_layernorm_eps_of_the_wrong_type_is_refused_naming_eps():
    """None, a string, a bool or a list for eps raise a TypeError naming eps (not a bare '>=' TypeError); a NumPy
    scalar, an int or a 0-d array is taken."""
    for bad in (None, "1", True, [1e-5]):
        with pytest.raises(TypeError, match="eps must be a real number"):
            k.layernorm(np.ones((2, 3)), eps=bad)
    want = k.layernorm(np.array([1.0, 3.0]), eps=0.0)
    for good in (0, np.float32(0.0), np.array(0.0)):
        assert k.layernorm(np.array([1.0, 3.0]), eps=good).tolist() == want.tolist() == [-1.0, 1.0]


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_and_layernorm_in_place_give_the_same_bits(rng, monkeypatch, dtype, parallel):
    """out=x runs the in-place kernels (the out-of-place ones read and wrote one array and ran their scalar loops,
    2-3x slower), with the bits of out-of-place on the same rows, on whole arrays, strided views and one row."""
    from hpc.kernels import rows

    x = (rng.standard_normal((64, 2500)) * 5).astype(dtype)
    gamma, beta = rng.standard_normal(2500).astype(dtype), rng.standard_normal(2500).astype(dtype)
    cases = [lambda a: a, lambda a: a[::3, ::2], lambda a: a[7]]
    # the rows are read from contiguous copies: a strided row's sums vectorize otherwise (layernorm's last bits)
    want = [(k.softmax(c(x), parallel=parallel), k.layernorm(np.ascontiguousarray(c(x)), parallel=parallel))
            for c in cases]
    for name in ("_softmax_serial", "_softmax_parallel", "_layernorm_serial", "_layernorm_parallel"):
        monkeypatch.setattr(rows, name, None)  # calling one fails
    for c, (soft, norm) in zip(cases, want):
        y = x.copy()
        k.softmax(c(y), out=c(y), parallel=parallel)
        np.testing.assert_array_equal(c(y), soft)
        y = x.copy()
        k.layernorm(c(y), out=c(y), parallel=parallel)
        np.testing.assert_array_equal(c(y), norm)
    y = x.copy()
    k.layernorm(y, gamma, beta, out=y, parallel=parallel)
    monkeypatch.undo()
    np.testing.assert_array_equal(y, k.layernorm(x, gamma, beta, parallel=parallel))
