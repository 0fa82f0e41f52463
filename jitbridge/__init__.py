"""jitbridge: decorate plain Python functions, get cached CPU-SIMD or CUDA kernels."""
from numba import prange, vectorize

from . import config, errors, tensor
from ._version import __version__
from .frontend.jit import jit
from .frontend.kernel import kernel
from .targets import cpu as _cpu  # noqa: F401  (registers the thread-count setting)
from .telemetry import reset_stats, stats
from .tensor import SharedTensor

tensor.reclaim_dead_segments()

__all__ = [
    "SharedTensor", "__version__", "config", "errors", "jit", "kernel", "prange", "reset_stats", "stats",
    "tensor", "vectorize",
]
