"""What the machine code of one specialization does with its floating-point work, and when a
loop did not vectorize, why: LLVM's own loop-vectorizer remarks for a fresh compile, in words,
each with the change that fixes it."""
from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from typing import Any, Callable

from .targets import vector_math

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


# LLVM's loop-vectorizer remark (a fragment of it) -> what it means in the user's code, and the fix.
_REASONS = (
    ("call instruction cannot be vectorized",
     "a call per element that cannot run in SIMD lanes (a libm function without a SIMD version, or a "
     "jitted function too large to inline)", "call functions that vectorize (jitbridge.math), or move the call "
     "out of the loop"),
    ("early exit", "the loop can stop part-way: a check that raises, such as a division's zero check under "
     "error_model='python' or a bounds check", "use error_model='numpy' (the kernel default) and no boundscheck "
     "in production launches"),
    ("loop control flow is not understood", "the loop can stop part-way (a check that raises)",
     "use error_model='numpy' and no boundscheck in production launches"),
    ("could not determine number of loop iterations", "the loop's trip count is not known when it starts",
     "loop over range(n) with n fixed before the loop"),
    ("unsafe dependent memory operations", "a loop-carried dependency: an element needs a value written in an "
     "earlier iteration", "compute the dependency in a separate pass (a scan), or accept scalar speed"),
    ("cannot identify array bounds", "possible aliasing between arrays that LLVM cannot rule out",
     "pass arrays that do not overlap (kernels check this at launch and compile noalias)"),
    ("cannot check memory dependencies at runtime", "possible aliasing between arrays that LLVM cannot rule out",
     "pass arrays that do not overlap (kernels check this at launch and compile noalias)"),
    ("reduction", "a floating-point reduction: vectorizing it would change the order of the additions",
     "allow reordering with fastmath={'reassoc'} (results may differ in the last bits)"),
    ("not beneficial", "LLVM judged SIMD unprofitable for this loop", "nothing to fix; the scalar loop is faster"),
)


def vectorizer_remarks(compile_fn: Callable[[], Any]) -> list[str]:
    """Run ``compile_fn`` (a fresh compile) and return LLVM's loop-vectorizer remarks for it.

    LLVM prints remarks to the process's stderr and its options are process-wide, so this
    redirects file descriptor 2 and switches the remarks on only for the duration of the call."""
    import llvmlite.binding as llvm

    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            llvm.set_option("", "-pass-remarks-missed=loop-vectorize")
            llvm.set_option("", "-pass-remarks-analysis=loop-vectorize")
            compile_fn()
        finally:
            llvm.set_option("", "-pass-remarks-missed=^$")
            llvm.set_option("", "-pass-remarks-analysis=^$")
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode(errors="replace")
    remarks: list[str] = []
    for line in text.splitlines():
        if line.startswith("remark:"):
            remarks.append(line.split(": ", 2)[-1].strip())
        elif remarks and line.strip():
            remarks[-1] += " " + line.strip()
    return remarks


def reasons(remarks: list[str]) -> list[tuple[str, str]]:
    """(what stops SIMD, how to fix it) for each distinct cause among ``remarks``."""
    found: list[tuple[str, str]] = []
    for remark in remarks:
        lowered = remark.lower()
        for fragment, why, fix in _REASONS:
            if fragment in lowered and (why, fix) not in found:
                found.append((why, fix))
    return found
