"""What ``jitbridge compile jitbridge.kernels`` builds into the cache: every kernel for float32
and float64, 1-D and 2-D, on one thread and on several, fast and deterministic. One work item
per (kernel, dtype), so the compile command can spread them over processes."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import numpy as np

_CALLS: dict[str, Callable[[Callable, np.ndarray, dict], Any]] = {
    "sum_sq": lambda k, x, kw: k(x, **kw),
    "dot": lambda k, x, kw: k(x, x, **kw),
    "variance": lambda k, x, kw: k(x, **kw),
    "argmax": lambda k, x, kw: k(x, **kw),
    "softmax": lambda k, x, kw: k(x, **kw),
    "logsumexp": lambda k, x, kw: k(x, **kw),
    "layernorm": lambda k, x, kw: k(x, **kw),
    "normalize": lambda k, x, kw: k(x, **kw),
    "scale": lambda k, x, kw: k(x, 2.0, **kw),
    "saxpy": lambda k, x, kw: k(2.0, x, x, **kw),
    "relu": lambda k, x, kw: k(x, **kw),
    "gelu": lambda k, x, kw: (k(x, **kw), k(x, approximate="tanh", **kw)),
    "clip": lambda k, x, kw: k(x, -0.5, 0.5, **kw),
    "cumsum": lambda k, x, kw: k(x, **kw),
    "rolling_sum": lambda k, x, kw: k(x, 3, **kw),
    "histogram": lambda k, x, kw: k(x.ravel(), bins=8, **kw),
}


def warm(name: str, dtype: str) -> None:
    """Call kernel ``name`` on small ``dtype`` inputs in every variant it has."""
    from . import __dict__ as library

    kernel = library[name]
    accepted = inspect.signature(kernel).parameters
    options = [{}]
    if "threads" in accepted:  # {} too: short 1-D calls without threads= take their own path
        options += [{"threads": t} for t in (1, 2)]
    if "deterministic" in accepted:
        options += [{**o, "deterministic": True} for o in options]
    for shape in ((256,), (4, 64)):
        x = np.linspace(-1.0, 1.0, int(np.prod(shape)), dtype=dtype).reshape(shape)
        for kw in options:
            _CALLS[name](kernel, x, kw)


def items() -> list[Callable[[], None]]:
    """The work items; each is picklable (a partial of a module-level function)."""
    return [functools.partial(warm, name, dtype) for name in _CALLS for dtype in ("float32", "float64")]
