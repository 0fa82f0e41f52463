"""Transparent huge pages for the large arrays that compiled code allocates.

numba's runtime (NRT) takes array memory from ``PyMem_RawMalloc`` without advice, so every
4 KiB page of a fresh array costs a page fault; NumPy (and glibc under
``glibc.malloc.hugetlb=1``) advise huge pages for large blocks, and fill them ~2.5x faster.
At the first jitbridge compile, NRT's malloc and realloc are swapped for two that call the
same ``PyMem_RawMalloc``/``PyMem_RawRealloc`` and then ``madvise(MADV_HUGEPAGE)`` every block
of one huge page or more. NRT's free stays ``PyMem_RawFree``: blocks allocated before and
after the swap are the same kind of block, so the swap is sound while blocks are alive and
other threads allocate, and ``JITBRIDGE_HUGE_PAGES=0`` (a flag the native code reads) can turn
the advice off at any time without a block ever reaching the wrong free.

Not chosen: 2 MiB-aligned blocks of their own ``mmap``. NRT frees by pointer alone, so such a
free would need a registry to tell its blocks from PyMem's, and a fresh mapping per allocation
loses glibc's reuse of freed memory (measured: repeated 4-16 MB allocate-and-fill 2-5x slower;
the 80 MB case no faster than advice). Nor padding requests so that glibc's mapping is a whole
number of huge pages, which the kernel then aligns: all of an 80 MB block on huge pages instead
of 74 MiB, but no faster over 200 interleaved rounds.

The two functions are a few lines of LLVM IR built with llvmlite (no C compiler at install,
nothing at import). ``NRT_MemSys_set_allocator`` is not exported by numba's ``_nrt_python``
extension, so its address comes from the extension's ELF symbol table, checked against two
functions the extension does export.
"""
from __future__ import annotations

import re
import struct
import sys
import threading
from pathlib import Path
from typing import Any, Callable, NamedTuple

from . import config

THP_DIR = Path("/sys/kernel/mm/transparent_hugepage")
_MIB = 1 << 20
_VMA = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")


class State(NamedTuple):
    """What the first compile decided: whether compiled code's large blocks are advised."""

    in_use: bool
    detail: str  # the THP mode when in use, else why not
    page_size: int = 2 * _MIB


class Backing(NamedTuple):
    """How the kernel backs an address range (from ``/proc/self/smaps``)."""

    advised: bool  # a mapping over the range carries MADV_HUGEPAGE ("hg" in VmFlags)
    huge_bytes: int  # AnonHugePages of the mappings over the range


_state: State | None = None  # None until a compile with the setting on decides
_switch: Any = None  # ctypes int32 over the flag the native functions read
_lock = threading.Lock()


def ensure() -> None:
    """Decide once, at the first compile with huge pages on; nothing after that."""
    global _state
    if _state is not None or not config.settings.huge_pages:
        return
    with _lock:
        if _state is None:
            _state = _install()


def state() -> State | None:
    return _state


def thp_mode() -> str | None:
    """The kernel's THP mode ('always', 'madvise', 'never'), or None where there is no THP."""
    try:
        text = (THP_DIR / "enabled").read_text()
    except OSError:
        return None
    found = re.search(r"\[(\w+)\]", text)
    return found.group(1) if found else None


def huge_page_size() -> int:
    try:
        return int((THP_DIR / "hpage_pmd_size").read_text())
    except (OSError, ValueError):
        return 2 * _MIB


def backing(address: int, nbytes: int, smaps: Path = Path("/proc/self/smaps")) -> Backing:
    """Whether ``[address, address + nbytes)`` is advised and how much of its mappings is on huge pages."""
    end = address + nbytes
    advised, huge, inside = False, 0, False
    for line in smaps.read_text().splitlines():
        vma = _VMA.match(line)
        if vma:
            inside = int(vma.group(1), 16) < end and int(vma.group(2), 16) > address
        elif inside and line.startswith("AnonHugePages:"):
            huge += int(line.split()[1]) * 1024
        elif inside and line.startswith("VmFlags:"):
            advised = advised or "hg" in line.split()[1:]
    return Backing(advised, huge)


def describe() -> str:
    """One line for ``jitbridge info``; probes a fresh NRT block when the advice is in use."""
    if not config.settings.huge_pages:
        return "off (JITBRIDGE_HUGE_PAGES=0)"
    if _state is None:
        return "not decided yet (the first compile decides)"
    if not _state.in_use:
        return f"not in use: {_state.detail}"
    size = 4 * _state.page_size
    got = _probe(size)
    return (f"in use (THP '{_state.detail}', {_state.page_size // _MIB} MiB pages, compiled code's blocks of "
            f"{_state.page_size // _MIB} MiB and up); a fresh {size // _MIB} MiB block got "
            f"{got / _MIB:g} MiB of huge pages")


def nrt_function(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any]:
    """One of the NRT C functions numba exports in ``_nrt_python.c_helpers``, callable from Python."""
    import ctypes

    from numba.core.runtime._nrt_python import c_helpers

    return ctypes.CFUNCTYPE(restype, *argtypes)(c_helpers[name])


def _probe(size: int) -> int:
    """Huge-page bytes of a fresh NRT block of ``size``, through NRT's own C entry points."""
    import ctypes

    alloc = nrt_function("MemInfo_alloc", ctypes.c_void_p, ctypes.c_size_t)
    data_of = nrt_function("MemInfo_data", ctypes.c_void_p, ctypes.c_void_p)
    release = nrt_function("MemInfo_release", None, ctypes.c_void_p)
    meminfo = alloc(size)
    if not meminfo:
        return 0
    try:
        data = data_of(meminfo)
        ctypes.memset(data, 1, size)
        return backing(data, size).huge_bytes
    finally:
        release(meminfo)


@config.on_change
def _follow_setting(settings: config.Settings) -> None:
    if _switch is not None:
        _switch.value = int(settings.huge_pages)


def _install() -> State:
    global _switch
    if not sys.platform.startswith("linux"):
        return State(False, f"transparent huge pages are Linux-only (this is {sys.platform})")
    mode = thp_mode()
    if mode is None:
        return State(False, f"this kernel has no transparent huge pages ({THP_DIR} is missing)")
    if mode == "never":
        return State(False, f"transparent huge pages are 'never' ({THP_DIR / 'enabled'})")
    # numba.core.runtime.nrt installs PyMem's allocator when it is first imported; ours comes after.
    from numba.core.runtime import _nrt_python as nrt, nrt as _runtime  # noqa: F401

    if nrt.memsys_stats_enabled():
        return State(False, "numba's allocation statistics are on (NUMBA_NRT_STATS); its allocator is "
                            "left alone so that its counts stay exact")
    set_allocator = _find_set_allocator(nrt)
    if isinstance(set_allocator, str):
        return State(False, set_allocator)
    page = huge_page_size()
    try:
        malloc, realloc, free, flag = _build(page)
    except (RuntimeError, OSError, AttributeError, ValueError) as exc:  # llvmlite or libc missing a piece
        return State(False, f"the advising allocator could not be built here: {exc}")
    _switch = flag
    _switch.value = int(config.settings.huge_pages)
    set_allocator(malloc, realloc, free)
    return State(True, mode, page)


def _elf_function_symbols(path: str, names: set[bytes]) -> dict[bytes, int]:
    """Values of the function symbols ``names`` in a little-endian ELF64 file's ``.symtab``."""
    data = Path(path).read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    found = {}
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2 or not entsize:  # SHT_SYMTAB
            continue
        strings = sections[link][4]
        for at in range(offset, offset + size, entsize):
            name_at, info, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, at)
            start = strings + name_at
            name = data[start:data.index(b"\0", start)]
            if name in names and info & 0xF == 2:  # STT_FUNC
                found[name] = value
    return found


def _find_set_allocator(nrt: Any) -> Callable[[int, int, int], None] | str:
    """``NRT_MemSys_set_allocator`` as a ctypes function, or why it cannot be had."""
    import ctypes

    wanted = {b"NRT_MemSys_set_allocator", b"NRT_MemInfo_alloc_aligned", b"NRT_Free"}
    try:
        values = _elf_function_symbols(nrt.__file__, wanted)
    except (OSError, ValueError, struct.error):
        values = {}
    if set(values) != wanted:
        return f"NRT_MemSys_set_allocator is not in the symbol table of {Path(nrt.__file__).name}"
    offset = nrt.c_helpers["MemInfo_alloc_aligned"] - values[b"NRT_MemInfo_alloc_aligned"]
    if nrt.c_helpers["Free"] - values[b"NRT_Free"] != offset:
        return f"{Path(nrt.__file__).name} in memory does not match its symbol table"
    prototype = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
    return prototype(offset + values[b"NRT_MemSys_set_allocator"])


# Process-local addresses are compiled in as constants: this code is built per process, never cached.
_IR = """
@jb_hp_on = global i32 1, align 4

define internal void @advise(i8* %p, i64 %size) {{
entry:
  %on = load atomic i32, i32* @jb_hp_on monotonic, align 4
  %enabled = icmp ne i32 %on, 0
  %large = icmp uge i64 %size, {huge}
  %got = icmp ne i8* %p, null
  %want = and i1 %enabled, %large
  %go = and i1 %want, %got
  br i1 %go, label %advise, label %done
advise:
  %at = ptrtoint i8* %p to i64
  %first = and i64 %at, {page_mask}
  %end = add i64 %at, %size
  %length = sub i64 %end, %first
  %start = inttoptr i64 %first to i8*
  %madvise = inttoptr i64 {madvise} to i32 (i8*, i64, i32)*
  %ignored = call i32 %madvise(i8* %start, i64 %length, i32 {madv_hugepage})
  br label %done
done:
  ret void
}}

define i8* @jb_hp_malloc(i64 %size) {{
  %malloc = inttoptr i64 {malloc} to i8* (i64)*
  %p = call i8* %malloc(i64 %size)
  call void @advise(i8* %p, i64 %size)
  ret i8* %p
}}

define i8* @jb_hp_realloc(i8* %old, i64 %size) {{
  %realloc = inttoptr i64 {realloc} to i8* (i8*, i64)*
  %p = call i8* %realloc(i8* %old, i64 %size)
  call void @advise(i8* %p, i64 %size)
  ret i8* %p
}}
"""


def _build(huge: int) -> tuple[int, int, int, Any]:
    """Compile the advising malloc/realloc; returns their addresses, PyMem_RawFree's and the flag."""
    import ctypes
    import mmap

    from llvmlite import binding as llvm

    def address(fn: Any) -> int:
        return ctypes.cast(fn, ctypes.c_void_p).value

    api = ctypes.pythonapi
    text = _IR.format(huge=huge, page_mask=-mmap.PAGESIZE, madvise=address(ctypes.CDLL(None).madvise),
                      madv_hugepage=mmap.MADV_HUGEPAGE, malloc=address(api.PyMem_RawMalloc),
                      realloc=address(api.PyMem_RawRealloc))
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(text)
    module.verify()
    engine = llvm.create_mcjit_compiler(module, llvm.Target.from_default_triple().create_target_machine())
    engine.finalize_object()
    # NRT may call these until the last thread stops, after module teardown: the engine that
    # owns the code is never freed.
    api.Py_IncRef(ctypes.py_object(engine))
    flag = ctypes.c_int32.from_address(engine.get_global_value_address("jb_hp_on"))
    return (engine.get_function_address("jb_hp_malloc"), engine.get_function_address("jb_hp_realloc"),
            address(api.PyMem_RawFree), flag)
