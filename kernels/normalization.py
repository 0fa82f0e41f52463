"""Row statistics and normalizations: ``logsumexp``, ``normalize`` (L2) and ``layernorm``.

Each is a statistic gathered in one pass over memory (online max-and-sum for logsumexp,
Welford moments for layernorm, a sum of squares for normalize), then at most one more pass
that writes the output; a row short enough to stay in cache is read from memory once.
Transcendentals come from ``jitbridge.math`` and vectorize. (``softmax`` has its own module.)
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jitbridge import jit
from jitbridge import math as jm

from . import _dispatch as d
from . import _gpu
from ._dispatch import SERIAL
from ._loops import (
    CHUNK, cast_like, chunk_max, chunk_sum, combine_moments, combine_sums, stat_drivers, transform_drivers,
)
from ._stream import streaming
from .reductions import moments_stat, reduce_rows, sum_sq_stat


@jit(**SERIAL)
def _exp_stat(x, y, zero):
    """(max, sum of exp(x - max), NaN count) in one pass: per L1 chunk, the chunk max (and
    a rescale of the running sum when it grows), then exp into a scratch chunk and its sum.
    A row of -inf contributes a sum of 0 rather than exp(-inf + inf) = NaN."""
    buf = np.empty(min(CHUNK, x.size), x.dtype)
    m = chunk_max(x[:CHUNK])[0]
    s = zero
    nans = 0
    for c0 in range(0, x.size, CHUNK):
        chunk = x[c0:c0 + CHUNK]
        cm, cn = chunk_max(chunk)
        nans += cn
        if cm > m:
            s = s * jm.exp(zero + m - cm)
            m = cm
        if m == -np.inf:
            continue
        for i in range(chunk.size):
            buf[i] = jm.exp(chunk[i] - m)
        s += chunk_sum(buf[:chunk.size], zero)
    return zero + m, s, zero + nans


@jit(**SERIAL)
def _combine_exp(partials, x, block):
    """Merge (max, sum, nans) of blocks, rescaling each sum to the common max."""
    m = partials[0, 0]
    for b in range(1, partials.shape[0]):
        m = max(m, partials[b, 0])
    s = 0.0
    nans = 0.0
    for b in range(partials.shape[0]):
        nans += partials[b, 2]
        if partials[b, 0] > -np.inf:
            s += partials[b, 1] * np.exp(partials[b, 0] - m)
    return np.array((m, s, nans))


@jit(**SERIAL)
def _norm_coef(t, n, params):
    return params[0], cast_like(1.0 / np.sqrt(t[0]), params[0])


_scale_op = streaming(lambda a, x, y, inv, unused: a.mul(x, inv))
_center_scale_op = streaming(lambda a, x, y, mean, rstd: a.mul(a.sub(x, mean), rstd))


@jit(**SERIAL)
def _scale_apply(x, out, lo, hi, unused, inv, params, stream):
    _scale_op(x[lo:hi], x[lo:hi], out[lo:hi], inv, inv, stream)


@jit(**SERIAL)
def _layernorm_coef(t, n, params):
    return cast_like(t[1], params[0]), cast_like(1.0 / np.sqrt(t[2] / t[0] + params[1]), params[0])


@jit(**SERIAL)
def _layernorm_apply(x, out, lo, hi, mean, rstd, params, stream):
    x, out = x[lo:hi], out[lo:hi]
    weight, bias = params[2][lo:hi], params[3][lo:hi]  # empty when not given
    scaled, shifted = weight.size > 0, bias.size > 0  # tests LLVM hoists out of the loop
    if not (scaled or shifted):
        _center_scale_op(x, x, out, mean, rstd, stream)
        return
    for i in range(x.size):
        v = (x[i] - mean) * rstd
        if scaled:
            v = v * weight[i]
        if shifted:
            v = v + bias[i]
        out[i] = v


_EXP_STATS = stat_drivers(_exp_stat, 3)
_NORM_STATS = stat_drivers(sum_sq_stat, 1)
_NORMALIZE = transform_drivers(sum_sq_stat, _norm_coef, _scale_apply)
_MOMENTS = stat_drivers(moments_stat, 3)
_LAYERNORM = transform_drivers(moments_stat, _layernorm_coef, _layernorm_apply)


def _transform(kernel: str, stats: tuple[Any, Any], drivers: tuple[Any, Any], combine: Callable,
               coef: Callable, arr: np.ndarray, out: np.ndarray | None, params: tuple, width: int,
               threads: int | None, deterministic: bool | None) -> np.ndarray:
    """Run a statistic-then-rewrite kernel over every row of ``arr`` into ``out``."""
    buf, user_out = d.prepare_out(out, arr.shape, arr.dtype, inputs=(arr,), same_index_ok=True)
    x2 = d.rows(arr)
    out2 = buf.reshape(x2.shape)
    if not x2.size:
        return d.finish(buf, user_out)
    rows, apply_blocks = drivers
    zero = np.float64(0)
    stream = d.streams(x2, out2)
    plan = d.plan(kernel, arr.size, threads, deterministic)
    if x2.shape[0] == 1 and plan.parallel:
        block = plan.block(x2.shape[1])
        partials = np.empty((d.nblocks(x2.shape[1], block), width))
        stats[1].launch(partials.shape[0], x2[0], x2[0], zero, block, partials, threads=plan.threads)
        a, b = coef(combine(partials, x2[0], block), x2.shape[1], params)
        apply_blocks.launch(partials.shape[0], x2[0], out2[0], a, b, params, block, stream, threads=plan.threads)
    else:
        rows.launch(x2.shape[0], x2, out2, zero, params, stream, threads=plan.launch_threads)
    return d.finish(buf, user_out)


def _float_input(x: Any, axis: int) -> np.ndarray:
    arr = d.require_array(x, "x", d.FLOATS)
    d.check_axis(axis, arr)
    return arr


def normalize(x: Any, out: np.ndarray | None = None, axis: int = -1, threads: int | None = None,
              deterministic: bool | None = None) -> np.ndarray:
    """x / ||x||_2 along the last axis (a zero row gives NaN, as x / np.linalg.norm(x) does).
    Multiplies by the reciprocal norm: within 1.5 ulp of NumPy's division, and memory-bound."""
    arr = _float_input(x, axis)
    params = (arr.dtype.type(0),)
    return _transform("normalize", _NORM_STATS, _NORMALIZE, combine_sums, _norm_coef, arr, out, params, 1,
                      threads, deterministic)


def layernorm(x: Any, weight: Any = None, bias: Any = None, eps: float = 1e-5,
              out: np.ndarray | None = None, axis: int = -1, threads: int | None = None,
              deterministic: bool | None = None) -> np.ndarray:
    """(x - mean) / sqrt(var + eps) along the last axis, then ``* weight + bias`` when given
    (each of shape ``x.shape[-1:]``); statistics in one stable pass, output in one more."""
    if _gpu.is_device(x):
        return _gpu.layernorm(x, weight, bias, eps, out)
    arr = _float_input(x, axis)
    affine = []
    for name, value in (("weight", weight), ("bias", bias)):
        if value is None:
            affine.append(np.empty(0, arr.dtype))
            continue
        value = d.require_array(value, name, d.FLOATS)
        d.check_same_shape(name, value, np.empty(arr.shape[-1:], arr.dtype), "x.shape[-1:]")
        affine.append(np.ascontiguousarray(value))
    params = (arr.dtype.type(0), float(eps), affine[0], affine[1])
    return _transform("layernorm", _MOMENTS, _LAYERNORM, combine_moments, _layernorm_coef, arr, out, params, 3,
                      threads, deterministic)


def logsumexp(x: Any, axis: int = -1, threads: int | None = None,
              deterministic: bool | None = None) -> Any:
    """log(sum(exp(x))) along the last axis without overflow, as ``np.logaddexp.reduce``:
    an empty axis gives -inf, NaN wins, +inf gives +inf."""
    if _gpu.is_device(x):
        return _gpu.logsumexp(x)
    arr = _float_input(x, axis)
    x2 = d.rows(arr)
    if x2.shape[1] == 0:
        values = np.full(x2.shape[0], -np.inf)
    else:
        plan = d.plan("logsumexp", arr.size, threads, deterministic)
        t = reduce_rows(_EXP_STATS, _combine_exp, x2, x2, np.float64(0), 3, plan)
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where(np.isfinite(t[:, 0]), t[:, 0] + np.log(t[:, 1]), t[:, 0])
        values[t[:, 2] > 0] = np.nan
    shaped = values.astype(arr.dtype).reshape(arr.shape[:-1])
    return shaped[()] if arr.ndim == 1 else shaped
