"""Device tensors: numba.cuda device arrays shared between processes with CUDA IPC handles.

``numba.cuda`` is imported inside these functions only: ``import jitbridge`` must neither pay
for it (~0.35 s) nor fail on a machine without CUDA. On such a machine every entry point raises
``TargetUnavailableError`` before touching the driver.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import errors
from .handle import LiveArrayAttributes, normalize, tensor_error


class DeviceHandle(NamedTuple):
    """Picklable description of a device tensor: a CUDA IPC handle plus the array's layout."""

    ipc: Any  # numba.cuda IpcArrayHandle: picklable, carries shape/strides/dtype itself
    shape: tuple[int, ...]
    dtype: str
    owner_pid: int


def _cuda() -> Any:
    """``numba.cuda`` when a GPU is usable here; otherwise TargetUnavailableError."""
    fix = "use device='cpu' (the default), or run on a machine with an NVIDIA GPU and driver"
    try:
        from numba import cuda
    except ImportError as exc:
        raise errors.TargetUnavailableError(
            "numba.cuda is not importable", where=errors.user_location(), values={"device": "cuda"}, fix=fix
        ) from exc
    if not cuda.is_available():
        raise errors.TargetUnavailableError(
            "no CUDA GPU is available", where=errors.user_location(), values={"device": "cuda"}, fix=fix
        )
    return cuda


class DeviceTensor(LiveArrayAttributes):
    """A tensor in GPU memory; the creating process owns it, others attach by IPC handle.

    Consumers see it through ``__cuda_array_interface__`` (CuPy, PyTorch, numba.cuda kernels).
    Like the CPU tensor, ``close()`` only marks it closed: device memory is released when the
    last Python reference to it goes, so no kernel is ever handed a freed pointer.
    """

    __slots__ = ("_array", "_owned", "_closed")

    def __init__(self, array: Any, *, owned: bool) -> None:
        """Internal: use :meth:`empty`, :meth:`zeros`, :meth:`from_array` or :meth:`attach`."""
        self._array = array
        self._owned = owned
        self._closed = False

    @classmethod
    def empty(cls, shape: int | Sequence[int], dtype: Any = "float64", order: str = "C") -> DeviceTensor:
        shape, dtype = normalize(shape, dtype, order)
        return cls(_cuda().device_array(shape, dtype=dtype, order=order), owned=True)

    @classmethod
    def zeros(cls, shape: int | Sequence[int], dtype: Any = "float64", order: str = "C") -> DeviceTensor:
        from numba.cuda.cudadrv import driver

        tensor = cls.empty(shape, dtype, order)
        driver.device_memset(tensor._array, 0, tensor._array.nbytes)
        return tensor

    @classmethod
    def from_array(cls, array: Any, order: str = "K") -> DeviceTensor:
        source = np.asarray(array, order=order)
        normalize(source.shape, source.dtype, "C")
        return cls(_cuda().to_device(source), owned=True)

    @classmethod
    def attach(cls, handle: DeviceHandle) -> DeviceTensor:
        """Open another process's device tensor; must not be called in the owning process."""
        _cuda()
        return cls(handle.ipc.open(), owned=False)

    def _live(self) -> Any:
        if self._closed:
            raise tensor_error("device tensor is closed", "keep the tensor open while you use it")
        return self._array

    @property
    def __cuda_array_interface__(self) -> dict:
        return self._live().__cuda_array_interface__

    @property
    def device_array(self) -> Any:
        """The numba.cuda DeviceNDArray, for ``kernel[grid, block](t.device_array)``."""
        return self._live()

    @property
    def handle(self) -> DeviceHandle:
        array = self._live()
        return DeviceHandle(array.get_ipc_handle(), array.shape, array.dtype.str, os.getpid())

    @property
    def owned(self) -> bool:
        return self._owned

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"shape={self._array.shape} dtype={self._array.dtype}"
        return f"<DeviceTensor {state}>"

    def copy_to_host(self) -> np.ndarray:
        return self._live().copy_to_host()

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> DeviceTensor:
        self._live()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
