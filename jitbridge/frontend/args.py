"""Launch-boundary argument handling: pure functions, no compilation.

Anything exposing ``__array_interface__`` or the buffer protocol becomes an ndarray view of
the same memory (never a copy); declared shapes are checked before any code runs, because a
kernel indexing past an array's end would read or write memory it does not own.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .. import errors

class NeedsConversion(Exception):
    """Raised through numba's C dispatch by a kernel launcher when an argument must be viewed
    as an ndarray first (it is neither an ndarray nor anything numba passes without copying);
    the launch converts the arguments and calls again. Raised while typing, before any code runs."""


class OnDevice(NeedsConversion):
    """An argument lives in GPU memory: the launch belongs on the CUDA target."""


_PASS_THROUGH = (np.ndarray, int, float, complex, bool, np.generic, tuple)


def as_array_or_scalar(value: Any, name: str) -> Any:
    """``value`` as the kernel will see it: arrays zero-copy, numbers unchanged."""
    if isinstance(value, _PASS_THROUGH):
        return value
    if hasattr(value, "__array_interface__") or hasattr(value, "__array__") or _has_buffer(value):
        try:
            return np.asarray(value)
        except errors.JitBridgeError:
            raise
        except Exception as exc:
            raise errors.ArgumentError(
                f"argument '{name}' could not be viewed as an array: {exc}",
                where=errors.user_location(),
                values={name: type(value).__name__},
                fix="pass a NumPy array or an object exposing __array_interface__ or the buffer protocol",
            ) from exc
    if isinstance(value, numbers.Number):
        return value
    raise errors.ArgumentError(
        f"argument '{name}' of type {type(value).__name__} cannot be passed to a kernel",
        where=errors.user_location(),
        values={name: repr(value)[:80]},
        fix="pass NumPy arrays (or array-likes such as SharedTensor, memoryview), numbers or tuples of them",
    )


def _has_buffer(value: Any) -> bool:
    try:
        memoryview(value).release()
    except TypeError:
        return False
    return True


def parse_shape_annotation(text: str) -> tuple[str, ...]:
    """``"n, m"`` -> ``("n", "m")``: the symbols a parameter's leading dimensions must match.

    Under ``from __future__ import annotations`` the annotation arrives quoted twice."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    symbols = tuple(part.strip() for part in text.split(","))
    if not all(s.isidentifier() for s in symbols):
        raise ValueError(f"shape annotation {text!r} must be comma-separated names, like \"n, m\"")
    return symbols


def check_shapes(
    declared: Sequence[tuple[int, str, tuple[str, ...]]],
    dims: tuple[int, ...],
    index_symbols: Sequence[tuple[int, str]],
    args: Sequence[Any],
) -> None:
    """Raise ArgumentError when arrays declared with the same symbol differ in length.

    ``declared`` is (argument position, name, symbols); ``index_symbols`` binds launch
    dimension ``d`` to a symbol when the index parameter is annotated. This runs on every
    launch, so the passing path only compares ints; the failing path explains.
    """
    sizes = {sym: dims[d] for d, sym in index_symbols}
    for position, _name, symbols in declared:
        shape = getattr(args[position], "shape", ())
        if len(shape) < len(symbols):
            _explain(declared, dims, index_symbols, args)
        for axis, sym in enumerate(symbols):
            if sizes.setdefault(sym, shape[axis]) != shape[axis]:
                _explain(declared, dims, index_symbols, args)


def _explain(declared, dims, index_symbols, args) -> None:
    """Find the first disagreement again, keeping who set each size, and raise about it."""
    bound: dict[str, tuple[int, str]] = {sym: (dims[d], f"launch dimension {d}") for d, sym in index_symbols}
    for position, name, symbols in declared:
        shape = np.shape(args[position])
        if len(shape) < len(symbols):
            raise errors.ArgumentError(
                f"argument '{name}' has {len(shape)} dimension(s) but is declared with {len(symbols)}",
                where=errors.user_location(),
                values={name: f"shape {shape}", "declared": ", ".join(symbols)},
                fix=f"pass an array with at least {len(symbols)} dimension(s)",
            )
        for axis, sym in enumerate(symbols):
            size = shape[axis]
            if sym in bound and bound[sym][0] != size:
                other_size, other = bound[sym]
                raise errors.ArgumentError(
                    f"'{sym}' must be the same for {other} and argument '{name}' (axis {axis})",
                    where=errors.user_location(),
                    values={other: other_size, f"{name}.shape[{axis}]": size},
                    fix=f"pass arrays whose '{sym}' sizes agree, or launch over the size they share",
                )
            bound.setdefault(sym, (size, f"argument '{name}' (axis {axis})"))
