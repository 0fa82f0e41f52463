"""Element-wise maps whose stores can bypass the cache (non-temporal, "streaming" stores).

A plain store to memory that is not in cache first reads the line it writes (write-allocate),
so a kernel that reads one array and writes another moves three bytes for every two it
counts. For outputs far larger than the caches, a non-temporal store writes the line without
reading it: ``scale`` on 10^7 float64 drops from 4.5 ms to 3.2 ms here. numba cannot ask for
such stores (LLVM drops ``!nontemporal`` from the unaligned vector stores its vectorizer
makes), and staging a chunk in an L1 buffer and streaming it from there was slower than not
streaming at all, so each map is built here as LLVM IR: a scalar head up to a 64-byte
boundary of ``out``, a loop of aligned 64-byte vector stores marked non-temporal, a scalar
tail, and a store fence. With ``stream`` false the same operation runs as one scalar loop
that LLVM vectorizes with ordinary stores, which is what small, cache-resident outputs want.

An operation is a function ``op(arith, x, y, p, q)`` of LLVM values (scalars or vectors) for
one element of ``x`` and of ``y`` and the two scalar parameters; ``arith`` picks float or
integer instructions, so one definition serves every dtype.
"""
from __future__ import annotations

from typing import Callable

import llvmlite.binding as llvm
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LINE = 64  # bytes per vector store: one cache line, one AVX-512 register
_X86 = llvm.get_process_triple().startswith(("x86_64", "i686", "i386"))


class Arith:
    """The IR instruction for each arithmetic operation on one dtype."""

    def __init__(self, builder: ir.IRBuilder, dtype: types.Number) -> None:
        self.b = builder
        self.float = isinstance(dtype, types.Float)
        self.signed = getattr(dtype, "signed", True)

    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fmul(a, b) if self.float else self.b.mul(a, b)

    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fadd(a, b) if self.float else self.b.add(a, b)

    def sub(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fsub(a, b) if self.float else self.b.sub(a, b)

    def less(self, a: ir.Value, b: ir.Value) -> ir.Value:
        """a < b, false when either is NaN (so ``b if x < b else x`` keeps a NaN x)."""
        if self.float:
            return self.b.fcmp_ordered("<", a, b)
        return self.b.icmp_signed("<", a, b) if self.signed else self.b.icmp_unsigned("<", a, b)

    def select(self, cond: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(cond, a, b)


Op = Callable[[Arith, ir.Value, ir.Value, ir.Value, ir.Value], ir.Value]


def _splat(builder: ir.IRBuilder, value: ir.Value, vecty: ir.VectorType) -> ir.Value:
    vec = ir.Constant(vecty, ir.Undefined)
    for k in range(vecty.count):
        vec = builder.insert_element(vec, value, ir.Constant(ir.IntType(32), k))
    return vec


def _fence(builder: ir.IRBuilder) -> None:
    """Order the weakly ordered streaming stores before anything after the call."""
    if _X86:
        fnty = ir.FunctionType(ir.VoidType(), [])
        builder.call(builder.module.declare_intrinsic("llvm.x86.sse.sfence", fnty=fnty), [])
    else:
        builder.fence("seq_cst")


def streaming(op: Op) -> Callable:
    """A jittable ``f(x, y, out, p, q, stream)`` writing ``out[i] = op(x[i], y[i], p, q)``
    for contiguous 1-D ``x``, ``y``, ``out`` of one dtype and size (``y`` may be ``x``)."""

    @intrinsic
    def run(typingctx, x, y, out, p, q, stream):
        arrays = (x, y, out)
        if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays):
            return None
        if len({a.dtype for a in arrays}) != 1 or not isinstance(x.dtype, types.Number):
            return None
        dtype = x.dtype

        def codegen(context, builder, signature, args):
            xv, yv, outv, pv, qv, streamv = args
            ety = context.get_value_type(dtype)
            size = context.get_abi_sizeof(ety)
            arith = Arith(builder, dtype)
            pv, qv = (context.cast(builder, v, t, dtype) for v, t in zip((pv, qv), signature.args[3:5]))
            xs, ys, outs = (context.make_array(t)(context, builder, v) for t, v in zip(arrays, (xv, yv, outv)))
            n = outs.nitems
            intp = n.type

            def scalar_loop(start: ir.Value, stop: ir.Value) -> None:
                with cgutils.for_range(builder, builder.sub(stop, start)) as loop:
                    i = builder.add(start, loop.index)
                    x_i = builder.load(builder.gep(xs.data, [i]))
                    y_i = builder.load(builder.gep(ys.data, [i]))
                    builder.store(op(arith, x_i, y_i, pv, qv), builder.gep(outs.data, [i]))

            zero = ir.Constant(intp, 0)
            with builder.if_else(cgutils.as_bool_bit(builder, streamv)) as (streamed, plain):
                with streamed:
                    width = LINE // size
                    vecty = ir.VectorType(ety, width)
                    address = builder.ptrtoint(outs.data, intp)
                    to_line = builder.urem(builder.sub(ir.Constant(intp, LINE), builder.urem(
                        address, ir.Constant(intp, LINE))), ir.Constant(intp, LINE))
                    aligned = builder.icmp_unsigned("==", builder.urem(address, ir.Constant(intp, size)), zero)
                    head = builder.select(aligned, builder.udiv(to_line, ir.Constant(intp, size)), n)
                    head = builder.select(builder.icmp_unsigned("<", head, n), head, n)
                    vectors = builder.udiv(builder.sub(n, head), ir.Constant(intp, width))
                    body_end = builder.add(head, builder.mul(vectors, ir.Constant(intp, width)))
                    scalar_loop(zero, head)
                    pvec, qvec = _splat(builder, pv, vecty), _splat(builder, qv, vecty)
                    nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
                    with cgutils.for_range(builder, vectors) as loop:
                        i = builder.add(head, builder.mul(loop.index, ir.Constant(intp, width)))
                        x_v = builder.load(builder.bitcast(builder.gep(xs.data, [i]), vecty.as_pointer()),
                                           align=size)
                        y_v = builder.load(builder.bitcast(builder.gep(ys.data, [i]), vecty.as_pointer()),
                                           align=size)
                        store = builder.store(op(arith, x_v, y_v, pvec, qvec),
                                              builder.bitcast(builder.gep(outs.data, [i]), vecty.as_pointer()),
                                              align=LINE)
                        store.set_metadata("nontemporal", nontemporal)
                    scalar_loop(body_end, n)
                    _fence(builder)
                with plain:
                    scalar_loop(zero, n)
            return context.get_dummy_value()

        return types.none(x, y, out, p, q, stream), codegen

    return run
