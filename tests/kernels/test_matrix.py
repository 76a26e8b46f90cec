"""hpc.kernels matrix products: gemv, gemm (BLAS) and gemm_tiled (numba)."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gemm_gemv_match_matmul(rng, dtype):
    """gemm and gemv equal numpy.matmul, with out= and on one BLAS thread (parallel=False)."""
    a = rng.standard_normal((70, 50)).astype(dtype)
    b = rng.standard_normal((50, 30)).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(k.gemm(a, b), a @ b, rtol=rtol, atol=rtol)
    out = np.empty((70, 30), dtype)
    assert k.gemm(a, b, out=out, parallel=False) is out
    np.testing.assert_allclose(out, a @ b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(k.gemv(a, b[:, 0]), a @ b[:, 0], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(k.gemv(a[::2], b[::-1, 1]), a[::2] @ b[::-1, 1], rtol=rtol, atol=rtol)


@pytest.mark.parametrize("parallel", [False, True])
def test_gemm_tiled_matches_matmul(rng, parallel):
    """The numba tiled gemm equals numpy.matmul on odd sizes, and on strided operands."""
    a = rng.standard_normal((131, 300))
    b = rng.standard_normal((300, 77))
    np.testing.assert_allclose(k.gemm_tiled(a, b, parallel=parallel), a @ b, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.gemm_tiled(a[::2, ::3], b[::3]), a[::2, ::3] @ b[::3], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("parallel", [False, True])
def test_gemm_tiled_blocks_edges_and_float32(rng, parallel):
    """Inner dimensions longer than one cache block, columns past one block with a ragged edge, and float32."""
    a = rng.standard_normal((37, 1030))
    b = rng.standard_normal((1030, 70))
    np.testing.assert_allclose(k.gemm_tiled(a, b, parallel=parallel), a @ b, rtol=1e-11, atol=1e-11)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    got = k.gemm_tiled(a32, b32, parallel=parallel)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, a @ b, rtol=1e-4, atol=1e-3)
    for m, n in [(1, 1), (3, 5), (4, 4), (5, 9)]:
        x, y = rng.standard_normal((m, 6)), rng.standard_normal((6, n))
        np.testing.assert_allclose(k.gemm_tiled(x, y, parallel=parallel), x @ y, rtol=1e-12, atol=1e-12)


def test_gemm_tiled_out_overlapping_an_operand():
    """out= may be a or b themselves: the result is a @ b as computed from the inputs, as numpy.matmul gives."""
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((70, 70)), rng.standard_normal((70, 70))
    want = a @ b
    np.testing.assert_allclose(k.gemm_tiled(a, b, out=a), want, rtol=1e-12, atol=1e-12)
    a = rng.standard_normal((70, 70))
    want = a @ b
    np.testing.assert_allclose(k.gemm_tiled(a, b, out=b), want, rtol=1e-12, atol=1e-12)
    b = np.asfortranarray(rng.standard_normal((70, 70)))  # in Fortran order: read through strides, as out= is it
    want = a @ b
    np.testing.assert_allclose(k.gemm_tiled(a, b, out=b), want, rtol=1e-12, atol=1e-12)


def test_matrix_errors():
    """Mismatched inner dimensions, 1-D matrices and mixed dtypes are refused naming the argument."""
    with pytest.raises(ValueError, match=r"b must have 3 rows to match a's columns; got shape \(4, 2\)"):
        k.gemm(np.ones((2, 3)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"a must be a 2-D array; got shape \(3,\)"):
        k.gemv(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"x must have shape \(3,\)"):
        k.gemv(np.ones((2, 3)), np.ones(2))
    with pytest.raises(TypeError, match="a, b must have the same dtype"):
        k.gemm(np.ones((2, 2)), np.ones((2, 2), np.float32))


@pytest.mark.parametrize("wide", [True, False])
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 3, 7), (9, 513, 6), (64, 64, 64), (37, 70, 33)])
def test_gemm_tiled_both_tile_shapes(wide, shape):
    """The 4x4 tile (hosts with AVX-512) and the 4x2 tile (the rest) give a @ b, edges included, serially and in
    parallel; the host runs only one of them, so both are called here directly."""
    from hpc.kernels import matrix

    m, k, n = shape
    rng = np.random.default_rng(m * 1000 + k + n)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    for run in (matrix._gemm_tiled_serial, matrix._gemm_tiled_parallel):
        out = np.full((m, n), np.nan)
        run(a, b, out, wide)
        np.testing.assert_allclose(out, a @ b, rtol=1e-12, atol=1e-12 * k)
