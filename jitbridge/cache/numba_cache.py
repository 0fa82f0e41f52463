"""Numba's cache interface (``load_overload``/``save_overload``) on top of the content store.

A dispatcher's ``_cache`` is one of these. Serialization is numba's own (the codegen
library's object code via ``CompileResult._reduce``); only where and how entries are kept
is ours.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import io
import logging
import pickle
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from numba.core import compiler, environment, serialize, sigutils
from numba.core.runtime import rtsys

from .. import config, errors, telemetry
from . import key as keys
from .store import Store

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


class _Unpickler(pickle.Unpickler):
    """numba rebuilds a function's Environment by importing its module by name, which fails
    for code from ``exec``, notebooks and other non-importable places; those get the globals
    of the function being loaded instead."""

    def __init__(self, blob: bytes, fallback_globals: dict[str, Any]) -> None:
        super().__init__(io.BytesIO(blob))
        self._fallback = fallback_globals

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("numba.core.environment", "_rebuild_env"):
            return self._rebuild_env
        return super().find_class(module, name)

    def _rebuild_env(self, modname: str | None, consts: list[Any], env_name: str) -> Any:
        env = environment.lookup_environment(env_name)
        if env is not None:
            return env
        try:
            namespace = importlib.import_module(modname).__dict__ if modname else self._fallback
        except ImportError:
            namespace = self._fallback
        env = environment.Environment(namespace)
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
        return env


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
        self.options = {k: v for k, v in options.items() if k != "nogil"}

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
        return keys.entry_key(self.fingerprint.digest, sig_text, self.target, self.options, machine)

    def lock(self, sig: Any, codegen: Any) -> Any:
        """A held-while-compiling cross-process lock, or a no-op when the entry already
        exists: a warm start then never pays for locking (nor for importing filelock)."""
        store = current_store()
        key = self.key(sig, codegen)
        return contextlib.nullcontext() if store.path(key).exists() else store.lock(key)

    def load_overload(self, sig: Any, target_context: Any) -> Any:
        if not self.enabled:
            return None
        rtsys.initialize(target_context)  # the NRT only; a full refresh() costs ~0.2 s of imports
        started = time.perf_counter()
        store = current_store()
        key = self.key(sig, target_context.codegen())
        found = store.read(key)
        if found is not None and found[0].get("versions") != dict(keys.versions()):
            errors.warn_cache("removed a cache entry built by other versions; recompiling", store.path(key),
                              "nothing to do: it is rebuilt")
            store.remove(key)
            found = None
        if found is None:
            telemetry.count(self.name, "cache_misses")
            self._explain_miss(store, sig, target_context.codegen().magic_tuple())
            return None
        cres = compiler.CompileResult._rebuild(target_context, *_Unpickler(found[1], self._globals).load())
        telemetry.count(self.name, "cache_hits")
        telemetry.count(self.name, "load_seconds", time.perf_counter() - started)
        return cres

    def save_overload(self, sig: Any, cres: Any) -> None:
        if not self.enabled:
            return
        if any(not lifted.can_cache for lifted in cres.lifted) or cres.library.has_dynamic_globals:
            log.info("not caching %s%s: it uses dynamic globals or lifted code", self.name, _sig_text(sig))
            return
        store = current_store()
        meta = {"name": self.name, "signature": _sig_text(sig), "target": self.target,
                "versions": dict(keys.versions()), "machine": list(cres.codegen.magic_tuple()),
                "created": time.time()}
        store.write(self.key(sig, cres.codegen), meta, serialize.dumps(cres._reduce()))
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
