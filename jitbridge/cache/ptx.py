"""CUDA kernels in the content store: PTX text, keyed also by compute capability and toolkit.

A CUDA entry's payload is the PTX numba-cuda generated, stored as text and never unpickled:
before it is returned it must decode, name the entry point's target architecture and match
the compute capability its key was made for. Its key hashes the kernel's fingerprint, the
argument types, the options, the compute capability and the NVVM version (in place of the
CPU's triple and features), so a new toolkit or another GPU generation is another entry.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from . import key as keys
from . import unpickle
from .records import Records
from .store import Corrupt, current_store

TARGET = "cuda"


def machine(cc: tuple[int, int], toolkit: str) -> tuple[str, str, str]:
    """What a CUDA entry is built for, in the place a CPU entry keeps (triple, cpu, features)."""
    return ("nvptx64-nvidia-cuda", f"sm_{cc[0]}{cc[1]}", f"nvvm {toolkit}")


def problem(meta: Mapping[str, Any], payload: bytes) -> str | None:
    """Why ``payload`` is not PTX for the architecture ``meta`` names (None when it is)."""
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError:
        return "a CUDA entry that is not PTX text"
    arch = (meta.get("machine") or [None, None])[1]
    if f".target {arch}" not in text or ".entry" not in text:
        return f"a CUDA entry whose PTX is not an {arch} kernel"
    return None


def check(meta: Mapping[str, Any], payload: bytes) -> None:
    """Raise unless ``payload`` is what an entry of its kind may hold: PTX text for a CUDA
    entry (``Corrupt``), a pickle naming only allow-listed objects otherwise (``Refused``)."""
    if meta.get("target") == TARGET:
        found = problem(meta, payload)
        if found:
            raise Corrupt(found)
    else:
        unpickle.check(payload)


class PtxCache(keys.CodeKeys):
    """The CUDA entries of one kernel. ``fingerprint`` is computed on first use."""

    def __init__(self, name: str, fingerprint: Callable[[], keys.Fingerprint], options: dict[str, Any],
                 globals_: dict[str, Any]) -> None:
        super().__init__(name, TARGET, fingerprint, TARGET, options)
        self.records = Records(name, TARGET, lambda: self.fingerprint, self.key_of, globals_)

    def load(self, signature: str, cc: tuple[int, int], toolkit: str) -> str | None:
        """The stored PTX, or None (a miss, or an entry that failed its check: removed)."""
        store = current_store()
        built_for = machine(cc, toolkit)
        key = self.key_of(signature, built_for)
        found = store.read(key)
        if found is None:
            return None
        meta, payload = found
        bad = problem(meta, payload) if meta.get("target") == TARGET else "not a CUDA entry"
        if bad:
            store.discard(store.path(key), bad)
            return None
        return payload.decode("ascii")

    def save(self, signature: str, cc: tuple[int, int], toolkit: str, ptx: str) -> None:
        """Store ``ptx``; ``signature`` spells the kernel's own arguments, as a user sees them."""
        built_for = machine(cc, toolkit)
        meta = {**self.meta(signature, signature, built_for), "cc": list(cc), "toolkit": toolkit}
        if current_store().write(self.key_of(signature, built_for), meta, ptx.encode("ascii")) is not None:
            self.records.remember(signature, built_for)
