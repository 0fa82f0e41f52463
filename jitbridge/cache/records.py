"""Name records: what each function (or kernel launch variant) was last built from.

A name record is one small JSON file per name in the store, rewritten after every save: the
fingerprint's parts (digest, bytecode digest, each reached function's digest), the versions,
the CPU and the signatures built from that code. It is what lets a miss say why it missed,
``explain`` list what is cached or stale for the code as it is now, ``cache verify`` call an
entry stale, and ``verify`` name what changed since a lock. The numba adapter
(``numba_cache.ContentCache``) writes records; everything else reads them through here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from . import key as keys
from . import unpickle
from .store import Store, current_store


def record_key(name: str, variant: str | None = None) -> str:
    """Under which name a function's (or a kernel launch variant's) last build is recorded."""
    return f"{name}:{variant}" if variant else name


def reason(record: Mapping[str, Any], fp: keys.Fingerprint, signature: str, machine: tuple[Any, ...] | list[Any]) -> str:
    """Why code recorded as ``record`` is not what ``fp`` (for ``signature`` on ``machine``)
    would load, in words; the first difference found, in the order a user can act on."""
    if record.get("machine") not in (None, list(machine)):
        return f"CPU changed ({record['machine'][1]} -> {machine[1]})"
    old_versions, new_versions = record.get("versions", {}), dict(keys.versions())
    if old_versions != new_versions:
        changed = [f"{k} {old_versions.get(k)} -> {v}" for k, v in new_versions.items() if old_versions.get(k) != v]
        return "versions changed (" + ", ".join(changed) + ")"
    code_reason = code_change(record, fp.code, fp.deps)
    if code_reason:
        return code_reason
    if record.get("digest") != fp.digest:
        return "a global value or closure variable changed"
    if signature not in record.get("signatures", []):
        return f"new signature {signature}"
    return "entry missing (cleared, evicted or removed as corrupt)"


def code_change(record: Mapping[str, Any], code: str | None, deps: Mapping[str, str]) -> str | None:
    """"source changed" or "dependency X changed" between ``record`` and the given parts; None
    when the function's bytecode and every function it reaches are the same."""
    if record.get("code") != code:
        return "source changed"
    old_deps = record.get("deps", {})
    changed = sorted(name for name in set(old_deps) | set(deps) if old_deps.get(name) != deps.get(name))
    return "dependency " + ", ".join(changed) + " changed" if changed else None


def read(name: str, variant: str | None = None, store: Store | None = None) -> dict[str, Any]:
    """The record of ``name`` (and ``variant``); empty when nothing was recorded."""
    return (store or current_store()).read_name_record(record_key(name, variant)) or {}


def stale_reason(meta: Mapping[str, Any], store: Store, here: Mapping[str, Any]) -> str | None:
    """Why the entry described by ``meta`` will not be loaded again (None: it may be).

    Stale means built for other versions or another CPU than ``here`` has, or built from code
    that a newer build of the same name has replaced (its bytecode or a dependency changed:
    the record's parts say which). Entries that differ from the newest build only in a global
    value or closure variable are not stale: a factory makes several such functions under
    one name, each with its own live entries."""
    if meta.get("versions") != here["versions"]:
        built = meta.get("versions") or {}
        changed = [f"{k} {built.get(k)} -> {v}" for k, v in here["versions"].items() if built.get(k) != v]
        return "built for other versions (" + ", ".join(changed) + ")"
    if meta.get("target") != "cuda" and meta.get("machine") != here["machine"]:
        return f"built for another CPU ({(meta.get('machine') or ['?', '?'])[1]})"
    if "code" not in meta:
        return None
    record = read(str(meta.get("name")), meta.get("variant"), store)
    if not record or "code" not in record:
        return None
    changed = code_change(record, meta["code"], meta.get("deps") or {})
    return f"{changed} since it was built" if changed else None


@dataclass(frozen=True)
class Specialization:
    """One signature recorded for a name, and what the store holds for it."""

    signature: str
    key: str
    size: int | None  # bytes of the entry; None when there is none for the code as it is now
    reason: str | None  # why there is none


class Records:
    """The name record of one dispatcher, read and written with its key function.

    ``key_of(signature, machine)`` is the adapter's entry key for the code as it is now;
    ``fingerprint()`` its fingerprint (computed on first use by the adapter)."""

    def __init__(self, name: str, variant: str | None, fingerprint: Callable[[], keys.Fingerprint],
                 key_of: Callable[[str, tuple[Any, ...]], str], globals_: dict[str, Any]) -> None:
        self.name = name
        self.variant = variant
        self.key = record_key(name, variant)
        self._fingerprint = fingerprint
        self._key_of = key_of
        self._globals = globals_

    def read(self) -> dict[str, Any]:
        return current_store().read_name_record(self.key) or {}

    def remember(self, signature: str, machine: tuple[Any, ...]) -> None:
        """Record a build of ``signature`` from the code as it is now (signatures built from
        the same code accumulate; a change of code starts the list again)."""
        store = current_store()
        fp = self._fingerprint()
        record = store.read_name_record(self.key) or {}
        same = record.get("digest") == fp.digest
        signatures = sorted(set(record.get("signatures", []) if same else []) | {signature})
        store.write_name_record(self.key, {"digest": fp.digest, "code": fp.code, "deps": fp.deps,
                                           "versions": dict(keys.versions()), "signatures": signatures,
                                           "machine": list(machine)})

    def miss_reason(self, signature: str, machine: tuple[Any, ...], record: Mapping[str, Any] | None = None) -> str:
        """Why the code as it is now has no entry for ``signature`` (``record``: already read)."""
        record = self.read() if record is None else record
        if not record:
            return "not built before (no record of this name in the cache)"
        return reason(record, self._fingerprint(), signature, machine)

    def specializations(self, machine: tuple[Any, ...]) -> list[Specialization]:
        """Every signature recorded for this name, with its entry for the code as it is now, or
        the reason there is none."""
        store = current_store()
        record = self.read()
        found = []
        for signature in record.get("signatures", []):
            key = self._key_of(signature, machine)
            try:
                size = store.path(key).stat().st_size
            except OSError:
                found.append(Specialization(signature, key, None, reason(record, self._fingerprint(), signature,
                                                                         machine)))
            else:
                found.append(Specialization(signature, key, size, None))
        return found

    def cached_signatures(self, machine: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """Argument types (numba types) of the entries held for the code as it is now, read back
        from the entries themselves: a record holds only their printed spelling."""
        store = current_store()
        found = []
        for spec in self.specializations(machine):
            entry = store.read(spec.key) if spec.size is not None else None
            if entry is not None:
                found.append(tuple(unpickle.load(entry[1], self._globals)[3].args))
        return found


class NullRecords:
    """The records of a function that is not disk-cached: nothing recorded, nothing held."""

    def read(self) -> dict[str, Any]:
        return {}

    def specializations(self, machine: tuple[Any, ...]) -> list[Specialization]:
        return []

    def cached_signatures(self, machine: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return []
