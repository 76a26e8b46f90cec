"""Every hpc.kernels function with a GPU twin: the same signature and the same return types on host arrays and on
hpc.cuda.DeviceArrays (the host fallback here, the CUDA kernels on a GPU host), so the two sides cannot drift."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from hpc.kernels import _dispatch

from hpc import cuda, kernels
from hpc.cuda import twins

RNG = np.random.default_rng(0)
X = RNG.normal(size=(40, 3))
C = X[:4].copy()
V = RNG.normal(size=64)

#: host arguments of one call per twinned kernel (device calls put every array on the device)
CALLS = {
    "axpy": ((2.0, V, V.copy()), {}),
    "dot": ((V, V), {}),
    "nrm2": ((V,), {}),
    "sum": ((V,), {"accurate": True}),
    "min": ((V,), {}),
    "max": ((V,), {}),
    "softmax": ((X,), {}),
    "inclusive_scan": ((V,), {}),
    "exclusive_scan": ((V,), {}),
    "sqdist": ((X, C), {}),
    "kmeans_assign": ((X, C), {}),
    "kmeans_step": ((X, C), {}),
    "logistic_loss_grad": ((X, (V[:40] > 0).astype(np.float64), np.ones(3)), {"intercept": 0.5}),
    "softmax_loss_grad": ((X, RNG.integers(0, 4, 40), RNG.normal(size=(4, 3))), {}),
    "column_moments": ((X,), {"deviations": True}),
}
#: arguments that stay on the host in device calls (parameters, not data)
HOST_ARGS = {"kmeans_step": {1}, "logistic_loss_grad": {2}, "softmax_loss_grad": {2}}


def test_every_twinned_kernel_is_covered():
    """The table above names every kernel the dispatch decorator wraps, and each has a twin."""
    assert set(_dispatch.twinned) == set(CALLS)
    assert all(hasattr(twins, name) for name in _dispatch.twinned)


@pytest.mark.parametrize("name", sorted(CALLS))
def test_twin_takes_every_argument_of_the_cpu_kernel(name):
    """The twin's parameters are the CPU kernel's (less the host-only ones), in the same order and kinds, with the
    same defaults, plus ``stream``; hpc.kernels keeps the CPU kernel's signature."""
    cpu = inspect.signature(getattr(kernels, name).__wrapped__)
    twin = inspect.signature(getattr(twins, name))
    want = [p for p in cpu.parameters.values() if p.name not in _dispatch.HOST_ONLY]
    got = [p for p in twin.parameters.values() if p.name != "stream"]
    assert [(p.name, p.kind, p.default) for p in got] == [(p.name, p.kind, p.default) for p in want]
    assert twin.parameters["stream"].kind is inspect.Parameter.KEYWORD_ONLY
    assert inspect.signature(getattr(kernels, name)) == cpu


def _kind(value):
    """Describe a result by type and dtype, a DeviceArray as the ndarray it stands for."""
    if isinstance(value, tuple):
        return tuple(_kind(v) for v in value)
    if isinstance(value, cuda.DeviceArray):
        return ("array", value.dtype, value.shape)
    if isinstance(value, np.ndarray):
        return ("array", value.dtype, value.shape)
    return (type(value).__name__,)


def _to_host(value):
    if isinstance(value, tuple):
        return tuple(_to_host(v) for v in value)
    return value.get() if isinstance(value, cuda.DeviceArray) else value


@pytest.mark.parametrize("name", sorted(CALLS))
def test_same_results_and_types_on_host_and_device(name):
    """The dispatched call returns what the host call returns: NumPy scalars of the input's dtype for reductions,
    DeviceArrays where the host gives ndarrays, the same shapes and dtypes, the same values to rounding."""
    args, kwargs = CALLS[name]
    keep = HOST_ARGS.get(name, set())
    host = getattr(kernels, name)(*[a.copy() if isinstance(a, np.ndarray) else a for a in args], **kwargs)
    device_args = [cuda.to_device(a) if isinstance(a, np.ndarray) and i not in keep else a for i, a in enumerate(args)]
    device = getattr(kernels, name)(*device_args, **kwargs)
    assert _kind(device) == _kind(host)
    pairs = zip(_to_host(device), host) if isinstance(host, tuple) else [(_to_host(device), host)]
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_wrong_arguments_fail_alike():
    """An unknown keyword or a missing argument is a TypeError naming it, for host and device arrays alike."""
    d = cuda.to_device(V)
    for bad, named in ((lambda a: kernels.sum(a, accurat=True), "'accurat'"), (lambda a: kernels.dot(a), "'y'"),
                       (lambda a: kernels.sum(a, stream=None), "'stream'")):
        for a in (V, d):
            with pytest.raises(TypeError, match=named):
                bad(a)


def test_wrong_scalars_and_parallel_fail_alike():
    """A parallel= other than True, False or None, and logistic_loss_grad's intercept as None or an array, raise the
    host's TypeError on DeviceArrays too (the twin ignored parallel='x' and took float() of the intercept)."""
    X = np.ones((4, 2))
    for a in (V, cuda.to_device(V)):
        with pytest.raises(TypeError, match="parallel must be True, False or None"):
            kernels.sum(a, parallel="x")
    for x in (X, cuda.to_device(X)):
        for wrong, what in ((None, "NoneType"), (np.array([1.0]), "an array of shape")):
            with pytest.raises(TypeError, match=f"intercept must be a real number; got {what}"):
                kernels.logistic_loss_grad(x, np.ones(4), np.ones(2), wrong)


def test_wrong_dtypes_and_shapes_fail_with_the_same_type():
    """Another dtype is a TypeError and another shape a ValueError, on host arrays and DeviceArrays alike (the
    twins raised ValueError for both)."""
    x64, x32, short = np.ones(6), np.ones(6, np.float32), np.ones(5)
    m64, m32 = np.ones((3, 2)), np.ones((3, 2), np.float32)
    cases = [
        (TypeError, lambda t: kernels.dot(t(x64), t(x32))),
        (ValueError, lambda t: kernels.dot(t(x64), t(short))),
        (TypeError, lambda t: kernels.axpy(2.0, t(x64), t(x64), out=t(x32))),
        (ValueError, lambda t: kernels.axpy(2.0, t(x64), t(x64), out=t(short))),
        (TypeError, lambda t: kernels.sqdist(t(m64), t(m32))),
        (ValueError, lambda t: kernels.sqdist(t(m64), t(np.ones((3, 3))))),
    ]
    for kind, call in cases:
        for to in (lambda a: a, cuda.to_device):
            with pytest.raises(kind):
                call(to)


def test_float32_reductions_keep_their_dtype():
    """A float32 DeviceArray's sum, min, max, dot and nrm2 are float32 scalars, as on the host."""
    v = V.astype(np.float32)
    d = cuda.to_device(v)
    for name in ("sum", "min", "max", "nrm2"):
        assert type(getattr(kernels, name)(d)) is type(getattr(kernels, name)(v)) is np.float32
    assert type(kernels.dot(d, d)) is np.float32
