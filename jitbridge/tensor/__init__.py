"""Shared-memory tensors: zero-copy buffers between Python, compiled kernels and processes.

Segments of killed owners are reclaimed when a process first creates a tensor, or by
``jitbridge tensor gc``; never at ``import jitbridge``. The rest loads on first use, so
``import jitbridge`` does not pay for it.
"""
from __future__ import annotations

import importlib
from typing import Any

from .segment import SegmentInfo, list_segments, reclaim_dead_segments

_LAZY = {
    "DeviceHandle": ".cuda",
    "DeviceTensor": ".cuda",
    "TensorHandle": ".handle",
    "from_npy": ".interop",
    "SharedTensor": ".shared",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'jitbridge.tensor' has no attribute {name!r}")


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
