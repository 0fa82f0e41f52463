"""The jitbridge kernel library, written in the jitbridge DSL (import as ``jitbridge.kernels``).

Every kernel is a plain function over NumPy arrays: it validates its arguments (raising
``jitbridge.errors.ArgumentError`` naming the bad one), runs along the last axis, picks
serial or multi-threaded compiled code by size (``threads=`` overrides), and where it reduces,
``deterministic=True`` (or ``JITBRIDGE_DETERMINISTIC=1``) makes the result the same bits for
any thread count. docs/kernels.md has the semantics and the measured speed of each.
"""
from ._prebuild import items as __jitbridge_prebuild__
from .elementwise import clip, gelu, relu, saxpy, scale
from .histogram import histogram
from .normalization import layernorm, logsumexp, normalize
from .reductions import argmax, dot, sum_sq, variance
from .scan import cumsum, rolling_sum
from .softmax import softmax

__all__ = [
    "argmax", "clip", "cumsum", "dot", "gelu", "histogram", "layernorm", "logsumexp", "normalize",
    "relu", "rolling_sum", "saxpy", "scale", "softmax", "sum_sq", "variance",
]
