"""SIMD versions of ``jitbridge.math`` functions in the vector-function ABI, for LLVM's loop
vectorizer to call in place of a scalar libm call.

Why this shape: the scalar algorithm is written once (``jitbridge.math``); here it is compiled
for one scalar and wrapped in a lane loop of exactly one vector's width that LLVM is told to
vectorize (loop metadata), with the scalar body inlined first. The result is a function
``<W x double> f(<W x double>)`` whose body is the same arithmetic on all lanes at once, which a
vectorized user loop calls once per vector while its scalar remainder keeps calling libm. It
stays a call (``noinline``), as libmvec's are, so the assembly shows which loops use it.

Implementations valid only up to a bound on |x| (sin, cos and tan: their argument reduction)
get a fix-up after the lane loop: one vector compare per call and, only when some lane is
beyond the bound or NaN, a scalar loop that gives those lanes libm's result.
"""
from __future__ import annotations

import re
from typing import Any

import llvmlite.binding as llvm
import numba
from numba.core import types

_LLVM_TYPE = {64: "double", 32: "float"}
_NUMBA_TYPE = {64: types.float64, 32: types.float32}
_DEFINE = re.compile(r'^define[^@]*@"?([^"( ]+)', re.M)
_built: dict[tuple[str, int, int], Any] = {}


def symbol(name: str, bits: int, width: int) -> str:
    return f"jb_vm_{name}_f{bits}x{width}"


def library(codegen: Any, name: str, bits: int, width: int, arity: int, libm_symbol: str) -> Any | None:
    """The code library defining ``symbol(name, bits, width)``, built once per process; None
    when LLVM would not vectorize the lane loop at that width (the caller keeps libm then).
    ``libm_symbol`` is libm's scalar ``name``, for the lanes the implementation leaves to libm."""
    key = (name, bits, width)
    if key not in _built:
        _built[key] = _build(codegen, name, bits, width, arity, libm_symbol)
    return _built[key]


def _scalar_ir(name: str, bits: int, arity: int) -> tuple[str, str, float]:
    """LLVM IR of the jitbridge.math implementation for one scalar, its function's name, and
    the bound on |x| up to which the implementation is valid."""
    from .. import math as jm

    impl, bound = jm.implementation(name, bits)
    # numba's own CPU dispatcher: this one-off compile must not go through jitbridge's cache
    # or vector-math rewriting; "numpy" error model: the body cannot raise.
    scalar = numba.njit(error_model="numpy")((lambda x: impl(x)) if arity == 1 else (lambda y, x: impl(y, x)))
    sig = (_NUMBA_TYPE[bits],) * arity
    scalar.compile(sig)
    cres = scalar.overloads[sig]
    return cres.library.get_llvm_str(), cres.fndesc.llvm_func_name, bound


def _wrapper_ir(vname: str, inner: str, bits: int, width: int, arity: int) -> str:
    """A function of ``arity`` vectors that runs the inlined scalar body on each lane, in a loop
    LLVM is told to vectorize at exactly the vector's width. Its ``exit`` block is a stub that
    ``_fixup_ir`` may replace."""
    lt = _LLVM_TYPE[bits]
    vt = f"<{width} x {lt}>"
    params = ", ".join(f"{vt} %x{k}" for k in range(arity))
    spill = "".join(f"  %in{k} = alloca [{width} x {lt}], align 64\n  store {vt} %x{k}, ptr %in{k}, align 64\n"
                    for k in range(arity))
    lane = "".join(f"  %p{k} = getelementptr inbounds {lt}, ptr %in{k}, i64 %i\n  %v{k} = load {lt}, ptr %p{k}\n"
                   for k in range(arity))
    values = ", ".join(f"{lt} %v{k}" for k in range(arity))
    return f"""
declare i32 @"{inner}"(ptr, ptr, {", ".join([lt] * arity)})

define {vt} @{vname}({params}) noinline {{
entry:
{spill}  %out = alloca [{width} x {lt}], align 64
  %ret = alloca {lt}
  %exc = alloca ptr
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
{lane}  %status = call i32 @"{inner}"(ptr %ret, ptr %exc, {values})
  %r = load {lt}, ptr %ret
  %pout = getelementptr inbounds {lt}, ptr %out, i64 %i
  store {lt} %r, ptr %pout
  %next = add nuw nsw i64 %i, 1
  %more = icmp ult i64 %next, {width}
  br i1 %more, label %loop, label %exit, !llvm.loop !0
{_EXIT}done:
  %res = load {vt}, ptr %out, align 64
  ret {vt} %res
}}
!0 = distinct !{{!0, !1, !2, !3, !4}}
!1 = !{{!"llvm.loop.vectorize.enable", i1 true}}
!2 = !{{!"llvm.loop.vectorize.width", i32 {width}}}
!3 = !{{!"llvm.loop.interleave.count", i32 1}}
!4 = !{{!"llvm.loop.unroll.disable"}}
"""


_EXIT = "exit:\n  br label %done\n"


def _fixup_ir(wrapper: str, libm_symbol: str, bits: int, width: int, bound: float) -> str:
    """The wrapper, patched so that lanes with |x| > ``bound`` (or NaN) get libm's result: one
    vector compare per call, and a scalar loop over the lanes only when some lane is out of range
    (the branch is weighted as rare)."""
    lt = _LLVM_TYPE[bits]
    vt = f"<{width} x {lt}>"
    fabs = f"llvm.fabs.f{bits}"
    limit = repr(float(bound))
    fixup = f"""exit:
  %abs = call {vt} @llvm.fabs.v{width}f{bits}({vt} %x0)
  %ok = fcmp ole {vt} %abs, <{", ".join([f"{lt} {limit}"] * width)}>
  %okbits = bitcast <{width} x i1> %ok to i{width}
  %all = icmp eq i{width} %okbits, -1
  br i1 %all, label %done, label %fix, !prof !5
fix:
  %j = phi i64 [ 0, %exit ], [ %jnext, %fixnext ]
  %pj = getelementptr inbounds {lt}, ptr %in0, i64 %j
  %vj = load {lt}, ptr %pj
  %aj = call {lt} @{fabs}({lt} %vj)
  %bad = fcmp ugt {lt} %aj, {limit}
  br i1 %bad, label %patch, label %fixnext
patch:
  %lj = call {lt} @"{libm_symbol}"({lt} %vj)
  %oj = getelementptr inbounds {lt}, ptr %out, i64 %j
  store {lt} %lj, ptr %oj
  br label %fixnext
fixnext:
  %jnext = add nuw nsw i64 %j, 1
  %jmore = icmp ult i64 %jnext, {width}
  br i1 %jmore, label %fix, label %done
"""
    return wrapper.replace(_EXIT, fixup) + f"""
declare {lt} @"{libm_symbol}"({lt})
declare {lt} @{fabs}({lt})
declare {vt} @llvm.fabs.v{width}f{bits}({vt})
!5 = !{{!"branch_weights", i32 2000, i32 1}}
"""


# packed arithmetic on 256- or 512-bit registers: the lane loop did vectorize
_PACKED = re.compile(r"^\s*v(?:add|sub|mul|div|fn?m(?:add|sub)\d+)p[sd]\s[^\n]*%[yz]mm", re.M)


def _build(codegen: Any, name: str, bits: int, width: int, arity: int, libm_symbol: str) -> Any | None:
    text, inner, bound = _scalar_ir(name, bits, arity)
    module = llvm.parse_assembly(text)
    for fn in module.functions:
        if not fn.is_declaration:
            fn.add_function_attribute("alwaysinline")
    vname = symbol(name, bits, width)
    wrapper = _wrapper_ir(vname, inner, bits, width, arity)
    if bound < float("inf"):
        wrapper = _fixup_ir(wrapper, libm_symbol, bits, width, bound)
    module.link_in(llvm.parse_assembly(wrapper))
    lib = codegen.create_library(vname)
    lib.add_llvm_module(module)
    lib.finalize()
    asm = lib.get_asm_str()
    body = asm[asm.find(f"{vname}:"):]
    body = body[:body.find(".Lfunc_end")]
    return lib if inner not in body and _PACKED.search(body) else None
