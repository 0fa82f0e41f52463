"""Files of the on-disk cache: one self-checking file per compiled specialization.

An entry is ``MAGIC | sha256(meta + payload) | len(meta) | meta (JSON) | payload``; the
metadata records the key the entry was written under, so a file moved or swapped to another
key's name is caught. Entries are written to a private temporary file (``O_EXCL``, never
following a link) and ``os.replace``d in, so readers see a whole entry or none; a reader
that finds a bad checksum or a key mismatch removes the file and reports a miss.

Entries are executable code, so files or folders writable by others or owned by another
user are refused, and files are opened without following links and without blocking (a
FIFO at an entry's name must not hang the program). The cache is an optimization: every
failure to read, write or lock (disk full, read-only, permissions, a directory where a file
should be) becomes a miss and one CacheWarning per process and cache folder, never an
exception in the caller. LRU eviction uses the file's mtime, bumped on every hit.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import stat
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .. import config, errors
from .key import key_problem

MAGIC = b"JBC\x01"
_HEADER = struct.Struct("<4s32sI")
LAYOUT = "v1"
TMP_MARK = ".tmp."
ORPHAN_AGE = 60.0  # seconds: a temporary file older than this belongs to a writer that died
_OPEN_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

# (pid, cache root) pairs already warned about an I/O failure: one warning per process and
# folder (a fork warns again: its warnings go to another terminal or log).
_warned: set[tuple[int, str]] = set()


@dataclass
class EntryInfo:
    key: str
    path: Path
    size: int
    mtime: float


class Corrupt(Exception):
    """An entry file that does not parse or check out (damaged, or filed under another key)."""


class Untrusted(Exception):
    """An entry that is not safe to read: not a regular file, owned by another user, or
    writable by others (itself or a folder above it)."""


class NotRegular(Untrusted):
    """Something other than a regular file (a directory, FIFO, socket) at an entry's name."""


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
    if not isinstance(meta, dict):
        raise Corrupt("unreadable metadata: not an object")
    return meta, body[meta_len:]


def unpack_entry(blob: bytes, key: str) -> tuple[dict[str, Any], bytes]:
    """``unpack``, plus the check that the entry was written under ``key``."""
    meta, payload = unpack(blob)
    problem = key_problem(meta, key)
    if problem:
        raise Corrupt(problem)
    return meta, payload


def _insecure(st: os.stat_result) -> str | None:
    if st.st_uid != os.geteuid():
        return f"owned by uid {st.st_uid}, not by you (uid {os.geteuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"writable by other users (mode {stat.filemode(st.st_mode)})"
    return None


def read_regular(path: Path) -> tuple[bytes, os.stat_result]:
    """The bytes of the regular file at ``path``; never follows a link at that name nor
    blocks on a FIFO. Raises Untrusted for anything but a regular file, OSError as usual."""
    fd = os.open(path, _OPEN_READ)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(f"not a regular file (mode {stat.filemode(st.st_mode)})")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read(), st
    finally:
        os.close(fd)


class _Lock:
    """An exclusive ``flock`` on a lock file, held while one process compiles a key.

    Waits up to ``timeout`` seconds; when the lock cannot be had at all (read-only folder,
    a directory at its name) or not in time, the caller compiles without it (the worst
    case is a second compile, never a wrong result: entries are written atomically)."""

    def __init__(self, store: "Store", path: Path, timeout: float) -> None:
        self._store, self._path, self._timeout = store, path, timeout
        self._fd: int | None = None

    def __enter__(self) -> "_Lock":
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._store.warn_io(f"cannot create the compile lock ({exc.strerror}); compiling without it", self._path)
            return self
        deadline, delay = time.monotonic() + self._timeout, 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    problem = f"another process held the compile lock for over {self._timeout:.0f} s"
                    break
                time.sleep(delay)
                delay = min(2 * delay, 0.05)
            except OSError as exc:
                problem = f"cannot take the compile lock ({exc.strerror})"
                break
        os.close(fd)
        self._store.warn_io(f"{problem}; compiling without it", self._path)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # releases the flock
            self._fd = None


class Store:
    """The cache folder. Every method is safe to call from many processes at once, and
    none raises an OSError: failures are warnings (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / LAYOUT

    def _dir(self, kind: str, key: str) -> Path:
        return self.base / kind / key[:2]

    def path(self, key: str) -> Path:
        return self._dir("entries", key) / f"{key}.jbc"

    def warn_io(self, what: str, path: object,
                fix: str = "free space or make JITBRIDGE_CACHE_DIR writable (or point it elsewhere); "
                           "until then code is compiled in memory") -> None:
        """One CacheWarning per process and cache folder for failures of the folder itself."""
        token = (os.getpid(), str(self.root))
        if token not in _warned:
            _warned.add(token)
            errors.warn_cache(what, path, fix)

    def _folder_problem(self, folder: Path) -> str | None:
        """Why ``folder`` and its parents up to the root are not safe to use (None: they are).
        Checked on every read and write (a few stat calls), not remembered: a folder that
        became writable by others since the last look must be refused now."""
        current = folder
        while True:
            try:
                problem = _insecure(current.stat())
            except OSError as exc:
                return f"cannot inspect {current}: {exc.strerror}"
            if problem:
                return f"{current} is {problem}"
            if current == self.root or current.parent == current:
                return None
            current = current.parent

    def _ensure_dir(self, folder: Path) -> bool:
        """Create ``folder`` (mode 0700) and check it and its parents up to the root are ours."""
        missing = []
        current = folder
        try:
            while not os.path.lexists(current):
                missing.append(current)
                current = current.parent
            for path in reversed(missing):
                path.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            self.warn_io(f"cannot create the jitbridge cache folder: {exc.strerror}", folder)
            return False
        problem = self._folder_problem(folder)
        if problem:
            self.warn_io(f"refusing the jitbridge cache folder: {problem}", folder,
                         "point JITBRIDGE_CACHE_DIR at a folder only you can write (chmod 700)")
            return False
        return True

    def has(self, key: str) -> bool:
        """Whether a regular file is stored under ``key`` (not whether it checks out)."""
        try:
            return stat.S_ISREG(os.lstat(self.path(key)).st_mode)
        except OSError:
            return False

    def lock(self, key: str, timeout: float = 600) -> "_Lock | contextlib.nullcontext[None]":
        """The cross-process lock for ``key``: one process compiles, the others wait and load.
        No lock where the folder is refused: nothing will be read from or written there."""
        folder = self._dir("locks", key)
        if not self._ensure_dir(folder):
            return contextlib.nullcontext()
        return _Lock(self, folder / f"{key}.lock", timeout)

    def checked(self, path: Path, key: str) -> tuple[bytes, dict[str, Any], bytes]:
        """(file bytes, metadata, payload) of the entry at ``path``, filed under ``key``, once
        it checks out. Raises FileNotFoundError, Untrusted, Corrupt or OSError; changes nothing."""
        blob, st = read_regular(path)
        problem = _insecure(st) or self._folder_problem(path.parent)
        if problem:
            raise Untrusted(problem)
        return (blob, *unpack_entry(blob, key))

    def load(self, path: Path, key: str) -> tuple[dict[str, Any], bytes]:
        """(metadata, payload) of the checked entry at ``path``; raises as ``checked``."""
        return self.checked(path, key)[1:]

    def read(self, key: str) -> tuple[dict[str, Any], bytes] | None:
        """The entry for ``key``, or None on a miss. Bad entries are removed, with a warning."""
        path = self.path(key)
        try:
            found = self.load(path, key)
        except FileNotFoundError:
            return None
        except Corrupt as exc:
            self.discard(path, f"a corrupt cache entry ({exc})")
            return None
        except Untrusted as exc:
            self.warn_io(f"refusing cache entry {path.name}: {exc}", path, "remove it or run `jitbridge cache clear`")
            if isinstance(exc, NotRegular):
                self._remove(path)
            return None
        except OSError as exc:
            self.warn_io(f"cannot read cache entry {path.name}: {exc.strerror}", path)
            return None
        try:
            os.utime(path)
        except OSError:
            pass
        return found

    def discard(self, path: Path, what: str) -> None:
        """Remove ``what`` (an entry found bad, described), with a warning that says so."""
        if self._remove(path):
            errors.warn_cache(f"removed {what}; recompiling", path, "nothing to do: the entry is rebuilt")
        else:
            errors.warn_cache(f"skipped {what}, which cannot be removed; recompiling", path,
                              "make the cache folder writable, or run `jitbridge cache clear`")

    def write(self, key: str, meta: dict[str, Any], payload: bytes) -> Path | None:
        """Write an entry atomically; returns its path, or None if nothing could be written."""
        return self.write_blob(key, pack({**meta, "key": key}, payload))

    def write_blob(self, key: str, blob: bytes) -> Path | None:
        return self._atomic_write(self.path(key), blob)

    def _atomic_write(self, path: Path, data: bytes) -> Path | None:
        """Write via a private temporary file and ``os.replace``: readers never see half a file."""
        if not self._ensure_dir(path.parent):
            return None
        tmp = path.with_name(f"{path.name}{TMP_MARK}{os.getpid()}.{uuid.uuid4().hex[:8]}")
        try:
            fd = os.open(tmp, _OPEN_NEW, 0o600)
            try:
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(data)
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except OSError as exc:
            self._remove(tmp)
            self.warn_io(f"cannot write to the jitbridge cache: {exc.strerror}", path)
            return None
        except BaseException:
            self._remove(tmp)
            raise
        return path

    @staticmethod
    def _remove(path: Path) -> bool:
        """Unlink ``path`` (an empty directory too); False when that was not possible."""
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            with contextlib.suppress(OSError):
                os.rmdir(path)
                return True
            return False
        except OSError:
            return False
        return True

    def _files(self, kind: str) -> Iterator[os.DirEntry]:
        """Every name in the ``kind`` folder's subfolders; unreadable folders are skipped."""
        try:
            subs = sorted((e for e in os.scandir(self.base / kind) if e.is_dir(follow_symlinks=False)),
                          key=lambda e: e.name)
        except OSError:
            return
        for sub in subs:
            try:
                yield from sorted(os.scandir(sub.path), key=lambda e: e.name)
            except OSError:
                continue

    def entries(self) -> Iterator[EntryInfo]:
        for found in self._files("entries"):
            if not found.name.endswith(".jbc"):
                continue
            try:
                st = found.stat(follow_symlinks=False)
            except OSError:
                continue
            yield EntryInfo(found.name[: -len(".jbc")], Path(found.path), st.st_size, st.st_mtime)

    def orphans(self, min_age: float = ORPHAN_AGE) -> list[EntryInfo]:
        """Temporary files older than ``min_age`` seconds: left by writers that were killed
        between creating and renaming them (a live writer renames within milliseconds)."""
        now = time.time()
        found = []
        for kind in ("entries", "names"):
            for item in self._files(kind):
                if TMP_MARK not in item.name:
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue
                if now - st.st_mtime >= min_age:
                    found.append(EntryInfo(item.name, Path(item.path), st.st_size, st.st_mtime))
        return found

    def remove_orphans(self, min_age: float = ORPHAN_AGE) -> list[EntryInfo]:
        return [info for info in self.orphans(min_age) if self._remove(info.path)]

    def load_meta(self, info: EntryInfo) -> dict[str, Any]:
        """The entry's metadata; raises Corrupt or Untrusted when it does not check out."""
        try:
            return self.load(info.path, info.key)[0]
        except OSError as exc:
            raise Untrusted(f"unreadable: {exc.strerror}") from None

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
            if self._remove(info.path):
                total -= info.size
                removed.append(info)
        return removed

    def remove(self, key: str) -> bool:
        """Remove the entry under ``key``; False when it could not be removed."""
        return self._remove(self.path(key))

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
            record = json.loads(read_regular(self._name_path(name))[0])
        except (OSError, ValueError, Untrusted):
            return None
        return record if isinstance(record, dict) else None

    def write_name_record(self, name: str, record: dict[str, Any]) -> None:
        self._atomic_write(self._name_path(name), json.dumps(record, sort_keys=True).encode())


@functools.lru_cache(maxsize=16)
def store_at(root: Path) -> Store:
    return Store(root)


def current_store() -> Store:
    """The store in JITBRIDGE_CACHE_DIR as it is set now (a ``config.scope`` moves it)."""
    return store_at(Path(config.settings.cache_dir))
