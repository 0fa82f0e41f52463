"""Vector math: ``math.*`` / ``np.*`` transcendentals in loops run on SIMD registers.

Numba lowers ``math.exp(x)`` (and ``np.exp``, ``x ** y``, ...) to one scalar libm call per
element, which LLVM's loop vectorizer can only keep scalar. This target context differs from
numba's CPU context in one step after lowering: each such call is pointed at the plain libm
function, declared pure and carrying a ``vector-function-abi-variant`` attribute that names
SIMD versions of it. When LLVM vectorizes the loop it calls those, one call per vector; scalar
code (a loop that does not vectorize, the remainder of one that does) keeps calling libm, so
nothing gets slower. The SIMD versions come from glibc's libmvec where it is accurate to 2 ulp,
and from ``jitbridge.math`` (see ``vector_variants``) where libmvec is not; functions with
neither keep libm (``PROVIDERS``).

Dispatchers compiled with ``vector_math=False`` use numba's own CPU context, untouched, so
their code is numba's bit for bit.
"""
from __future__ import annotations

import copy
import ctypes.util
import functools
import platform
from typing import Any

import llvmlite.binding as llvm
from llvmlite import ir
from numba.core import cgutils
from numba.core.cpu import CPUContext
from numba.core.registry import CPUTarget, cpu_target

from . import vector_variants

LIBMVEC = "libmvec"
JITBRIDGE = "jitbridge"
# Who serves each (function, float bits) in SIMD lanes; absent: libm only. Chosen by measured
# accuracy (tests/test_vector_math.py, <= 2 ulp of the correctly rounded result over every
# binade) and speed (benchmarks/bench_vector_math.py). libmvec was measured above 2 ulp for
# exp (2.8 ulp f64, 2.2 f32), expm1 f64 (2.8), log f32 (3.4), erf (2.0 f64, 2.7 f32 at 512
# bits), sin/cos f64 (2.9/3.3), tan (3.0) and atan2 f32 (2.5): those use jitbridge.math
# (jitbridge/math.py, jitbridge/math_trig.py).
PROVIDERS: dict[tuple[str, int], str] = {
    **{(name, bits): LIBMVEC for bits in (64, 32)
       for name in ("exp2", "log2", "log10", "log1p", "tanh", "sinh", "cosh", "erfc", "atan", "pow")},
    ("log", 64): LIBMVEC, ("atan2", 64): LIBMVEC,
    ("expm1", 32): LIBMVEC, ("sin", 32): LIBMVEC, ("cos", 32): LIBMVEC,
    **{(name, bits): JITBRIDGE for bits in (64, 32) for name in ("exp", "erf", "tan")},
    ("log", 32): JITBRIDGE, ("expm1", 64): JITBRIDGE, ("sin", 64): JITBRIDGE, ("cos", 64): JITBRIDGE,
    ("atan2", 32): JITBRIDGE,
}
FUNCTIONS = ("exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sin", "cos", "tan", "tanh", "sinh",
             "cosh", "erf", "erfc", "atan", "atan2", "pow")
_ARITY = {"atan2": 2, "pow": 2}
_FLOAT_BITS = {"double": 64, "float": 32}


def _callee_names() -> dict[str, tuple[str, int | None]]:
    """Callee name in numba's lowered IR -> (function, bits; None: read from the type): LLVM
    intrinsics (``llvm.exp.f64``, or ``llvm.exp2`` as numba's exp2 names it) for some
    functions, libm externs (``tanh``, ``erff``) for the others."""
    names: dict[str, tuple[str, int | None]] = {}
    for name in FUNCTIONS:
        names[f"llvm.{name}"] = (name, None)
        for bits, suffix in ((64, ""), (32, "f")):
            names[f"llvm.{name}.f{bits}"] = (name, bits)
            names[name + suffix] = (name, bits)
    return names


CALLEES = _callee_names()


SCALAR_PREFIX = "jb_libm_"


def scalar_symbol(name: str, bits: int) -> str:
    """The name under which compiled code calls libm's ``name`` when vector math serves it:
    libm's own function, registered under a name LLVM does not know, because LLVM turns calls
    to the names it knows (``exp2``) back into intrinsics and drops the SIMD variants with it."""
    return SCALAR_PREFIX + name + ("f" if bits == 32 else "")


@functools.lru_cache(maxsize=None)
def _host() -> tuple[bool, frozenset[str]]:
    """(libmvec loaded, the host's CPU features) — once per process, before any code that
    calls them is compiled or loaded from the cache."""
    features = frozenset(k for k, v in llvm.get_host_cpu_features().items() if v)
    libm = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for name, bits in PROVIDERS:
        llvm.add_symbol(scalar_symbol(name, bits), ctypes.cast(getattr(libm, name + ("f" if bits == 32 else "")),
                                                                ctypes.c_void_p).value)
    if platform.machine() not in ("x86_64", "AMD64"):
        return False, features
    try:
        llvm.load_library_permanently(ctypes.util.find_library("mvec") or "libmvec.so.1")
    except RuntimeError:
        return False, features
    return True, features


def _widths(bits: int) -> list[tuple[str, int]]:
    """(x86 vector-ABI ISA letter, lanes) the host can run: SSE, AVX2, AVX-512."""
    features = _host()[1]
    out = [("b", 128 // bits)]
    if "avx2" in features:
        out.append(("d", 256 // bits))
    if "avx512f" in features:
        out.append(("e", 512 // bits))
    return out


def provider(name: str, bits: int) -> str | None:
    """Who serves ``name`` for float``bits`` on this machine (None: libm)."""
    who = PROVIDERS.get((name, bits))
    if who == LIBMVEC and not _host()[0]:
        return None
    return who


def _variants(context: Any, name: str, bits: int) -> list[tuple[int, str, Any]]:
    """(lanes, vector function symbol, code library or None) for each usable width."""
    who = provider(name, bits)
    libm_name = name + ("f" if bits == 32 else "")
    arity = "v" * _ARITY.get(name, 1)
    out: list[tuple[int, str, Any]] = []
    for letter, lanes in _widths(bits):
        if who == LIBMVEC:
            out.append((lanes, f"_ZGV{letter}N{lanes}{arity}_{libm_name}", None))
        elif who == JITBRIDGE and letter == "d":  # the width LLVM prefers for AVX2 and AVX-512 hosts
            lib = vector_variants.library(context.codegen(), name, bits, lanes, len(arity),
                                          scalar_symbol(name, bits))
            if lib is not None:
                out.append((lanes, vector_variants.symbol(name, bits, lanes), lib))
    return out


def rewrite_module(context: Any, module: ir.Module, library: Any) -> None:
    """Point every scalar call that vector math serves at libm with its SIMD variants."""
    used: list[ir.Function] = []
    for fn in module.functions:
        for block in fn.blocks:
            for instr in block.instructions:
                if isinstance(instr, ir.CallInstr) and isinstance(instr.callee, ir.Function):
                    target = _served(context, module, library, instr.callee, used)
                    if target is not None:
                        instr.replace_callee(target)
    if used:
        _keep(module, used)


def _served(context: Any, module: ir.Module, library: Any, callee: ir.Function,
            used: list[ir.Function]) -> ir.Function | None:
    found = CALLEES.get(callee.name)
    ret = callee.function_type.return_type
    bits = _FLOAT_BITS.get(str(ret))
    if found is None or bits is None or found[1] not in (None, bits):
        return None
    name = found[0]
    variants = _variants(context, name, bits)
    if not variants:
        return None
    libm_name = scalar_symbol(name, bits)
    scalar = cgutils.get_or_insert_function(module, callee.function_type, libm_name)
    if "vector-function-abi-variant" not in str(scalar.attributes):
        arity = "v" * _ARITY.get(name, 1)
        specs = []
        for lanes, symbol, lib in variants:
            vty = ir.VectorType(ret, lanes)
            vfn = cgutils.get_or_insert_function(module, ir.FunctionType(vty, [vty] * len(callee.args)), symbol)
            used.append(vfn)
            specs.append(f"_ZGV_LLVM_N{lanes}{arity}_{libm_name}({symbol})")
            if lib is not None:
                library.add_linking_library(lib)
        scalar.attributes.add("nounwind")
        scalar.attributes.add("readnone")
        # llvmlite knows only keyword attributes; a string attribute goes in as its text
        set.add(scalar.attributes, f'"vector-function-abi-variant"="{",".join(specs)}"')
    return scalar


def _keep(module: ir.Module, used: list[ir.Function]) -> None:
    """List the SIMD declarations in ``llvm.compiler.used``: until the vectorizer calls them
    nothing refers to them, and unreferenced declarations are dropped before it runs."""
    old = module.globals.pop("llvm.compiler.used", None)
    if old is not None:
        used = list(old.initializer.constant) + used
        module.scope._useset.discard("llvm.compiler.used")
    array = ir.ArrayType(ir.PointerType(), len(used))
    keep = ir.GlobalVariable(module, array, "llvm.compiler.used")
    keep.linkage = "appending"
    keep.section = "llvm.metadata"
    keep.initializer = ir.Constant(array, used)


class VectorMathContext(CPUContext):
    """numba's CPU context plus the rewrite; shares its codegen, registries and typing."""

    def post_lowering(self, mod: ir.Module, library: Any) -> None:
        rewrite_module(self, mod, library)
        super().post_lowering(mod, library)


class VectorMathTarget(CPUTarget):
    """The target descriptor of dispatchers compiled with vector math."""

    @functools.cached_property
    def _toplevel_target_context(self) -> VectorMathContext:
        _host()  # libmvec must be loaded before code that calls it is compiled or loaded
        context = copy.copy(cpu_target.target_context)
        context.__class__ = VectorMathContext
        context.cached_internal_func = {}  # helpers compiled here carry the rewrite: not numba's
        return context

    @property
    def typing_context(self) -> Any:
        return cpu_target.typing_context


vector_math_target = VectorMathTarget("cpu")


def target(vector_math: bool) -> CPUTarget:
    return vector_math_target if vector_math else cpu_target
