"""Shared-memory tensors: zero-copy buffers between Python, compiled kernels and processes.

``reclaim_dead_segments()`` is cheap enough (microseconds) to call at every jitbridge start-up.
"""
from . import numba_ext as _numba_ext  # noqa: F401  registers SharedTensor with Numba
from .cuda import DeviceHandle, DeviceTensor
from .handle import TensorHandle
from .interop import from_npy
from .segment import SegmentInfo, list_segments, reclaim_dead_segments
from .shared import SharedTensor

__all__ = [
    "DeviceHandle",
    "DeviceTensor",
    "SegmentInfo",
    "SharedTensor",
    "TensorHandle",
    "from_npy",
    "list_segments",
    "reclaim_dead_segments",
]
