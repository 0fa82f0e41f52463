"""Source and dependency capture: a content fingerprint of a function and all it reaches.

The fingerprint hashes what the compiler will see, not where it came from: bytecode and
constants (no file names, no line numbers), closure cells, defaults, and every global the
code names, recursing into jitted callees and plain functions in any module. Functions from
notebooks, ``exec`` and closures therefore fingerprint like any other.
"""
from __future__ import annotations

import builtins
import dis
import enum
import hashlib
import types as pytypes
from typing import Any, Callable

import numpy as np

from ..cache.key import Fingerprint, stable_repr

_SCALARS = (int, float, complex, bool, str, bytes, type(None), np.generic, np.dtype)
_ATTR_OPS = {"LOAD_ATTR", "LOAD_METHOD"}


def qualified_name(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}.{getattr(obj, '__qualname__', type(obj).__name__)}"


def _py_function(obj: Any) -> pytypes.FunctionType | None:
    """The Python function behind a dispatcher/kernel (``py_func``), a numba ``@intrinsic``
    (``_defn``: its code generator), or a plain function."""
    if isinstance(obj, pytypes.FunctionType):
        return obj
    for attribute in ("py_func", "_defn"):
        inner = getattr(obj, attribute, None)
        if isinstance(inner, pytypes.FunctionType):
            return inner
    return None


def _code_digest(code: pytypes.CodeType, h: "hashlib._Hash") -> None:
    h.update(code.co_code)
    h.update(repr((code.co_argcount, code.co_kwonlyargcount, code.co_flags & 0xFF, code.co_names,
                   code.co_varnames, code.co_freevars, code.co_cellvars)).encode())
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            _code_digest(const, h)
        else:
            h.update(f"{type(const).__name__}:{stable_repr(const)};".encode())


def _referenced(code: pytypes.CodeType) -> list[tuple[str, ...]]:
    """Global names the code loads, with the attribute chains taken off them (``b.g``)."""
    chains: list[tuple[str, ...]] = []
    current: list[str] | None = None
    for ins in dis.get_instructions(code):
        if ins.opname == "LOAD_GLOBAL":
            current = [ins.argval]
            chains.append(())
        elif ins.opname in _ATTR_OPS and current is not None:
            current.append(ins.argval)
        else:
            current = None
        if current is not None:
            chains[-1] = tuple(current)
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            chains.extend(_referenced(const))
    return chains


class _Walker:
    def __init__(self) -> None:
        self.deps: dict[str, str] = {}
        self._active: set[int] = set()

    def function(self, fn: pytypes.FunctionType, extra: str = "") -> str:
        """Digest of one function: its code, then every value it can reach."""
        if id(fn) in self._active:
            return f"recursive:{qualified_name(fn)}"
        self._active.add(id(fn))
        try:
            h = hashlib.sha256(extra.encode())
            _code_digest(fn.__code__, h)
            for chain in sorted(set(_referenced(fn.__code__))):
                h.update(f"{'.'.join(chain)}={self._global(fn, chain)};".encode())
            for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
                try:
                    contents = cell.cell_contents
                except ValueError:
                    contents = "<empty cell>"
                h.update(f"cell {name}={self.value(contents)};".encode())
            h.update(f"defaults={self.value(fn.__defaults__)};".encode())
            return h.hexdigest()
        finally:
            self._active.discard(id(fn))

    def _global(self, fn: pytypes.FunctionType, chain: tuple[str, ...]) -> str:
        head = chain[0]
        if head in fn.__globals__:
            obj = fn.__globals__[head]
        elif hasattr(builtins, head):
            return f"builtin:{head}"
        else:
            return "<unbound>"
        for attr in chain[1:]:
            if not isinstance(obj, pytypes.ModuleType):
                break
            obj = getattr(obj, attr, None)
        return self.value(obj)

    def value(self, obj: Any) -> str:
        """A stable digest of a value the compiler may freeze into the code."""
        fn = _py_function(obj)
        if fn is not None:
            options = {**(getattr(obj, "targetoptions", None) or {}), "locals": getattr(obj, "locals", None) or {}}
            digest = self.function(fn, extra=stable_repr(options))
            self.deps.setdefault(qualified_name(fn), digest)
            return digest
        if isinstance(obj, pytypes.ModuleType):
            return f"module:{obj.__name__}"
        if isinstance(obj, _SCALARS) or isinstance(obj, enum.Enum):
            return f"{type(obj).__name__}:{obj!r}"
        if isinstance(obj, (tuple, list)):
            return f"{type(obj).__name__}(" + ",".join(self.value(v) for v in obj) + ")"
        if isinstance(obj, (set, frozenset, dict)):
            return f"{type(obj).__name__}:{stable_repr(obj)}"
        if isinstance(obj, np.ndarray):
            data = hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest()
            return f"ndarray:{obj.dtype.str}:{obj.shape}:{data}"
        if isinstance(obj, type) or callable(obj):
            return f"object:{qualified_name(obj)}"
        return f"instance:{qualified_name(type(obj))}:{_stable_repr(obj)}"


def _stable_repr(obj: Any) -> str:
    """repr() unless it embeds a memory address, which would differ in every process."""
    text = repr(obj)
    return "" if " at 0x" in text else text


def fingerprint(fn: Callable[..., Any], extra: str = "") -> Fingerprint:
    """Fingerprint ``fn`` (a plain function or anything with ``py_func``)."""
    py = _py_function(fn)
    if py is None:
        raise TypeError(f"cannot fingerprint {fn!r}: not a Python function")
    walker = _Walker()
    code_h = hashlib.sha256()
    _code_digest(py.__code__, code_h)
    digest = walker.function(py, extra=py.__qualname__ + "\0" + extra)
    return Fingerprint(digest=digest, code=code_h.hexdigest(), deps=walker.deps)
