"""SharedTensor: an n-d array in shared memory that other processes and compiled code use in place.

It is a thin wrapper, not an ndarray subclass, so that it can refuse use after ``close()`` and
carry a handle; every zero-copy protocol (``__array_interface__``, DLPack, Arrow, the buffer it
hands to Numba) is served from one NumPy view over the mapped segment.
"""
from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import cuda, segment
from .handle import LiveArrayAttributes, TensorHandle, check_window, dtype_to_str, normalize, tensor_error, validate

DEVICES = ("cpu", "cuda")


def _is_basic_index(key: Any) -> bool:
    """True if NumPy indexing with ``key`` returns a view (ints, slices, ``...``, ``None``)."""
    parts = key if isinstance(key, tuple) else (key,)
    return all(
        isinstance(p, (slice, type(Ellipsis), type(None)))
        or (isinstance(p, numbers.Integral) and not isinstance(p, (bool, np.bool_)))
        for p in parts
    )


class SharedTensor(LiveArrayAttributes):
    """An n-d array whose bytes live in a POSIX shared-memory segment (or a mapped file).

    Create with :meth:`empty`, :meth:`zeros` or :meth:`from_array`; send :attr:`handle` to
    another process and :meth:`attach` it there. The creating process owns the segment and
    removes its name on :meth:`close`, ``with`` exit, garbage collection or normal exit.
    """

    __slots__ = ("_segment", "_array", "_offset", "_is_base", "_closed", "__weakref__")

    def __init__(self, seg: segment.Segment, array: np.ndarray, offset: int, *, is_base: bool) -> None:
        """Internal: use the class methods. ``array`` views ``seg`` starting at byte ``offset``."""
        self._segment = seg
        self._array = array
        self._offset = offset
        self._is_base = is_base
        self._closed = False

    # -- creation ---------------------------------------------------------------------------

    @classmethod
    def empty(
        cls, shape: int | Sequence[int], dtype: Any = "float64", order: str = "C", device: str = "cpu"
    ) -> SharedTensor | cuda.DeviceTensor:
        """A new tensor; fresh shared memory is zero-filled by the kernel, so this is ``zeros``."""
        if device == "cuda":
            return cuda.DeviceTensor.empty(shape, dtype, order)
        if device != "cpu":
            raise tensor_error("unknown device", f"device must be one of {DEVICES}", device=device)
        shape, dtype = normalize(shape, dtype, order)
        seg = segment.create(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize)
        array = np.ndarray(shape, dtype, buffer=np.asarray(seg.mapping), order=order)
        return cls(seg, array, 0, is_base=True)

    @classmethod
    def zeros(
        cls, shape: int | Sequence[int], dtype: Any = "float64", order: str = "C", device: str = "cpu"
    ) -> SharedTensor | cuda.DeviceTensor:
        """A new zero-filled tensor (same cost as :meth:`empty`)."""
        if device == "cuda":
            return cuda.DeviceTensor.zeros(shape, dtype, order)
        return cls.empty(shape, dtype, order, device)

    @classmethod
    def from_array(cls, array: Any, order: str = "K", device: str = "cpu") -> SharedTensor | cuda.DeviceTensor:
        """A new tensor holding a copy of ``array`` (the one copy; everything after is shared).

        ``order="K"`` keeps a Fortran-ordered input Fortran-ordered; ``"C"``/``"F"`` force one.
        """
        if device == "cuda":
            return cuda.DeviceTensor.from_array(array, order)
        source = np.asarray(array)
        if order == "K":
            order = "F" if source.flags.f_contiguous and not source.flags.c_contiguous else "C"
        tensor = cls.empty(source.shape, source.dtype, order, device)
        np.copyto(tensor._array, source)
        return tensor

    @classmethod
    def attach(
        cls, handle: TensorHandle | cuda.DeviceHandle, read_only: bool = False, populate: bool = False
    ) -> SharedTensor | cuda.DeviceTensor:
        """Map the tensor ``handle`` describes, in this process, without copying.

        An attached tensor never removes the segment; ``read_only=True`` maps it read-only, so
        NumPy and compiled code refuse writes instead of crashing. ``populate=True`` pre-faults
        the whole segment in one call: slower to attach (~0.15 s/GiB), much faster to read all
        of afterwards than faulting page by page; leave it off to read only a part.
        """
        if isinstance(handle, cuda.DeviceHandle):
            return cuda.DeviceTensor.attach(handle)
        dtype = validate(handle)
        seg = segment.attach(handle.name, handle.kind, handle.owner_pid, read_only, populate)
        check_window(handle, dtype, seg.mapping.size)
        array = np.ndarray(
            handle.shape, dtype, buffer=np.asarray(seg.mapping), offset=handle.offset, strides=handle.strides
        )
        return cls(seg, array, handle.offset, is_base=True)

    # -- state ------------------------------------------------------------------------------

    def _live(self) -> np.ndarray:
        """The NumPy view, or a TensorError if this tensor (or its segment) was closed."""
        if self._closed or self._segment.closed:
            raise tensor_error(
                "SharedTensor is closed",
                "keep the tensor open while you use it; attach the handle again in other processes",
                segment=self._segment.name,
            )
        return self._array

    def _numba_array_(self) -> np.ndarray:
        """The view Numba compiles against; called when a jitted function receives this tensor."""
        return self._live()

    @property
    def closed(self) -> bool:
        return self._closed or self._segment.closed

    @property
    def name(self) -> str:
        """The segment name (or file path) other processes attach to."""
        return self._segment.name

    @property
    def owned(self) -> bool:
        """True in the process that created the segment (the one that removes it)."""
        return self._segment.owned

    @property
    def read_only(self) -> bool:
        return not self._live().flags.writeable

    @property
    def handle(self) -> TensorHandle:
        """A small picklable description of this window of the segment; no data."""
        array = self._live()
        return TensorHandle(
            name=self._segment.name,
            shape=array.shape,
            dtype=dtype_to_str(array.dtype),
            strides=array.strides,
            offset=self._offset,
            owner_pid=self._segment.owner_pid,
            kind=self._segment.kind,
        )

    def close(self) -> None:
        """Stop using this tensor; the owner's base tensor also removes the segment's name.

        Closing a view closes only that view. Memory stays mapped until the last NumPy array
        over it is gone, so arrays taken earlier stay valid; other processes that already
        attached keep their mapping. Closing twice is harmless.
        """
        self._closed = True
        if self._is_base:
            self._segment.close()

    def __enter__(self) -> SharedTensor:
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return f"<SharedTensor {self._segment.name} closed>"
        return f"<SharedTensor {self._segment.name} shape={self._array.shape} dtype={self._array.dtype}>"

    # -- array protocol ---------------------------------------------------------------------

    @property
    def __array_interface__(self) -> dict:
        """Zero-copy export; NumPy keeps this tensor (hence the mapping) alive as the base."""
        return self._live().__array_interface__

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        array = self._live()
        if dtype is None or np.dtype(dtype) == array.dtype:
            return array.copy() if copy else array
        if copy is False:
            raise tensor_error("a dtype change needs a copy", "drop copy=False", dtype=array.dtype, requested=dtype)
        return array.astype(dtype)

    def __len__(self) -> int:
        return len(self._live())

    def __getitem__(self, key: Any) -> Any:
        """Basic indexing gives a SharedTensor view (its handle attaches to the same window);
        integer indexing down to an element gives a scalar, fancy indexing a NumPy copy."""
        array = self._live()
        result = array[key]
        if not (_is_basic_index(key) and isinstance(result, np.ndarray)):
            return result
        base = array.__array_interface__["data"][0] - self._offset
        offset = result.__array_interface__["data"][0] - base
        return SharedTensor(self._segment, result, offset, is_base=False)

    def __setitem__(self, key: Any, value: Any) -> None:
        array = self._live()
        if not array.flags.writeable:
            raise tensor_error("tensor is read-only", "attach with read_only=False to write", segment=self.name)
        try:
            array[key] = value
        except (ValueError, TypeError) as exc:
            raise tensor_error(
                "value does not fit the tensor (shape or dtype mismatch)",
                "assign a value that broadcasts to the indexed shape and converts to the dtype",
                segment=self.name,
                tensor=f"{array.shape} {array.dtype}",
                value=f"{np.shape(value)} {getattr(value, 'dtype', type(value).__name__)}",
            ) from exc

    # -- interop ----------------------------------------------------------------------------

    def __dlpack__(self, **kwargs: Any) -> Any:
        """DLPack export of the same memory (``np.from_dlpack(t)``, ``torch.from_dlpack(t)``).

        Read-only tensors export only with ``copy=True``: some consumers (torch) ignore DLPack's
        read-only flag, and a write through them into a read-only mapping would crash.
        """
        array = self._live()
        if not array.flags.writeable and not kwargs.get("copy"):
            raise tensor_error(
                "a read-only tensor cannot be exported zero-copy through DLPack",
                "use np.asarray(t) (a read-only view), pass copy=True, or attach with read_only=False",
                segment=self.name,
            )
        return array.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self._live().__dlpack_device__()

    def to_arrow(self) -> Any:
        """A ``pyarrow.Buffer`` over the same bytes (contiguous tensors only; needs pyarrow).

        Mutable exactly when the tensor is writable; the buffer keeps the memory mapped.
        """
        array = self._live()
        try:
            import pyarrow
        except ImportError as exc:
            raise tensor_error("pyarrow is not installed", "pip install pyarrow", segment=self.name) from exc
        if not (array.flags.c_contiguous or array.flags.f_contiguous):
            raise tensor_error(
                "to_arrow needs a contiguous tensor",
                "slice with step 1, or copy",
                segment=self.name,
                strides=array.strides,
            )
        return pyarrow.py_buffer(array.reshape(-1, order="A"))


__all__ = ["SharedTensor"]

# Teaching numba the type is part of defining it: whoever can hold a SharedTensor can pass it
# to jitted code (the module imports this one, so it comes last).
from . import numba_ext as _numba_ext  # noqa: E402,F401
