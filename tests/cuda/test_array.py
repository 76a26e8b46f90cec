"""Tests for hpc.cuda.array: DeviceArray transfers, layout, copies and interop (CUDA array interface, DLPack)."""

from __future__ import annotations

import numpy as np
import pytest

from hpc import cuda
from hpc.cuda import _transfer

fallback_only = pytest.mark.skipif(cuda.is_available(), reason="checks the host fallback; this machine has a GPU")

DTYPES = [np.float32, np.float64, np.int8, np.int32, np.int64, np.uint16, np.complex128, np.bool_]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (7,), (3, 5), (2, 3, 4)])
def test_round_trip_shapes_and_dtypes(dtype: type, shape: tuple[int, ...], no_leaks: None) -> None:
    """to_device then get gives back the same values, shape and dtype, with C strides."""
    host = (np.arange(int(np.prod(shape))) % 3).astype(dtype).reshape(shape)
    a = cuda.to_device(host)
    assert a.shape == shape and a.dtype == np.dtype(dtype) and a.ndim == len(shape)
    assert a.c_contiguous and a.nbytes == host.nbytes and a.size == host.size
    if host.size > 1:
        assert a.strides == host.strides
    back = a.get()
    assert back.dtype == host.dtype and np.array_equal(back, host)


def test_non_contiguous_input_is_packed(no_leaks: None) -> None:
    """A strided host view is packed into a C-contiguous device array with the same values."""
    host = np.arange(40.0).reshape(5, 8)[::2, 1::3]
    a = cuda.to_device(host)
    assert a.c_contiguous and a.shape == (3, 3) and a.strides == (24, 8)
    assert np.array_equal(a.get(), host)


def test_strided_device_view_get(no_leaks: None) -> None:
    """get() of a DeviceArray with custom (even negative) strides returns the elements those strides pick."""
    base = cuda.to_device(np.arange(12.0))
    every_third = cuda.DeviceArray((4,), np.float64, strides=(24,), ptr=base.ptr, owner=base)
    assert not every_third.c_contiguous
    assert every_third.get().tolist() == [0.0, 3.0, 6.0, 9.0]
    backwards = cuda.DeviceArray((3,), np.float64, strides=(-8,), ptr=base.ptr + 88, owner=base)
    assert backwards.get().tolist() == [11.0, 10.0, 9.0]


def test_get_into_out_and_its_checks(no_leaks: None) -> None:
    """get(out=...) fills out; a wrong shape, dtype or layout raises ValueError naming what is needed."""
    a = cuda.to_device(np.arange(6.0).reshape(2, 3))
    out = np.empty((2, 3))
    assert a.get(out=out) is out and out[1, 2] == 5.0
    with pytest.raises(ValueError, match=r"C-contiguous float64 array of shape \(2, 3\)"):
        a.get(out=np.empty((3, 2)))
    with pytest.raises(ValueError, match="pinned"):
        a.get(out=out, stream=cuda.Stream())


def test_empty_zeros_copy_and_reshape(no_leaks: None) -> None:
    """empty/zeros allocate, copy_to and copy duplicate, reshape views the same memory."""
    z = cuda.zeros((4, 2), np.int32)
    assert np.array_equal(z.get(), np.zeros((4, 2), np.int32))
    src = cuda.to_device(np.arange(8, dtype=np.int32).reshape(4, 2))
    src.copy_to(z)
    assert np.array_equal(z.get(), np.arange(8).reshape(4, 2))
    flat = z.reshape(-1)
    assert flat.shape == (8,) and flat.ptr == z.ptr
    assert z.reshape(2, 4).get()[1, 0] == 4
    assert np.array_equal(src.copy().get(), src.get())
    e = cuda.empty_like(src)
    assert e.shape == src.shape and e.dtype == src.dtype
    with pytest.raises(ValueError, match="hold 8 elements"):
        z.reshape(3, 3)
    with pytest.raises(ValueError, match="dst must be a int32 DeviceArray of shape"):
        src.copy_to(cuda.empty(8, np.int32))


def test_bad_inputs_are_rejected() -> None:
    """Negative shapes and object arrays raise with the offending value in the message."""
    with pytest.raises(ValueError, match="negative"):
        cuda.empty((-1, 2))
    with pytest.raises(TypeError, match="objects"):
        cuda.to_device(np.array([object()]))
    with pytest.raises(TypeError, match="len"):
        len(cuda.to_device(np.float64(1.0)))


def test_async_round_trip_on_a_stream(no_leaks: None) -> None:
    """With a stream, to_device and get queue work; the pinned result is right after synchronize."""
    s = cuda.Stream()
    host = np.linspace(0, 1, 10_000)
    a = cuda.to_device(host, stream=s)
    host_copy = host.copy()
    host[:] = -1.0  # a pageable source may be reused at once: it was staged
    out = a.get(stream=s)
    s.synchronize()
    assert isinstance(out, cuda.PinnedArray)
    assert np.array_equal(out, host_copy)


@pytest.mark.parametrize("n", [0, 1, 1000, 4097, 12_288])
def test_staged_path_in_chunks(monkeypatch: pytest.MonkeyPatch, n: int, no_leaks: None) -> None:
    """Pageable copies above STAGE_MIN go through two pinned pieces of CHUNK bytes and arrive intact both ways."""
    monkeypatch.setattr(_transfer, "STAGE_MIN", 1024)
    monkeypatch.setattr(_transfer, "CHUNK", 4096)
    host = np.random.default_rng(n).standard_normal(n)
    a = cuda.to_device(host)
    assert np.array_equal(a.get(), host)
    _transfer.release_staging()


def test_pinned_source_goes_direct(no_leaks: None) -> None:
    """A pinned host array is copied without staging, synchronously and asynchronously."""
    p = cuda.pinned_empty(100, np.float32)
    p[...] = np.arange(100)
    assert np.array_equal(cuda.to_device(p).get(), p)
    s = cuda.Stream()
    a = cuda.to_device(p, stream=s)
    s.synchronize()
    assert np.array_equal(a.get(), p)


@fallback_only
def test_fallback_interfaces() -> None:
    """On the fallback the array offers __array_interface__ and CPU DLPack, and no __cuda_array_interface__."""
    a = cuda.to_device(np.arange(6.0).reshape(2, 3))
    assert not hasattr(a, "__cuda_array_interface__")
    iface = a.__array_interface__
    assert iface["shape"] == (2, 3) and iface["typestr"] == "<f8" and iface["version"] == 3
    assert iface["data"] == (a.ptr, False) and iface["strides"] is None
    view = np.asarray(a)
    assert view.ctypes.data == a.ptr and view[1, 2] == 5.0
    assert a.__dlpack_device__() == (1, 0)
    d = np.from_dlpack(a)
    assert d.ctypes.data == a.ptr and d.shape == (2, 3)
    strided = cuda.DeviceArray((3,), np.float64, strides=(16,), ptr=a.ptr, owner=a)
    assert strided.__array_interface__["strides"] == (16,)
    assert np.from_dlpack(strided).tolist() == [0.0, 2.0, 4.0]


@fallback_only
def test_fallback_accepts_foreign_dlpack() -> None:
    """asarray takes a NumPy array through DLPack without copying, strides included, and keeps it alive."""
    host = np.arange(20.0).reshape(4, 5)[:, ::2]
    a = cuda.asarray(host)
    assert a.ptr == host.ctypes.data and a.strides == host.strides and a.shape == (4, 3)
    assert np.array_equal(a.get(), host)
    assert cuda.asarray(a) is a
    assert np.array_equal(cuda.asarray([1.0, 2.0]).get(), [1.0, 2.0])  # no protocol: copied


def test_dlpack_refuses_copy_and_other_device() -> None:
    """__dlpack__ exports in place only, on its own device."""
    a = cuda.to_device(np.ones(3))
    with pytest.raises(BufferError, match="in place"):
        a.__dlpack__(copy=True)
    with pytest.raises(BufferError, match="dl_device"):
        a.__dlpack__(dl_device=(7, 3))


@pytest.mark.gpu
def test_gpu_cuda_array_interface_v3() -> None:
    """On a GPU the array exports CAI v3 with its pointer, shape, typestr and stream (1 = default)."""
    a = cuda.to_device(np.arange(6.0).reshape(2, 3))
    cai = a.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (2, 3) and cai["typestr"] == "<f8"
    assert cai["data"] == (a.ptr, False) and cai["stream"] == 1
    s = cuda.Stream()
    b = a.copy(stream=s)
    assert b.__cuda_array_interface__["stream"] == s.handle
    assert not hasattr(a, "__array_interface__")


@pytest.mark.gpu
def test_gpu_cupy_interop_both_ways() -> None:
    """CuPy reads our arrays without a copy (CAI and DLPack), and we read CuPy's."""
    cp = pytest.importorskip("cupy")
    a = cuda.to_device(np.arange(10.0))
    c = cp.asarray(a)
    assert int(c.data.ptr) == a.ptr and float(c.sum()) == 45.0
    d = cp.from_dlpack(a)
    assert int(d.data.ptr) == a.ptr
    theirs = cp.arange(5, dtype=cp.float32) * 2
    ours = cuda.asarray(theirs)
    assert ours.ptr == int(theirs.data.ptr)
    assert ours.get().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    ours_dl = cuda.asarray(_OnlyDLPack(theirs))
    assert ours_dl.get().tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]


class _OnlyDLPack:
    """Hides __cuda_array_interface__ so the DLPack import path is taken."""

    def __init__(self, inner: object) -> None:
        self.inner = inner

    def __dlpack__(self, **kw: object) -> object:
        return self.inner.__dlpack__(**kw)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.inner.__dlpack_device__()


@pytest.mark.gpu
def test_gpu_numba_cuda_interop_both_ways() -> None:
    """numba-cuda kernels write into our arrays through CAI, and we read numba device arrays."""
    numba_cuda = pytest.importorskip("numba.cuda")
    a = cuda.to_device(np.zeros(8))
    view = numba_cuda.as_cuda_array(a)

    @numba_cuda.jit
    def fill(x):  # pragma: no cover - compiled for the GPU
        i = numba_cuda.grid(1)
        if i < x.size:
            x[i] = i * 2.0

    fill[1, 8](view)
    numba_cuda.synchronize()
    assert a.get().tolist() == [2.0 * i for i in range(8)]
    theirs = numba_cuda.to_device(np.arange(4.0))
    assert cuda.asarray(theirs).get().tolist() == [0.0, 1.0, 2.0, 3.0]


@pytest.mark.gpu
def test_gpu_torch_reads_our_arrays() -> None:
    """torch takes our arrays through DLPack without a copy."""
    torch = pytest.importorskip("torch")
    a = cuda.to_device(np.arange(4.0))
    t = torch.from_dlpack(a)
    assert t.data_ptr() == a.ptr and t.sum().item() == 6.0


@pytest.mark.gpu
def test_gpu_large_round_trip_staged_and_pinned() -> None:
    """64 MiB go to the GPU and back through the staged path and through pinned memory, bit for bit."""
    host = np.random.default_rng(0).standard_normal(1 << 23)
    assert np.array_equal(cuda.to_device(host).get(), host)
    p = cuda.pinned_empty(host.shape, host.dtype)
    p[...] = host
    assert np.array_equal(cuda.to_device(p).get(out=cuda.pinned_empty(host.shape, host.dtype)), host)


def test_views_of_a_freed_array_are_refused() -> None:
    """A reshape view, fill_zero, copy_to into and reshape of a freed array raise instead of touching freed memory."""
    a = cuda.to_device(np.arange(12.0))
    view = a.reshape(3, 4)
    a.free()
    for use in (view.get, view.fill_zero, a.fill_zero, lambda: cuda.zeros(12).copy_to(a), lambda: a.reshape(4, 3)):
        with pytest.raises(RuntimeError, match="after free"):
            use()


@fallback_only
def test_dlpack_refuses_non_native_byte_order() -> None:
    """DLPack has no byte order: a big-endian array is refused, not exported as garbage; the interface keeps it."""
    a = cuda.to_device(np.arange(3, dtype=">f8"))
    with pytest.raises(BufferError, match="native byte order"):
        np.from_dlpack(a)
    assert np.asarray(a).tolist() == [0.0, 1.0, 2.0]


@fallback_only
def test_array_interface_keeps_structured_fields() -> None:
    """np.asarray of a structured DeviceArray sees its fields (the interface carries descr)."""
    host = np.zeros(3, dtype=[("a", "f8"), ("b", "i4")])
    host["b"] = [1, 2, 3]
    view = np.asarray(cuda.to_device(host))
    assert view.dtype == host.dtype and view["b"].tolist() == [1, 2, 3]


def test_asarray_copies_a_read_only_array() -> None:
    """A read-only NumPy array (which refuses DLPack export) is copied rather than raising."""
    host = np.arange(4.0)
    host.flags.writeable = False
    a = cuda.asarray(host)
    assert a.get().tolist() == [0.0, 1.0, 2.0, 3.0]


def test_stream_must_be_a_stream() -> None:
    """A stream argument that is not a Stream raises TypeError before any work."""
    with pytest.raises(TypeError, match="hpc.cuda.Stream or None"):
        cuda.to_device(np.ones(3), stream=5)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [slice(1, 3), slice(None, 2), slice(-2, None), slice(3, 1), slice(0, 99), 2, -1])
def test_row_views_match_numpy(key: object, no_leaks: None) -> None:
    """a[i] and a[lo:hi] view the same rows NumPy's indexing picks; writes through a view reach the array."""
    host = np.arange(20.0).reshape(4, 5)
    a = cuda.to_device(host)
    view = a[key]
    want = host[key]
    assert view.shape == want.shape and view.dtype == want.dtype
    assert np.array_equal(view.get(), want)
    if view.size:
        assert view.c_contiguous
        view.set(np.full(want.shape, -1.0))
        changed = host.copy()
        changed[key] = -1.0
        assert np.array_equal(a.get(), changed)


def test_row_views_of_views_and_their_errors(no_leaks: None) -> None:
    """Row views compose, die with their array, and refuse steps, tuples and out-of-range rows."""
    a = cuda.to_device(np.arange(24, dtype=np.float32).reshape(6, 4))
    assert np.array_equal(a[1:5][1:3].get(), np.arange(24, dtype=np.float32).reshape(6, 4)[2:4])
    assert a[2][3].shape == () and float(a[2][3].get()) == 11.0
    for bad in (slice(0, 4, 2), (0, 1), [0, 1], 6, -7, True):
        with pytest.raises(IndexError):
            a[bad]
    with pytest.raises(IndexError, match="0-d"):
        a[0][0][0]
    rows = a[1:3]
    a.free()
    with pytest.raises(RuntimeError, match="after free"):
        rows.get()


@pytest.mark.parametrize(
    "make",
    [lambda: cuda.empty(10, object), lambda: cuda.zeros(3, object), lambda: cuda.empty_like(np.empty(3, object))],
    ids=["empty", "zeros", "empty_like"],
)
def test_object_dtypes_are_refused_by_every_constructor(make):
    """Device memory holds bytes: an object array there read its uninitialised bytes as pointers (a segfault).
    Every constructor refuses it, as to_device does."""
    with pytest.raises(TypeError, match="holds numbers, not objects"):
        make()


@pytest.mark.parametrize(
    "shape, new",
    [((0,), (0, -1)), ((0,), (-1, 0)), ((0, 3), (-1,)), ((0,), (3, -1)), ((6,), (-1, 4)), ((6,), (-1, -1)),
     ((6,), (2, -1)), ((0,), (-1,)), ((12,), (3, -1, 2))],
)  # fmt: skip
def test_reshape_with_an_unknown_size_follows_numpy(shape, new):
    """-1 takes NumPy's meaning: one at most, and refused where the other sizes do not divide the size or hold a 0
    (an empty array into (0, -1) made up a (0, 0) shape)."""
    try:
        want = np.empty(shape).reshape(new).shape
    except ValueError:
        with pytest.raises(ValueError, match="reshape|unknown dimension"):
            cuda.empty(shape).reshape(new)
    else:
        assert cuda.empty(shape).reshape(new).shape == want


def test_masked_arrays_are_refused_not_unmasked():
    """A masked array's mask cannot travel: to_device and set() used to copy its data alone, bringing the masked
    values back silently. They refuse it; its filled() copy goes."""
    masked = np.ma.array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(TypeError, match=r"masked array.*host.filled\(value\)"):
        cuda.to_device(masked)
    with pytest.raises(TypeError, match="masked array"):
        cuda.zeros(3).set(masked)
    with pytest.raises(TypeError, match="masked array"):  # on the fallback it shared the data through DLPack
        cuda.asarray(masked)
    assert cuda.to_device(masked.filled(0.0)).get().tolist() == [1.0, 0.0, 3.0]


def test_free_of_a_view_raises_and_the_base_frees():
    """free() on a view used to do nothing (the memory stayed in use, the view usable): it raises, naming the base."""
    base = cuda.to_device(np.ones(100))
    view = base.reshape(10, 10)
    with pytest.raises(ValueError, match="free the DeviceArray that owns the memory"):
        view.free()
    base.free()


def test_a_write_through_a_view_is_the_bases_last_write():
    """The stream that last wrote the memory is shared by an array and its views: a write through a view orders the
    base's later readers, and views made earlier see writes through the base (each view had its own)."""
    stream = cuda.Stream()
    base = cuda.zeros((4, 3))
    earlier = base[0:1]
    base[1:3].set(np.ones((2, 3)), stream=stream)
    assert base.stream is stream and earlier.stream is stream
    other = cuda.Stream()
    base.set(np.zeros((4, 3)), stream=other)
    assert earlier.stream is other and base.reshape(12).stream is other


def test_dlpack_of_a_dtype_it_cannot_carry_raises_buffer_error():
    """The DLPack standard's error for an array it cannot export is BufferError (it was TypeError)."""
    for dtype in ("datetime64[s]", ">f8", "U3"):
        with pytest.raises(BufferError, match="for DLPack"):
            cuda.zeros(2, dtype).__dlpack__()


@fallback_only
@pytest.mark.parametrize("export", ["from_dlpack", "asarray", "view_asarray"])
def test_free_of_an_exported_array_keeps_the_memory_for_the_export(export: str, no_leaks: None) -> None:
    """free() of an array a NumPy array still reads (DLPack or the array interface) retires it: hpc refuses it at
    once, the export keeps reading the data (it had read freed memory and crashed), and the block goes back to the
    pool when the export goes."""
    import gc

    d = cuda.to_device(np.arange(100_000.0))
    if export == "from_dlpack":
        f = np.from_dlpack(d)
    elif export == "asarray":
        f = np.asarray(d)
    else:
        f = np.asarray(d[10:])
    pool = cuda.device_pool()
    live = pool.stats().current
    d.free()
    with pytest.raises(RuntimeError, match="after free"):
        d.get()
    assert pool.stats().current == live  # still held for the export
    junk = [np.full(100_000, 7.0) for _ in range(5)]  # would reuse the block, had it gone back
    np.testing.assert_array_equal(f, np.arange(10.0 if export == "view_asarray" else 0.0, 100_000.0))
    del d, f, junk
    gc.collect()
    assert pool.stats().current == live - 800_000


def test_free_of_an_array_never_exported_gives_the_memory_back_at_once(no_leaks: None) -> None:
    pool = cuda.device_pool()
    d = cuda.to_device(np.arange(1000.0))
    live = pool.stats().current
    d.get()  # a copy, not an export
    d.free()
    assert pool.stats().current == live - 8000


def test_get_refuses_a_read_only_or_foreign_out() -> None:
    """get(out=) refused a wrong shape but wrote into read-only memory, even an immutable bytes object."""
    d = cuda.to_device(np.arange(1.0, 7.0))
    b = bytes(48)
    with pytest.raises(ValueError, match="read-only"):
        d.get(out=np.frombuffer(b))
    assert b == bytes(48)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        d.get(out=[0.0] * 6)
    with pytest.raises(TypeError, match="dst must be an hpc.cuda.DeviceArray"):
        d.copy_to(np.empty(6))


@pytest.mark.parametrize("make", [
    lambda: cuda.empty((2.5,)), lambda: cuda.empty(2.5), lambda: cuda.to_device(np.ones(12)).reshape(12.0),
    lambda: cuda.pinned_empty(2.5), lambda: cuda.empty_like([1, 2]), lambda: cuda.empty(3, device="0"),
])
def test_shapes_sizes_and_devices_of_the_wrong_type_raise_type_error(make) -> None:
    """A float size is no size (NumPy refuses it; empty((2.5,)) had made shape (2,)); a string is no device."""
    with pytest.raises(TypeError):
        make()


def test_device_arrays_pickle_and_deepcopy_through_the_host(no_leaks: None) -> None:
    """As CuPy's arrays: pickle and copy.deepcopy copy the data (they had raised about a lock)."""
    import copy
    import pickle

    d = cuda.to_device(np.arange(6.0).reshape(2, 3))
    for twin in (pickle.loads(pickle.dumps(d)), copy.deepcopy(d)):
        assert isinstance(twin, cuda.DeviceArray) and twin.ptr != d.ptr
        np.testing.assert_array_equal(twin.get(), d.get())


@fallback_only
def test_dlpack_import_refuses_widths_numpy_cannot_hold_quietly() -> None:
    """A capsule of a 128-bit float (NumPy's float128 is x87's, not IEEE quad), a 1-bit bool or a width that is no
    whole byte is refused with TypeError, without a noisy error from the consumed tensor's cleanup; longdouble is
    not exported."""
    import ctypes

    from hpc.cuda import _dlpack

    with pytest.raises(BufferError, match="DLPack"):
        _dlpack.dtype_to_dl(np.dtype(np.longdouble))
    keep = np.arange(4.0)
    for code, bits in ((2, 128), (6, 1), (0, 12)):
        capsule = _dlpack.export(keep.ctypes.data, (4,), (8,), np.float64, (1, 0), keep)
        address = ctypes.pythonapi.PyCapsule_GetPointer(ctypes.py_object(capsule), b"dltensor")
        t = _dlpack._DLManagedTensor.from_address(address).dl_tensor
        t.dtype.code, t.dtype.bits = code, bits
        with pytest.raises(TypeError, match="not supported"):
            _dlpack.import_capsule(capsule)


@pytest.mark.parametrize("call", ["get", "set", "copy", "fill_zero", "copy_to"])
def test_a_bad_stream_is_a_type_error_after_a_write_on_a_stream(call: str) -> None:
    """An array last written on a Stream waited for it on the stream= given before that was checked: an int gave
    AttributeError ('int' object has no attribute 'wait_event')."""
    s = cuda.Stream()
    a = cuda.to_device(np.ones(4), stream=s)
    b = cuda.to_device(np.ones(4))
    calls = {
        "get": lambda: a.get(stream=0),
        "set": lambda: a.set(np.zeros(4), stream=0),
        "copy": lambda: a.copy(stream=0),
        "fill_zero": lambda: a.fill_zero(stream=0),
        "copy_to": lambda: b.copy_to(a, stream=0),
    }
    with pytest.raises(TypeError, match="stream must be an hpc.cuda.Stream or None; got 0"):
        calls[call]()
    s.synchronize()


def test_truth_value_is_numpys() -> None:
    """Without __bool__, `if a:` tested the length: [0.0] was True, [0.0, 1.0] too, and a 0-d array raised."""
    assert bool(cuda.to_device(np.array([0.0]))) is False
    assert bool(cuda.to_device(np.array(1.0))) is True and bool(cuda.to_device(np.array(0.0))) is False
    for n in (0, 2):
        with pytest.raises(ValueError, match=f"of {n} elements is ambiguous"):
            bool(cuda.to_device(np.zeros(n)))


def test_numpy_conversion_on_a_gpu_raises_and_on_the_fallback_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a GPU (no __array_interface__) np.asarray had built an object array of 0-d DeviceArrays through len()
    and indexing, and to_device(a DeviceArray) failed with "not objects"; it raises TypeError as CuPy does, and
    to_device / set take a DeviceArray through the host. On the fallback __array__ is the shared memory."""
    from hpc.cuda import _backend

    a = cuda.to_device(np.arange(4.0))
    view = a.__array__()
    view[0] = 7.0
    assert a.get()[0] == 7.0
    assert a.__array__(np.float32).dtype == np.float32 and a.__array__(copy=True) is not view
    with pytest.raises(ValueError, match="without a copy"):
        a.__array__(np.float32, copy=False)
    copied = cuda.to_device(a)
    assert copied.ptr != a.ptr and copied.get().tolist() == [7.0, 1.0, 2.0, 3.0]
    monkeypatch.setattr(_backend, "on_gpu", lambda: True)
    with pytest.raises(TypeError, match=r"use get\(\)"):
        np.asarray(a)
    assert cuda.zeros(4).set(a).get().tolist() == [7.0, 1.0, 2.0, 3.0]
