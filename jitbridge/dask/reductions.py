"""Reductions of Dask arrays built from the kernel library, combined by Dask's tree reduction.

Each block is reduced by a library kernel to a partial result (one per block, or one per row
of a block), and ``dask.array.reduction`` merges partials in a tree of at most
``split_every`` inputs per step, so no task ever holds more than a few partials:

- ``sum_sq``, ``dot``: per-block sums, added;
- ``variance``: per-block (count, mean, M2), merged pairwise with Chan et al.'s update
  ``M2 = M2_a + M2_b + delta**2 * n_a * n_b / n``, which stays accurate where summing
  ``x**2`` would cancel;
- ``argmax``: per-block (value, global index), merged by NumPy's rule (the first maximum,
  or the first NaN);
- ``histogram``: per-block counts over shared edges, added (exact: integers).

``axis`` is ``None`` (all elements) or the last axis, which may be chunked here, unlike for
the row-wise kernels.
"""
from __future__ import annotations

import builtins
import functools
from typing import Any

import dask
import dask.array as da
import numpy as np

import jitbridge.kernels as K

from .. import errors
from ..blockwise import read_only
from .blocks import _float, _sum

_MOMENTS = np.dtype([("n", np.float64), ("mean", np.float64), ("m2", np.float64)])


def _axes(x: da.Array, axis: int | None) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    if x.ndim and axis in (-1, x.ndim - 1):
        return (x.ndim - 1,)
    raise errors.ArgumentError(
        "jitbridge.dask reductions run over all elements (axis=None) or along the last axis",
        where=errors.user_location(), values={"axis": axis, "ndim": x.ndim},
        fix="move the axis last first: da.moveaxis(x, axis, -1)")


def _rows_of(block: np.ndarray, everything: bool) -> np.ndarray:
    """The block as the library kernels want it: one row of all elements (``everything``),
    or its rows along the last axis; C-contiguous and read-only (see ``blockwise``)."""
    block = read_only(block)
    return block.reshape(-1) if everything else block


def _kept(values: Any, block_shape: tuple[int, ...], everything: bool) -> np.ndarray:
    """A kernel's per-row (or single) result with the reduced axes kept as length 1."""
    values = np.asarray(values)
    if everything:
        return values.reshape((1,) * len(block_shape))
    return values.reshape(block_shape[:-1] + (1,))


def _partials(x: da.Array, y: da.Array | None, axes: tuple[int, ...], fn: functools.partial,
              dtype: np.dtype) -> da.Array:
    """One partial per block (per row of a block for the last axis), reduced axes kept as 1."""
    chunks = tuple((1,) * len(c) if ax in axes else c for ax, c in enumerate(x.chunks))
    arrays = (x,) if y is None else (x, y)
    return da.map_blocks(fn, *arrays, chunks=chunks, dtype=dtype, meta=np.empty((0,) * x.ndim, dtype),
                         token=fn.func.__name__.strip("_"))


def _same_partial(p: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return p


def _merged(partials: da.Array, axes: tuple[int, ...], merge: Any, split_every: Any) -> da.Array:
    """The partials merged along ``axes`` by ``merge(p, axis, keepdims)`` in Dask's tree."""
    return da.reduction(partials, _same_partial, merge, combine=merge, axis=axes, dtype=partials.dtype,
                        split_every=split_every, concatenate=True)


def _add(p: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.sum(p, axis=axis, keepdims=keepdims, dtype=p.dtype)


def _sum_sq_block(block: np.ndarray, everything: bool, threads: int | None, dtype: np.dtype) -> np.ndarray:
    if block.size == 0:
        return np.zeros(_kept_shape(block.shape, everything), dtype)
    return _kept(K.sum_sq(_rows_of(block, everything), threads=threads), block.shape, everything)


def _dot_block(a: np.ndarray, b: np.ndarray, everything: bool, threads: int | None, dtype: np.dtype) -> np.ndarray:
    if a.size == 0:
        return np.zeros(_kept_shape(a.shape, everything), dtype)
    return _kept(K.dot(_rows_of(a, everything), _rows_of(b, everything), threads=threads), a.shape, everything)


def _kept_shape(shape: tuple[int, ...], everything: bool) -> tuple[int, ...]:
    return (1,) * len(shape) if everything else shape[:-1] + (1,)


def sum_sq(x: da.Array, axis: int | None = None, threads: int | None = 1, split_every: Any = None) -> da.Array:
    """Sum of squares of all elements (``axis=None``) or of each row (``axis=-1``), as
    ``K.sum_sq`` computes it per block; dtypes as ``K.sum_sq``."""
    axes = _axes(x, axis)
    dtype = _sum(np.dtype(x.dtype))
    block = functools.partial(_sum_sq_block, everything=axis is None, threads=threads, dtype=dtype)
    return _merged(_partials(x, None, axes, block, dtype), axes, _add, split_every)


def dot(x: da.Array, y: da.Array, axis: int | None = None, threads: int | None = 1, split_every: Any = None) -> da.Array:
    """``sum(x * y)`` over all elements (``axis=None``) or per row (``axis=-1``); ``y`` must
    have ``x``'s shape and dtype (it is rechunked to ``x``'s chunks if they differ)."""
    if x.shape != y.shape or x.dtype != y.dtype:
        raise errors.ArgumentError("y must match x in shape and dtype", where=errors.user_location(),
                                   values={"x": f"{x.dtype}{list(x.shape)}", "y": f"{y.dtype}{list(y.shape)}"},
                                   fix="pass arrays of one shape and dtype (y.astype(x.dtype))")
    if y.chunks != x.chunks:
        y = y.rechunk(x.chunks)
    axes = _axes(x, axis)
    dtype = _sum(np.dtype(x.dtype))
    block = functools.partial(_dot_block, everything=axis is None, threads=threads, dtype=dtype)
    return _merged(_partials(x, y, axes, block, dtype), axes, _add, split_every)


def _moments_block(block: np.ndarray, everything: bool, threads: int | None) -> np.ndarray:
    out = np.zeros(_kept_shape(block.shape, everything), _MOMENTS)
    if block.size == 0:
        return out
    rows = _rows_of(block, everything)
    count = rows.shape[-1]
    out["n"] = count
    out["mean"] = _kept(np.mean(rows, axis=-1, dtype=np.float64), block.shape, everything)
    out["m2"] = _kept(np.asarray(K.variance(rows, threads=threads), np.float64) * count, block.shape, everything)
    return out


def _folded(p: np.ndarray, axis: tuple[int, ...]) -> np.ndarray:
    """``p`` with the axes being merged moved last and flattened into one."""
    moved = np.moveaxis(p, axis, tuple(range(p.ndim - len(axis), p.ndim)))
    return moved.reshape(moved.shape[:moved.ndim - len(axis)] + (-1,))


def _unfolded(merged: np.ndarray, ndim: int, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """A merge's result back in the reduction's shape (merged axes kept as 1, or dropped)."""
    if not keepdims:
        return merged
    merged = merged.reshape(merged.shape + (1,) * len(axis))
    return np.moveaxis(merged, tuple(range(ndim - len(axis), ndim)), axis)


def _chan(p: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Merge the (n, mean, M2) partials along ``axis`` pairwise, left to right (Chan et al.)."""
    flat = _folded(p, axis)
    merged = np.zeros(flat.shape[:-1], _MOMENTS)
    n, mean, m2 = merged["n"], merged["mean"], merged["m2"]
    for k in range(flat.shape[-1]):
        nb, mb, m2b = flat["n"][..., k], flat["mean"][..., k], flat["m2"][..., k]
        total = n + nb
        with np.errstate(invalid="ignore", divide="ignore"):
            delta = mb - mean
            share = np.where(total > 0, nb / total, 0.0)
            mean = mean + delta * share
            m2 = m2 + m2b + delta * delta * n * share
        n = total
    merged["n"], merged["mean"], merged["m2"] = n, mean, m2
    return _unfolded(merged, p.ndim, axis, keepdims)


def _variance_of(moments: np.ndarray, ddof: int, result: np.dtype) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        values = moments["m2"] / np.maximum(moments["n"] - ddof, 0)
    return values.astype(result)


def variance(x: da.Array, axis: int | None = None, ddof: int = 0, threads: int | None = 1,
             split_every: Any = None) -> da.Array:
    """``np.var(x, axis=axis, ddof=ddof)``: per block mean and ``K.variance``, merged with
    Chan's update. Integer input gives float64; no elements give NaN."""
    axes = _axes(x, axis)
    dtype = _float(np.dtype(x.dtype))
    block = functools.partial(_moments_block, everything=axis is None, threads=threads)
    moments = _merged(_partials(x, None, axes, block, _MOMENTS), axes, _chan, split_every)
    return moments.map_blocks(_variance_of, ddof=ddof, result=dtype, dtype=dtype, meta=np.empty((0,) * moments.ndim, dtype),
                              token="variance")


def _argmax_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype([("value", dtype), ("index", np.int64)])


def _argmax_block(block: np.ndarray, everything: bool, threads: int | None, full_shape: tuple[int, ...],
                  block_info: dict | None = None) -> np.ndarray:
    """(value, index) of the block's winner: its flat index in the whole array (``everything``)
    or its column in the row."""
    out = np.zeros(_kept_shape(block.shape, everything), _argmax_dtype(block.dtype))
    if block.size == 0:
        out["index"] = np.iinfo(np.int64).max
        return out
    start = [lo for lo, _ in block_info[0]["array-location"]]
    rows = _rows_of(block, everything)
    local = np.asarray(K.argmax(rows, threads=threads))
    if everything:
        where = np.unravel_index(int(local), block.shape)
        out["value"] = rows[int(local)]
        out["index"] = np.ravel_multi_index(tuple(w + s for w, s in zip(where, start)), full_shape)
    else:
        picked = np.take_along_axis(rows, local[..., None], axis=-1)
        out["value"] = picked
        out["index"] = local[..., None] + start[-1]
    return out


def _first_max(p: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """The winner along ``axis``: a NaN if there is one, else the maximum; the smallest index
    among equals (NumPy's rule)."""
    flat = _folded(p, axis)
    none = np.iinfo(np.int64).max  # the index of "no element" (an empty block's partial)
    if flat.shape[-1] == 0:
        merged = np.zeros(flat.shape[:-1], p.dtype)
        merged["index"] = none
        return _unfolded(merged, p.ndim, axis, keepdims)
    values, index = flat["value"], flat["index"]
    valid = index != none
    nan = np.isnan(values) & valid if values.dtype.kind == "f" else np.zeros(values.shape, bool)
    top = np.max(np.where(valid & ~nan, values, _lowest(values.dtype)), axis=-1, keepdims=True)
    candidates = np.where(nan.any(axis=-1, keepdims=True), nan, valid & (values == top))
    pick = np.argmin(np.where(candidates, index, none), axis=-1)[..., None]
    return _unfolded(np.take_along_axis(flat, pick, axis=-1)[..., 0], p.ndim, axis, keepdims)


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def argmax(x: da.Array, axis: int | None = None, threads: int | None = 1, split_every: Any = None) -> da.Array:
    """``np.argmax(x, axis=axis)``: the flat index of the first maximum (``axis=None``) or the
    column of each row's (``axis=-1``); the first NaN wins, as in NumPy."""
    if x.size == 0 or (axis is not None and x.ndim and x.shape[-1] == 0):
        raise errors.ArgumentError("argmax of an empty sequence", where=errors.user_location(),
                                   values={"x": f"shape {x.shape}"}, fix="check the array is not empty first")
    axes = _axes(x, axis)
    dtype = _argmax_dtype(np.dtype(x.dtype))
    block = functools.partial(_argmax_block, everything=axis is None, threads=threads, full_shape=x.shape)
    return _merged(_partials(x, None, axes, block, dtype), axes, _first_max, split_every)["index"].astype(np.intp)


def _histogram_block(block: np.ndarray, bins: int, range: tuple[Any, Any], threads: int | None) -> np.ndarray:
    counts = np.zeros((1,) * block.ndim + (bins,), np.intp)
    if block.size:
        counts[...] = K.histogram(read_only(block).reshape(-1), bins, range=range, threads=threads)[0]
    return counts


def histogram(x: da.Array, bins: int = 10, range: tuple[float, float] | None = None,
              threads: int | None = 1, split_every: Any = None) -> tuple[da.Array, np.ndarray]:
    """``np.histogram(x, bins, range)`` for uniform bins: (counts as a Dask array, edges).

    Without ``range`` the data's min and max are computed first (one more pass over ``x``), as
    NumPy does, so the edges and the counts are NumPy's exactly."""
    if range is None:
        low, high = dask.compute(x.min(), x.max()) if x.size else (0, 1)
        if not (np.isfinite(low) and np.isfinite(high)):
            raise errors.ArgumentError(
                "autodetected range is not finite (x holds NaN or inf)", where=errors.user_location(),
                values={"range": f"[{low}, {high}]"},
                fix="pass range=(lo, hi) explicitly; NaN and values outside it are not counted")
        range = (low, high)
    counts, edges = K.histogram(np.empty(0, x.dtype), bins, range=range)  # checks bins and range, NumPy's edges
    block = functools.partial(_histogram_block, bins=counts.size, range=range, threads=threads)
    chunks = tuple((1,) * n for n in x.numblocks) + ((counts.size,),)
    partials = da.map_blocks(block, x, chunks=chunks, new_axis=x.ndim, dtype=np.intp,
                             meta=np.empty((0,) * (x.ndim + 1), np.intp), token="histogram")
    return _merged(partials, tuple(builtins.range(x.ndim)), _add, split_every), edges
