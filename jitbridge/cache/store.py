"""Files of the on-disk cache: one self-checking file per compiled specialization.

An entry is ``MAGIC | sha256(meta + payload) | len(meta) | meta (JSON) | payload``. It is
written to a temporary file and ``os.replace``d in, so readers see a whole entry or none;
a reader that finds a bad checksum removes the file and reports a miss. Entries are
executable code, so files or folders writable by others, or owned by another user, are
refused. LRU eviction uses the file's mtime, bumped on every hit.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from .. import errors

if TYPE_CHECKING:
    import filelock

MAGIC = b"JBC\x01"
_HEADER = struct.Struct("<4s32sI")
LAYOUT = "v1"


@dataclass
class EntryInfo:
    key: str
    path: Path
    size: int
    mtime: float


class Corrupt(Exception):
    """Raised inside this module only, when an entry file does not parse or check out."""


def pack(meta: dict[str, Any], payload: bytes) -> bytes:
    meta_bytes = json.dumps(meta, sort_keys=True).encode()
    digest = hashlib.sha256(meta_bytes + payload).digest()
    return _HEADER.pack(MAGIC, digest, len(meta_bytes)) + meta_bytes + payload


def unpack(blob: bytes) -> tuple[dict[str, Any], bytes]:
    if len(blob) < _HEADER.size:
        raise Corrupt("truncated header")
    magic, digest, meta_len = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise Corrupt("bad magic (not a jitbridge cache entry, or another format version)")
    body = blob[_HEADER.size:]
    if len(body) < meta_len or hashlib.sha256(body).digest() != digest:
        raise Corrupt("checksum mismatch (truncated or garbled)")
    try:
        meta = json.loads(body[:meta_len])
    except ValueError as exc:
        raise Corrupt(f"unreadable metadata: {exc}") from None
    return meta, body[meta_len:]


def _insecure(st: os.stat_result) -> str | None:
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by other users (mode {stat.filemode(st.st_mode)})"
    return None


class Store:
    """The cache folder. Every method is safe to call from many processes at once."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / LAYOUT

    def _dir(self, kind: str, key: str) -> Path:
        return self.base / kind / key[:2]

    def path(self, key: str) -> Path:
        return self._dir("entries", key) / f"{key}.jbc"

    def _ensure_dir(self, folder: Path) -> bool:
        """Create ``folder`` (mode 0700) and check it and its parents up to the root are ours.

        Checked on every read and write (a few stat calls), not remembered: a folder that
        became writable by others since the last look must be refused now."""
        missing = []
        current = folder
        while not current.exists():
            missing.append(current)
            current = current.parent
        try:
            for path in reversed(missing):
                path.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            errors.warn_cache(f"cannot create the jitbridge cache folder: {exc}", folder,
                              "point JITBRIDGE_CACHE_DIR at a folder you can create and write")
            return False
        current = folder
        while True:
            problem = _insecure(current.stat())
            if problem:
                errors.warn_cache(
                    f"refusing the jitbridge cache folder {current}: {problem}",
                    current,
                    "point JITBRIDGE_CACHE_DIR at a folder only you can write (chmod 700)",
                )
                return False
            if current == self.root or current.parent == current:
                break
            current = current.parent
        return True

    def lock(self, key: str, timeout: float = 600) -> "filelock.BaseFileLock | contextlib.nullcontext[None]":
        """The cross-process lock for ``key``: one process compiles, the others wait and load.
        No lock where the folder is refused: nothing will be read from or written there."""
        import filelock

        folder = self._dir("locks", key)
        if not self._ensure_dir(folder):
            return contextlib.nullcontext()
        return filelock.FileLock(str(folder / f"{key}.lock"), timeout=timeout, mode=0o600)

    def read(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        """The entry for ``key``, or None on a miss. Bad entries are removed, with a warning."""
        path = self.path(key)
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return None
        except OSError as exc:
            errors.warn_cache(f"cannot open cache entry: {exc}", path, "run `jitbridge cache verify`")
            return None
        with os.fdopen(fd, "rb") as f:
            problem = _insecure(os.fstat(f.fileno()))
            if problem or not self._ensure_dir(path.parent):
                if problem:
                    errors.warn_cache(f"refusing cache entry {path.name}: {problem}", path,
                                      "remove it or run `jitbridge cache clear`")
                return None
            blob = f.read()
        try:
            found = unpack(blob)
        except Corrupt as exc:
            errors.warn_cache(f"removed a corrupt cache entry ({exc}); recompiling", path,
                              "nothing to do: the entry is rebuilt")
            self._remove(path)
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return found

    def write(self, key: str, meta: dict[str, Any], payload: bytes) -> Path | None:
        """Write an entry atomically; returns its path, or None if the folder is refused."""
        return self.write_blob(key, pack(meta, payload))

    def write_blob(self, key: str, blob: bytes) -> Path | None:
        return self._atomic_write(self.path(key), blob)

    def _atomic_write(self, path: Path, data: bytes) -> Path | None:
        """Write via a private temporary file and ``os.replace``: readers never see half a file."""
        if not self._ensure_dir(path.parent):
            return None
        tmp = path.with_name(f"{path.name}.tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            self._remove(tmp)
            raise
        return path

    @staticmethod
    def _remove(path: Path) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def entries(self) -> Iterator[EntryInfo]:
        folder = self.base / "entries"
        if not folder.is_dir():
            return
        for sub in sorted(folder.iterdir()):
            for path in sorted(sub.glob("*.jbc")):
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                yield EntryInfo(path.stem, path, st.st_size, st.st_mtime)

    def load_meta(self, info: EntryInfo) -> dict[str, Any]:
        """The entry's metadata; raises Corrupt when the file does not check out."""
        return unpack(info.path.read_bytes())[0]

    def total_bytes(self) -> int:
        return sum(info.size for info in self.entries())

    def prune(self, max_bytes: int) -> list[EntryInfo]:
        """Remove least recently used entries until the cache holds at most ``max_bytes``."""
        infos = sorted(self.entries(), key=lambda i: i.mtime)
        total = sum(i.size for i in infos)
        removed = []
        for info in infos:
            if total <= max_bytes:
                break
            self._remove(info.path)
            total -= info.size
            removed.append(info)
        return removed

    def remove(self, key: str) -> None:
        self._remove(self.path(key))

    def clear(self) -> int:
        count = sum(1 for _ in self.entries())
        shutil.rmtree(self.base, ignore_errors=True)
        return count

    def _name_path(self, name: str) -> Path:
        digest = hashlib.sha256(name.encode()).hexdigest()
        return self._dir("names", digest) / f"{digest}.json"

    def read_name_record(self, name: str) -> dict[str, Any] | None:
        """What this kernel name was last compiled from (for "why it recompiled"); None if unknown."""
        try:
            record = json.loads(self._name_path(name).read_bytes())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def write_name_record(self, name: str, record: dict[str, Any]) -> None:
        self._atomic_write(self._name_path(name), json.dumps(record, sort_keys=True).encode())
