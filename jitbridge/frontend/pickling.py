"""How a kernel travels to another process (Dask and multiprocessing pickle it).

By name when its module defines it, as functions are; otherwise as its Python function and
decorator arguments, which cloudpickle (Dask's pickler) sends by value, so kernels from a
notebook, a test or ``exec`` travel too. The other process makes the kernel again, and its
first launch loads the compiled code from the cache: the key is the same content hash there.
Unpickling one kernel many times in a process gives back one kernel, so tasks that each carry
it share its compiled launchers (numba does the same for dispatchers).
"""
from __future__ import annotations

import collections
import importlib
import uuid
import weakref
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from .kernel import Kernel

_KERNELS: "weakref.WeakValueDictionary[str, Kernel]" = weakref.WeakValueDictionary()
_RECENT: collections.deque = collections.deque(maxlen=64)  # the last few unpickled stay alive


def register(kernel: "Kernel") -> str:
    """A new kernel's pickling identity."""
    key = uuid.uuid4().hex
    _KERNELS[key] = kernel
    return key


def by_name(module: str, qualname: str) -> Any:
    """The object at ``module.qualname``, importing the module."""
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def reduce(kernel: "Kernel") -> tuple[Any, ...]:
    try:
        named = kernel.__module__ != "__main__" and by_name(kernel.__module__, kernel.__qualname__) is kernel
    except (ImportError, AttributeError):
        named = False
    if named:
        return (by_name, (kernel.__module__, kernel.__qualname__))
    return (rebuild, (kernel._uuid, kernel.py_func, kernel._init))


def rebuild(key: str, py_func: Callable[..., Any], init: dict[str, Any]) -> "Kernel":
    found = _KERNELS.get(key)
    if found is None:
        from .kernel import Kernel

        found = Kernel(py_func, **init)
        del _KERNELS[found._uuid]
        found._uuid = key
        _KERNELS[key] = found
        _RECENT.append(found)
    return found
