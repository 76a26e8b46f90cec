"""hpc.kernels Jacobi 5-point stencil step against a NumPy slicing reference."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import kernels as k


def ref_jacobi(u):
    r = u.copy()
    r[1:-1, 1:-1] = 0.25 * (u[:-2, 1:-1] + u[2:, 1:-1] + u[1:-1, :-2] + u[1:-1, 2:])
    return r


@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_jacobi_matches_numpy(rng, dtype, parallel):
    """One step equals the slicing formula on the interior and keeps the boundary."""
    u = rng.standard_normal((123, 77)).astype(dtype)
    rtol = 1e-6 if dtype == np.float32 else 1e-15
    got = k.jacobi_step(u, parallel=parallel)
    np.testing.assert_allclose(got, ref_jacobi(u), rtol=rtol, atol=rtol)
    np.testing.assert_array_equal(got[0], u[0])
    np.testing.assert_array_equal(got[:, -1], u[:, -1])


def test_jacobi_strided_small_and_out(rng):
    """Strided grids, grids too small to have an interior, and out= all work."""
    base = rng.standard_normal((40, 60))
    np.testing.assert_allclose(k.jacobi_step(base[::2, ::3]), ref_jacobi(base[::2, ::3]), rtol=1e-15)
    one = np.array([[5.0]])
    assert k.jacobi_step(one).tolist() == [[5.0]]
    assert k.jacobi_step(np.ones((2, 5))).tolist() == np.ones((2, 5)).tolist()
    out = np.empty((40, 60))
    assert k.jacobi_step(base, out=out) is out


def test_jacobi_refuses_aliasing_and_bad_shapes():
    """Writing a step into its own input, or a 1-D grid, is refused."""
    u = np.ones((4, 4))
    with pytest.raises(ValueError, match="out must not overlap u"):
        k.jacobi_step(u, out=u)
    with pytest.raises(ValueError, match=r"u must be a 2-D array; got shape \(4,\)"):
        k.jacobi_step(np.ones(4))
