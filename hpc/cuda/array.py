"""``DeviceArray``: an n-d array in device memory (shape, dtype, strides), like a minimal ``cupy.ndarray``.

It moves data (:func:`to_device`, :meth:`DeviceArray.get`, :meth:`DeviceArray.copy_to`), exchanges memory with other
GPU libraries both ways (``__cuda_array_interface__`` v3 and DLPack) and is what :mod:`hpc.cuda.twins` computes on.
On the host fallback the memory is host memory: the array offers ``__array_interface__`` and a CPU DLPack capsule
instead of ``__cuda_array_interface__``, so no library mistakes it for device memory.
"""

from __future__ import annotations

import operator as _operator
from typing import Any as _Any

import numpy as _np

from hpc.cuda import _backend, _dlpack, _transfer, context, memory
from hpc.cuda.stream import Stream, handle_of

__all__ = ["DeviceArray", "asarray", "empty", "empty_like", "to_device", "zeros"]


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, acc = [], itemsize
    for n in reversed(shape):
        strides.append(acc)
        acc *= max(n, 1)
    return tuple(reversed(strides))


class DeviceArray:
    """An n-d array in the memory of one device; made by :func:`to_device`, :func:`empty` or :func:`asarray`.

    Attributes:
        shape (tuple[int, ...]), dtype (numpy.dtype), strides (tuple[int, ...]): strides in bytes, as NumPy's.
        ptr (int): the device address of element ``[0, ..., 0]``.
        device_index (int): the device that holds the memory.
        stream (Stream or None): the stream that last wrote the array's memory (``None``: the default stream),
            through it or through any view of the same memory: a view and the array it views share it. Consumers
            of ``__cuda_array_interface__`` and DLPack are told to wait for it.

    .. versionadded:: 0.1.0
    """

    __array_priority__ = -1.0  # never let NumPy's operators treat this as a host array

    def __init__(
        self,
        shape: _Any,
        dtype: _Any,
        *,
        strides: tuple[int, ...] | None = None,
        ptr: int | None = None,
        owner: object = None,
        device_index: int | None = None,
        stream: Stream | None = None,
    ) -> None:
        self.shape = memory.normalize_shape(shape)
        self.dtype = _np.dtype(dtype)
        if self.dtype.hasobject:  # device memory holds bytes: pointers to Python objects would be garbage there
            raise TypeError(f"a DeviceArray holds numbers, not objects; got dtype {self.dtype}")
        self.strides = _c_strides(self.shape, self.dtype.itemsize) if strides is None else tuple(map(int, strides))
        if len(self.strides) != len(self.shape):
            raise ValueError(f"strides must have one entry per dimension {self.shape}; got {strides!r}")
        self.device_index = context.device_index(device_index)
        if ptr is None:
            lo, hi = self._extent()
            owner = memory.device_pool(self.device_index).allocate(hi - lo)
            ptr = owner.ptr - lo
        self.ptr = int(ptr)
        self._owner = owner
        self._exported = False  # on the array that owns the memory: a NumPy view or a DLPack capsule was made of it
        self._last_writer: Stream | None = None
        self.stream = stream

    @property
    def stream(self) -> Stream | None:
        """The stream that last wrote this memory, through this array or a view of the same memory."""
        return self._root()._last_writer

    @stream.setter
    def stream(self, value: Stream | None) -> None:
        self._root()._last_writer = value

    def _root(self) -> DeviceArray:
        # the array that owns the memory: a write through a view must order the base's later readers too
        array = self
        while isinstance(array._owner, DeviceArray):
            array = array._owner
        return array

    # --- description
    @property
    def ndim(self) -> int:
        """int: the number of dimensions."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """int: the number of elements."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def itemsize(self) -> int:
        """int: bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """int: ``size * itemsize``."""
        return self.size * self.itemsize

    @property
    def c_contiguous(self) -> bool:
        """bool: whether the elements are dense in C order."""
        return self.size <= 1 or all(
            n == 1 or s == c for n, s, c in zip(self.shape, self.strides, _c_strides(self.shape, self.itemsize))
        )

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d DeviceArray")
        return self.shape[0]

    def __bool__(self) -> bool:
        """The truth of the one element, as NumPy and CuPy (copied to the host; waits for queued writes).

        Raises:
            ValueError: the array does not hold exactly one element (ambiguous; ``if a:`` would otherwise test its
                length, as Python does for objects without ``__bool__``).
        """
        if self.size != 1:
            raise ValueError(f"the truth value of a DeviceArray of {self.size} elements is ambiguous; "
                             "test its get() with .any() or .all()")
        return bool(self.get().reshape(()))

    def _extent(self) -> tuple[int, int]:
        """Return the byte range ``[lo, hi)`` the elements span, relative to ``ptr``."""
        if self.size == 0:
            return 0, 0
        lo = sum(min(0, (n - 1) * s) for n, s in zip(self.shape, self.strides))
        hi = sum(max(0, (n - 1) * s) for n, s in zip(self.shape, self.strides)) + self.itemsize
        return lo, hi

    def _check_live(self) -> None:
        # A view (reshape, or a DeviceArray made over another one) is dead once the array owning the memory is.
        owner = self._owner
        while isinstance(owner, DeviceArray):
            owner = owner._owner
        if isinstance(owner, memory.Buffer) and owner.freed:
            raise RuntimeError("cannot use a DeviceArray after free()")

    # --- transfers
    def get(self, out: _np.ndarray | None = None, stream: Stream | None = None) -> _np.ndarray:
        """Return the data as a NumPy array (into ``out`` when given).

        Args:
            out (numpy.ndarray or None): C-contiguous, of this shape and dtype.
            stream (Stream or None): with a stream the copy is queued and ``get`` returns at once; the result
                (a pinned array when ``out`` is ``None``) is valid after ``stream.synchronize()``.

        Raises:
            TypeError: ``out`` is not a NumPy array.
            ValueError: ``out`` is read-only, has another shape or dtype, or is not C-contiguous, or is pageable with
                a stream.

        .. note:: Without a stream this synchronizes (the copy is ordered after the default stream's work).
        """
        self._check_live()
        if out is None:
            make = _np.empty if stream is None else memory.pinned_empty
            out = make(self.shape, self.dtype)
        elif not isinstance(out, _np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray or None; got {type(out).__name__}")
        elif not out.flags.writeable:
            raise ValueError("out is read-only")
        elif out.shape != self.shape or out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be a C-contiguous {self.dtype} array of shape {self.shape}; "
                f"got {out.dtype} {out.shape} (c_contiguous={out.flags.c_contiguous})"
            )
        self._sync_for(stream)
        if self.c_contiguous:
            _transfer.dtoh(out, self.ptr, self.device_index, stream)
            return out
        if stream is not None:
            raise ValueError("an asynchronous get needs a C-contiguous DeviceArray; copy_to() one first")
        lo, hi = self._extent()
        span = _np.empty(hi - lo, dtype=_np.uint8)
        _transfer.dtoh(span, self.ptr + lo, self.device_index)
        out[...] = _np.ndarray(self.shape, self.dtype, buffer=span, offset=-lo, strides=self.strides)
        return out

    def set(self, host: _Any, stream: Stream | None = None) -> DeviceArray:
        """Copy the host array ``host`` (same shape and dtype) into this array and return it.

        With a stream the copy is queued; a pageable ``host`` is staged first, so it may be reused at once.
        """
        self._check_live()
        host = _host_array(host)
        if host.shape != self.shape or host.dtype != self.dtype:
            raise ValueError(f"host must be a {self.dtype} array of shape {self.shape}; got {host.dtype} {host.shape}")
        if not self.c_contiguous:
            raise ValueError("set() needs a C-contiguous DeviceArray")
        if not host.flags.c_contiguous:
            host = _np.ascontiguousarray(host)
        self._sync_for(stream)
        _transfer.htod(self.ptr, host, self.device_index, stream)
        self.stream = stream
        return self

    def copy_to(self, dst: DeviceArray | None = None, stream: Stream | None = None) -> DeviceArray:
        """Copy into the device array ``dst`` (a new C-contiguous one when ``None``) and return it.

        Raises:
            ValueError: ``dst`` has another shape or dtype, or either array is not C-contiguous.

        .. note:: Queued on ``stream`` (the default stream when ``None``); never blocks the host.
        """
        self._check_live()
        if dst is None:
            dst = DeviceArray(self.shape, self.dtype, device_index=self.device_index)
        elif not isinstance(dst, DeviceArray):
            raise TypeError(f"dst must be an hpc.cuda.DeviceArray or None (get() copies to the host); got "
                            f"{type(dst).__name__}")
        dst._check_live()
        if dst.shape != self.shape or dst.dtype != self.dtype:
            raise ValueError(f"dst must be a {self.dtype} DeviceArray of shape {self.shape}; got {dst!r}")
        if not (self.c_contiguous and dst.c_contiguous):
            raise ValueError("copy_to needs C-contiguous arrays on both sides")
        self._sync_for(stream)
        dst._sync_for(stream)
        with context.active(self.device_index):
            _backend.get().dtod(dst.ptr, self.ptr, self.nbytes, handle_of(stream))
        dst.stream = stream
        return dst

    def copy(self, stream: Stream | None = None) -> DeviceArray:
        """Return a new C-contiguous device copy of a C-contiguous array (see :meth:`copy_to`).

        Raises:
            ValueError: the array is strided (one taken in through DLPack or ``__cuda_array_interface__``).
        """
        return self.copy_to(None, stream)

    def fill_zero(self, stream: Stream | None = None) -> DeviceArray:
        """Set every byte of a C-contiguous array to zero (``cuMemsetD8``) and return it."""
        self._check_live()
        if not self.c_contiguous:
            raise ValueError("fill_zero needs a C-contiguous DeviceArray")
        self._sync_for(stream)
        with context.active(self.device_index):
            _backend.get().memset(self.ptr, 0, self.nbytes, handle_of(stream))
        self.stream = stream
        return self

    def reshape(self, *shape: _Any) -> DeviceArray:
        """Return a view of a C-contiguous array with another shape of the same size (``-1`` allowed once)."""
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        try:
            shape = tuple(_operator.index(n) for n in shape)
        except TypeError:
            raise TypeError(f"shape must be ints or one tuple of ints; got {shape!r}") from None
        if shape.count(-1) > 1:
            raise ValueError(f"shape can hold only one unknown dimension (-1); got {shape!r}")
        if -1 in shape:  # NumPy's rule: the other sizes must divide the size, and none may be 0 (-1 is then unknown)
            known = 1
            for n in shape:
                known *= n if n != -1 else 1
            if known <= 0 or self.size % known:
                raise ValueError(f"cannot reshape a DeviceArray of {self.size} elements into shape {shape!r}")
            shape = tuple(self.size // known if n == -1 else n for n in shape)
        new = memory.normalize_shape(shape)
        size = 1
        for n in new:
            size *= n
        if size != self.size:
            raise ValueError(f"shape must hold {self.size} elements; got {shape!r}")
        if not self.c_contiguous:
            raise ValueError("reshape needs a C-contiguous DeviceArray")
        self._check_live()
        return DeviceArray(
            new, self.dtype, ptr=self.ptr, owner=self, device_index=self.device_index, stream=self.stream
        )

    def __getitem__(self, key: _Any) -> DeviceArray:
        """Return a view of rows: ``a[i]`` (one row, shape ``shape[1:]``) or ``a[lo:hi]`` (step 1), as NumPy does.

        Views share the memory (writes show through) and keep the array alive. Only the first axis is indexed:
        other keys (steps, tuples, arrays) raise ``IndexError``.
        """
        if not self.shape:
            raise IndexError("a 0-d DeviceArray cannot be indexed")
        n = self.shape[0]
        if isinstance(key, slice):
            lo, hi, step = key.indices(n)
            if step != 1:
                raise IndexError(f"DeviceArray row slices take step 1; got {key.step!r}")
            hi = max(lo, hi)
            shape, offset = (hi - lo, *self.shape[1:]), lo
            strides = self.strides
        elif isinstance(key, (int, _np.integer)) and not isinstance(key, bool):
            offset = int(key) + n if key < 0 else int(key)
            if not 0 <= offset < n:
                raise IndexError(f"index {key} is out of bounds for axis 0 with size {n}")
            shape, strides = self.shape[1:], self.strides[1:]
        else:
            raise IndexError(f"a DeviceArray takes an int or a slice of rows; got {key!r}")
        self._check_live()
        ptr = self.ptr + offset * self.strides[0] if offset < n else self.ptr
        return DeviceArray(
            shape, self.dtype, strides=strides, ptr=ptr, owner=self, device_index=self.device_index, stream=self.stream
        )

    def free(self) -> None:
        """Give the memory back to the pool now instead of when the array is collected.

        After ``free`` the array (and its views) raise ``RuntimeError`` when used. Memory that was exported (a
        NumPy array made with ``numpy.asarray`` or ``numpy.from_dlpack``, a DLPack capsule, or
        ``__cuda_array_interface__``) may still be read through the export, which holds this array alive: it goes
        back to the pool when the last export and this array are gone, and counts as live until then. hpc cannot see
        a NumPy view go: once exported (even by a NumPy function given the array), the memory stays until this
        array is collected.

        Raises:
            ValueError: the array is a view (``reshape``, a slice) of another DeviceArray: free that one, which owns
                the memory (freeing it leaves every view dangling). An array over memory hpc did not allocate (from
                DLPack or ``__cuda_array_interface__``) has nothing to give back: ``free`` does nothing there.

        .. note:: No synchronization: queued work must not use the array any more.
        """
        if isinstance(self._owner, DeviceArray):
            raise ValueError("free() of a view: free the DeviceArray that owns the memory (its base), not a view of it")
        if isinstance(self._owner, memory.Buffer):
            if self._exported:
                self._owner.retire()
            else:
                self._owner.free()

    def __reduce__(self) -> tuple[_Any, tuple[_Any, ...]]:
        # pickle and copy.deepcopy: the data travel through the host, and come back on the current device (CuPy's way)
        return to_device, (self.get(),)

    def _sync_for(self, stream: Stream | None) -> None:
        # Work on `stream` that reads or writes this array must come after the work that last wrote it.
        handle_of(stream)  # a stream= that is no Stream: the TypeError every call gives, before it is used
        if self.stream is not None and self.stream is not stream:
            if stream is None:
                self.stream.synchronize()
            else:
                stream.wait_event(self.stream.record())

    # --- interop
    def _interface(self, version: int) -> dict[str, _Any]:
        out = {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self.ptr if self.size else 0, False),
            "strides": None if self.c_contiguous else self.strides,
            "version": version,
        }
        if self.dtype.fields is not None:
            out["descr"] = self.dtype.descr  # typestr alone ("|V12") would lose the fields
        return out

    @property
    def __cuda_array_interface__(self) -> dict[str, _Any]:
        """dict: the CUDA Array Interface v3, with ``stream`` (1 for the default stream); only on a GPU."""
        if not _backend.on_gpu():
            raise AttributeError("no __cuda_array_interface__ on the host fallback: the memory is host memory")
        self._check_live()
        self._root()._exported = True
        out = self._interface(3)
        out["stream"] = 1 if self.stream is None else self.stream.handle
        return out

    @property
    def __array_interface__(self) -> dict[str, _Any]:
        """dict: NumPy's array interface (v3) over the same memory; only on the host fallback."""
        if _backend.on_gpu():
            raise AttributeError("no __array_interface__ on a GPU: use get() to copy to the host")
        self._check_live()
        self._root()._exported = True
        return self._interface(3)

    def __array__(self, dtype: _Any = None, copy: bool | None = None) -> _np.ndarray:
        """NumPy's conversion: the array over the same memory on the host fallback (where ``__array_interface__``,
        which NumPy asks first, gives it); on a GPU a ``TypeError``, as CuPy's (NumPy would otherwise build an
        object array of 0-d DeviceArrays through ``len`` and indexing)."""
        if _backend.on_gpu():
            raise TypeError("a DeviceArray on a GPU does not convert to NumPy implicitly: use get() (a copy to the "
                            "host)")
        view = _np.asarray(self)  # through __array_interface__
        if dtype is not None and _np.dtype(dtype) != view.dtype:
            if copy is False:
                raise ValueError(f"a {view.dtype} DeviceArray cannot become {_np.dtype(dtype)} without a copy")
            return view.astype(dtype)
        return view.copy() if copy else view

    def __dlpack_device__(self) -> tuple[int, int]:
        """Return ``(kDLCUDA, device)`` on a GPU and ``(kDLCPU, 0)`` on the host fallback."""
        kind = _backend.get().dlpack_device_type
        return (kind, self.device_index if kind == _dlpack.KDLCUDA else 0)

    def __dlpack__(self, *, stream: _Any = None, max_version: _Any = None, dl_device: _Any = None, copy: _Any = None):
        """Return a DLPack capsule over this array's memory (zero-copy).

        Args:
            stream (int or None): the consumer's stream; unless it is ``-1``, hpc makes the data ready for it
                (by waiting for the stream that last wrote this array).

        Raises:
            BufferError: ``copy=True`` or another ``dl_device`` was asked for (hpc exports in place only).
        """
        self._check_live()
        if copy:
            raise BufferError("hpc.cuda exports DLPack in place only; copy=True is not supported")
        if dl_device is not None and tuple(dl_device) != self.__dlpack_device__():
            raise BufferError(f"dl_device must be {self.__dlpack_device__()}; got {dl_device!r}")
        if stream != -1 and self.stream is not None:
            self.stream.synchronize()
        self._root()._exported = True
        return _dlpack.export(self.ptr, self.shape, self.strides, self.dtype, self.__dlpack_device__(), self)

    def __repr__(self) -> str:
        where = "host fallback" if not _backend.on_gpu() else f"device {self.device_index}"
        return f"<hpc.cuda.DeviceArray shape={self.shape} dtype={self.dtype} on {where}>"


def empty(shape: _Any, dtype: _Any = float, *, device: _Any = None) -> DeviceArray:
    """Return an uninitialised C-contiguous :class:`DeviceArray` from the device's pool.

    .. seealso:: :func:`numpy.empty`

    .. versionadded:: 0.1.0
    """
    return DeviceArray(shape, dtype, device_index=context.device_index(device))


def zeros(shape: _Any, dtype: _Any = float, *, device: _Any = None, stream: Stream | None = None) -> DeviceArray:
    """Return a C-contiguous :class:`DeviceArray` of zeros.

    .. versionadded:: 0.1.0
    """
    return empty(shape, dtype, device=device).fill_zero(stream)


def empty_like(a: DeviceArray | _np.ndarray, dtype: _Any = None) -> DeviceArray:
    """Return an uninitialised C-contiguous :class:`DeviceArray` of ``a``'s shape (and dtype)."""
    if not isinstance(a, (DeviceArray, _np.ndarray)):
        raise TypeError(f"a must be an hpc.cuda.DeviceArray or a numpy.ndarray; got {type(a).__name__}")
    return DeviceArray(a.shape, a.dtype if dtype is None else dtype, device_index=getattr(a, "device_index", None))


def _refuse_masked(host: _Any) -> None:
    """Raise TypeError for a masked array: its mask cannot travel, and its data alone would bring the masked values
    back."""
    if isinstance(host, _np.ma.MaskedArray):
        raise TypeError(
            "host is a masked array, whose mask a DeviceArray cannot hold: pass host.filled(value) or host.data"
        )


def _host_array(host: _Any) -> _np.ndarray:
    """``host`` as an ndarray (a PinnedArray stays one); a masked array is refused (:func:`_refuse_masked`); a
    DeviceArray comes through the host (on a GPU NumPy cannot read it in place), the same on both drivers."""
    if isinstance(host, DeviceArray):
        return host.get()
    _refuse_masked(host)
    return _np.asanyarray(host)


def to_device(host: _Any, stream: Stream | None = None, *, device: _Any = None) -> DeviceArray:
    """Return a C-contiguous :class:`DeviceArray` holding a copy of the host array ``host``.

    Args:
        host (array_like): any NumPy-convertible data; a non-contiguous array is packed first.
        stream (Stream or None): with a stream the copy is queued and this returns at once; a pageable ``host``
            is staged through pinned memory first, so it may be changed right after the call.
        device (int or Device or None): the target device; default: the current.

    .. note:: Without a stream this returns once the data is on the device. Pageable arrays of 4 MiB and more
       move through pinned staging buffers, so they reach close to pinned speed.

    .. versionadded:: 0.1.0
    """
    host = _host_array(host)
    if host.dtype.hasobject:
        raise TypeError(f"host must hold numbers, not objects; got dtype {host.dtype}")
    out = DeviceArray(host.shape, host.dtype, device_index=context.device_index(device))
    return out.set(host, stream)


def asarray(obj: _Any, *, stream: Stream | None = None) -> DeviceArray:
    """Return ``obj`` as a :class:`DeviceArray`, sharing memory where it can.

    Accepted: a :class:`DeviceArray` (returned as is); an object with ``__cuda_array_interface__`` (CuPy,
    numba-cuda, torch; on a GPU); an object with ``__dlpack__`` on this driver's device kind (on the fallback,
    NumPy arrays and any CPU DLPack producer); anything else is copied with :func:`to_device`. Foreign memory is
    not counted in hpc's pools; the result keeps ``obj`` alive.

    .. versionadded:: 0.1.0
    """
    if isinstance(obj, DeviceArray):
        return obj
    _refuse_masked(obj)  # its DLPack export would share the data and drop the mask
    driver = _backend.get()
    cai = getattr(obj, "__cuda_array_interface__", None) if driver.name == "cuda" else None
    if cai is not None:
        return _from_cai(obj, cai)
    if hasattr(obj, "__dlpack__") and hasattr(obj, "__dlpack_device__"):
        kind, dev = obj.__dlpack_device__()
        if int(kind) == driver.dlpack_device_type:
            # hpc's work goes on `stream` (or the default stream, 1 in the protocol): the producer orders for it
            consumer_stream = None if kind == _dlpack.KDLCPU else (1 if stream is None else stream.handle)
            try:
                capsule = obj.__dlpack__(stream=consumer_stream)
            except BufferError:
                if kind != _dlpack.KDLCPU:
                    raise
                capsule = None  # host memory it will not share (a read-only NumPy array): copied below
            if capsule is not None:
                t = _dlpack.import_capsule(capsule)
                index = int(dev) if kind == _dlpack.KDLCUDA else 0
                return DeviceArray(t.shape, t.dtype, strides=t.strides, ptr=t.ptr, owner=(t, obj), device_index=index)
    return to_device(obj, stream)


def _from_cai(obj: object, cai: dict[str, _Any]) -> DeviceArray:
    version = int(cai.get("version", 0))
    dtype = _np.dtype(cai["typestr"])
    shape = tuple(int(n) for n in cai["shape"])
    strides = cai.get("strides")
    ptr = int(cai["data"][0])
    if cai.get("mask") is not None:
        raise ValueError("masked arrays (__cuda_array_interface__ 'mask') are not supported")
    foreign_stream = cai.get("stream") if version >= 3 else None
    if foreign_stream not in (None, 0, 1, 2):
        # v3: the producer's stream must finish its work on the data before we use it on ours.
        index = context.current_index()
        with context.active(index):
            _backend.get().synchronize()  # no pycuda wrapper for a foreign stream handle: wait for the device
    return DeviceArray(shape, dtype, strides=strides, ptr=ptr, owner=obj)
