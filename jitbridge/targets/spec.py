"""What a target needs to know about a kernel: an immutable value, never the Kernel itself."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    py_func: Callable[..., Any]
    name: str  # qualified name, for messages, counters and cache records
    ndim: int  # leading launch-index parameters
    arg_names: tuple[str, ...]  # the parameters after them
    options: tuple[tuple[str, Any], ...] = ()  # numba options of the body, sorted by name
    locals: tuple[tuple[str, Any], ...] = ()  # numba ``locals=`` types of the body
    vector_math: bool = True  # math.*/np.* transcendentals served by SIMD versions
    facts: Any = None  # frontend.analysis.BodyFacts: what the body does with its arguments

    @property
    def nargs(self) -> int:
        return len(self.arg_names)

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)
