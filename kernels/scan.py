"""Scans along the last axis: ``cumsum`` and ``rolling_sum``.

``cumsum`` is NumPy's sequential scan (bit-identical to ``np.cumsum`` when serial); above the
crossover a 1-D input is scanned in blocks: block totals, their exclusive prefix in order,
then every block rescanned from its offset on all threads. ``rolling_sum`` adds, for each
window, a suffix sum of one length-``window`` segment to a prefix sum of the next (van Herk /
Gil-Werman): O(1) work per output, no running-sum drift, and every output is the same
arithmetic however the outputs are split between threads.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitbridge import errors, jit, kernel

from . import _dispatch as d
from ._dispatch import KERNEL, REDUCE, SERIAL
from ._loops import stat_drivers


def _sum_dtype(dtype: np.dtype) -> np.dtype:
    """NumPy's accumulator for sum/cumsum: 64-bit for integers, the dtype itself for floats."""
    if dtype.kind == "f":
        return dtype
    return np.dtype(np.uint64 if dtype.kind == "u" else np.int64)


@jit(**SERIAL)
def _scan(x, out, start):
    acc = start
    for i in range(x.size):
        acc += x[i]
        out[i] = acc


@jit(**SERIAL, **REDUCE)
def _total(x, y, zero):
    s = zero
    for i in range(x.size):
        s += x[i]
    return (s,)


@kernel(**KERNEL)
def _scan_rows(r, x2, out2, zero):
    _scan(x2[r], out2[r], zero)


@kernel(**KERNEL)
def _scan_blocks(b, x, out, offsets, block):
    lo = b * block
    _scan(x[lo:min(lo + block, x.size)], out[lo:min(lo + block, x.size)], offsets[b])


_TOTALS = stat_drivers(_total, 1)


def cumsum(x: Any, out: np.ndarray | None = None, axis: int = -1, threads: int | None = None,
           deterministic: bool | None = None) -> np.ndarray:
    """``np.cumsum(x, axis=-1)`` (integers accumulate in 64 bits, as NumPy does)."""
    arr = d.require_array(x, "x", d.NUMERIC)
    d.check_axis(axis, arr)
    acc = _sum_dtype(arr.dtype)
    buf, user_out = d.prepare_out(out, arr.shape, acc, inputs=(arr,), same_index_ok=True)
    x2 = d.rows(arr)
    out2 = buf.reshape(x2.shape)
    if x2.size:
        zero = acc.type(0)
        plan = d.plan("cumsum", arr.size, threads, deterministic)
        if x2.shape[0] == 1 and plan.parallel:
            block = plan.block(x2.shape[1])
            wide = np.float64(0) if acc.kind == "f" else zero  # block totals in float64
            totals = np.empty((d.nblocks(x2.shape[1], block), 1), np.asarray(wide).dtype)
            _TOTALS[1].launch(totals.shape[0], x2[0], x2[0], wide, block, totals, threads=plan.threads)
            offsets = np.concatenate(([0], np.cumsum(totals[:-1, 0]))).astype(acc)
            _scan_blocks.launch(offsets.size, x2[0], out2[0], offsets, block, threads=plan.threads)
        else:
            _scan_rows.launch(x2.shape[0], x2, out2, zero, threads=plan.launch_threads)
    return d.finish(buf, user_out)


@jit(**SERIAL)
def _rolling(x, out, window, a, b, zero):
    """out[a:b] for ``a`` a multiple of ``window``: per segment [s, s + w), suffix sums into
    ``suffix``, then the next segment's prefix sum completes each window."""
    x, out = x[a:], out[a:b]
    suffix = np.empty(window, out.dtype)
    for s in range(0, out.size, window):
        seg, nxt, dst = x[s:s + window], x[s + window:s + 2 * window], out[s:s + window]
        acc = zero
        for t in range(window):
            acc += seg[window - 1 - t]
            suffix[window - 1 - t] = acc
        dst[0] = suffix[0]
        acc = zero
        for t in range(dst.size - 1):
            acc += nxt[t]
            dst[t + 1] = suffix[t + 1] + acc


@kernel(**KERNEL)
def _rolling_tasks(task, x2, out2, window, zero, block, per_row):
    """Task ``task``: outputs [a, a + block) of row ``task // per_row``."""
    r = task // per_row
    a = (task % per_row) * block
    _rolling(x2[r], out2[r], window, a, min(a + block, out2.shape[1]), zero)


def rolling_sum(x: Any, window: int, out: np.ndarray | None = None, axis: int = -1,
                threads: int | None = None) -> np.ndarray:
    """Sums of every ``window`` consecutive elements along the last axis ("valid" windows:
    ``x.shape[-1] - window + 1`` of them), as
    ``np.lib.stride_tricks.sliding_window_view(x, window, axis=-1).sum(-1)``. The result is
    the same bits for any thread count."""
    arr = d.require_array(x, "x", d.NUMERIC)
    d.check_axis(axis, arr)
    if not isinstance(window, (int, np.integer)) or not 1 <= window <= arr.shape[-1]:
        raise errors.ArgumentError(
            "window must be an integer from 1 to x.shape[-1]",
            values={"window": repr(window), "x.shape[-1]": arr.shape[-1]},
            fix="pick a window no longer than the axis (np's sliding_window_view refuses too)",
        )
    window = int(window)
    acc = _sum_dtype(arr.dtype)
    shape = arr.shape[:-1] + (arr.shape[-1] - window + 1,)
    buf, user_out = d.prepare_out(out, shape, acc, inputs=(arr,))
    x2 = d.rows(arr)
    out2 = buf.reshape(-1, shape[-1])
    if out2.size:
        plan = d.plan("rolling_sum", arr.size, threads, False)
        per_thread = -(-out2.size // plan.threads)
        block = max(window, -(-min(per_thread, out2.shape[1]) // window) * window)
        if not plan.parallel:
            block = -(-out2.shape[1] // window) * window  # whole rows
        per_row = -(-out2.shape[1] // block)
        _rolling_tasks.launch(x2.shape[0] * per_row, x2, out2, window, acc.type(0), block, per_row,
                              threads=plan.launch_threads)
    return d.finish(buf, user_out)
