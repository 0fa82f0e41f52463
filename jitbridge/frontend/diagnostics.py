"""Numba typing failures, rewritten as a KernelTypingError a person can act on.

The headline names the kernel, the user's ``file:line`` and what types met, in plain words
and numba's own type spelling; numba's innermost specific reason follows as ``reason:``, then
the fix. For ``jb.jit`` functions numba's report follows as numba wrote it, so the message
always says at least what numba would have said (code that looks for numba's wording still
finds it); for kernels it stays on ``__cause__``.
"""
from __future__ import annotations

import dis
import os
import re
from typing import Any, Sequence

from .. import errors

_OPERATORS = {
    "add": "add", "iadd": "add", "sub": "subtract", "isub": "subtract", "mul": "multiply",
    "imul": "multiply", "truediv": "divide", "itruediv": "divide", "floordiv": "floor-divide",
    "mod": "take the remainder of", "pow": "raise", "matmul": "matrix-multiply",
    "lt": "compare", "le": "compare", "gt": "compare", "ge": "compare", "eq": "compare", "ne": "compare",
    "and_": "and", "or_": "or", "xor": "xor", "lshift": "shift", "rshift": "shift",
    "getitem": "index", "setitem": "assign into",
}
_SIGNATURE = re.compile(r">>> ([\w.]+)\((.*)\)\s*$", re.MULTILINE)
_LITERAL = re.compile(r"Literal\[(\w+)\]\([^()]*\)")


def split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(text[start:pos].strip())
            start = pos + 1
    tail = text[start:].strip()
    return parts + [tail] if tail else parts


def plain_type(text: str) -> str:
    """numba's spelling of a type, with a literal constant shown as its type
    (``Literal[int](1)`` -> ``int64``); arrays keep their layout: ``array(float64, 1d, C)``."""
    return _LITERAL.sub(lambda m: {"int": "int64", "float": "float64"}.get(m[1], m[1]), text.strip())


def _plain_words(report: str) -> str:
    """The one sentence that says what went wrong, from numba's multi-part report."""
    match = _SIGNATURE.search(report)
    if match:
        fn, args = match[1], [plain_type(a) for a in split_top_level(match[2])]
        operator_call = f"Function(<built-in function {fn}>)" in report or "Function(<ufunc" in report
        verb = _OPERATORS.get(fn) if operator_call or fn in ("getitem", "setitem") else None
        if verb and len(args) == 2:
            joiner = "to the power" if fn == "pow" else "and"
            return f"cannot {verb} {args[0]} {joiner} {args[1]}"
        if verb:
            return f"cannot {verb} " + ", ".join(args)
        return f"no version of {fn}() accepts ({', '.join(args)})"
    lines = [ln.strip() for ln in report.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith(("Failed in", "During:", "File ", "^"))]
    return body[0] if body else (lines[0] if lines else "typing failed")


_TYPED_AT = re.compile(r"During: typing of [^\n]*? at (.+?) \((\d+)\)")
_UNDEFINED = re.compile(r"NameError: name '(\w+)' is not defined")
_SPECIFIC = re.compile(r"raised a specific error:\s*\n\s*(?:\w+Error): (?!Failed in)([^\n]+)")


def _user_file(filename: str) -> bool:
    """Code the user wrote, not jitbridge's own (its launch loops, its atomics) nor numba's."""
    return not (filename.startswith("<jitbridge") or filename.startswith(errors._PACKAGE_DIR)
                or f"{os.sep}numba{os.sep}" in filename)


def _unbound_name_line(py_func: Any, report: str) -> tuple[str, int] | None:
    """numba reports an undefined global without a line; find the first use in the bytecode."""
    match = _UNDEFINED.search(report)
    code = getattr(py_func, "__code__", None)
    if match is None or code is None:
        return None
    pending = [code]
    while pending:
        current = pending.pop(0)
        for ins in dis.get_instructions(current):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF") and ins.argval == match[1] \
                    and ins.positions is not None and ins.positions.lineno:
                return current.co_filename, ins.positions.lineno
        pending += [c for c in current.co_consts if isinstance(c, type(code))]
    return None


def typing_error(kind: str, name: str, exc: Exception, argtypes: Sequence[Any] | None,
                 py_func: Any = None, numba_report: bool = False) -> errors.KernelTypingError:
    """Build the KernelTypingError for numba's ``exc`` raised while compiling ``name``;
    ``numba_report`` appends numba's report as numba wrote it (otherwise it is on ``__cause__``)."""
    report = str(exc)
    loc = getattr(exc, "loc", None)
    where = None
    if loc is not None and getattr(loc, "filename", None) and _user_file(str(loc.filename)):
        where = (loc.filename, loc.line)
    else:  # raised in a launch loop or a library function: the user's line is further out
        inner = next((m for m in _TYPED_AT.finditer(report) if _user_file(m[1])), None)
        if inner is not None:
            where = (inner[1], int(inner[2]))
    where = where or _unbound_name_line(py_func, report)
    values = {}
    specific = _SPECIFIC.findall(report)
    if specific:
        values["reason"] = specific[-1].strip()
    if argtypes is not None:
        values["argument types"] = "(" + ", ".join(str(t) for t in argtypes) + ")"
    return errors.KernelTypingError(
        f"{_plain_words(report)} in {kind} '{name}'",
        where=where,
        values=values,
        fix="change the expression on that line, or pass arguments of types it supports "
        + ("(numba's report follows)" if numba_report else "(numba's full report is on this exception's __cause__)"),
        detail=report if numba_report else None,
    )
