"""Numba's cache interface (``load_overload``/``save_overload``) on top of the content store.

A dispatcher's ``_cache`` is one of these. Serialization is numba's own (the codegen
library's object code via ``CompileResult._reduce``); only where and how entries are kept
is ours.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from numba.core import compiler, serialize, sigutils
from numba.core.errors import NumbaWarning
from numba.core.runtime import rtsys

from .. import config, errors, telemetry
from . import key as keys
from . import unpickle
from .store import Store
from .unpickle import Unpickler as _Unpickler  # noqa: F401  (inspection reads entries' signatures with it)

if TYPE_CHECKING:
    from ..frontend.deps import Fingerprint

log = logging.getLogger("jitbridge.cache")


@functools.lru_cache(maxsize=16)
def store_at(root: Path) -> Store:
    return Store(root)


def current_store() -> Store:
    return store_at(Path(config.settings.cache_dir))


def _sig_text(sig: Any) -> str:
    """One spelling per specialization, whether it came as a string, a Signature or arg types."""
    args, return_type = sigutils.normalize_signature(sig)
    return f"{tuple(args)}->{return_type}"


def uncachable(cres: Any) -> str | None:
    """Why numba would refuse to cache ``cres`` (its own rule and wording), or None."""
    if any(not lifted.can_cache for lifted in cres.lifted):
        return "as it uses lifted code"
    if cres.library.has_dynamic_globals:
        return "as it uses dynamic globals (such as ctypes pointers and large global arrays)"
    return None


def warn_uncachable(cres: Any, reason: str) -> None:
    """numba's "Cannot cache" warning, in numba's words, at the user's line."""
    filename, lineno = errors.user_location() or ("<unknown>", 0)
    warnings.warn_explicit(f'Cannot cache compiled function "{cres.fndesc.qualname.split(".")[-1]}" {reason}',
                           NumbaWarning, filename, lineno)


def record_key(name: str, variant: str | None = None) -> str:
    """Under which name a function's (or a kernel launch variant's) last build is recorded."""
    return f"{name}:{variant}" if variant else name


class ContentCache:
    """One per dispatcher. ``fingerprint`` is computed on first use and then kept."""

    def __init__(self, name: str, fingerprint: Callable[[], "Fingerprint"], target: str, options: dict[str, Any],
                 record_key: str | None = None, globals_: dict[str, Any] | None = None):
        self.name = name
        self._globals = globals_ if globals_ is not None else {}
        self.record_key = record_key or name
        self._fingerprint_fn = fingerprint
        self._fingerprint: "Fingerprint | None" = None
        self.target = target
        self.options = dict(options)  # keys.code_options(...): all of them, by design

    @property
    def fingerprint(self) -> "Fingerprint":
        if self._fingerprint is None:
            self._fingerprint = self._fingerprint_fn()
        return self._fingerprint

    @property
    def cache_path(self) -> str:
        return str(config.settings.cache_dir)

    @property
    def enabled(self) -> bool:
        return not config.settings.disable_cache

    def key(self, sig: Any, codegen: Any) -> str:
        return self.key_of(_sig_text(sig), codegen.magic_tuple())

    def key_of(self, sig_text: str, machine: tuple[Any, ...]) -> str:
        """The entry key of the code as it is now for a signature as name records spell it."""
        return keys.digest(self._parts(sig_text, machine))

    def _parts(self, sig_text: str, machine: tuple[Any, ...]) -> dict[str, str]:
        return keys.key_parts(self.fingerprint.digest, sig_text, self.target, self.options, machine)

    def lock(self, sig: Any, codegen: Any) -> Any:
        """A held-while-compiling cross-process lock, or a no-op when the entry already
        exists: a warm start then never pays for locking."""
        store = current_store()
        key = self.key(sig, codegen)
        return contextlib.nullcontext() if store.has(key) else store.lock(key)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        if not self.enabled:
            return None
        rtsys.initialize(target_context)  # the NRT only; a full refresh() costs ~0.2 s of imports
        started = time.perf_counter()
        store = current_store()
        key = self.key(sig, target_context.codegen())
        found = store.read(key)
        cres = None
        if found is not None and found[0].get("versions") != dict(keys.versions()):
            store.discard(store.path(key), "a cache entry built by other versions")
        elif found is not None:
            cres = self._rebuild(store, key, found[1], target_context)
        if cres is None:
            telemetry.count(self.name, "cache_misses")
            self._explain_miss(store, sig, target_context.codegen().magic_tuple())
            return None
        telemetry.count(self.name, "cache_hits")
        telemetry.count(self.name, "load_seconds", time.perf_counter() - started)
        return cres

    def _rebuild(self, store: Store, key: str, payload: bytes, target_context: Any) -> Any:
        """The compile result in ``payload``, or None (the entry removed, with a warning) when
        it names anything outside the unpickler's allow-list or does not rebuild."""
        try:
            return compiler.CompileResult._rebuild(target_context, *unpickle.load(payload, self._globals))
        except Exception as exc:
            store.discard(store.path(key), f"a cache entry that does not load ({type(exc).__name__}: {exc})")
            return None

    def save_overload(self, sig: Any, cres: Any) -> None:
        if not self.enabled:
            return
        reason = uncachable(cres)
        if reason:
            warn_uncachable(cres, reason)
            return
        payload = _serialize(cres)
        try:
            unpickle.check(payload)
        except unpickle.Refused as exc:
            log.info("not caching %s%s: loading it back would need %s", self.name, _sig_text(sig), exc)
            return
        store = current_store()
        machine = cres.codegen.magic_tuple()
        meta = {"name": self.name, "signature": _sig_text(sig), "target": self.target,
                "versions": dict(keys.versions()), "machine": list(machine), "created": time.time(),
                "key_parts": self._parts(_sig_text(sig), machine)}
        if store.write(self.key(sig, cres.codegen), meta, payload) is None:
            return
        self._remember(store, sig, cres)
        store.prune(config.settings.cache_max_bytes)  # one scan; removes nothing while under the bound

    def flush(self) -> None:
        """Numba calls this on ``recompile()``; entries are content-addressed, so nothing is stale."""

    def _remember(self, store: Store, sig: Any, cres: Any) -> None:
        fp = self.fingerprint
        record = store.read_name_record(self.record_key) or {}
        same = record.get("digest") == fp.digest
        signatures = sorted(set(record.get("signatures", []) if same else []) | {_sig_text(sig)})
        store.write_name_record(self.record_key, {"digest": fp.digest, "code": fp.code, "deps": fp.deps,
                                                  "versions": dict(keys.versions()), "signatures": signatures,
                                                  "machine": list(cres.codegen.magic_tuple())})

    def _explain_miss(self, store: Store, sig: Any, machine: tuple[Any, ...]) -> None:
        record = store.read_name_record(self.record_key)
        if record:
            telemetry.note_recompile(self.name, miss_reason(record, self.fingerprint, _sig_text(sig), machine))


def _serialize(cres: Any) -> bytes:
    """numba's serialization of ``cres``, without the module globals numba keeps for code
    whose module has no name (``exec``): pickling them by value would put every builtin,
    and any function, into the entry. Loading supplies the function's globals instead."""
    fndesc = cres.fndesc
    kept, fndesc.global_dict = fndesc.global_dict, None
    try:
        return serialize.dumps(cres._reduce())
    finally:
        fndesc.global_dict = kept


def miss_reason(record: dict[str, Any], fp: "Fingerprint", sig: str, machine: tuple[Any, ...]) -> str:
    """Why a kernel cached before under another key missed now, in words."""
    if record.get("machine") not in (None, list(machine)):
        return f"CPU changed ({record['machine'][1]} -> {machine[1]})"
    old_versions, new_versions = record.get("versions", {}), dict(keys.versions())
    if old_versions != new_versions:
        changed = [f"{k} {old_versions.get(k)} -> {v}" for k, v in new_versions.items() if old_versions.get(k) != v]
        return "versions changed (" + ", ".join(changed) + ")"
    if record.get("code") != fp.code:
        return "source changed"
    old_deps = record.get("deps", {})
    changed = sorted(name for name in set(old_deps) | set(fp.deps) if old_deps.get(name) != fp.deps.get(name))
    if changed:
        return "dependency " + ", ".join(changed) + " changed"
    if record.get("digest") != fp.digest:
        return "a global value or closure variable changed"
    if sig not in record.get("signatures", []):
        return f"new signature {sig}"
    return "entry missing (cleared, evicted or removed as corrupt)"
