"""jitbridge: decorate plain Python functions, get cached CPU-SIMD or CUDA kernels."""
from __future__ import annotations

import importlib
from typing import Any

from numba import prange, vectorize

from . import atomic, config, errors, telemetry, tensor
from ._version import __version__
from .frontend.jit import jit
from .frontend.kernel import kernel
from .profiling import profile
from .telemetry import reset_stats, stats


def __getattr__(name: str) -> Any:
    """``jb.math``, ``jb.SharedTensor``, ``jb.explain`` and ``jb.hardware_info`` load on first
    use: ~60 ms that most imports never need."""
    if name == "math":
        return importlib.import_module(".math", __name__)
    if name == "explain":
        return importlib.import_module(".inspection", __name__).explain
    if name == "hardware_info":
        return importlib.import_module(".hardware", __name__).hardware_info
    if name == "SharedTensor":
        return tensor.SharedTensor
    raise AttributeError(f"module 'jitbridge' has no attribute {name!r}")


__all__ = [
    "SharedTensor", "__version__", "atomic", "config", "errors", "explain", "hardware_info", "jit", "kernel", "math",
    "prange", "profile", "reset_stats", "stats", "telemetry", "tensor", "vectorize",
]
