"""``softmax`` along the last axis, with one exp per element.

Pass 1 walks the row in L1-sized chunks: the chunk max (and a rescale of the running sum when
the max grows), then ``out = exp(x - m)`` for the chunk and its sum, remembering the ``m`` each
chunk used. Pass 2 multiplies each chunk of ``out`` by ``exp(m_chunk - M) / S``: a constant per
chunk, so the second pass is a scaling at memory speed instead of a second exp per element.
A 1-D input above the crossover runs pass 1 on fixed blocks per thread and merges the blocks'
(max, sum) in block order, so deterministic mode gives the same bits for any thread count.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from jitbridge import jit, kernel
from jitbridge import math as jm

from . import _dispatch as d
from . import _gpu
from ._dispatch import KERNEL, SERIAL
from ._loops import CHUNK, cast_like, chunk_max, chunk_sum


@jit(**SERIAL)
def _exp_pass(x, out, marks, zero):
    """Pass 1 over a slice whose chunks start at multiples of CHUNK; returns (max, sum)."""
    m = chunk_max(x[:CHUNK])[0]
    s = zero
    for c in range(marks.size):
        xc, oc = x[c * CHUNK:(c + 1) * CHUNK], out[c * CHUNK:(c + 1) * CHUNK]
        cm = chunk_max(xc)[0]
        if cm > m:
            s = s * jm.exp(zero + m - cm)
            m = cm
        marks[c] = m
        if m == -np.inf:  # exp(-inf - -inf) is NaN; these are 0 once a finite max turns up
            oc[:] = 0
            continue
        for i in range(xc.size):
            oc[i] = jm.exp(xc[i] - m)
        s += chunk_sum(oc, zero)
    return zero + m, s


@jit(**SERIAL)
def _scale_pass(out, marks, top, inv):
    """Pass 2: chunk c of ``out`` times exp(marks[c] - top) * inv (NaN everywhere when the
    whole row is -inf, as NumPy's formula gives)."""
    for c in range(marks.size):
        f = cast_like(jm.exp(marks[c] - top) * inv, out[0]) if top > -np.inf else cast_like(np.nan, out[0])
        oc = out[c * CHUNK:(c + 1) * CHUNK]
        for i in range(oc.size):
            oc[i] = oc[i] * f


@jit(**SERIAL)
def _row(x, out, marks, zero):
    m, s = _exp_pass(x, out, marks, zero)
    _scale_pass(out, marks, m, 1.0 / s)


@kernel(**KERNEL)
def _rows(r, x2, out2, marks2, zero):
    _row(x2[r], out2[r], marks2[r], zero)


@kernel(**KERNEL)
def _blocks_exp(b, x, out, marks, zero, block, stats):
    per = block // CHUNK
    lo = b * block
    xb = x[lo:lo + block]
    m, s = _exp_pass(xb, out[lo:lo + block], marks[b * per:b * per + (xb.size + CHUNK - 1) // CHUNK], zero)
    stats[b, 0] = m
    stats[b, 1] = s


@jit(**SERIAL)
def _merge(stats):
    """Blocks' (max, sum) merged in block order."""
    m = stats[0, 0]
    for b in range(1, stats.shape[0]):
        m = max(m, stats[b, 0])
    s = 0.0
    for b in range(stats.shape[0]):
        if stats[b, 0] > -np.inf:
            s += stats[b, 1] * np.exp(stats[b, 0] - m)
    return m, s


@kernel(**KERNEL)
def _blocks_scale(b, out, marks, top, inv, block):
    per = block // CHUNK
    ob = out[b * block:(b + 1) * block]
    _scale_pass(ob, marks[b * per:b * per + (ob.size + CHUNK - 1) // CHUNK], top, inv)


def softmax(x: Any, out: np.ndarray | None = None, axis: int = -1, threads: int | None = None,
            deterministic: bool | None = None) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) along the last axis; NaN or +inf in a row gives a NaN
    row (as NumPy's formula does); an empty axis gives an empty result."""
    if _gpu.is_device(x):
        return _gpu.softmax(x, out)
    arr = d.require_array(x, "x", d.FLOATS)
    d.check_axis(axis, arr)
    buf, user_out = d.prepare_out(out, arr.shape, arr.dtype, inputs=(arr,), same_index_ok=True)
    x2 = d.rows(arr)
    out2 = buf.reshape(x2.shape)
    if not x2.size:
        return d.finish(buf, user_out)
    zero = np.float64(0)
    plan = d.plan("softmax", arr.size, threads, deterministic)
    if x2.shape[0] == 1 and plan.parallel:
        n = x2.shape[1]
        block = -(-plan.block(n) // CHUNK) * CHUNK
        marks = np.empty(-(-n // block) * (block // CHUNK), arr.dtype)
        stats = np.empty((d.nblocks(n, block), 2))
        _blocks_exp.launch(stats.shape[0], x2[0], out2[0], marks, zero, block, stats, threads=plan.threads)
        top, total = _merge(stats)
        with np.errstate(divide="ignore"):  # a zero total (all NaN) gives NaN rows, as the serial path does
            inv = np.float64(1.0) / total
        _blocks_scale.launch(stats.shape[0], out2[0], marks, top, inv, block, threads=plan.threads)
    else:
        marks2 = np.empty((x2.shape[0], -(-x2.shape[1] // CHUNK)), arr.dtype)  # one allocation
        _rows.launch(x2.shape[0], x2, out2, marks2, zero, threads=plan.launch_threads)
    return d.finish(buf, user_out)
