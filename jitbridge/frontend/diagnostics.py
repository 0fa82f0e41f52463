"""Numba typing failures, rewritten as a KernelTypingError a person can act on.

The headline names the kernel, the user's ``file:line`` and what types met, in plain words;
numba's full report stays on ``__cause__``.
"""
from __future__ import annotations

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
_ARRAY = re.compile(r"(readonly )?array\((\w+), (\d+)d, (\w)\)")
_LITERAL = re.compile(r"Literal\[(\w+)\]\([^()]*\)")
_TUPLE = re.compile(r"\b(Uni)?Tuple\(")


def _split_top_level(text: str) -> list[str]:
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


def friendly_type(text: str) -> str:
    """``array(float64, 1d, C)`` -> ``float64[:]``; tuples -> ``tuple``; literals -> their type."""
    text = text.strip()
    if _TUPLE.match(text):
        return "tuple"
    text = _ARRAY.sub(lambda m: f"{'readonly ' if m[1] else ''}{m[2]}[{', '.join([':'] * int(m[3]))}]", text)
    return _LITERAL.sub(lambda m: {"int": "int64", "float": "float64"}.get(m[1], m[1]), text)


def _plain_words(report: str) -> str:
    """The one sentence that says what went wrong, from numba's multi-part report."""
    match = _SIGNATURE.search(report)
    if match:
        fn, args = match[1], [friendly_type(a) for a in _split_top_level(match[2])]
        verb = _OPERATORS.get(fn)
        if verb and len(args) == 2:
            joiner = "to the power" if fn == "pow" else "and"
            return f"cannot {verb} {args[0]} {joiner} {args[1]}"
        if verb:
            return f"cannot {verb} " + ", ".join(args)
        return f"no version of {fn}() accepts ({', '.join(args)})"
    lines = [ln.strip() for ln in report.splitlines() if ln.strip()]
    body = [ln for ln in lines if not ln.startswith(("Failed in", "During:", "File ", "^"))]
    headline = body[0] if body else (lines[0] if lines else "typing failed")
    return _ARRAY.sub(lambda m: friendly_type(m[0]), headline)


_TYPED_AT = re.compile(r"During: typing of [^\n]*? at (.+?) \((\d+)\)")


def typing_error(kind: str, name: str, exc: Exception, argtypes: Sequence[Any] | None) -> errors.KernelTypingError:
    """Build the KernelTypingError for numba's ``exc`` raised while compiling ``name``."""
    report = str(exc)
    loc = getattr(exc, "loc", None)
    where = None
    if loc is not None and getattr(loc, "filename", None) and not str(loc.filename).startswith("<jitbridge"):
        where = (loc.filename, loc.line)
    else:  # raised while typing a kernel's launch loop: the user's line is in the body's report
        inner = next((m for m in _TYPED_AT.finditer(report) if not m[1].startswith("<jitbridge")), None)
        if inner is not None:
            where = (inner[1], int(inner[2]))
    values = {}
    if argtypes is not None:
        values["argument types"] = "(" + ", ".join(friendly_type(str(t)) for t in argtypes) + ")"
    return errors.KernelTypingError(
        f"{_plain_words(report)} in {kind} '{name}'",
        where=where,
        values=values,
        fix="change the expression on that line, or pass arguments of types it supports "
        "(numba's full report is on this exception's __cause__)",
    )
