"""``histogram``: NumPy's uniform-bin histogram, same edges, same edge rules, same counts.

Bin indices are computed exactly as ``np.histogram`` computes them (the same dtypes, the same
``(x - first) / width * bins`` and the same one-ulp corrections against the edges), so values
on an edge land where NumPy puts them. The kernel counts with ``jb.atomic.add``; a threaded
launch gives each thread its own copy of the (small) histogram and adds them at the end. The
counts are integers, so the result does not depend on the thread count.
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from jitbridge import atomic, errors, jit, kernel

from . import _dispatch as d
from ._loops import cast_like, chunk_sum, stat_drivers, vmax, vmin


@kernel
def _count(i, x, edges, first, scale, counts):
    """Count x[i] into its bin. The first guess multiplies by ``nbins / width`` where NumPy
    divides by the width; either lands within one bin of the answer, and the comparisons with
    the edges that follow (NumPy's own corrections) settle it, so the counts are NumPy's.
    ``counts`` is touched only through ``jb.atomic.add``, so a threaded launch gives each thread
    a private copy and adds them up at the end."""
    nbins = counts.size
    low, high = edges[0], edges[nbins]
    v = cast_like(x[i], low)
    if v >= low and v <= high:
        k = min(int(cast_like(cast_like(v, first) - first, scale) * scale), nbins - 1)
        if v < edges[k]:
            k -= 1
        if k != nbins - 1 and v >= edges[k + 1]:
            k += 1
        atomic.add(counts, k, 1)


@jit(**d.SERIAL)
def _range_stat(x, y, zero):
    """(min, max) of a block in one vectorized pass; (NaN, NaN) when it holds a NaN (or both
    infinities, whose range is not finite either)."""
    lo = x[0]
    hi = x[0]
    for i in range(x.size):
        lo = vmin(lo, x[i])
        hi = vmax(hi, x[i])
    total = chunk_sum(x, x[0] - x[0])
    if total != total:
        return (total, total)
    return (lo, hi)


_RANGE_BLOCKS = stat_drivers(_range_stat, 2)[1]


def _data_range(arr: np.ndarray, threads: int | None) -> tuple[Any, Any]:
    """``(arr.min(), arr.max())`` of a non-empty array; floats in one pass, on the threads a
    call of this size gets (NumPy takes two single-threaded passes)."""
    if arr.dtype.kind != "f":
        return arr.min(), arr.max()
    plan = d.plan("histogram", arr.size, threads, False)
    block = plan.block(arr.size)
    partials = np.empty((d.nblocks(arr.size, block), 2))
    _RANGE_BLOCKS.launch(partials.shape[0], arr, arr, 0.0, block, partials, threads=plan.launch_threads)
    if np.isnan(partials).any():
        return arr.dtype.type(np.nan), arr.dtype.type(np.nan)
    return arr.dtype.type(partials[:, 0].min()), arr.dtype.type(partials[:, 1].max())


def _outer_edges(arr: np.ndarray, range: Any, threads: int | None) -> tuple[Any, Any]:
    """np.histogram's range rules: given (checked), or the data's min/max, widened by 0.5
    each way when they coincide; an empty array gets (0, 1)."""
    if range is not None:
        first, last = range
        if first > last or not (np.isfinite(first) and np.isfinite(last)):
            raise errors.ArgumentError(
                "range must be finite with min <= max",
                values={"range": repr(range)},
                fix="pass range=(lo, hi) with finite lo <= hi",
            )
    elif arr.size == 0:
        first, last = 0, 1
    else:
        first, last = _data_range(arr, threads)
        if not (np.isfinite(first) and np.isfinite(last)):
            raise errors.ArgumentError(
                "autodetected range is not finite (x holds NaN or inf)",
                values={"range": f"[{first}, {last}]"},
                fix="pass range=(lo, hi) explicitly; NaN and values outside it are not counted",
            )
    if first == last:
        first, last = first - 0.5, last + 0.5
    return first, last


def _width(last: Any, first: Any) -> Any:
    """last - first as NumPy computes it: signed integers subtract as unsigned."""
    dt = np.result_type(last, first)
    if dt.kind == "i":
        unsigned = np.dtype(dt.str.replace("i", "u"))
        return np.subtract(np.asarray(last, dt), np.asarray(first, dt), casting="unsafe", dtype=unsigned)
    return np.subtract(last, first, dtype=dt)


def histogram(x: Any, bins: int = 10, range: tuple[float, float] | None = None,
              threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(x, bins, range)`` for an integer number of uniform bins: returns
    ``(counts, edges)``; values outside ``range`` and NaN are not counted; x is flattened."""
    arr = d.require_array(x, "x", d.NUMERIC, min_ndim=0).ravel()
    try:
        nbins = operator.index(bins)
    except TypeError:
        nbins = 0
    if nbins < 1:
        raise errors.ArgumentError(
            "bins must be a positive integer (uniform bins)",
            values={"bins": repr(bins)},
            fix="pass bins=N; for explicit edges use np.histogram",
        )
    arr = np.ascontiguousarray(arr)
    first, last = _outer_edges(arr, range, threads)
    bin_type = np.result_type(first, last, arr)
    if bin_type.kind in "iub":
        bin_type = np.result_type(bin_type, float)
    edges = np.linspace(first, last, nbins + 1, endpoint=True, dtype=bin_type)
    sub_type = np.result_type(np.empty(0, bin_type), first)
    denom = _width(last, first)
    div_type = np.result_type(np.empty(0, sub_type), denom)
    first_s, scale = sub_type.type(first), div_type.type(nbins) / div_type.type(denom)
    counts = np.zeros(nbins, np.intp)
    if arr.size:
        plan = d.plan("histogram", arr.size, threads, False)
        _count.launch(arr.size, arr, edges, first_s, scale, counts,
                      threads=plan.launch_threads)
    return counts, edges
