"""``jb.atomic``: read-modify-write of one array element that concurrent launch indices cannot
tear. Use it where several indices of a kernel may update the same element (a histogram, a
k-means centroid sum); each call returns the element's old value.

    jb.atomic.add(counts, b, 1)           # counts[b] += 1
    jb.atomic.max(best, (r, c), score)    # best[r, c] = max(best[r, c], score)
    jb.atomic.cas(owner, k, -1, i)        # owner[k] = i if owner[k] == -1; returns the old value

``add``/``sub``/``min``/``max`` take int32, int64, uint32, uint64, float32 and float64 arrays,
``cas`` the integer ones; the index is an int or a tuple of ints, one per dimension. On the CPU
they are LLVM ``atomicrmw``/``cmpxchg`` instructions with relaxed (monotonic) ordering; float
``min``/``max`` are a compare-and-swap loop. A float ``min``/``max`` whose value is NaN leaves
the element unchanged, and an element that is NaN stays NaN, as CUDA's atomics behave.

A serial launch, and a parallel launch that gives each thread a private copy of a small array
touched only through atomics, run the same calls as plain loads and stores (``PrivateArray``).
Called from plain Python the functions do the same, non-atomically.
"""
from __future__ import annotations

from typing import Any

from llvmlite import ir as llir
from numba.core import cgutils, types
from numba.core.errors import TypingError
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, models, overload, register_model

_INTS = (types.int32, types.int64, types.uint32, types.uint64)
_FLOATS = (types.float32, types.float64)


def add(ary: Any, idx: Any, val: Any) -> Any:
    """``ary[idx] += val``; returns the old value."""
    old = ary[idx]
    ary[idx] = old + val
    return old


def sub(ary: Any, idx: Any, val: Any) -> Any:
    """``ary[idx] -= val``; returns the old value."""
    old = ary[idx]
    ary[idx] = old - val
    return old


def min(ary: Any, idx: Any, val: Any) -> Any:  # noqa: A001 - the operation's name
    """``ary[idx] = min(ary[idx], val)``; returns the old value."""
    old = ary[idx]
    if val < old:
        ary[idx] = val
    return old


def max(ary: Any, idx: Any, val: Any) -> Any:  # noqa: A001 - the operation's name
    """``ary[idx] = max(ary[idx], val)``; returns the old value."""
    old = ary[idx]
    if val > old:
        ary[idx] = val
    return old


def cas(ary: Any, idx: Any, expected: Any, val: Any) -> Any:
    """``ary[idx] = val`` if ``ary[idx] == expected``; returns the old value (integers only)."""
    old = ary[idx]
    if old == expected:
        ary[idx] = val
    return old


OPS = {add: "add", sub: "sub", min: "min", max: "max", cas: "cas"}


class PrivateArray(types.Array):
    """An array only one thread touches during a launch: atomics on it are plain loads and
    stores. Everything else about it is an ordinary array."""

    def __init__(self, dtype: types.Type, ndim: int, layout: str, readonly: bool = False, aligned: bool = True):
        name = f"private array({dtype}, {ndim}d, {layout})"
        super().__init__(dtype, ndim, layout, readonly=readonly, name=name, aligned=aligned)

    def copy(self, dtype: Any = None, ndim: Any = None, layout: Any = None, readonly: Any = None) -> types.Array:
        # Views and reshapes of a private array are ordinary arrays.
        return types.Array(dtype or self.dtype, ndim or self.ndim, layout or self.layout,
                           readonly=not self.mutable if readonly is None else readonly)


register_model(PrivateArray)(models.ArrayModel)


@intrinsic
def as_private(typingctx: Any, ary: Any) -> Any:
    """The same array, typed so that atomics on it compile to plain loads and stores."""
    if not isinstance(ary, types.Array) or isinstance(ary, PrivateArray):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return impl_ret_borrowed(context, builder, sig.return_type, args[0])

    return PrivateArray(ary.dtype, ary.ndim, ary.layout, not ary.mutable, ary.aligned)(ary), codegen


def _check(name: str, ary: Any, idx: Any, values: tuple[Any, ...], dtypes: tuple[Any, ...]) -> None:
    if not isinstance(ary, types.Array) or ary.dtype not in dtypes:
        raise TypingError(f"jb.atomic.{name} needs an array of {', '.join(str(d) for d in dtypes)}, got {ary}")
    if not ary.mutable:
        raise TypingError(f"jb.atomic.{name} cannot write the read-only array {ary}")
    count = len(idx) if isinstance(idx, types.BaseTuple) else 1
    parts = idx.types if isinstance(idx, types.BaseTuple) else (idx,)
    if count != ary.ndim or not all(isinstance(p, types.Integer) for p in parts):
        raise TypingError(f"jb.atomic.{name} on a {ary.ndim}-d array needs {ary.ndim} integer index(es), got {idx}")
    for value in values:
        if not isinstance(value, (types.Number, types.Boolean)):
            raise TypingError(f"jb.atomic.{name} needs a number to combine with the element, got {value}")


def _element_pointer(context: Any, builder: Any, aryty: Any, ary: Any, idxty: Any, idx: Any) -> Any:
    array = context.make_array(aryty)(context, builder, ary)
    if isinstance(idxty, types.BaseTuple):
        indices = [context.cast(builder, v, t, types.intp)
                   for v, t in zip(cgutils.unpack_tuple(builder, idx, len(idxty)), idxty.types)]
    else:
        indices = [context.cast(builder, idx, idxty, types.intp)]
    return cgutils.get_item_pointer(context, builder, aryty, array, indices, wraparound=True,
                                    boundscheck=context.enable_boundscheck)


def _combine(builder: Any, op: str, old: Any, val: Any, is_float: bool, signed: bool) -> Any:
    """The new element value, as a plain (non-atomic) operation."""
    if op in ("add", "sub"):
        if is_float:
            return builder.fadd(old, val) if op == "add" else builder.fsub(old, val)
        return builder.add(old, val) if op == "add" else builder.sub(old, val)
    if is_float:
        take = builder.fcmp_ordered(">" if op == "max" else "<", val, old)
    else:
        take = (builder.icmp_signed if signed else builder.icmp_unsigned)(">" if op == "max" else "<", val, old)
    return builder.select(take, val, old)


def _atomic_float_minmax(builder: Any, op: str, ptr: Any, val: Any) -> Any:
    """Compare-and-swap loop: write only when ``val`` wins, NaN never does."""
    int_type = llir.IntType(64 if isinstance(val.type, llir.DoubleType) else 32)
    int_ptr = builder.bitcast(ptr, int_type.as_pointer())
    start = builder.load_atomic(int_ptr, "monotonic", int_type.width // 8)
    entry = builder.block
    loop = builder.append_basic_block("atomic.minmax.loop")
    swap = builder.append_basic_block("atomic.minmax.swap")
    done = builder.append_basic_block("atomic.minmax.done")
    builder.branch(loop)
    builder.position_at_end(loop)
    seen = builder.phi(int_type)
    seen.add_incoming(start, entry)
    old = builder.bitcast(seen, val.type)
    wins = builder.fcmp_ordered(">" if op == "max" else "<", val, old)
    builder.cbranch(wins, swap, done)
    builder.position_at_end(swap)
    pair = builder.cmpxchg(int_ptr, seen, builder.bitcast(val, int_type), "monotonic", "monotonic")
    seen.add_incoming(builder.extract_value(pair, 0), swap)
    builder.cbranch(builder.extract_value(pair, 1), done, loop)
    builder.position_at_end(done)
    result = builder.phi(int_type)
    result.add_incoming(seen, loop)
    result.add_incoming(seen, swap)
    return builder.bitcast(result, val.type)


def _rmw_intrinsic(op: str) -> Any:
    dtypes = _INTS + _FLOATS

    @intrinsic
    def rmw(typingctx: Any, ary: Any, idx: Any, val: Any) -> Any:
        _check(op, ary, idx, (val,), dtypes)

        def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
            aryty, idxty, valty = sig.args
            ptr = _element_pointer(context, builder, aryty, args[0], idxty, args[1])
            value = context.cast(builder, args[2], valty, aryty.dtype)
            is_float = aryty.dtype in _FLOATS
            signed = getattr(aryty.dtype, "signed", False)
            if isinstance(aryty, PrivateArray):
                old = builder.load(ptr)
                builder.store(_combine(builder, op, old, value, is_float, signed), ptr)
                return old
            if is_float and op in ("min", "max"):
                return _atomic_float_minmax(builder, op, ptr, value)
            kind = {"add": "add", "sub": "sub", "min": "min" if signed else "umin", "max": "max" if signed else "umax"}[op]
            return builder.atomic_rmw(("f" + kind) if is_float else kind, ptr, value, "monotonic")

        return ary.dtype(ary, idx, val), codegen

    return rmw


@intrinsic
def _cas(typingctx: Any, ary: Any, idx: Any, expected: Any, val: Any) -> Any:
    _check("cas", ary, idx, (expected, val), _INTS)

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        aryty, idxty, expty, valty = sig.args
        ptr = _element_pointer(context, builder, aryty, args[0], idxty, args[1])
        want = context.cast(builder, args[2], expty, aryty.dtype)
        value = context.cast(builder, args[3], valty, aryty.dtype)
        if isinstance(aryty, PrivateArray):
            old = builder.load(ptr)
            builder.store(builder.select(builder.icmp_unsigned("==", old, want), value, old), ptr)
            return old
        return builder.extract_value(builder.cmpxchg(ptr, want, value, "monotonic", "monotonic"), 0)

    return ary.dtype(ary, idx, expected, val), codegen


def _register(fn: Any, op: str) -> None:
    rmw = _rmw_intrinsic(op)

    @overload(fn)
    def impl(ary, idx, val):  # noqa: ANN001 - numba compares these names with the lambda's
        return lambda ary, idx, val: rmw(ary, idx, val)


for _fn, _op in ((add, "add"), (sub, "sub"), (min, "min"), (max, "max")):
    _register(_fn, _op)


@overload(cas)
def _cas_impl(ary, idx, expected, val):  # noqa: ANN001 - numba compares these names with the lambda's
    return lambda ary, idx, expected, val: _cas(ary, idx, expected, val)


__all__ = ["add", "cas", "max", "min", "sub"]
