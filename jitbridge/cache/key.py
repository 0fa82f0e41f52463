"""The cache key: a content hash of everything that determines the machine code.

No file paths and no modification times go in, so a project can move, and a change in any
reached function changes the key even when it lives in another file. Compile options go in
whole (every target option, ``locals``, the pipeline class): an option added later is in the
key without anyone remembering to add it, and an option that does not change the code costs
at most a second entry.
"""
from __future__ import annotations

import functools
import hashlib
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .._version import __version__

# The parts of a key, in hashing order; an entry's metadata records them under these names.
PARTS = ("fingerprint", "signature", "target", "options", "machine", "versions")

# numba settings read from NUMBA_* at its import that change the code of every function
# compiled afterwards, whatever the decorator said (NUMBA_BOUNDSCHECK overrides boundscheck=).
NUMBA_CODE_SETTINGS = ("BOUNDSCHECK", "OPT", "LOOP_VECTORIZE", "SLP_VECTORIZE", "ENABLE_AVX", "DEBUGINFO_DEFAULT",
                       "EXTEND_VARIABLE_LIFETIMES")


@dataclass
class Fingerprint:
    """A function's content digest plus its parts (its own bytecode's digest and each reached
    function's), kept so that a cache miss or a stale entry can say what changed."""

    digest: str
    code: str
    deps: dict[str, str] = field(default_factory=dict)


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


def machine() -> tuple[str, str, str]:
    """(target triple, CPU name, CPU features) as LLVM compiles for them in this process."""
    from numba.core.registry import cpu_target

    return tuple(cpu_target.target_context.codegen().magic_tuple())


def signature_text(sig: Any) -> str:
    """One spelling per specialization, whether it came as a string, a Signature or argument
    types: the spelling entries and name records store."""
    from numba.core import sigutils

    args, return_type = sigutils.normalize_signature(sig)
    return f"{tuple(args)}->{return_type}"


def arguments_text(args: Any, shown: slice = slice(None)) -> str:
    """Argument types as a user passed them, as numba prints them: ``(float64, array(float64, 1d, C))``;
    ``shown`` picks them out of a longer compiled signature (a kernel launcher's)."""
    return "(" + ", ".join(str(t) for t in tuple(args)[shown]) + ")"


def signature_args(sig: Any) -> tuple[Any, ...]:
    """The argument types of ``sig`` (a string, a Signature or argument types)."""
    from numba.core import sigutils

    return tuple(sigutils.normalize_signature(sig)[0])


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


def numba_settings() -> dict[str, str]:
    """The NUMBA_* settings of this process that change generated code."""
    from numba.core import config as numba_config

    return {name: str(getattr(numba_config, name, None)) for name in NUMBA_CODE_SETTINGS}


def code_options(targetoptions: Mapping[str, Any], locals_: Mapping[str, Any] | None = None,
                 pipeline_class: Any = None) -> dict[str, Any]:
    """Everything besides the code and the argument types that a dispatcher compiles with.

    Every target option goes in as given (there is no list of options that "matter"), plus
    ``locals`` (declared variable types), the compiler pipeline, and the NUMBA_* settings
    that override options process-wide."""
    options = dict(targetoptions)
    options["locals"] = dict(locals_ or {})
    if pipeline_class is not None:
        options["pipeline_class"] = f"{pipeline_class.__module__}.{pipeline_class.__qualname__}"
    options["numba"] = numba_settings()
    return options


def key_parts(fingerprint: str, signature: str, target: str, options: Mapping[str, Any],
              machine: tuple[Any, ...] | list[Any]) -> dict[str, str]:
    """The key's parts as the strings that are hashed (and recorded in the entry)."""
    return {"fingerprint": fingerprint, "signature": signature, "target": target, "options": stable_repr(options),
            "machine": repr(tuple(machine)), "versions": repr(versions())}


def digest(parts: Mapping[str, str]) -> str:
    h = hashlib.sha256()
    for name in PARTS:
        h.update(str(parts[name]).encode())
        h.update(b"\0")
    return h.hexdigest()


def entry_key(
    fingerprint: str,
    signature: str,
    target: str,
    options: Mapping[str, Any],
    machine: tuple[Any, ...],
) -> str:
    """Key of one compiled specialization; ``machine`` is the codegen's (triple, cpu, features)."""
    return digest(key_parts(fingerprint, signature, target, options, machine))


def key_problem(meta: Mapping[str, Any], key: str) -> str | None:
    """Why an entry's metadata does not belong under ``key`` (None when it does): an entry
    records the key it was written under and the parts that key hashes."""
    if meta.get("key") != key:
        return "stored under another key (a swapped, renamed or misfiled entry)"
    parts = meta.get("key_parts")
    if parts is not None:
        if not isinstance(parts, dict) or set(parts) != set(PARTS):
            return "unreadable key parts"
        if digest(parts) != key:
            return "its recorded key parts do not hash to its key (edited metadata)"
    return None


class CodeKeys:
    """The entry keys of one function's (or kernel variant's) code as it is now, and the
    metadata its entries record; the fingerprint is computed on first use and then kept.
    The CPU cache adapter and the CUDA PTX entries both build on it."""

    def __init__(self, name: str, variant: str | None, fingerprint: Callable[[], Fingerprint], target: str,
                 options: Mapping[str, Any]) -> None:
        self.name = name
        self.variant = variant
        self._fingerprint_fn = fingerprint
        self._fingerprint: Fingerprint | None = None
        self.target = target
        self.options = dict(options)

    @property
    def fingerprint(self) -> Fingerprint:
        if self._fingerprint is None:
            self._fingerprint = self._fingerprint_fn()
        return self._fingerprint

    def key_of(self, signature: str, machine: tuple[Any, ...]) -> str:
        """The entry key of the code as it is now for a signature as name records spell it."""
        return digest(self.parts(signature, machine))

    def parts(self, signature: str, machine: tuple[Any, ...]) -> dict[str, str]:
        return key_parts(self.fingerprint.digest, signature, self.target, self.options, machine)

    def meta(self, signature: str, arguments: str, machine: tuple[Any, ...]) -> dict[str, Any]:
        """What an entry built now for ``signature`` on ``machine`` records about itself."""
        fp = self.fingerprint
        return {"name": self.name, "variant": self.variant, "signature": signature, "arguments": arguments,
                "target": self.target, "versions": dict(versions()), "machine": list(machine),
                "created": time.time(), "code": fp.code, "deps": fp.deps,
                "key_parts": self.parts(signature, machine)}
