"""``map_blocks``: a ``jb.jit`` function, a ``jb.kernel`` or a library kernel over the blocks
of Dask arrays, and the row-wise library kernels (``softmax``, ``layernorm``, ...) by name.

What each kind of function gets and gives back is ``jitbridge.blockwise``'s rule. Output
chunks and dtype: a ``jb.kernel`` keeps the input's chunks, its dtype is ``dtype=`` or the first
array's; a library kernel's are known from the kernel (row reductions drop the last axis); any
other function keeps the chunks unless ``chunks=``/``drop_axis=``/``new_axis=`` say otherwise,
and its dtype is ``dtype=`` or what Dask infers by calling it once on tiny arrays.

Row-wise kernels need each row in one block; a Dask array whose last axis is split is refused
before anything runs, with the ``rechunk`` that fixes it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import dask.array as da
import numpy as np

import jitbridge.kernels as K

from .. import errors
from ..blockwise import BlockFunction

# Keywords that belong to dask.array.map_blocks; every other keyword goes to the function.
DASK_KEYWORDS = ("name", "token", "chunks", "drop_axis", "new_axis", "enforce_ndim", "meta")


def _same(dtype: np.dtype) -> np.dtype:
    return dtype


def _sum(dtype: np.dtype) -> np.dtype:
    """Sums of integers accumulate and return in 64 bits, as the library's kernels do."""
    if dtype.kind == "f":
        return dtype
    return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)


def _float(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _index(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.intp)


@dataclasses.dataclass(frozen=True)
class Rule:
    """How a library kernel maps a block: whether it needs whole rows, what becomes of the last
    axis ("same", "drop", or "window": n - window + 1), and its result dtype."""

    rows: bool
    last_axis: str
    dtype: Callable[[np.dtype], np.dtype]


LIBRARY: dict[Callable[..., Any], Rule] = {
    K.relu: Rule(False, "same", _same),
    K.gelu: Rule(False, "same", _same),
    K.clip: Rule(False, "same", _same),
    K.scale: Rule(False, "same", _same),
    K.saxpy: Rule(False, "same", _same),
    K.softmax: Rule(True, "same", _same),
    K.layernorm: Rule(True, "same", _same),
    K.normalize: Rule(True, "same", _same),
    K.cumsum: Rule(True, "same", _sum),
    K.rolling_sum: Rule(True, "window", _sum),
    K.logsumexp: Rule(True, "drop", _same),
    K.sum_sq: Rule(True, "drop", _sum),
    K.dot: Rule(True, "drop", _sum),
    K.variance: Rule(True, "drop", _float),
    K.argmax: Rule(True, "drop", _index),
}
# Library kernels that do not map block by block, and what to use instead.
ELSEWHERE = {K.histogram: "jitbridge.dask.histogram(x, bins, range)"}


def check_whole_rows(x: da.Array, what: str) -> None:
    """Refuse a Dask array whose last axis is split into several chunks."""
    if x.ndim and x.numblocks[-1] > 1:
        sizes = x.chunks[-1]
        shown = ", ".join(str(s) for s in sizes[:6]) + (", ..." if len(sizes) > 6 else "")
        raise errors.ArgumentError(
            f"{what} works on whole rows, but the last axis of this Dask array is split into "
            f"{x.numblocks[-1]} chunks",
            where=errors.user_location(),
            values={"shape": x.shape, "chunks along the last axis": f"({shown})"},
            fix=f"rechunk so that each row is in one chunk: x = x.rechunk({{{x.ndim - 1}: -1}})",
        )


def _name(fn: Any) -> str:
    return getattr(fn, "jb_name", None) or getattr(fn, "__name__", None) or type(fn).__name__


def _arrays(args: tuple[Any, ...], fn: Any) -> list[da.Array]:
    arrays = [a for a in args if isinstance(a, da.Array)]
    if not arrays:
        raise errors.ArgumentError(f"map_blocks({_name(fn)}, ...) was given no Dask array",
                                   where=errors.user_location(), values={"arguments": [type(a).__name__ for a in args]},
                                   fix="pass dask.array arrays, e.g. da.from_array(x, chunks=...)")
    return arrays


def map_blocks(fn: Any, *args: Any, dtype: Any = None, threads: int | None = 1, **kw: Any) -> da.Array:
    """``fn`` over the blocks of the Dask arrays in ``args`` (other arguments are passed to
    every block as they are).

    ``threads=1`` (the default) runs each block on one thread: Dask already runs one task per
    worker thread, and more threads per block would only contend for the same cores; pass
    ``threads=None`` to let kernels choose by size (one worker thread per machine, say).
    Keywords of ``dask.array.map_blocks`` (``chunks``, ``drop_axis``, ``new_axis``, ``meta``,
    ``name``, ``token``) go to Dask; the rest go to ``fn``.
    """
    if fn in ELSEWHERE:
        raise errors.ArgumentError(f"{_name(fn)} does not map block by block", where=errors.user_location(),
                                   fix=f"use {ELSEWHERE[fn]}")
    dask_kw = {k: kw.pop(k) for k in DASK_KEYWORDS if k in kw}
    block = BlockFunction(fn, dtype=None if dtype is None else np.dtype(dtype), threads=threads,
                          kwargs=tuple(sorted(kw.items())))
    arrays = _arrays(args, fn)
    dask_kw.setdefault("token", _name(fn).rsplit(".", 1)[-1])
    rule = LIBRARY.get(fn)
    if block.is_kernel:
        return _map_kernel(block, args, arrays, dask_kw)
    if rule is not None:
        return _map_library(block, rule, args, arrays[0], dask_kw)
    if dtype is not None:
        dask_kw["dtype"] = np.dtype(dtype)
    return da.map_blocks(block, *args, **dask_kw)


def _map_kernel(block: BlockFunction, args: tuple[Any, ...], arrays: list[da.Array],
                dask_kw: dict[str, Any]) -> da.Array:
    block.check_arity(len(args))
    ndim = max(a.ndim for a in arrays)
    if block.fn.ndim not in (1, ndim):
        raise errors.ArgumentError(
            f"kernel '{block.fn.jb_name}' has {block.fn.ndim} index parameters but the arrays are {ndim}-D",
            where=errors.user_location(),
            fix="write the kernel with one index per axis, or with one index (i) to run over every element")
    dtype = block.output_dtype(args)
    return da.map_blocks(block, *args, **{"dtype": dtype, "meta": np.empty((0,) * ndim, dtype), **dask_kw})


def _map_library(block: BlockFunction, rule: Rule, args: tuple[Any, ...], x: da.Array,
                 dask_kw: dict[str, Any]) -> da.Array:
    name = _name(block.fn).rsplit(".", 1)[-1]
    if rule.rows:
        check_whole_rows(x, name)
    dtype = block.dtype if block.dtype is not None else rule.dtype(np.dtype(x.dtype))
    ndim = x.ndim
    if rule.last_axis == "drop":
        dask_kw.setdefault("drop_axis", x.ndim - 1)
        ndim -= 1
    elif rule.last_axis == "window":
        window = dict(block.kwargs).get("window", args[1] if len(args) > 1 else None)
        if not isinstance(window, (int, np.integer)) or not 1 <= window <= x.shape[-1]:
            raise errors.ArgumentError("rolling_sum needs an integer window between 1 and the row length",
                                       where=errors.user_location(), values={"window": repr(window)},
                                       fix="pass map_blocks(K.rolling_sum, x, window)")
        dask_kw.setdefault("chunks", x.chunks[:-1] + ((x.shape[-1] - int(window) + 1,),))
    return da.map_blocks(block, *args, **{"dtype": dtype, "meta": np.empty((0,) * ndim, dtype), **dask_kw})


def softmax(x: da.Array, threads: int | None = 1) -> da.Array:
    """``K.softmax`` of every row (the last axis must be one chunk)."""
    return map_blocks(K.softmax, x, threads=threads)


def layernorm(x: da.Array, weight: Any = None, bias: Any = None, eps: float = 1e-5,
              threads: int | None = 1) -> da.Array:
    """``K.layernorm`` of every row; ``weight``/``bias`` (NumPy, shape ``x.shape[-1:]``) go
    to every block."""
    return map_blocks(K.layernorm, x, weight=weight, bias=bias, eps=eps, threads=threads)


def logsumexp(x: da.Array, threads: int | None = 1) -> da.Array:
    """``K.logsumexp`` of every row: shape ``x.shape[:-1]``."""
    return map_blocks(K.logsumexp, x, threads=threads)


def normalize(x: da.Array, threads: int | None = 1) -> da.Array:
    """``K.normalize`` (L2) of every row."""
    return map_blocks(K.normalize, x, threads=threads)
