"""Checks of what ``@jb.kernel`` is given, done once at decoration: its options, index
parameters and shape annotations, each refused with an ArgumentError at the kernel's line."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Sequence

import numpy as np

from .. import errors
from . import args as argmod

INDEX_NAMES = ("i", "j", "k")
# numba options a kernel takes, passed to the compiled body.
PASSED = ("fastmath", "error_model", "boundscheck", "inline", "debug")
# numba options that have no meaning for a kernel, and what to do instead.
REFUSED = {
    "parallel": "launches are parallel already; choose the thread count per launch with launch(..., threads=N)",
    "nopython": "kernels always compile in nopython mode; drop the option",
    "forceobj": "kernels always compile in nopython mode; drop the option",
    "looplift": "kernels always compile in nopython mode; drop the option",
    "nogil": "launches always release the GIL; drop the option",
    "target": "choose the target per launch: k.launch(dims, ..., target='cuda')",
    "signature": "declare argument types with signatures=[...]",
}


def defined_at(fn: Callable[..., Any]) -> tuple[str, int]:
    return fn.__code__.co_filename, fn.__code__.co_firstlineno


def checked_options(options: dict[str, Any], fn: Callable[..., Any]) -> dict[str, Any]:
    for name in options:
        if name in PASSED:
            continue
        fix = REFUSED.get(name, f"a kernel takes {', '.join(PASSED)}, ndim, cache, signatures, serial_below, "
                                 "disjoint, locals and vector_math")
        raise errors.ArgumentError(f"@jb.kernel does not take the option {name!r}", where=defined_at(fn),
                                   values={name: repr(options[name])}, fix=fix)
    model = options.get("error_model", "numpy")
    if model not in ("numpy", "python"):
        raise errors.ArgumentError(f"error_model must be 'numpy' or 'python', got {model!r}", where=defined_at(fn),
                                   fix="error_model='numpy' (the default: x / 0 gives inf or nan) or 'python' "
                                       "(raises ZeroDivisionError)")
    return dict(options)


def checked_count(value: int | None, name: str, fn: Callable[..., Any]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise errors.ArgumentError(f"{name} must be a non-negative int", where=defined_at(fn),
                                   values={name: repr(value)}, fix=f"pass {name}=N (launches below N indices run serially)")
    return int(value)


def checked_disjoint(disjoint: Sequence[str] | bool, arg_names: tuple[str, ...], fn: Callable[..., Any]) -> frozenset[str]:
    if disjoint is True:
        return frozenset(arg_names)
    names = frozenset([disjoint] if isinstance(disjoint, str) else disjoint or ())
    unknown = sorted(names - set(arg_names))
    if unknown:
        raise errors.ArgumentError(f"disjoint names {unknown}, which are not parameters of the kernel",
                                   where=defined_at(fn), values={"parameters": ", ".join(arg_names)},
                                   fix="list the array parameters whose writes never collide, or disjoint=True")
    return names


def count_index_params(params: Sequence[inspect.Parameter]) -> int:
    count = 0
    for param, name in zip(params, INDEX_NAMES):
        if param.name != name:
            break
        count += 1
    return count


def shape_declarations(params: Sequence[inspect.Parameter], ndim: int, fn: Callable[..., Any]):
    """String annotations (``x: "n"``) declare which dimensions must agree at launch."""
    declared, index_symbols = [], []
    for position, param in enumerate(params):
        if not isinstance(param.annotation, str):
            continue
        try:
            symbols = argmod.parse_shape_annotation(param.annotation)
        except ValueError as exc:
            raise errors.ArgumentError(str(exc), where=defined_at(fn), values={param.name: param.annotation},
                                       fix='annotate arrays with their dimension names, e.g. x: "n"') from None
        if position < ndim:
            index_symbols.append((position, symbols[0]))
        else:
            declared.append((position - ndim, param.name, symbols))
    return tuple(declared), tuple(index_symbols)
