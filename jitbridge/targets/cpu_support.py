"""Compiled helpers the generated launch loops call (``cpu.launcher_source``): argument checks,
how a launch is shared among threads, and per-thread copies of atomic targets."""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir as llvmir
from numba.core import types
from numba.extending import intrinsic, overload

from ..atomic import as_private

_ASSUME = llvmir.FunctionType(llvmir.VoidType(), [llvmir.IntType(1)])
# A launch dimension shorter than this many indices per thread is not split across threads
# when the next one is longer.
_PER_THREAD = 4
# Privatize an atomic target only when all threads' copies are small against the work.
_PRIVATE_MAX_BYTES = 64 << 20
_PRIVATE_WORK_RATIO = 8


@intrinsic
def nonneg(typingctx, index):  # noqa: ANN001, ANN201
    """``index``, with a promise to LLVM that it is not negative (``llvm.assume``): a launch
    index never is, and knowing it lets LLVM drop the wraparound of ``x[i]``, ``x[i + 1]``, ...
    that otherwise turns the vectorized loop's loads and stores into gathers and scatters."""
    if not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        value = args[0]
        assume = builder.module.declare_intrinsic("llvm.assume", fnty=_ASSUME)
        builder.call(assume, [builder.icmp_signed(">=", value, value.type(0))])
        return value

    return index(index), codegen


def extent(a, axis):  # noqa: ANN001, ANN201 - typed by numba through the overload below
    """Length of ``a`` along ``axis``; non-arrays are not indexed by the launch (no limit)."""
    return len(a) if axis == 0 else np.iinfo(np.intp).max


@overload(extent)
def _extent(a, axis):  # noqa: ANN001, ANN202
    if isinstance(a, types.Array):
        return lambda a, axis: a.shape[axis] if axis < a.ndim else 1
    if isinstance(a, types.BaseTuple):
        return lambda a, axis: len(a) if axis == 0 else 1
    big = np.iinfo(np.intp).max
    return lambda a, axis: big


def overlaps(a, b):  # noqa: ANN001, ANN201
    """Whether the memory spans of two arrays intersect (False for non-arrays)."""
    return bool(np.may_share_memory(a, b))


def _span(a):  # noqa: ANN001, ANN202 - (first byte, one past the last byte) of an array's elements
    lo = np.intp(a.ctypes.data)
    hi = lo + a.itemsize
    for d in range(a.ndim):
        step = (a.shape[d] - 1) * a.strides[d]
        if step < 0:
            lo += step
        else:
            hi += step
    return lo, hi


_span_jit = numba.njit(_span)


@overload(overlaps)
def _overlaps(a, b):  # noqa: ANN001, ANN202
    if isinstance(a, types.Array) and isinstance(b, types.Array):
        def impl(a, b):  # noqa: ANN001, ANN202
            if a.size == 0 or b.size == 0:
                return False
            alo, ahi = _span_jit(a)
            blo, bhi = _span_jit(b)
            return alo < bhi and blo < ahi
        return impl
    return lambda a, b: False


@numba.njit
def split_dim(n0, n1, nc):  # noqa: ANN001, ANN201
    """Split the outer dimension, unless it is too short to give every thread work and the
    second one is longer."""
    return 1 if n0 < _PER_THREAD * nc and n1 > n0 else 0


@numba.njit
def chunk(c, nc, split, n0, n1=1):  # noqa: ANN001, ANN201
    """The rectangle of thread chunk ``c`` of ``nc``: the split dimension in ``nc`` near-equal
    slices, the other whole."""
    if split == 0:
        return c * n0 // nc, (c + 1) * n0 // nc, 0, n1
    return 0, n0, c * n1 // nc, (c + 1) * n1 // nc


@numba.njit
def private_fits(a, nc, total):  # noqa: ANN001, ANN201
    """Per-thread copies pay off when they are small against the launch."""
    size = a.size * nc
    return size * a.itemsize <= _PRIVATE_MAX_BYTES and size * _PRIVATE_WORK_RATIO <= total


@numba.njit
def private_copies(a, nc, op):  # noqa: ANN001, ANN201
    """One copy of ``a`` per thread: zeros for sums, ``a`` itself for min/max."""
    copies = np.empty((nc,) + a.shape, a.dtype)
    for c in range(nc):
        if op == "add":
            copies[c] = 0
        else:
            copies[c] = a
    return copies


@numba.njit
def merge(a, copies, op):  # noqa: ANN001, ANN201
    """Fold the per-thread copies into ``a``, in thread order."""
    for index in np.ndindex(a.shape):
        value = a[index]
        for c in range(copies.shape[0]):
            part = copies[(c,) + index]
            if op == "add":
                value += part
            elif op == "max":
                if part > value:
                    value = part
            elif part < value:
                value = part
        a[index] = value


SUPPORT = {"nonneg": nonneg, "prange": numba.prange, "extent": extent, "overlaps": overlaps,
           "split_dim": split_dim, "chunk": chunk, "private_fits": private_fits,
           "private_copies": private_copies, "merge": merge, "as_private": as_private}
