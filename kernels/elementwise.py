"""Element-wise kernels: ``clip``, ``scale``, ``saxpy``, ``relu`` and ``gelu``.

Each is a ``jb.kernel`` over the flat array's elements, so it runs at memory speed once
vectorized, on one thread below the crossover and on all above it. Outputs too large for the
caches are written by blocks kernels with streaming stores instead (``_stream``). Arithmetic is in the input dtype with
NumPy's operation order (no fused multiply-add), so results match NumPy bit for bit; gelu's
tanh and erf come from ``jitbridge.math`` (within 2 ulp) and vectorize.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from jitbridge import config, errors, jit, kernel
from jitbridge import math as jm

from . import _dispatch as d
from . import _gpu
from ._dispatch import SERIAL
from ._loops import map_drivers, named
from ._stream import streaming


def _clip_ir(a, x, y, low, high):
    """NumPy's order and NaN rules, as in every op here: a comparison with NaN is false, so
    a NaN x is kept; saxpy rounds the product and the sum separately."""
    v = a.select(a.less(x, low), low, x)
    return a.select(a.less(high, v), high, v)


def _relu_ir(a, x, y, zero, unused):
    return a.select(a.less(x, zero), zero, x)


def _streamed(ir: Callable, name: str) -> Any:
    """The blocks kernel of a streaming op of (params[0], params[-1]), for outputs too large
    for the caches (``_stream``)."""
    op = streaming(ir)

    def apply(x, y, out, lo, hi, params, stream):
        op(x[lo:hi], y[lo:hi], out[lo:hi], params[0], params[-1], stream)

    return map_drivers(jit(**SERIAL)(named(apply, name)))


@kernel
def _clip_k(i, x, out, low, high):
    v = x[i]
    v = low if v < low else v
    out[i] = high if high < v else v


@kernel
def _scale_k(i, x, out, alpha):
    out[i] = alpha * x[i]


@kernel
def _saxpy_k(i, x, y, out, alpha):
    out[i] = alpha * x[i] + y[i]


@kernel
def _relu_k(i, x, out, zero):
    v = x[i]
    out[i] = zero if v < zero else v


@kernel
def _gelu_tanh_k(i, x, out, half, one, c1, c3):
    v = x[i]
    out[i] = half * v * (one + jm.tanh(c1 * (v + c3 * v * v * v)))


@kernel
def _gelu_erf_k(i, x, out, half, one, inv_sqrt2):
    v = x[i]
    out[i] = half * v * (one + jm.erf(v * inv_sqrt2))


# name -> (element kernel, whether it reads y, blocks kernel with streaming stores or None)
_KERNELS = {
    "clip": (_clip_k, False, _streamed(_clip_ir, "_clip")),
    "scale": (_scale_k, False, _streamed(lambda a, x, y, alpha, unused: a.mul(alpha, x), "_scale")),
    "saxpy": (_saxpy_k, True, _streamed(lambda a, x, y, alpha, unused: a.add(a.mul(alpha, x), y), "_saxpy")),
    "relu": (_relu_k, False, _streamed(_relu_ir, "_relu")),
    "gelu": (_gelu_tanh_k, False, None),  # compute-bound: plain stores
    "gelu_erf": (_gelu_erf_k, False, None),
}


def _elementwise(name: str, arr: np.ndarray, other: np.ndarray, out: np.ndarray | None, params: tuple,
                 threads: int | None) -> np.ndarray:
    element, reads_y, streamed = _KERNELS[name]
    if type(arr) is not np.ndarray:  # the callers turned every host input into an ndarray
        return _gpu.elementwise(element, reads_y, arr, other, out, params)
    n = arr.size
    if (threads is None and arr.ndim == 1 and n <= d.CROSSOVER[name] and d.writable_as_is(out, arr, n)
            and (other is arr or d.writable_as_is(out, other, n))):
        buf = np.empty_like(arr) if out is None else out
        args = (arr, other, buf, *params) if reads_y else (arr, buf, *params)
        if n < config.settings.serial_threshold:  # serial anyway: no options to pass
            element[n](*args)
        else:
            element[n](*args, threads=1)
        return buf
    buf, user_out = d.prepare_out(out, arr.shape, arr.dtype, inputs=(arr, other), same_index_ok=True)
    x = d.flat(arr)
    y = x if other is arr else d.flat(other)
    if x.size:
        plan = d.plan(name, x.size, threads, False)
        flat_out = buf.reshape(-1)
        if streamed is not None and d.streams(x, y, buf):
            block = plan.block(x.size)
            streamed.launch(d.nblocks(x.size, block), x, y, flat_out, params, block, True,
                            threads=plan.launch_threads)
        elif reads_y:
            element.launch(x.size, x, y, flat_out, *params, threads=plan.launch_threads)
        else:
            element.launch(x.size, x, flat_out, *params, threads=plan.launch_threads)
    return d.finish(buf, user_out)


def clip(x: Any, lo: Any = None, hi: Any = None, out: np.ndarray | None = None,
         threads: int | None = None) -> np.ndarray:
    """``np.clip(x, lo, hi)``: min(max(x, lo), hi); either bound may be None, NaN in x or in a
    bound propagates. Integer bounds must fit x's dtype."""
    arr = x if _gpu.is_device(x) else d.require_array(x, "x", d.NUMERIC)
    if lo is None and hi is None:
        raise errors.ArgumentError("clip needs lo, hi or both", values={"lo": None, "hi": None},
                                   fix="pass lo=... and/or hi=...")
    info = np.finfo(arr.dtype) if arr.dtype.kind == "f" else np.iinfo(arr.dtype)
    low = d.scalar_as(-np.inf if arr.dtype.kind == "f" else info.min, arr.dtype, "lo") if lo is None \
        else d.scalar_as(lo, arr.dtype, "lo")
    high = d.scalar_as(np.inf if arr.dtype.kind == "f" else info.max, arr.dtype, "hi") if hi is None \
        else d.scalar_as(hi, arr.dtype, "hi")
    if (np.isnan(low) or np.isnan(high)) and not _gpu.is_device(arr):
        buf, user_out = d.prepare_out(out, arr.shape, arr.dtype)
        buf.fill(np.nan)
        return d.finish(buf, user_out)
    return _elementwise("clip", arr, arr, out, (low, high), threads)


def scale(x: Any, alpha: Any, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """``alpha * x`` in x's dtype (integer alpha must fit an integer x; overflow wraps)."""
    arr = x if type(x) is np.ndarray and x.dtype in d.NUMERIC_SET or _gpu.is_device(x) \
        else d.require_array(x, "x", d.NUMERIC)
    return _elementwise("scale", arr, arr, out, (d.scalar_as(alpha, arr.dtype, "alpha"),), threads)


def saxpy(alpha: Any, x: Any, y: Any, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """``alpha * x + y`` (BLAS argument order), rounded twice as NumPy does."""
    if _gpu.is_device(x):
        return _elementwise("saxpy", x, y, out, (np.dtype(x.dtype).type(alpha),), threads)
    arr = d.require_array(x, "x", d.NUMERIC)
    other = d.require_array(y, "y", d.NUMERIC)
    d.check_same_shape("y", other, arr)
    return _elementwise("saxpy", arr, other, out, (d.scalar_as(alpha, arr.dtype, "alpha"),), threads)


def relu(x: Any, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
    """``np.maximum(x, 0)``: NaN propagates, -0.0 stays -0.0."""
    arr = x if _gpu.is_device(x) else d.require_array(x, "x", d.NUMERIC)
    return _elementwise("relu", arr, arr, out, (arr.dtype.type(0),), threads)


def gelu(x: Any, approximate: str = "none", out: np.ndarray | None = None,
         threads: int | None = None) -> np.ndarray:
    """Gaussian error linear unit, ``x * Phi(x)``: ``approximate="none"`` uses erf
    (``0.5 x (1 + erf(x / sqrt 2))``), ``"tanh"`` the tanh approximation
    (``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``), as in PyTorch."""
    arr = x if _gpu.is_device(x) else d.require_array(x, "x", d.FLOATS)
    t = np.dtype(arr.dtype).type
    if approximate == "tanh":
        params = (t(0.5), t(1.0), t(math.sqrt(2.0 / math.pi)), t(0.044715))
    elif approximate == "none":
        params = (t(0.5), t(1.0), t(1.0 / math.sqrt(2.0)))
    else:
        raise errors.ArgumentError("approximate must be 'none' or 'tanh'", values={"approximate": repr(approximate)},
                                   fix="pass approximate='none' (erf) or approximate='tanh'")
    kernel = "gelu_erf" if approximate == "none" else "gelu"
    return _elementwise(kernel, arr, arr, out, params, threads)
