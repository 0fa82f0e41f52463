"""One hierarchy for every error jitbridge raises, formatted in one place.

Each message says what went wrong, where (the user's ``file:line`` and source line),
the values involved, and how to fix it, so a user never has to read a compiler traceback
to know what to change. Compiler internals stay reachable as ``__cause__``.
"""
from __future__ import annotations

import linecache
import os
import sys
from typing import Any, Mapping

from numba.core.errors import TypingError as _NumbaTypingError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_STDLIB_DIR = os.path.dirname(os.__file__)


def _in_stdlib(filename: str) -> bool:
    """numba reaches jitbridge through functools.singledispatch and the like: not the user."""
    return filename.startswith(_STDLIB_DIR) and "-packages" not in filename


def user_location(skip_internal: bool = True) -> tuple[str, int] | None:
    """The innermost stack frame outside jitbridge, numba and the standard library: where
    the user called us."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        internal = (filename.startswith((_PACKAGE_DIR, "<jitbridge")) or f"{os.sep}numba{os.sep}" in filename
                    or _in_stdlib(filename))  # "<jitbridge ...>": code jitbridge generates
        if not (skip_internal and internal) and not filename.startswith("<frozen"):
            return filename, frame.f_lineno
        frame = frame.f_back
    return None


def format_message(
    what: str,
    where: tuple[str, int] | None = None,
    values: Mapping[str, Any] | None = None,
    fix: str | None = None,
    detail: str | None = None,
) -> str:
    """The single formatter: headline, location with the quoted source line, values, fix, and
    last, verbatim, another tool's own report (``detail``: numba's, for typing errors)."""
    lines = [what if where is None else f"{what} (at {where[0]}:{where[1]})"]
    if where is not None:
        source = linecache.getline(where[0], where[1]).strip()
        if source:
            lines.append(f"    {source}")
    for name, value in (values or {}).items():
        lines.append(f"  {name}: {value}")
    if fix:
        lines.append(f"  fix: {fix}")
    if detail:
        lines += ["", detail.rstrip()]
    return "\n".join(lines)


class JitBridgeError(Exception):
    """Root of every error jitbridge raises."""

    def __init__(
        self,
        what: str,
        *,
        where: tuple[str, int] | None = None,
        values: Mapping[str, Any] | None = None,
        fix: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.what = what
        self.where = where
        self.values = dict(values or {})
        self.fix = fix
        self.detail = detail
        super().__init__(format_message(what, where, values, fix, detail))

    def __str__(self) -> str:
        return format_message(self.what, self.where, self.values, self.fix, self.detail)


class KernelTypingError(JitBridgeError, _NumbaTypingError):
    """A kernel's body could not be typed for the arguments given.

    Also a ``numba.core.errors.TypingError`` so code written for numba keeps catching it.
    """


class LaunchError(JitBridgeError, ValueError):
    """A launch was malformed: its domain, rank or argument count."""


class ArgumentError(JitBridgeError, TypeError, ValueError):
    """An argument has the wrong kind, dtype or shape for this call (a TypeError and a
    ValueError both, so code written to NumPy's or numba's conventions still catches it)."""


class BoundsError(JitBridgeError, IndexError):
    """A kernel indexed an array outside its extent (raised when bounds checking is on)."""


class CacheError(JitBridgeError):
    """The on-disk cache could not be used as asked."""


class TensorError(JitBridgeError):
    """A SharedTensor was misused: closed, gone, or mismatched."""


class TargetUnavailableError(JitBridgeError, RuntimeError):
    """The requested target (e.g. CUDA) is not usable on this machine."""


class StreamError(JitBridgeError, RuntimeError):
    """A chunk of a stream failed and the stream stopped there (the cause is ``__cause__``).

    ``chunk``: the failed chunk's index; ``rows``: its (start, stop) rows in the source, when
    the source has rows; ``completed``: the (start, stop) rows of ``out`` written and flushed
    before it, or None when the stream had no ``out``."""

    def __init__(self, what: str, *, chunk: int, rows: tuple[int, int] | None = None,
                 completed: tuple[int, int] | None = None, **details: Any) -> None:
        super().__init__(what, **details)
        self.chunk, self.rows, self.completed = chunk, rows, completed


def array_not_compilable(value: Any, error: type[JitBridgeError] = ArgumentError) -> JitBridgeError:
    """The error for an array compiled code cannot take (float16, non-native byte order,
    masked, object or other dtypes numba has no type for), with the conversion that fixes it."""
    dtype = getattr(value, "dtype", None)
    kind = type(value).__name__
    if "MaskedArray" in kind:
        what, fix = "masked arrays cannot be passed to compiled code (the mask would be ignored)", \
            "pass x.filled(fill_value) or x.data"
    elif dtype is not None and not dtype.isnative:
        what, fix = f"arrays in non-native byte order ({dtype}) cannot be passed to compiled code", \
            "convert with x.astype(x.dtype.newbyteorder('='))"
    elif dtype is not None and dtype.kind == "f" and dtype.itemsize == 2:
        what, fix = "float16 data cannot be passed to compiled code", "convert with x.astype(np.float32)"
    else:
        what, fix = f"arrays of dtype {dtype} cannot be passed to compiled code", \
            "pass a numeric, bool, datetime or structured array in native byte order"
    return error(what, where=user_location(), values={"argument": f"{kind} of dtype {dtype}"}, fix=fix)


class CacheWarning(UserWarning):
    """A cache entry was unusable (corrupt, stale, insecure) and was skipped or rebuilt."""


def array_too_short(kernel: str, array: str, index: str, axis: int, shape: tuple[int, ...],
                    domain: tuple[int, ...], dim: int) -> LaunchError:
    """The LaunchError for a launch whose domain runs past an array the body indexes with a
    launch index (CPU launchers check this in compiled code, CUDA launches in Python)."""
    most = shape[axis] if axis < len(shape) else 0
    return LaunchError(
        f"kernel '{kernel}' indexes '{array}' with launch index {index} on axis {axis}, "
        f"but '{array}' is shorter than the domain there",
        where=user_location(), values={array: f"shape {shape}", "domain": f"{tuple(domain)}"},
        fix=f"launch over at most {most} indices in dimension {dim}, or pass a larger '{array}'")


class RaceWarning(UserWarning):
    """A kernel writes an array element that other launch indices may write too."""


def warn_cache(what: str, path: object, fix: str) -> None:
    """Warn about an unusable cache entry, at the user's line; the program goes on and compiles."""
    import warnings

    filename, lineno = user_location() or ("<unknown>", 0)
    warnings.warn_explicit(format_message(what, values={"path": path}, fix=fix), CacheWarning, filename, lineno)


__all__ = [
    "BoundsError",
    "CacheWarning",
    "RaceWarning",
    "JitBridgeError",
    "KernelTypingError",
    "LaunchError",
    "ArgumentError",
    "CacheError",
    "TensorError",
    "TargetUnavailableError",
    "StreamError",
    "format_message",
    "user_location",
]
