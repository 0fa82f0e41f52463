"""POSIX shared-memory segments and memory-mapped files: map, own, unlink, reclaim.

Why not ``multiprocessing.shared_memory``: before Python 3.13 its resource tracker unlinks a
segment when any process that merely *attached* it exits, destroying data its owner still uses;
and Python's ``mmap`` keeps a duplicated file descriptor open per mapping. Here segments are
opened with ``_posixshmem.shm_open`` and mapped with libc ``mmap``; the descriptor is closed at
once, nothing is registered with a tracker, and only the creating process ever unlinks a name.

Lifetimes are split on purpose:

* the *name* (what other processes attach to) belongs to the owner's :class:`Segment`; it is
  unlinked by ``close()``, by garbage collection of the Segment, or at normal interpreter exit;
* the *memory* belongs to :class:`Mapping`, which every NumPy view references through its
  ``base`` chain; it is unmapped only when the last view is gone, so no array can ever point at
  unmapped memory, whatever order things are closed in.

An owner killed with SIGKILL cannot unlink. Its segment names encode its pid, its start time and
its PID namespace (``jb_<pid>_<start>_<pidns>_<token>``), so :func:`reclaim_dead_segments` can
tell, from ``/dev/shm`` and ``/proc`` alone, which segments nobody owns any more, even if the
pid was reused. A pid means something only in its own PID namespace: a container sharing
``/dev/shm`` sees other pids, so a segment of another namespace is never judged dead, nor is
one of another user, nor anything when this process's ``/proc`` shows another namespace.
"""
from __future__ import annotations

import _posixshmem
import ctypes
import mmap
import os
import re
import secrets
import stat
import weakref
from typing import NamedTuple

from .. import errors
from .handle import tensor_error

SHM_DIR = "/dev/shm"
PREFIX = "jb_"
_NAME = re.compile(r"jb_(\d+)_(\d+)_(\d+)_[0-9a-f]{32}")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int64]
_libc.munmap.restype = ctypes.c_int
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


class Mapping:
    """A mapped byte range that unmaps itself when the last object referencing it dies.

    NumPy arrays built from it (``np.asarray(mapping)``) hold it as their base, which is what
    makes use-after-close impossible: the memory outlives every view of it.

    ``populate`` pre-faults every page in one kernel call (MAP_POPULATE). Touching a large
    mapping page by page costs one fault per 4 KiB, which was measured at 0.5-3.6 s per GiB on
    this project's VMs, against ~0.15 s per GiB populated up front.
    """

    __slots__ = ("address", "size", "read_only", "__weakref__")

    def __init__(self, fd: int, size: int, read_only: bool, populate: bool) -> None:
        prot = mmap.PROT_READ if read_only else mmap.PROT_READ | mmap.PROT_WRITE
        flags = mmap.MAP_SHARED | (mmap.MAP_POPULATE if populate else 0)
        address = _libc.mmap(None, size, prot, flags, fd, 0)
        if address == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.address, self.size, self.read_only = address, size, read_only
        # Not at exit: arrays in module globals may still be read by later exit handlers,
        # and the kernel unmaps everything when the process ends anyway.
        weakref.finalize(self, _libc.munmap, address, size).atexit = False

    @property
    def __array_interface__(self) -> dict:
        return {"shape": (self.size,), "typestr": "|u1", "data": (self.address, self.read_only), "version": 3}


_PROC_READABLE = os.path.exists("/proc/self/stat")


def pid_namespace() -> int:
    """The inode of this process's PID namespace; 0 when it cannot be known. Also 0 when
    ``/proc`` belongs to another namespace (``unshare --pid`` without remounting it): then
    ``/proc/<pid>`` is not our pid, and no owner could be proved dead."""
    try:
        if os.readlink("/proc/self") != str(os.getpid()):
            return 0
        text = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
        return int(text[text.index("[") + 1 : text.index("]")])
    except (OSError, ValueError):
        return 0


def process_start_time(pid: int) -> int | None:
    """Start time (clock ticks after boot) of a running process; None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


def owner_alive(pid: int, start: int) -> bool:
    """Whether the process that created a segment still runs (``start`` 0: start time unknown),
    read from a ``/proc`` of this PID namespace. Comparing start times catches a pid reused by
    an unrelated process."""
    running = process_start_time(pid)
    return running is not None and start in (0, running)


def _unlink_if_owner(name: str, owner_pid: int) -> None:
    # A forked child inherits this finalizer; only the creating process may unlink.
    if os.getpid() == owner_pid:
        try:
            _posixshmem.shm_unlink("/" + name)
        except FileNotFoundError:
            pass  # already reclaimed by `jitbridge tensor gc` or removed by hand


class Segment:
    """A named region (shm segment or file) mapped into this process."""

    __slots__ = ("name", "kind", "mapping", "owner_pid", "closed", "_unlink", "__weakref__")

    def __init__(self, name: str, kind: str, mapping: Mapping, owner_pid: int, *, owned: bool = False) -> None:
        self.name, self.kind, self.mapping, self.owner_pid = name, kind, mapping, owner_pid
        self.closed = False
        # Runs on close(), on garbage collection, or at normal exit, whichever comes first.
        self._unlink = weakref.finalize(self, _unlink_if_owner, name, owner_pid) if owned else None

    @property
    def owned(self) -> bool:
        return self._unlink is not None

    def close(self) -> None:
        """Mark closed; the owner also unlinks the name now. Memory stays while views exist."""
        self.closed = True
        if self._unlink is not None:
            self._unlink()


def create(nbytes: int) -> Segment:
    """A new zero-filled shm segment of at least ``nbytes`` bytes, mode 0600, owned by us.

    The memory is reserved up front (``posix_fallocate``): a tmpfs that fills up later would
    otherwise kill the process with SIGBUS on first write instead of raising here. The owner's
    mapping is populated, since a new tensor is about to be written.
    """
    _reclaim_once()
    pid = os.getpid()
    name = f"{PREFIX}{pid}_{process_start_time(pid) or 0}_{pid_namespace()}_{secrets.token_hex(16)}"
    size = max(nbytes, 1)
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    try:
        os.posix_fallocate(fd, 0, size)
        mapping = Mapping(fd, size, read_only=False, populate=True)
    except OSError as exc:
        _posixshmem.shm_unlink("/" + name)
        raise tensor_error(
            "could not allocate shared memory",
            "free space in /dev/shm (`jitbridge tensor gc` removes leaked segments) or use a smaller tensor",
            bytes=size,
            shm_dir=SHM_DIR,
            reason=exc.strerror,
        ) from exc
    finally:
        os.close(fd)
    return Segment(name, "shm", mapping, pid, owned=True)


def _cannot_open(name: str, kind: str, exc: OSError) -> errors.TensorError:
    if isinstance(exc, FileNotFoundError):
        what = "shared memory segment not found" if kind == "shm" else "file not found"
        fix = "the owner closed it or exited; attach while the owning tensor is alive"
    else:
        what = "cannot open shared memory segment" if kind == "shm" else "cannot open file"
        fix = "attach as the user that created it, or with read_only=True"
    return tensor_error(what, fix, segment=name, reason=exc.strerror)


def attach(name: str, kind: str, owner_pid: int, read_only: bool, populate: bool) -> Segment:
    """Map an existing segment (or file). Never owned: attaching processes never unlink."""
    if kind == "shm" and not _NAME.fullmatch(name):
        raise tensor_error("not a jitbridge segment name", "pass the value of `tensor.handle`", segment=name)
    flags = os.O_RDONLY if read_only else os.O_RDWR
    try:
        if kind == "shm":
            fd = _posixshmem.shm_open("/" + name, flags, mode=0)
        else:  # never block on a FIFO planted at the path
            fd = os.open(name, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _cannot_open(name, kind, exc) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise tensor_error("not a regular file", "pass the value of `tensor.handle`", segment=name,
                               mode=stat.filemode(st.st_mode))
        size = st.st_size
        if size == 0:
            raise tensor_error("segment is empty", "pass the value of `tensor.handle`", segment=name)
        mapping = Mapping(fd, size, read_only, populate)
    finally:
        os.close(fd)
    return Segment(name, kind, mapping, owner_pid)


class SegmentInfo(NamedTuple):
    """One jitbridge segment in /dev/shm, as `jitbridge tensor ls` shows it.

    ``state`` is ``alive``, ``dead`` (provably: ours, same PID namespace, owner gone; what
    `gc` removes), or why nothing can be said: ``other user``, ``other PID namespace``,
    ``unknown`` (no usable ``/proc``)."""

    name: str
    owner_pid: int
    owner_alive: bool
    nbytes: int
    state: str = "alive"


def _state(match: re.Match, uid: int, namespace: int, cache: dict[tuple[int, int], bool]) -> str:
    if uid != os.geteuid():
        return "other user"
    if namespace == 0 or not _PROC_READABLE:
        return "unknown"
    if int(match[3]) != namespace:
        return "other PID namespace"
    key = int(match[1]), int(match[2])
    if key not in cache:
        cache[key] = owner_alive(*key)
    return "alive" if cache[key] else "dead"


def list_segments() -> list[SegmentInfo]:
    """Every jitbridge segment on this machine with its owner, size and state."""
    try:
        names = os.listdir(SHM_DIR)
    except OSError:
        return []
    namespace = pid_namespace()
    cache: dict[tuple[int, int], bool] = {}
    infos = []
    for match in map(_NAME.fullmatch, (n for n in names if n.startswith(PREFIX))):
        if not match:
            continue
        try:
            st = os.lstat(os.path.join(SHM_DIR, match[0]))
        except FileNotFoundError:
            continue  # unlinked while we looked
        state = _state(match, st.st_uid, namespace, cache)
        infos.append(SegmentInfo(match[0], int(match[1]), state == "alive", st.st_size, state))
    return infos


def reclaim_dead_segments() -> list[str]:
    """Unlink this user's segments whose owner is provably dead; return their names.

    Cheap when there is nothing to do (one ``listdir``, one ``lstat`` per segment, one
    ``/proc`` read per owner). Segments of other users, of other PID namespaces, or of
    owners that may be alive are left alone. Processes still attached keep their memory:
    unlinking removes only the name.
    """
    removed = []
    for info in list_segments():
        if info.state != "dead":
            continue
        try:
            _posixshmem.shm_unlink("/" + info.name)
        except (FileNotFoundError, PermissionError):
            continue  # removed concurrently
        removed.append(info.name)
    return removed


_reclaimed_in: int | None = None


def _reclaim_once() -> None:
    """Reclaim once per process, when it first creates a segment: the moment /dev/shm space
    is wanted, and never at ``import jitbridge`` (which does no work)."""
    global _reclaimed_in
    if _reclaimed_in != os.getpid():
        _reclaimed_in = os.getpid()
        reclaim_dead_segments()
