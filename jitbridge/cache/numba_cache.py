"""Numba's cache interface (``load_overload``/``save_overload``) on top of the content store.

A jitbridge dispatcher's ``_cache`` is a ``ContentCache`` when it caches to disk and a
``NullCache`` when it does not, so callers never ask which. Serialization is numba's own (the
codegen library's object code via ``CompileResult._reduce``); the key is ``key.py``'s, files
are ``store.py``'s, and what each name was built from is ``records.py``'s. This module only
joins them, and says what happened (``telemetry``).
"""
from __future__ import annotations

import contextlib
import importlib
import logging
import time
import warnings
from typing import Any, Callable

from numba.core import compiler, serialize
from numba.core.errors import NumbaWarning
from numba.core.runtime import rtsys

from .. import config, errors, telemetry
from . import key as keys
from . import unpickle
from .records import NullRecords, Records
from .store import Store, current_store

log = logging.getLogger("jitbridge.cache")


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


class ContentCache(keys.CodeKeys):
    """One per disk-cached dispatcher. ``fingerprint`` is computed on first use and then kept.

    ``shown`` picks the arguments a user sees out of the compiled signature (a kernel
    launcher's signature has the launch indices in front and the thread limit at the end)."""

    persistent = True

    def __init__(self, name: str, fingerprint: Callable[[], keys.Fingerprint], target: str, options: dict[str, Any],
                 variant: str | None = None, globals_: dict[str, Any] | None = None, shown: slice = slice(None)):
        # options: keys.code_options(...), all of them, by design
        super().__init__(name, variant, fingerprint, target, options)
        self._globals = globals_ if globals_ is not None else {}
        self.shown = shown
        self.records = Records(name, variant, lambda: self.fingerprint, self.key_of, self._globals)

    @property
    def cache_path(self) -> str:
        return str(config.settings.cache_dir)

    @property
    def enabled(self) -> bool:
        return not config.settings.disable_cache

    def arguments(self, args: Any) -> str:
        return keys.arguments_text(args, self.shown)

    def key(self, sig: Any, codegen: Any) -> str:
        return self.key_of(keys.signature_text(sig), codegen.magic_tuple())

    def lock(self, sig: Any, codegen: Any) -> Any:
        """A held-while-compiling cross-process lock, or a no-op when the entry already
        exists (a warm start then never pays for locking) or caching is off."""
        if not self.enabled:
            return contextlib.nullcontext()
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
            _register_symbols(found[1])
            cres = self._rebuild(store, key, found[1], target_context)
        args = keys.signature_args(sig)
        if cres is None:
            self._missed(sig, args, target_context.codegen().magic_tuple())
            return None
        seconds = time.perf_counter() - started
        telemetry.count(self.name, "cache_hits")
        telemetry.count(self.name, "load_seconds", seconds)
        telemetry.emit("cache_hit", name=self.name, variant=self.variant, signature=self.arguments(args),
                       seconds=seconds)
        return cres

    def _missed(self, sig: Any, args: Any, machine: tuple[Any, ...]) -> None:
        telemetry.count(self.name, "cache_misses")
        record = self.records.read()
        why = self.records.miss_reason(keys.signature_text(sig), machine, record)
        if record:
            telemetry.note_recompile(self.name, why)
        telemetry.emit("cache_miss", name=self.name, variant=self.variant, signature=self.arguments(args), reason=why)

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
        sig_text = keys.signature_text(sig)
        reason = uncachable(cres)
        if reason:
            warn_uncachable(cres, reason)
            return
        payload = _serialize(cres)
        try:
            unpickle.check(payload)
        except unpickle.Refused as exc:
            log.info("not caching %s%s: loading it back would need %s", self.name, sig_text, exc)
            return
        store = current_store()
        machine = cres.codegen.magic_tuple()
        meta = self.meta(sig_text, self.arguments(keys.signature_args(sig)), machine)
        if store.write(self.key_of(sig_text, machine), meta, payload) is None:
            return
        self.records.remember(sig_text, machine)
        store.prune(config.settings.cache_max_bytes)  # one scan; removes nothing while under the bound

    def flush(self) -> None:
        """Numba calls this on ``recompile()``; entries are content-addressed, so nothing is stale."""


# Symbols numba registers with LLVM only when a module of its own is imported (numba's full
# ``refresh()`` imports them all, ~0.2 s; a warm start here imports only what an entry needs):
# machine code loaded without them reads address 0 and crashes. Name in the object code ->
# module that registers it.
_SYMBOL_MODULES = {b"_numba_hashsecret_": "numba.cpython.hashing"}  # str/dict hashing: the hash secret


def _register_symbols(payload: bytes) -> None:
    for symbol, module in _SYMBOL_MODULES.items():
        if symbol in payload:
            importlib.import_module(module)


class NullCache:
    """The cache of a dispatcher that does not cache to disk (``cache=False``): numba's
    interface, doing nothing, so the dispatcher never asks which kind it holds."""

    persistent = False
    enabled = False
    records = NullRecords()

    def load_overload(self, sig: Any, target_context: Any) -> None:
        return None

    def save_overload(self, sig: Any, cres: Any) -> None:
        pass

    def flush(self) -> None:
        pass

    def lock(self, sig: Any, codegen: Any) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


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
