"""``explain``: what jitbridge knows about one jitted function or kernel, in words.

It answers what people otherwise dig out of numba's internals: where the code is defined, what
its cache key is made of, which specializations the disk cache holds for the code as it is
now (and, for those it does not, why), and whether the compiled loops run on SIMD registers
or what stops them (a libm call per element, an allocation, a call that was not inlined).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from . import config, errors, telemetry
from .cache.numba_cache import ContentCache, _Unpickler, current_store, miss_reason
from .frontend.dispatcher import Dispatcher
from .frontend.kernel import Kernel
from .targets import cpu, vector_math

# What a libm call per element can be replaced with; None: nothing vectorizable here yet.
_LIBM = {"exp": "exp", "log": "log", "tanh": "tanh", "erf": "erf", "pow": None, "sin": None, "cos": None,
         "tan": None, "exp2": None, "log2": None, "log10": None, "log1p": None, "expm1": None, "atan2": None,
         "asin": None, "acos": None, "atan": None, "sinh": None, "cosh": None, "erfc": None, "cbrt": None,
         "fmod": None, "hypot": None}
_OPS = r"v?(?:add|sub|mul|div|max|min|sqrt|fn?m(?:add|sub)\d*)"
_PACKED = re.compile(rf"^\s*{_OPS}p[sd]\s[^\n]*%([xyz])mm", re.M)
_SCALAR = re.compile(rf"^\s*{_OPS}s[sd]\s", re.M)
_SYMBOL = re.compile(r"^\s*(?:movabsq\s+\$|call\w*\s+)([A-Za-z_][\w.]*)", re.M)
_LABEL = re.compile(r"^([A-Za-z_][\w.]*):", re.M)
# SIMD versions of a libm function: libmvec's (_ZGVdN4v_exp) or jitbridge's (jb_vm_exp_f64x4)
_VARIANT = re.compile(r"^(?:_ZGV[bcde]N\d+v+_(\w+)|jb_vm_([a-z0-9]+)_f(32|64)x\d+)$")
_ARRAY_REPR = re.compile(r"Array\((\w+), (\d), '(\w)', (False|True), aligned=True\)")
_WIDTH = {"x": 128, "y": 256, "z": 512}


@dataclasses.dataclass
class CodeReport:
    """What the machine code of one specialization does with its floating-point work."""

    packed: dict[int, int]  # register width in bits -> packed float instructions
    scalar: int  # scalar float instructions
    symbols: list[str]  # functions it calls or takes the address of

    @classmethod
    def from_asm(cls, asm: str) -> "CodeReport":
        packed: dict[int, int] = {}
        for register in _PACKED.findall(asm):
            packed[_WIDTH[register]] = packed.get(_WIDTH[register], 0) + 1
        defined = set(_LABEL.findall(asm))
        # jitbridge's SIMD math is linked into the code it serves: a call to it counts
        symbols = [s for s in dict.fromkeys(_SYMBOL.findall(asm)) if s not in defined or _VARIANT.match(s)]
        return cls(packed, len(_SCALAR.findall(asm)), symbols)

    def vector_math(self) -> dict[str, str]:
        """libm symbol -> who serves it in SIMD lanes ("libmvec" or "jitbridge.math"), for the
        calls that vector math replaced in vectorized loops."""
        served = {}
        for symbol in self.symbols:
            m = _VARIANT.match(symbol)
            if m and m[1]:
                served[m[1]] = "libmvec"
            elif m:
                served[m[2] + ("f" if m[3] == "32" else "")] = "jitbridge.math"
        return served

    def libm(self) -> list[tuple[str, str]]:
        """(symbol, libm function) for each libm call per element, float32 names (``expf``)
        included; calls that vector math serves in the vectorized loop are not among them
        (their scalar remainder still calls libm for the last few elements)."""
        found = []
        served = self.vector_math()
        for symbol in self.symbols:
            symbol = symbol.removeprefix(vector_math.SCALAR_PREFIX)
            base = symbol if symbol in _LIBM else symbol[:-1] if symbol.endswith("f") else None
            if base in _LIBM and symbol not in served:
                found.append((symbol, base))
        return found

    def lines(self) -> list[str]:
        """The verdict first, then the evidence and what to change."""
        out = []
        if self.libm():
            out.append("SIMD: no, the loop calls a libm function per element (below)")
        elif self.packed:
            widths = ", ".join(f"{n} x {bits}-bit" for bits, n in sorted(self.packed.items(), reverse=True))
            out.append(f"SIMD: yes, widest {max(self.packed)}-bit ({widths} packed float ops; {self.scalar} scalar)")
        elif self.vector_math():
            out.append("SIMD: yes, the loop calls SIMD math functions once per vector")
        elif self.scalar:
            out.append(f"SIMD: no ({self.scalar} scalar float ops, no packed ones)")
        else:
            out.append("SIMD: no floating-point arithmetic in the compiled code")
        served = self.vector_math()
        if served:
            listed = ", ".join(f"{symbol}() by {who}" for symbol, who in sorted(served.items()))
            out.append(f"vector math: {listed} in SIMD lanes (the scalar remainder calls libm)")
        for symbol, base in self.libm():
            bits = 32 if symbol != base else 64
            ours = _LIBM[base]
            if vector_math.provider(base, bits):
                hint = ("vector math has a SIMD version, but this loop did not vectorize (a branch that "
                        "raises, such as a division's zero check under error_model='python', or "
                        "vector_math=False)")
            elif ours:
                hint = f"use jitbridge.math.{ours} instead, which vectorizes"
            else:
                hint = "no SIMD version within 2 ulp yet, and LLVM cannot vectorize a loop around it"
            out.append(f"calls libm {symbol}() per element: {hint}")
        if any(s.startswith("NRT_MemInfo_alloc") for s in self.symbols):
            out.append("allocates memory (NRT_MemInfo_alloc): if that is inside a loop, allocate once outside it")
        if "numba_parallel_for" in self.symbols:
            out.append("parallel: its prange loops are split across numba's thread pool")
        calls = [s for s in self.symbols if s.startswith("_ZN") and "NumbaEnv" not in s]
        if calls:
            out.append(f"calls {len(calls)} jitted function(s) that were not inlined")
        return out


def explain(obj: Any, signature: str | None = None) -> str:
    """A report on a ``@jb.jit`` function or ``@jb.kernel``: definition, cache key parts,
    cached specializations and the SIMD verdict of each one compiled or cached. ``signature``
    (numba syntax, e.g. ``"float64[::1], float64"``) compiles one more specialization first."""
    holders = _cache_holders(obj)
    fn = obj.py_func
    code = fn.__code__
    lines = [f"{obj.jb_kind} {obj.jb_name}", f"  defined at {code.co_filename}:{code.co_firstlineno}"]
    if signature is not None:
        _compile(obj, signature)
    first = next((h for h in holders if isinstance(h._cache, ContentCache)), None)
    if first is None:
        lines.append("  cache: off for this function (cache=False); nothing is kept on disk")
    else:
        lines += _key_lines(first._cache)
        lines += _cache_lines(holders)
    lines += _code_lines(obj, holders)
    record = telemetry.stats().get(obj.jb_name)
    if record:
        counters = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()
                             if k != "recompile_reasons" and v)
        lines.append(f"  this process: {counters}")
        for reason in record.get("recompile_reasons", []):
            lines.append(f"    recompiled: {reason}")
    return "\n".join(lines)


def _readable(signature: str) -> str:
    """``Array(float64, 1, 'C', False, aligned=True)`` as numba prints types elsewhere."""
    def array(m: re.Match) -> str:
        return f"{'readonly ' if m[4] == 'True' else ''}array({m[1]}, {m[2]}d, {m[3]})"

    return _ARRAY_REPR.sub(array, signature)


def _cache_holders(obj: Any) -> list[Dispatcher]:
    """The dispatchers whose specializations are cached: the function itself, or a kernel's
    launch variants."""
    if isinstance(obj, Kernel):
        return [obj.cpu.launcher(obj.cpu.plan(variant)) for variant in cpu.VARIANTS]
    if isinstance(obj, Dispatcher):
        return [obj]
    raise errors.ArgumentError(
        f"explain takes a @jb.jit function or a @jb.kernel, not {type(obj).__name__}",
        where=errors.user_location(), values={"object": repr(obj)[:80]},
        fix="decorate the function with @jitbridge.jit or @jitbridge.kernel",
    )


def _compile(obj: Any, signature: str) -> None:
    if isinstance(obj, Kernel):
        obj.compile(signature, parallel=False)
        return
    try:
        obj.compile(f"({signature},)" if "(" not in signature else signature)
    except Exception as exc:
        translated = obj.translate(exc, signature)
        raise (translated if translated is not exc else errors.ArgumentError(
            f"cannot compile {obj.jb_name} for {signature!r}: {exc}", values={"signature": signature},
            fix='write argument types the numba way, e.g. "float64[::1], float64"')) from exc


def _key_lines(cache: ContentCache) -> list[str]:
    fp = cache.fingerprint
    lines = [f"  cache key: content digest {fp.digest[:16]} (bytecode {fp.code[:12]}"
             f", {len(fp.deps)} dependenc{'y' if len(fp.deps) == 1 else 'ies'}) + argument types + target"
             " + options + CPU + versions"]
    for name, digest in sorted(fp.deps.items()):
        lines.append(f"    depends on {name} ({digest[:12]})")
    return lines


def _cache_lines(holders: list[Dispatcher]) -> list[str]:
    store = current_store()
    lines = [f"  disk cache: {config.settings.cache_dir}" + (" (disabled by JITBRIDGE_DISABLE_CACHE)"
                                                            if config.settings.disable_cache else "")]
    found = False
    for holder in holders:
        cache = holder._cache
        record = store.read_name_record(cache.record_key)
        if not record:
            continue
        magic = tuple(holder.targetctx.codegen().magic_tuple())
        variant = f" [{holder.jb_variant}]" if holder.jb_variant else ""
        for sig in record.get("signatures", []):
            found = True
            path = store.path(cache.key_of(sig, magic))
            if path.exists():
                lines.append(f"    cached{variant} {_readable(sig)} ({path.stat().st_size // 1024} KiB)")
            else:
                reason = miss_reason(record, cache.fingerprint, sig, magic)
                lines.append(f"    stale{variant} {_readable(sig)}: {reason}")
    if not found:
        lines.append("    no specialization cached yet: the first call compiles and stores one")
    return lines


def _code_lines(obj: Any, holders: list[Dispatcher]) -> list[str]:
    """SIMD verdict per specialization: those compiled in this process, else those cached."""
    holder = holders[0]
    signatures = list(holder.signatures) or _cached_signatures(holder)
    if not signatures:
        return ["  code: nothing compiled or cached to look at; call it once, or pass a signature"]
    lines = [] if holder.jb_vector_math else ["  vector math: off (vector_math=False or JITBRIDGE_VECTOR_MATH=0)"]
    for sig in signatures:
        holder.compile(sig)
        shown = sig[obj.ndim:obj.ndim + len(obj.arg_names)] if isinstance(obj, Kernel) else sig
        lines.append(f"  code for ({', '.join(str(t) for t in shown)}):")
        lines += [f"    {line}" for line in CodeReport.from_asm(holder.inspect_asm(sig)).lines()]
    return lines


def _cached_signatures(holder: Dispatcher) -> list[tuple[Any, ...]]:
    """Argument types of the cached entries for the code as it is now, read back from the
    entries themselves (their metadata holds only a printable spelling)."""
    cache = holder._cache
    if not isinstance(cache, ContentCache):
        return []
    store = current_store()
    record = store.read_name_record(cache.record_key) or {}
    magic = tuple(holder.targetctx.codegen().magic_tuple())
    found = []
    for sig in record.get("signatures", []):
        entry = store.read(cache.key_of(sig, magic))
        if entry is not None:
            found.append(tuple(_Unpickler(entry[1], holder.py_func.__globals__).load()[3].args))
    return found
