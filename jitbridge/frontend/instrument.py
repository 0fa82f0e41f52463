"""Timed launches and calls for "launch" hooks (``jb.profile()``, ``jb.telemetry.on("launch", ...)``).

Nothing here runs unless a launch hook is registered: ``telemetry`` then switches
``Kernel.launch`` to a timed copy and gives ``jb.jit`` dispatchers a Python ``__call__``, and
switches both back when the last hook goes. An unwatched launch or call is the plain one, with
not even a flag to test.
"""
from __future__ import annotations

import functools
import time
import weakref
from typing import Any, Callable

import numpy as np
from numba import typeof

from .. import telemetry

_SCALARS = {float: "float64", int: "int64", bool: "bool", complex: "complex128"}
# (dtype, ndim, C-contiguous, F-contiguous, writeable) -> numba's spelling of the array type;
# dtype -> its name. numpy's dtype.name is slow Python code, and a profiled launch asks each time.
_ARRAYS: dict[tuple[Any, ...], str] = {}
_DTYPES: dict[Any, str] = {}


def _array_text(value: np.ndarray) -> str:
    flags = value.flags
    key = (value.dtype, value.ndim, flags.c_contiguous, flags.f_contiguous, flags.writeable)
    found = _ARRAYS.get(key)
    if found is None:
        layout = "C" if key[2] else "F" if key[3] else "A"
        found = f"array({value.dtype.name}, {value.ndim}d, {layout})"
        found = _ARRAYS[key] = found if key[4] else f"readonly {found}"
    return found


def _type_text(value: Any) -> str:
    """``value``'s numba type as numba prints it, without numba's typeof for the common cases."""
    if type(value) is np.ndarray and value.dtype.isbuiltin == 1:
        return _array_text(value)
    found = _SCALARS.get(type(value))
    if found is not None:
        return found
    if isinstance(value, np.generic):
        return str(value.dtype)
    try:
        return str(typeof(value))
    except Exception:
        return type(value).__name__


def summary(args: tuple[Any, ...]) -> tuple[str, tuple[tuple[int, ...], ...], tuple[str, ...], int]:
    """(argument types, shapes and dtypes of the array arguments, their bytes: each array
    once, the same view passed twice (``k[n](x, x)``, or ``x[:5]`` twice) counted once)."""
    shapes, dtypes, nbytes, seen = [], [], 0, set()
    for value in args:
        shape = getattr(value, "shape", None)
        dtype = getattr(value, "dtype", None)
        if shape is None or dtype is None or isinstance(value, np.generic):
            continue
        shapes.append(tuple(shape))
        name = _DTYPES.get(dtype)
        dtypes.append(name if name is not None else _DTYPES.setdefault(dtype, str(dtype)))
        # an array that owns its memory shares it with no other; views are told apart by address
        views = isinstance(value, np.ndarray) and value.base is not None
        same = (value.__array_interface__["data"][0], shape, value.strides) if views else id(value)
        if same not in seen:
            seen.add(same)
            nbytes += int(getattr(value, "nbytes", 0))
    return "(" + ", ".join([_type_text(v) for v in args]) + ")", tuple(shapes), tuple(dtypes), nbytes


def _report(name: str, args: tuple[Any, ...], seconds: float, dims: tuple[int, ...] | None) -> None:
    signature, shapes, dtypes, nbytes = summary(args)
    telemetry.emit("launch", name=name, signature=signature, seconds=seconds, dims=dims, shapes=shapes,
                   dtypes=dtypes, nbytes=nbytes)


def timed_launch(launch: Callable[..., None]) -> Callable[..., None]:
    """``Kernel.launch``, timed and reported as a "launch" event."""
    @functools.wraps(launch)
    def launch_timed(self: Any, dims: Any, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        launch(self, dims, *args, **options)
        seconds = time.perf_counter() - started
        _report(self.jb_name, args, seconds, tuple(int(d) for d in (dims if isinstance(dims, tuple) else (dims,))))

    return launch_timed


def watch_launches(cls: type, live: "weakref.WeakSet[Any]", on: bool) -> None:
    """Swap ``cls.launch`` for its timed copy (or back). ``k[n]`` keeps a bound launch per
    domain, so every live kernel forgets those and binds the current one again."""
    plain = cls.__dict__.get("_jb_plain_launch")
    if plain is None:
        plain = cls._jb_plain_launch = cls.launch
    cls.launch = timed_launch(plain) if on else plain
    for kernel in list(live):
        kernel._bound.clear()


def watch_calls(cls: type, on: bool) -> None:
    """Give ``cls`` (jb.jit's dispatcher) a timed Python ``__call__`` (or take it away again,
    which puts numba's C call path back). Subclasses that say ``jb_timed = False`` (a kernel's
    launchers: their kernel's launch is what is reported) keep numba's C call path throughout,
    so a profiled launch is not slowed by a Python call of its launcher."""
    plain = super(cls, cls).__call__  # numba's, in C
    untimed = [sub for sub in _subclasses(cls) if sub.__dict__.get("jb_timed") is False]
    if not on:
        for owner in (cls, *untimed):
            if "__call__" in owner.__dict__:
                del owner.__call__
        return

    def call_timed(self: Any, *args: Any, **kws: Any) -> Any:
        if self.jb_variant is not None or not self.jb_counted:  # a launcher class made while profiling
            return plain(self, *args, **kws)
        started = time.perf_counter()
        result = plain(self, *args, **kws)
        seconds = time.perf_counter() - started
        _report(self.jb_name, args + tuple(kws.values()), seconds, None)
        return result

    cls.__call__ = call_timed
    for sub in untimed:
        sub.__call__ = plain


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found
