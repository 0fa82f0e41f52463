"""Bundles: one file carrying cache entries to another machine or folder (build in CI,
import in the container). A bundle is a zip of entry files; each is checked on import."""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterable

from .. import errors
from .store import Corrupt, EntryInfo, Store, unpack

_PREFIX = "entries/"


def export(store: Store, path: Path, entries: Iterable[EntryInfo] | None = None) -> int:
    """Write ``entries`` (default: all) of ``store`` into the bundle at ``path``; returns the count."""
    count = 0
    tmp = Path(f"{path}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for info in entries if entries is not None else store.entries():
            blob = info.path.read_bytes()
            try:
                unpack(blob)
            except Corrupt:
                continue
            zf.writestr(_PREFIX + info.key + ".jbc", blob)
            count += 1
    tmp.replace(path)
    return count


def import_(store: Store, path: Path) -> tuple[int, list[str]]:
    """Add the bundle's entries to ``store``; returns (imported, names of rejected members)."""
    imported, rejected = 0, []
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise errors.CacheError(f"cannot read the bundle {path}: {exc}", values={"path": path},
                                fix="pass a file written by `jitbridge cache export`") from exc
    with archive as zf:
        for member in zf.namelist():
            key = member[len(_PREFIX):-len(".jbc")]
            if not (member.startswith(_PREFIX) and member.endswith(".jbc") and len(key) == 64
                    and all(c in "0123456789abcdef" for c in key)):
                rejected.append(member)
                continue
            blob = zf.read(member)
            try:
                unpack(blob)
            except Corrupt:
                rejected.append(member)
                continue
            if store.write_blob(key, blob) is not None:
                imported += 1
    return imported, rejected
