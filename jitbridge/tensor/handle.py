"""The picklable description of a tensor window, and the checks that make attaching it safe.

A handle carries no data, only where the bytes live (a segment name or a file path) and how to
read them. It is the only thing that crosses a process boundary, so everything another process
does with it is validated here first: a bad handle must give a TensorError naming the segment,
never a mapping that reads past the end of the memory.
"""
from __future__ import annotations

import ast
import math
import numbers
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import errors

KINDS = ("shm", "file")
ORDERS = ("C", "F")
INTP_MAX = int(np.iinfo(np.intp).max)
MAX_DIMS = 64  # NumPy's limit on the number of dimensions


class TensorHandle(NamedTuple):
    """Where a tensor's bytes are and how to view them; small, picklable, data-free.

    ``kind`` is ``"shm"`` (``name`` is a POSIX shared-memory segment) or ``"file"`` (``name`` is
    the absolute path of a memory-mapped file). ``offset`` is the byte offset of element 0 from
    the segment's start; ``strides`` may be negative, as for any NumPy view.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    strides: tuple[int, ...]
    offset: int
    owner_pid: int
    kind: str = "shm"


def dtype_to_str(dtype: np.dtype) -> str:
    """A string that round-trips ``dtype``, structured and sub-array dtypes included.

    Plain dtypes use NumPy's ``dtype.str`` (``'<f8'``); compound ones use the ``.npy`` format's
    description list, the same encoding NumPy uses to store them in files.
    """
    if dtype.fields is None and dtype.subdtype is None:
        return dtype.str
    return repr(np.lib.format.dtype_to_descr(dtype))


def dtype_from_str(text: str) -> np.dtype:
    """Inverse of :func:`dtype_to_str`; raises ValueError/TypeError/SyntaxError on garbage."""
    if text.startswith("["):
        return np.lib.format.descr_to_dtype(ast.literal_eval(text))
    return np.dtype(text)


def byte_extent(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int, offset: int) -> tuple[int, int]:
    """The half-open byte range ``[low, high)`` a view touches; ``(offset, offset)`` if empty."""
    if 0 in shape:
        return offset, offset
    low = high = offset
    for extent, stride in zip(shape, strides, strict=True):
        step = stride * (extent - 1)
        if step < 0:
            low += step
        else:
            high += step
    return low, high + itemsize


def tensor_error(what: str, fix: str, **values: Any) -> errors.TensorError:
    """A TensorError pointing at the user's line (the one place tensor errors are built)."""
    return errors.TensorError(what, where=errors.user_location(), values=values, fix=fix)


def _bad(handle: Any, problem: str, fix: str, **values: Any) -> errors.TensorError:
    return tensor_error(f"invalid tensor handle: {problem}", fix, segment=getattr(handle, "name", None), **values)


def normalize(shape: Any, dtype: Any, order: str) -> tuple[tuple[int, ...], np.dtype]:
    """Validate creation arguments; return the shape as a tuple of ints and the dtype."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise tensor_error("not a NumPy dtype", "pass e.g. 'float64' or np.int32", dtype=dtype) from exc
    if dtype.hasobject:
        raise tensor_error(
            "object dtypes cannot live in shared memory",
            "store numbers, strings ('U'/'S') or structured records instead",
            dtype=dtype,
        )
    shape = (shape,) if isinstance(shape, numbers.Integral) else shape
    sequence = isinstance(shape, (Sequence, np.ndarray))
    if not sequence or not all(_is_int(n) and n >= 0 for n in shape):
        raise tensor_error("shape must be non-negative integers", "pass e.g. (1024, 3)", shape=shape)
    if order not in ORDERS:
        raise tensor_error("unknown memory order", f"order must be one of {ORDERS}", order=order)
    shape = tuple(int(n) for n in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    if len(shape) > MAX_DIMS or max(shape, default=0) > INTP_MAX or nbytes > INTP_MAX:
        raise tensor_error("tensor too large to address", f"at most {MAX_DIMS} dimensions and {INTP_MAX} bytes",
                           shape=shape, dtype=dtype, bytes=nbytes)
    return shape, dtype


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def validate(handle: Any) -> np.dtype:
    """Check a handle's own consistency (not yet the segment); return its dtype."""
    if not isinstance(handle, TensorHandle):
        raise _bad(handle, "not a TensorHandle", "pass the value of `tensor.handle`", got=type(handle).__name__)
    if not all(isinstance(getattr(handle, f), str) for f in ("name", "dtype", "kind")):
        raise _bad(handle, "name, dtype and kind must be strings", "pass the value of `tensor.handle`")
    if handle.kind not in KINDS:
        raise _bad(handle, "unknown kind", f"kind must be one of {KINDS}", kind=handle.kind)
    if handle.kind == "file" and not os.path.isabs(handle.name):
        raise _bad(handle, "file handles need an absolute path", "use jitbridge.tensor.from_npy(path).handle")
    try:
        dtype = dtype_from_str(handle.dtype)
    except (TypeError, ValueError, SyntaxError) as exc:
        raise _bad(handle, "unreadable dtype", "pass the value of `tensor.handle`", dtype=handle.dtype) from exc
    if dtype.hasobject:
        raise _bad(handle, "object dtypes cannot be shared", "share numeric or structured data", dtype=dtype)
    if "\0" in handle.name:
        raise _bad(handle, "the name holds a NUL character", "pass the value of `tensor.handle`")
    tuples = isinstance(handle.shape, tuple) and isinstance(handle.strides, tuple)
    values = (*handle.shape, *handle.strides, handle.offset, handle.owner_pid) if tuples else ()
    ints = tuples and all(type(v) is int and -INTP_MAX <= v <= INTP_MAX for v in values)
    if not ints or len(handle.shape) != len(handle.strides) or min(handle.shape, default=0) < 0 \
            or len(handle.shape) > MAX_DIMS:
        raise _bad(
            handle,
            f"shape, strides, offset and owner_pid must be ints that fit in intp (shape and strides equally "
            f"long tuples of at most {MAX_DIMS}, shape >= 0)",
            "pass the value of `tensor.handle`",
            shape=handle.shape,
            strides=handle.strides,
        )
    if math.prod(handle.shape) * dtype.itemsize > INTP_MAX:
        raise _bad(handle, "the view is too large to address", "pass the value of `tensor.handle`",
                   shape=handle.shape, dtype=dtype)
    return dtype


def check_window(handle: TensorHandle, dtype: np.dtype, segment_size: int) -> None:
    """Refuse a handle whose view would reach outside its segment (shape/dtype mismatch)."""
    low, high = byte_extent(handle.shape, handle.strides, dtype.itemsize, handle.offset)
    if low < 0 or high > segment_size or handle.offset < 0:
        raise _bad(
            handle,
            "the view does not fit in the segment (shape, dtype or offset mismatch)",
            "attach with the handle the tensor gave, unmodified",
            shape=handle.shape,
            dtype=dtype,
            strides=handle.strides,
            offset=handle.offset,
            needs_bytes=f"[{low}, {high})",
            segment_bytes=segment_size,
        )


class LiveArrayAttributes:
    """``shape``, ``dtype``, ``strides``, ``ndim``, ``size``, ``nbytes`` read through
    ``self._live()``, which returns the backing array or raises once the tensor is closed."""

    __slots__ = ()

    shape = property(lambda self: self._live().shape, doc="The array's shape.")
    dtype = property(lambda self: self._live().dtype, doc="The array's NumPy dtype.")
    strides = property(lambda self: self._live().strides, doc="Byte strides per dimension.")
    ndim = property(lambda self: self._live().ndim, doc="Number of dimensions.")
    size = property(lambda self: self._live().size, doc="Number of elements.")
    nbytes = property(lambda self: self._live().nbytes, doc="Bytes the elements span.")
