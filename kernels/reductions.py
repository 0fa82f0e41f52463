"""Reductions along the last axis: ``sum_sq``, ``dot``, ``variance`` and ``argmax``.

Each is one statistic over a contiguous slice, run by the ``jb.kernel``s of
``_loops.stat_drivers`` over rows or blocks; a 1-D input
above the crossover is cut into blocks whose partial results are combined in block order,
which is what makes deterministic mode bit-identical for any thread count.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jitbridge import errors, jit

from . import _dispatch as d
from . import _gpu
from ._dispatch import REDUCE, SERIAL
from ._loops import CHUNK, chunk_max, combine_moments, combine_sums, stat_drivers, welford


def _acc_zero(dtype: np.dtype) -> Any:
    """Accumulator: float64 for floats (float32 sums lose nothing), 64-bit for integers."""
    if dtype.kind == "f":
        return np.float64(0)
    return np.uint64(0) if dtype.kind == "u" else np.int64(0)


def reduce_rows(drivers: tuple[Any, Any], combine: Callable,
                x2: np.ndarray, y2: np.ndarray, zero: Any, width: int, plan: d.Plan) -> np.ndarray:
    """(rows, width) statistics of each row of ``x2`` (and ``y2``), run as ``plan`` says."""
    rows, blocks = drivers
    out = np.empty((x2.shape[0], width), zero.dtype)
    if x2.shape[0] == 1 and plan.parallel:
        block = plan.block(x2.shape[1])
        partials = np.empty((d.nblocks(x2.shape[1], block), width), out.dtype)
        blocks.launch(partials.shape[0], x2[0], y2[0], zero, block, partials, threads=plan.threads)
        out[0] = combine(partials, x2[0], block)
    else:
        rows.launch(x2.shape[0], x2, y2, zero, out, threads=plan.launch_threads)
    return out


def _small_1d(stat: Any, x: np.ndarray, y: np.ndarray) -> Any:
    """A short 1-D float reduction: the block statistic of the kernels, called once on the
    whole array (no launch, row views or plans: their bookkeeping costs more than the
    arithmetic at this size)."""
    return x.dtype.type(stat(x, y, 0.0)[0])


def _shape_result(values: np.ndarray, arr: np.ndarray, dtype: np.dtype) -> Any:
    """Per-row values back in the input's leading shape; a scalar for 1-D input."""
    values = values.astype(dtype, copy=False)
    return values[0] if arr.ndim == 1 else values.reshape(arr.shape[:-1])


@jit(**SERIAL, **REDUCE)
def sum_sq_stat(x, y, zero):
    s = zero
    for i in range(x.size):
        v = zero + x[i]
        s += v * v
    return (s,)


@jit(**SERIAL, **REDUCE)
def _dot(x, y, zero):
    s = zero
    for i in range(x.size):
        s += (zero + x[i]) * (zero + y[i])
    return (s,)


@jit(**SERIAL)
def moments_stat(x, y, zero):
    return welford(x, zero)


@jit(**SERIAL)
def _argmax(x, y, zero):
    """First index of the maximum, or of the first NaN (NumPy's rule), with one pass over
    memory: vectorized chunk maxima, then a scan of the one chunk that holds the answer."""
    n = x.size
    best = x[0]
    where = 0
    for c0 in range(0, n, CHUNK):
        chunk = x[c0:c0 + CHUNK]
        m, nans = chunk_max(chunk)
        if nans:
            for i in range(chunk.size):
                if chunk[i] != chunk[i]:
                    return (zero + c0 + i,)
        if m > best:
            best = m
            where = c0
    rest = x[where:]
    for i in range(rest.size):
        if rest[i] == best:
            return (zero + where + i,)
    return (zero,)


@jit(**SERIAL)
def _combine_argmax(partials, x, block):
    best = partials[0, 0]
    for b in range(1, partials.shape[0]):
        i = partials[b, 0] + b * block
        if x[best] != x[best]:
            break
        if x[i] > x[best] or x[i] != x[i]:
            best = i
    return np.array((best,))


_SUM_SQ = stat_drivers(sum_sq_stat, 1)
_DOT = stat_drivers(_dot, 1)
_MOMENTS = stat_drivers(moments_stat, 3)
_ARGMAX = stat_drivers(_argmax, 1)


def sum_sq(x: Any, axis: int = -1, threads: int | None = None,
           deterministic: bool | None = None) -> Any:
    """Sum of squares along the last axis (``np.dot(x, x)`` for 1-D, without the BLAS call).

    Floats accumulate in float64 and return the input dtype; integers accumulate and return
    in 64 bits (int64, or uint64 for uint8), wrapping on overflow as NumPy's ``sum`` does.
    """
    if type(x) is np.ndarray and x.dtype in d.FLOAT_SET and d.small_1d(x, "sum_sq", threads) and axis in (-1, 0):
        return _small_1d(sum_sq_stat, x, x)
    if _gpu.is_device(x):
        return _gpu.dot(x, x)
    arr = d.require_array(x, "x", d.NUMERIC)
    d.check_axis(axis, arr)
    zero = _acc_zero(arr.dtype)
    x2 = d.rows(arr)
    plan = d.plan("sum_sq", arr.size, threads, deterministic)
    values = reduce_rows(_SUM_SQ, combine_sums, x2, x2, zero, 1, plan)[:, 0]
    return _shape_result(values, arr, arr.dtype if arr.dtype.kind == "f" else zero.dtype)


def dot(x: Any, y: Any, axis: int = -1, threads: int | None = None,
        deterministic: bool | None = None) -> Any:
    """Dot product along the last axis (row by row for 2-D ``x`` and ``y`` of one shape);
    accumulators and result dtype as in :func:`sum_sq`."""
    if (type(x) is np.ndarray and type(y) is np.ndarray and x.dtype in d.FLOAT_SET and d.small_1d(x, "dot", threads)
            and y.shape == x.shape and y.dtype == x.dtype and axis in (-1, 0)):
        return _small_1d(_dot, x, y)
    if _gpu.is_device(x):
        return _gpu.dot(x, y)
    arr = d.require_array(x, "x", d.NUMERIC)
    other = d.require_array(y, "y", d.NUMERIC)
    d.check_same_shape("y", other, arr)
    d.check_axis(axis, arr)
    zero = _acc_zero(arr.dtype)
    plan = d.plan("dot", arr.size, threads, deterministic)
    values = reduce_rows(_DOT, combine_sums, d.rows(arr), d.rows(other), zero, 1, plan)[:, 0]
    return _shape_result(values, arr, arr.dtype if arr.dtype.kind == "f" else zero.dtype)


def variance(x: Any, axis: int = -1, ddof: int = 0, threads: int | None = None,
             deterministic: bool | None = None) -> Any:
    """Variance along the last axis, as ``np.var(x, axis=-1, ddof=ddof)``: one pass over
    memory, numerically stable (Welford/Chan merging of exact per-chunk moments). Integer
    input gives float64; an empty axis gives NaN."""
    arr = d.require_array(x, "x", d.NUMERIC)
    d.check_axis(axis, arr)
    out_dtype = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    x2 = d.rows(arr)
    if x2.shape[1] == 0:
        return _shape_result(np.full(x2.shape[0], np.nan), arr, out_dtype)
    plan = d.plan("variance", arr.size, threads, deterministic)
    moments = reduce_rows(_MOMENTS, combine_moments, x2, x2, np.float64(0), 3, plan)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = moments[:, 2] / max(x2.shape[1] - ddof, 0)
    return _shape_result(values, arr, out_dtype)


def argmax(x: Any, axis: int = -1, threads: int | None = None,
           deterministic: bool | None = None) -> Any:
    """Index of the first maximum along the last axis (the first NaN wins, as in NumPy)."""
    arr = d.require_array(x, "x", d.NUMERIC)
    d.check_axis(axis, arr)
    x2 = d.rows(arr)
    if x2.shape[1] == 0 and x2.shape[0] != 0 or arr.size == 0 and arr.ndim == 1:
        raise errors.ArgumentError(
            "argmax of an empty sequence",
            values={"x": f"shape {arr.shape}"},
            fix="check x.shape[-1] > 0 before calling argmax (np.argmax raises here too)",
        )
    plan = d.plan("argmax", arr.size, threads, deterministic)
    values = reduce_rows(_ARGMAX, _combine_argmax, x2, x2, np.int64(0), 1, plan)[:, 0]
    return _shape_result(values, arr, np.dtype(np.intp))
