"""A kernel body as CUDA device code: the same Python function, with what it reaches swapped
for its GPU counterpart.

- Jitted helpers (``jb.jit``, ``numba.njit``) become CUDA device functions of the same source.
- ``jitbridge.math`` functions become CUDA's libdevice functions (``math.exp`` and friends,
  within 2 ulp like ours), ``jb.atomic`` functions numba-cuda's ``cuda.atomic`` ones, with the
  same semantics (including NaN for min/max). This module imports ``numba.cuda``; it is loaded
  only for a CUDA launch or compile.

Every device function is inlined at numba's IR level (``inline="always"``), so a kernel is one
function when it is compiled: numba-cuda compiles a separately called device function for the
compute capability of the current device, which needs a GPU, while one inlined function
compiles to PTX for any ``cc`` on a machine without a GPU or driver.
"""
from __future__ import annotations

import math
import sys
import types as pytypes
from typing import Any, Callable

from numba import cuda
from numba.core.dispatcher import Dispatcher as _NumbaDispatcher


def _sigmoid(x):  # noqa: ANN001, ANN202 - a device function
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


# jb.atomic on the GPU: numba-cuda's atomics, called through ``cuda`` (a global of this module,
# so numba's CUDA simulator can put its own in place).
def _add(ary, idx, val):  # noqa: ANN001, ANN202
    return cuda.atomic.add(ary, idx, val)


def _sub(ary, idx, val):  # noqa: ANN001, ANN202
    return cuda.atomic.sub(ary, idx, val)


def _min(ary, idx, val):  # noqa: ANN001, ANN202
    return cuda.atomic.min(ary, idx, val)


def _max(ary, idx, val):  # noqa: ANN001, ANN202
    return cuda.atomic.max(ary, idx, val)


def _cas(ary, idx, expected, val):  # noqa: ANN001, ANN202
    return cuda.atomic.cas(ary, idx, expected, val)


class DeviceCode:
    """Device versions of functions, made once per function and kept."""

    def __init__(self) -> None:
        from .. import atomic
        from .. import math as jm

        jitbridge = sys.modules["jitbridge"]  # the package object a body reaches jb.math through (no import: above us)

        self._made: dict[int, Any] = {}
        self._swap: dict[int, Any] = {}
        self._swap.update({
            id(jm.exp): math.exp, id(jm.log): math.log, id(jm.tanh): math.tanh, id(jm.erf): math.erf,
            id(jm.sigmoid): self._device(_sigmoid),
            id(atomic.add): self._device(_add), id(atomic.sub): self._device(_sub),
            id(atomic.min): self._device(_min), id(atomic.max): self._device(_max),
            id(atomic.cas): self._device(_cas),
        })
        gpu_math = _module("jitbridge.math", jm, {n: self._swap[id(getattr(jm, n))] for n in jm.__all__})
        gpu_atomic = _module("jitbridge.atomic", atomic,
                             {n: self._swap[id(getattr(atomic, n))] for n in atomic.__all__})
        self._swap[id(jm)] = gpu_math
        self._swap[id(atomic)] = gpu_atomic
        self._swap[id(jitbridge)] = _module("jitbridge", jitbridge, {"math": gpu_math, "atomic": gpu_atomic})

    def body(self, py_func: Callable[..., Any]) -> Any:
        """The device function for a kernel body."""
        return self._device(py_func)

    def _device(self, py_func: Callable[..., Any]) -> Any:
        found = self._made.get(id(py_func))
        if found is None:
            self._made[id(py_func)] = found = cuda.jit(device=True, inline="always")(self._rebound(py_func))
        return found

    def _rebound(self, fn: pytypes.FunctionType) -> pytypes.FunctionType:
        """``fn`` with the globals and closure variables it names replaced by device versions."""
        names = _global_names(fn.__code__)
        globals_ = dict(fn.__globals__)
        for name in names & set(globals_):
            globals_[name] = self._value(globals_[name])
        closure = None
        if fn.__closure__:
            closure = tuple(pytypes.CellType(self._value(_contents(cell))) for cell in fn.__closure__)
        twin = pytypes.FunctionType(fn.__code__, globals_, fn.__name__, fn.__defaults__, closure)
        twin.__qualname__, twin.__module__ = fn.__qualname__, fn.__module__
        return twin

    def _value(self, value: Any) -> Any:
        swapped = self._swap.get(id(value))
        if swapped is not None:
            return swapped
        if isinstance(value, _NumbaDispatcher) and isinstance(getattr(value, "py_func", None), pytypes.FunctionType):
            return self._device(value.py_func)
        return value


def _module(name: str, original: pytypes.ModuleType, overrides: dict[str, Any]) -> pytypes.ModuleType:
    """A stand-in module: the original's attributes, some replaced."""
    stand_in = pytypes.ModuleType(name)
    stand_in.__dict__.update({k: v for k, v in vars(original).items() if not k.startswith("__")})
    stand_in.__dict__.update(overrides)
    return stand_in


def _global_names(code: pytypes.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, pytypes.CodeType):
            names |= _global_names(const)
    return names


def _contents(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a recursive closure not yet bound)
        return None
