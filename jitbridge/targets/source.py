"""One builder for the Python source of generated launch code (the CPU's loops and launchers,
the CUDA kernel), so every target spells indices, dimensions and arguments the same way."""
from __future__ import annotations

import contextlib
from typing import Iterator


def dims(ndim: int) -> list[str]:
    """Launch dimension names: n0, n1, n2."""
    return [f"n{d}" for d in range(ndim)]


def indices(ndim: int) -> list[str]:
    """Launch index names: i0, i1, i2."""
    return [f"i{d}" for d in range(ndim)]


def args(positions: list[int] | range) -> list[str]:
    """Kernel argument names: a0, a1, ..."""
    return [f"a{k}" for k in positions]


class Source:
    """Lines of Python with the current indentation; ``block`` opens an indented suite."""

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._depth = 0

    def line(self, text: str) -> None:
        self._lines.append("    " * self._depth + text)

    @contextlib.contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def define(self, name: str, params: list[str]) -> contextlib.AbstractContextManager[None]:
        return self.block(f"def {name}({', '.join(params)}):")

    def call(self, fn: str, params: list[str]) -> str:
        return f"{fn}({', '.join(params)})"

    @property
    def text(self) -> str:
        return "\n".join(self._lines) + "\n"
