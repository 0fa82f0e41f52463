"""Shared compiled building blocks: vectorizable max, chunk statistics, and the kernels every
row-wise statistic runs under (``jb.kernel`` over rows, and over blocks of one long row).

A "statistic" here is a jitted ``stat(x, y, zero) -> tuple`` over one contiguous 1-D slice
(``y`` is a second operand or ``x`` again; ``zero`` fixes the accumulator type).

Every loop runs ``range(0, slice.size)`` over a slice rather than ``range(lo, hi)`` over the
whole array: numba wraps negative indices, and only an index it can prove non-negative lets
LLVM drop that select and vectorize (the ``range(lo, hi)`` form runs 4x slower threaded). The
kernels store each tuple in a row of a 2-D array, so one pair of kernels serves sums, Welford
triples and softmax's (max, sum) pairs, and a serial and a threaded launch run the very same
``stat`` code on the very same slices.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
from llvmlite import ir as llvm_ir
from numba import types
from numba.extending import intrinsic

from jitbridge import jit, kernel

from ._dispatch import KERNEL, REDUCE, SERIAL

CHUNK = 512  # elements re-read from L1 by two-pass chunk statistics


def _extremum(name: str, llvm_name: str, predicate: str) -> Any:
    """max or min of (a, b) that LLVM vectorizes as a reduction: ``llvm.maxnum``/``minnum``
    for floats (NaN is ignored; callers track NaN separately), a compare-select for integers."""

    def typer(typingctx, a, b):
        if a != b or not isinstance(a, (types.Float, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            ty = context.get_value_type(a)
            if isinstance(a, types.Float):
                fnty = llvm_ir.FunctionType(ty, [ty, ty])
                return builder.call(builder.module.declare_intrinsic(llvm_name, [ty], fnty), args)
            pick = builder.icmp_signed(predicate, *args) if a.signed else builder.icmp_unsigned(predicate, *args)
            return builder.select(pick, *args)

        return a(a, b), codegen

    typer.__name__ = typer.__qualname__ = name
    return intrinsic(typer)


vmax = _extremum("vmax", "llvm.maxnum", ">")
vmin = _extremum("vmin", "llvm.minnum", "<")


@intrinsic
def cast_like(typingctx, value, like):
    """``value`` converted to the type of ``like``: lets generic code produce float32 from
    float64 statistics for float32 data, and float64 for float64."""

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], value, like)

    return like(value, like), codegen


@jit(**SERIAL)
def chunk_max(x):
    """(max ignoring NaN, number of NaNs) of a non-empty chunk. The max loop and a NaN check
    are two loops, because LLVM vectorizes each alone but neither when fused; the check is a
    plain sum (NaN in, NaN out; re-read from L1), and only a chunk whose sum is NaN (a NaN,
    or infinities of both signs) is read a third time to count its NaNs."""
    m = x[0]
    for i in range(x.size):
        m = vmax(m, x[i])
    nans = 0
    total = chunk_sum(x, x[0] - x[0])
    if total != total:
        for i in range(x.size):
            nans += x[i] != x[i]
    return m, nans


@jit(**SERIAL, **REDUCE)
def chunk_sum(x, zero):
    s = zero
    for i in range(x.size):
        s += x[i]
    return s


@jit(**SERIAL, **REDUCE)
def chunk_sq_dev(x, mean):
    """Sum of squared deviations from ``mean`` (the second pass of a two-pass variance)."""
    s = mean - mean
    for i in range(x.size):
        d = x[i] - mean
        s += d * d
    return s


@jit(**SERIAL, **REDUCE)
def chunk_sq_dev_and_sum(x, mean, following, zero):
    """(sum of squared deviations of x from mean, sum of ``following``) in one loop, so
    reading the next chunk from memory overlaps the L1 pass over this one."""
    s2 = mean - mean
    s1 = zero
    for i in range(x.size):
        d = x[i] - mean
        s2 += d * d
        s1 += following[i]
    return s2, s1


@jit(**SERIAL)
def welford(x, zero):
    """(count, mean, M2) of x: exact two-pass statistics per L1-resident chunk, merged with
    Chan's update, so one pass over memory is as stable as NumPy's two. The second pass
    over a chunk runs in the same loop as the first pass over the next one, so the read of
    each chunk from memory overlaps work on the one before (1.4x faster than in turn)."""
    count = zero
    mean = zero
    m2 = zero
    c_sum = chunk_sum(x[:CHUNK], zero)
    for c0 in range(0, x.size, CHUNK):
        chunk = x[c0:c0 + CHUNK]
        following = x[c0 + CHUNK:c0 + 2 * CHUNK]
        k = zero + chunk.size
        c_mean = c_sum / k
        if following.size == chunk.size:
            c_m2, c_sum = chunk_sq_dev_and_sum(chunk, c_mean, following, zero)
        else:
            c_m2, c_sum = chunk_sq_dev(chunk, c_mean), chunk_sum(following, zero)
        count, mean, m2 = merge_moments(count, mean, m2, k, c_mean, c_m2)
    return count, mean, m2


@jit(**SERIAL)
def merge_moments(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Chan et al.'s pairwise update of (count, mean, M2)."""
    n = n_a + n_b
    if n_b == 0:
        return n_a, mean_a, m2_a
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / n)
    return n, mean, m2_a + m2_b + delta * delta * (n_a * n_b / n)


def named(fn: Callable, name: str) -> Callable:
    """``fn`` under its own name, so each kernel a factory makes has its own counters and
    cache records."""
    fn.__name__ = fn.__qualname__ = name
    return fn


def stat_drivers(stat: Callable, width: int) -> tuple[Any, Any]:
    """(rows, blocks) kernels for a statistic of ``width`` values.

    ``rows[n_rows](x2, y2, zero, out)`` fills ``out[r, :]`` with ``stat`` of row r;
    ``blocks[n_blocks](x, y, zero, block, out)`` fills ``out[b, :]`` with ``stat`` of the b-th
    block of the 1-D ``x``; the caller combines those rows in order. Serial and threaded runs
    are the same kernels launched with ``threads=1`` or more.
    """

    def rows(r, x2, y2, zero, out):
        t = stat(x2[r], y2[r], zero)
        for k in range(width):
            out[r, k] = t[k]

    def blocks(b, x, y, zero, block, out):
        lo = b * block
        hi = min(lo + block, x.size)
        t = stat(x[lo:hi], y[lo:hi], zero)
        for k in range(width):
            out[b, k] = t[k]

    return (kernel(**KERNEL)(named(rows, f"{stat.__name__}_rows")),
            kernel(**KERNEL)(named(blocks, f"{stat.__name__}_blocks")))


@jit(**SERIAL)
def combine_sums(partials, x, block):
    """Block partial sums added in block order."""
    s = partials[0, 0]
    for b in range(1, partials.shape[0]):
        s += partials[b, 0]
    return np.array((s,))


@jit(**SERIAL)
def combine_moments(partials, x, block):
    """Block (count, mean, M2) triples merged in block order."""
    count, mean, m2 = partials[0, 0], partials[0, 1], partials[0, 2]
    for b in range(1, partials.shape[0]):
        count, mean, m2 = merge_moments(count, mean, m2, partials[b, 0], partials[b, 1], partials[b, 2])
    return np.array((count, mean, m2))


def transform_drivers(stat: Callable, coef: Callable, apply: Callable) -> tuple[Any, Any]:
    """(rows, blocks) kernels for "statistic, then rewrite the row".

    A row runs ``stat`` over it, ``coef(stat, n, params) -> (a, b)`` turns that into two
    coefficients, and ``apply(x, out, lo, hi, a, b, params, stream)`` writes ``out[lo:hi]``
    (with streaming stores when ``stream``; see ``_stream``): ``rows[n_rows](x2, out2, zero,
    params, stream)``. A long 1-D input instead gets its statistic from
    ``stat_drivers(stat)`` blocks and is rewritten by
    ``blocks[n_blocks](x, out, a, b, params, block, stream)``.
    """

    def rows(r, x2, out2, zero, params, stream):
        x, out = x2[r], out2[r]
        a, b = coef(stat(x, x, zero), x.size, params)
        apply(x, out, 0, x.size, a, b, params, stream)

    def blocks(k, x, out, a, b, params, block, stream):
        apply(x, out, k * block, min(k * block + block, x.size), a, b, params, stream)

    return (kernel(**KERNEL)(named(rows, f"{apply.__name__}_rows")),
            kernel(**KERNEL)(named(blocks, f"{apply.__name__}_blocks")))


def map_drivers(apply: Callable) -> Any:
    """The element-wise blocks kernel over flat arrays: ``blocks[n_blocks](x, y, out, params,
    block, stream)`` runs ``apply(x, y, out, lo, hi, params, stream)`` on each block (with
    streaming stores when ``stream``)."""

    def blocks(k, x, y, out, params, block, stream):
        apply(x, y, out, k * block, min(k * block + block, x.size), params, stream)

    return kernel(**KERNEL)(named(blocks, f"{apply.__name__}_blocks"))
