"""Bundles: one file carrying cache entries to another machine or folder (build in CI,
import in the container).

A bundle is a zip of entry files (``entries/<key>.jbc``) plus a manifest naming each
member's SHA-256. Entries are machine code, so a bundle is only as trustworthy as whoever
wrote it: ``export(..., key=...)`` signs the manifest with HMAC-SHA256 (``MANIFEST.sig``)
and ``import_`` refuses a bundle whose signature does not verify, and an unsigned one unless
the caller says it trusts it. Every member is also checked on its own: its name, its size
(capped while it is decompressed, so a zip bomb cannot fill memory or disk), its hash
against the manifest, its checksum, the key it was written under, and that loading it would
name nothing outside the unpickler's allow-list.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
import zipfile
from pathlib import Path
from typing import Iterable

from .. import config, errors
from . import ptx, unpickle
from .store import Corrupt, EntryInfo, Store, Untrusted, unpack_entry

_PREFIX = "entries/"
_MEMBER = re.compile(r"entries/([0-9a-f]{64})\.jbc")
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
FORMAT = 2
MAX_MEMBER_BYTES = 64 << 20  # an entry is tens of KiB; nothing real comes near this
MAX_MANIFEST_BYTES = 16 << 20
MIN_KEY_BYTES = 16


def read_key(path: Path) -> bytes:
    """The signing key in ``path`` (any bytes; `jitbridge cache keygen` writes 32 random ones)."""
    try:
        key = Path(path).read_bytes().strip()
    except OSError as exc:
        raise errors.CacheError(f"cannot read the key file {path}: {exc.strerror}", values={"path": path},
                                fix="pass a file written by `jitbridge cache keygen`") from exc
    if len(key) < MIN_KEY_BYTES:
        raise errors.CacheError(f"the key file {path} holds {len(key)} bytes, too few to be a key",
                                values={"path": path, "at least": MIN_KEY_BYTES},
                                fix="create one with `jitbridge cache keygen KEYFILE`")
    return key


def new_key(path: Path) -> None:
    """Write a new random key (hex) to ``path``, mode 0600; never overwrites a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise errors.CacheError(f"cannot create the key file {path}: {exc.strerror}", values={"path": path},
                                fix="pass a path where no file exists yet") from exc
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")


def _sign(key: bytes, manifest: bytes) -> str:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest()


def exportable(store: Store, info: EntryInfo) -> bytes | None:
    """The entry's bytes if this runtime would load it (ours, private, intact, filed under its
    own key, nothing outside the allow-list); None otherwise."""
    try:
        blob, meta, payload = store.checked(info.path, info.key)
        ptx.check(meta, payload)
    except (OSError, Corrupt, Untrusted, unpickle.Refused):
        return None
    return blob


def export(store: Store, path: Path, entries: Iterable[EntryInfo] | None = None, key: bytes | None = None) -> int:
    """Write ``entries`` (default: all) of ``store`` that this runtime would load into the
    bundle at ``path``, signed with ``key`` if given; returns the count. The bundle is
    written to a new temporary file (never following a link) and renamed into place."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise errors.CacheError(f"cannot write the bundle {path}: {exc.strerror}", values={"path": path},
                                fix="pass a path in a folder you can write") from exc
    hashes = {}
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for info in entries if entries is not None else store.entries():
                blob = exportable(store, info)
                if blob is not None:
                    zf.writestr(_PREFIX + info.key + ".jbc", blob)
                    hashes[info.key] = hashlib.sha256(blob).hexdigest()
            manifest = json.dumps({"format": FORMAT, "created": time.time(), "entries": hashes},
                                  sort_keys=True).encode()
            zf.writestr(MANIFEST, manifest)
            if key is not None:
                zf.writestr(SIGNATURE, _sign(key, manifest))
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise errors.CacheError(f"cannot write the bundle {path}: {exc.strerror}", values={"path": path},
                                    fix="free space, or pass a path in a folder you can write") from exc
        raise
    return len(hashes)


def _bad_bundle(path: Path, what: str, fix: str) -> errors.CacheError:
    return errors.CacheError(f"refusing the bundle {path}: {what}", values={"path": path}, fix=fix)


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes | None:
    """The member's bytes, or None if it inflates beyond ``cap`` (whatever its header says)."""
    if info.file_size > cap:
        return None
    with zf.open(info) as f:
        data = f.read(cap + 1)
    return data if len(data) <= cap else None


def _manifest(zf: zipfile.ZipFile, path: Path, key: bytes | None, trust_unsigned: bool) -> dict[str, str] | None:
    """The verified manifest's {key: sha256}; None for an unsigned bundle the caller trusts."""
    names = set(zf.namelist())
    if key is None:
        if not trust_unsigned:
            raise _bad_bundle(path, "its signature was not checked (bundles carry machine code)",
                              "pass --verify KEYFILE with the key it was exported with (--sign KEYFILE), "
                              "or --trust-unsigned if you trust where it came from")
        if MANIFEST not in names:
            return None
    elif SIGNATURE not in names or MANIFEST not in names:
        raise _bad_bundle(path, "it is not signed", "export it with `jitbridge cache export --sign KEYFILE`")
    manifest_bytes = _read_capped(zf, zf.getinfo(MANIFEST), MAX_MANIFEST_BYTES)
    if manifest_bytes is None:
        raise _bad_bundle(path, "its manifest is too large", "pass a file written by `jitbridge cache export`")
    if key is not None:
        signature = _read_capped(zf, zf.getinfo(SIGNATURE), 1024) or b""
        if not hmac.compare_digest(signature.strip(), _sign(key, manifest_bytes).encode()):
            raise _bad_bundle(path, "its signature does not match this key (altered, or signed with another key)",
                              "verify with the key it was signed with; re-export it if it was altered")
    try:
        hashes = json.loads(manifest_bytes)["entries"]
    except (ValueError, KeyError, TypeError):
        raise _bad_bundle(path, "its manifest is unreadable", "pass a file written by `jitbridge cache export`") \
            from None
    if not isinstance(hashes, dict):
        raise _bad_bundle(path, "its manifest is unreadable", "pass a file written by `jitbridge cache export`")
    return hashes


class _Rejected(Exception):
    """A bundle member that is not imported (the message says why)."""


def _checked_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, hashes: dict[str, str] | None,
                    cap: int) -> tuple[str, bytes]:
    """(key, entry bytes) of a member that passes every check; raises _Rejected."""
    match = _MEMBER.fullmatch(info.filename)
    if not match:
        raise _Rejected("not an entry name (entries/<64 hex digits>.jbc)")
    key = match[1]
    if hashes is not None and key not in hashes:
        raise _Rejected("not listed in the bundle's manifest")
    blob = _read_capped(zf, info, cap)
    if blob is None:
        raise _Rejected(f"larger than {cap} bytes uncompressed (the cap per entry, or what is left of the "
                        "cache's size bound)")
    if hashes is not None and not hmac.compare_digest(hashlib.sha256(blob).hexdigest(), str(hashes[key])):
        raise _Rejected("its contents differ from the manifest's hash")
    try:
        ptx.check(*unpack_entry(blob, key))
    except Corrupt as exc:
        raise _Rejected(str(exc)) from None
    except unpickle.Refused as exc:
        raise _Rejected(f"loading it would go outside the unpickler's allow-list ({exc})") from None
    return key, blob


def import_(store: Store, path: Path, key: bytes | None = None,
            trust_unsigned: bool = False) -> tuple[int, list[tuple[str, str]]]:
    """Add the bundle's good entries to ``store``; returns (imported, [(member, why rejected)]).

    ``key``: the bundle must be signed with it. Without a key the bundle is refused unless
    ``trust_unsigned``. A bundle that cannot be read or verified at all raises CacheError."""
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise errors.CacheError(f"cannot read the bundle {path}: {exc}", values={"path": path},
                                fix="pass a file written by `jitbridge cache export`") from exc
    imported, rejected = 0, []
    with archive as zf:
        hashes = _manifest(zf, Path(path), key, trust_unsigned)
        members = [i for i in zf.infolist() if i.filename not in (MANIFEST, SIGNATURE)]
        present = {m[1] for m in map(_MEMBER.fullmatch, (i.filename for i in members)) if m}
        rejected += [(f"{_PREFIX}{k}.jbc", "listed in the manifest but missing") for k in (hashes or {})
                     if k not in present]
        budget = config.settings.cache_max_bytes
        for info in members:
            try:
                member_key, blob = _checked_member(zf, info, hashes, max(0, min(MAX_MEMBER_BYTES, budget)))
            except _Rejected as exc:
                rejected.append((info.filename, str(exc)))
                continue
            if store.write_blob(member_key, blob) is not None:
                imported += 1
                budget -= len(blob)
    return imported, rejected
