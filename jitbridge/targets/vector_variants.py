"""SIMD versions of ``jitbridge.math`` functions in the vector-function ABI, for LLVM's loop
vectorizer to call in place of a scalar libm call.

Why this shape: the scalar algorithm is written once (``jitbridge.math``); here it is compiled
for one scalar and wrapped in a lane loop of exactly one vector's width that LLVM is told to
vectorize (loop metadata), with the scalar body inlined first. The result is a function
``<W x double> f(<W x double>)`` whose body is the same arithmetic on all lanes at once, which a
vectorized user loop calls once per vector while its scalar remainder keeps calling libm. It
stays a call (``noinline``), as libmvec's are, so the assembly shows which loops use it.
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


def library(codegen: Any, name: str, bits: int, width: int) -> Any | None:
    """The code library defining ``symbol(name, bits, width)``, built once per process; None
    when LLVM would not vectorize the lane loop at that width (the caller keeps libm then)."""
    key = (name, bits, width)
    if key not in _built:
        _built[key] = _build(codegen, name, bits, width)
    return _built[key]


def _scalar_ir(name: str, bits: int) -> tuple[str, str]:
    """LLVM IR of the jitbridge.math implementation for one scalar, and its function's name."""
    from .. import math as jm

    impl = jm.implementation(name, bits)
    # numba's own CPU dispatcher: this one-off compile must not go through jitbridge's cache
    # or vector-math rewriting; "numpy" error model: the body cannot raise.
    scalar = numba.njit(error_model="numpy")(lambda x: impl(x))
    ty = _NUMBA_TYPE[bits]
    scalar.compile((ty,))
    cres = scalar.overloads[(ty,)]
    text = cres.library.get_llvm_str()
    return text, cres.fndesc.llvm_func_name


def _wrapper_ir(vname: str, inner: str, bits: int, width: int) -> str:
    lt = _LLVM_TYPE[bits]
    vt = f"<{width} x {lt}>"
    return f"""
declare i32 @"{inner}"(ptr, ptr, {lt})

define {vt} @{vname}({vt} %x) noinline {{
entry:
  %in = alloca [{width} x {lt}], align 64
  %out = alloca [{width} x {lt}], align 64
  %ret = alloca {lt}
  %exc = alloca ptr
  store {vt} %x, ptr %in, align 64
  br label %loop
loop:
  %i = phi i64 [ 0, %entry ], [ %next, %loop ]
  %pin = getelementptr inbounds {lt}, ptr %in, i64 %i
  %v = load {lt}, ptr %pin
  %status = call i32 @"{inner}"(ptr %ret, ptr %exc, {lt} %v)
  %r = load {lt}, ptr %ret
  %pout = getelementptr inbounds {lt}, ptr %out, i64 %i
  store {lt} %r, ptr %pout
  %next = add nuw nsw i64 %i, 1
  %more = icmp ult i64 %next, {width}
  br i1 %more, label %loop, label %exit, !llvm.loop !0
exit:
  %res = load {vt}, ptr %out, align 64
  ret {vt} %res
}}
!0 = distinct !{{!0, !1, !2, !3, !4}}
!1 = !{{!"llvm.loop.vectorize.enable", i1 true}}
!2 = !{{!"llvm.loop.vectorize.width", i32 {width}}}
!3 = !{{!"llvm.loop.interleave.count", i32 1}}
!4 = !{{!"llvm.loop.unroll.disable"}}
"""


def _build(codegen: Any, name: str, bits: int, width: int) -> Any | None:
    text, inner = _scalar_ir(name, bits)
    module = llvm.parse_assembly(text)
    for fn in module.functions:
        if not fn.is_declaration:
            fn.add_function_attribute("alwaysinline")
    vname = symbol(name, bits, width)
    module.link_in(llvm.parse_assembly(_wrapper_ir(vname, inner, bits, width)))
    lib = codegen.create_library(vname)
    lib.add_llvm_module(module)
    lib.finalize()
    asm = lib.get_asm_str()
    body = asm[asm.find(f"{vname}:"):]
    body = body[:body.find(".Lfunc_end")]
    return lib if "call" not in body and re.search(r"p[sd]\s[^\n]*%[xyz]mm", body) else None
