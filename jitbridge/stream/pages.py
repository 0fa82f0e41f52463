"""Pages of memory-mapped files: read a range in ahead of use, let go of it after, flush it.

A process's resident memory counts every page of a file mapping it has touched until the
mapping goes, so a loop over a memory-mapped file larger than RAM would grow to the file's
size. Streaming reads each chunk's pages in before the chunk is used (one ``madvise`` call,
not a fault per 4 KiB page) and drops them from this process once the chunk is done: a
read-only mapping reads them from the file again if ever needed, and written pages of a
shared mapping stay in the page cache and reach the file (``flush`` waits for that).

Only ever used on shared file mappings this package opened or was given as files; dropping
pages of private or anonymous memory would lose their contents.
"""
from __future__ import annotations

import ctypes
import mmap

import numpy as np

_libc = ctypes.CDLL(None, use_errno=True)
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.madvise.restype = ctypes.c_int
_libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.msync.restype = ctypes.c_int

PAGE = mmap.PAGESIZE
_MADV_WILLNEED = 3
_MADV_DONTNEED = 4
_MADV_POPULATE_READ = 22  # Linux 5.14+: fault the range in now, in one call
_MS_SYNC = 4


def _span(arr: np.ndarray, outward: bool) -> tuple[int, int]:
    """(page-aligned address, length) of the bytes ``arr`` covers: every page it touches
    (``outward``), or only the pages wholly inside it."""
    start = arr.__array_interface__["data"][0]
    end = start + arr.nbytes
    if outward:
        lo, hi = start - start % PAGE, end + (-end) % PAGE
    else:
        lo, hi = start + (-start) % PAGE, end - end % PAGE
    return lo, max(hi - lo, 0)


def read_ahead(arr: np.ndarray) -> None:
    """Bring the file pages under ``arr`` into memory now (from the reader thread, while the
    previous chunk computes)."""
    if arr.nbytes == 0:
        return
    address, length = _span(arr, outward=True)
    if _libc.madvise(address, length, _MADV_POPULATE_READ) == 0:
        return
    _libc.madvise(address, length, _MADV_WILLNEED)
    raw = arr.reshape(-1).view(np.uint8) if arr.flags.c_contiguous else None
    if raw is not None:
        int(raw[::PAGE].sum())  # one read per page faults each in


def release(arr: np.ndarray) -> None:
    """Drop the pages wholly inside ``arr`` from this process (a shared file mapping only)."""
    address, length = _span(arr, outward=False)
    if length:
        _libc.madvise(address, length, _MADV_DONTNEED)


def flush(arr: np.ndarray) -> bool:
    """Write the pages under ``arr`` (a shared file mapping) to the file and wait; False when
    the system refused."""
    address, length = _span(arr, outward=True)
    return not length or _libc.msync(address, length, _MS_SYNC) == 0


def shared_mapping(obj: object) -> bool:
    """Whether ``obj`` is memory whose pages may be dropped without losing anything: a
    SharedTensor (a shared mapping of a file or a segment) or a shared ``np.memmap``."""
    from ..tensor.shared import SharedTensor

    if isinstance(obj, SharedTensor):
        return True
    return isinstance(obj, np.memmap) and getattr(obj, "mode", "c") in ("r", "r+", "w+")
