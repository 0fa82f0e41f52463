"""Helpers for the fault tests: real tmpfs mounts (as root), injected OSErrors (otherwise),
and fresh jitted functions that no earlier test has compiled in this process."""
from __future__ import annotations

import contextlib
import errno
import itertools
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Iterator

import jitbridge as jb
from jitbridge import errors

IS_ROOT = os.geteuid() == 0
_counter = itertools.count()


def can_mount() -> bool:
    return IS_ROOT and shutil.which("mount") is not None


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``path`` (mode 0700), unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)], check=True,
                   capture_output=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def remount_read_only(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True, capture_output=True)


class FailingOS:
    """Stands in for the ``os`` module inside jitbridge.cache.store: ``full`` fails every
    write with ENOSPC (creating empty files still works, as on a full disk); ``readonly``
    fails every change with EROFS (reads work)."""

    def __init__(self, mode: str) -> None:
        self._mode = mode
        self._errno = errno.ENOSPC if mode == "full" else errno.EROFS

    def __getattr__(self, name: str):
        return getattr(os, name)

    def _fail(self, path: object = None) -> OSError:
        return OSError(self._errno, os.strerror(self._errno), str(path) if path is not None else None)

    def open(self, path, flags, mode=0o777):
        if self._mode == "readonly" and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise self._fail(path)
        return os.open(path, flags, mode)

    def fdopen(self, fd, *args, **kwargs):
        f = os.fdopen(fd, *args, **kwargs)
        if self._mode == "full" and "w" in (args[0] if args else kwargs.get("mode", "r")):
            return _FullFile(f, self._fail())
        return f

    def replace(self, src, dst):
        if self._mode == "readonly":
            raise self._fail(dst)
        return os.replace(src, dst)

    def unlink(self, path):
        if self._mode == "readonly":
            raise self._fail(path)
        return os.unlink(path)

    def utime(self, path, *args, **kwargs):
        if self._mode == "readonly":
            raise self._fail(path)
        return os.utime(path, *args, **kwargs)


class _FullFile:
    """A file whose every write fails with ENOSPC."""

    def __init__(self, f, error: OSError) -> None:
        self._f, self._error = f, error

    def __enter__(self) -> "_FullFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self._f.close()

    def write(self, data: bytes) -> int:
        raise self._error


def fresh_pair(module: str | None = None):
    """A new ``jb.jit(cache=True)`` function and a new kernel: new dispatchers, so their first
    call goes to the disk cache. Same source every time, so they share cache keys."""
    namespace = {"jb": jb} if module is None else {"jb": jb, "__name__": module}
    exec("@jb.jit(cache=True)\ndef plus_half(x):\n    return x + 0.5\n\n"
         "@jb.kernel\ndef twice(i, x, out):\n    out[i] = 2.0 * x[i]\n", namespace)
    return namespace["plus_half"], namespace["twice"]


def other_function():
    """(f, k): a function computing ``3 x + k`` that no other call defines (a miss on a warm cache)."""
    k = next(_counter)
    namespace = {"jb": jb}
    exec(f"@jb.jit(cache=True)\ndef other_{k}(x):\n    return x * 3.0 + {k}\n", namespace)
    return namespace[f"other_{k}"], k


@contextlib.contextmanager
def cache_warnings() -> Iterator[list[warnings.WarningMessage]]:
    """Every CacheWarning raised inside, however often the same one repeats."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found: list[warnings.WarningMessage] = []
        yield found
    found.extend(w for w in caught if issubclass(w.category, errors.CacheWarning))
