"""The cache key: a content hash of everything that determines the machine code.

No file paths and no modification times go in, so a project can move, and a change in any
reached function changes the key even when it lives in another file.
"""
from __future__ import annotations

import functools
import hashlib
import sys
from typing import Any, Mapping

from .._version import __version__


@functools.lru_cache(maxsize=None)
def versions() -> tuple[tuple[str, str], ...]:
    import llvmlite
    import numba
    import numpy

    return (
        ("python", "%d.%d.%d" % sys.version_info[:3]),
        ("jitbridge", __version__),
        ("numba", numba.__version__),
        ("llvmlite", llvmlite.__version__),
        ("numpy", numpy.__version__),
    )


def stable_repr(value: Any) -> str:
    """repr() that is the same in every process: sets and dicts are sorted first (a set's
    iteration order depends on per-process string hashing)."""
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(stable_repr(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{stable_repr(k)}: {stable_repr(v)}" for k, v in sorted(value.items(), key=repr)) + "}"
    if isinstance(value, (list, tuple)):
        return type(value).__name__ + "(" + ", ".join(stable_repr(v) for v in value) + ")"
    return repr(value)


def entry_key(
    fingerprint: str,
    signature: str,
    target: str,
    options: Mapping[str, Any],
    machine: tuple[Any, ...],
) -> str:
    """Key of one compiled specialization; ``machine`` is the codegen's (triple, cpu, features)."""
    h = hashlib.sha256()
    for part in (fingerprint, signature, target, stable_repr(options), repr(machine), repr(versions())):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()
