"""The library on arrays in GPU memory: the same functions, launched with ``target="cuda"``.

Element-wise operations run their own element kernels (``elementwise._KERNELS``) on the GPU.
Row-wise operations and reductions have GPU kernels of their own here, because their CPU
kernels are built for one core's caches (L1-sized chunks, scratch buffers): a row kernel gives
each row to one GPU thread, and a reduction sums with one thread per stride of the input (so
neighbouring threads read neighbouring elements), in two rounds, into a few partial sums.
Results are device arrays; reductions come back as host scalars.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from jitbridge import errors, kernel
from jitbridge.targets.cuda import on_device

# Partial sums of the first round of a GPU reduction (one thread each).
_PARTIALS = 1 << 14


def is_device(x: Any) -> bool:
    return type(x) is not np.ndarray and on_device(x)


def _cuda() -> Any:
    from numba import cuda

    return cuda


def output(out: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """``out`` checked (a device array of this shape and dtype), or a new device array."""
    if out is None:
        return _cuda().device_array(shape, dtype)
    if not is_device(out) or tuple(out.shape) != tuple(shape) or np.dtype(out.dtype) != np.dtype(dtype):
        raise errors.ArgumentError("out must be a device array with the input's shape and dtype",
                                   values={"out": type(out).__name__, "expected": f"{np.dtype(dtype)}{list(shape)}"},
                                   fix="pass out=numba.cuda.device_array_like(x), or leave it out")
    return out


def float_input(x: Any, name: str = "x") -> None:
    if np.dtype(x.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise errors.ArgumentError(f"{name} has dtype {x.dtype}, which this kernel does not support on the GPU",
                                   values={name: f"device array of {x.dtype}"}, fix="convert to float32 or float64")


def elementwise(element: Any, reads_y: bool, x: Any, y: Any, out: Any, params: tuple) -> Any:
    buf = output(out, tuple(x.shape), x.dtype)
    flat, flat_out = _flat(x), _flat(buf)
    if reads_y:
        element.launch(flat.shape[0], flat, _flat(y), flat_out, *params, target="cuda")
    else:
        element.launch(flat.shape[0], flat, flat_out, *params, target="cuda")
    return buf


def _flat(x: Any) -> Any:
    return x if len(x.shape) == 1 else x.reshape(int(np.prod(tuple(x.shape))))


def _rows2(x: Any) -> Any:
    """A (rows, n) view (device arrays have no negative shape indexing in numba's simulator)."""
    shape = tuple(x.shape)
    return x if len(shape) == 2 else x.reshape(int(np.prod(shape[:-1])), shape[len(shape) - 1])


@kernel(ndim=1, disjoint=True)
def _softmax_row(r, x2, out2):
    """Three reads of the row (max, sum, output) and one write: re-reading x from the GPU's
    caches costs less than writing exp(x - max) out and scaling it in place."""
    n = x2.shape[1]
    m = -math.inf
    for j in range(n):
        v = x2[r, j]
        m = v if v > m or v != v else m
    s = 0.0
    for j in range(n):
        s += math.exp(x2[r, j] - m)
    inv = 1.0 / s
    for j in range(n):
        out2[r, j] = math.exp(x2[r, j] - m) * inv


@kernel(ndim=1, disjoint=True)
def _logsumexp_row(r, x2, out):
    n = x2.shape[1]
    m = -math.inf
    for j in range(n):
        v = x2[r, j]
        m = v if v > m or v != v else m
    if m == math.inf or m != m:
        out[r] = m
        return
    s = 0.0
    for j in range(n):
        s += math.exp(x2[r, j] - m)
    out[r] = m + math.log(s)


@kernel(ndim=1, disjoint=True)
def _layernorm_row(r, x2, out2, eps, weight, bias):
    n = x2.shape[1]
    mean = 0.0
    for j in range(n):
        mean += x2[r, j]
    mean /= n
    var = 0.0
    for j in range(n):
        d = x2[r, j] - mean
        var += d * d
    rstd = 1.0 / math.sqrt(var / n + eps)
    for j in range(n):
        v = (x2[r, j] - mean) * rstd
        if weight.shape[0]:
            v = v * weight[j]
        if bias.shape[0]:
            v = v + bias[j]
        out2[r, j] = v


def softmax(x: Any, out: Any) -> Any:
    float_input(x)
    buf = output(out, tuple(x.shape), x.dtype)
    x2, out2 = _rows2(x), _rows2(buf)
    _softmax_row.launch(x2.shape[0], x2, out2, target="cuda")
    return buf


def logsumexp(x: Any) -> Any:
    float_input(x)
    x2 = _rows2(x)
    values = _cuda().device_array(x2.shape[0], np.float64)
    _logsumexp_row.launch(x2.shape[0], x2, values, target="cuda")
    host = values.copy_to_host().astype(x.dtype)
    return host[0] if len(x.shape) == 1 else host.reshape(tuple(x.shape)[:-1])


def layernorm(x: Any, weight: Any, bias: Any, eps: float, out: Any) -> Any:
    float_input(x)
    buf = output(out, tuple(x.shape), x.dtype)
    cuda = _cuda()
    affine = [cuda.to_device(np.empty(0, x.dtype)) if v is None else v for v in (weight, bias)]
    x2, out2 = _rows2(x), _rows2(buf)
    _layernorm_row.launch(x2.shape[0], x2, out2, float(eps), affine[0], affine[1], target="cuda")
    return buf


@kernel(ndim=1, disjoint=True)
def _strided_sums(t, x, y, stride, partial):
    """Thread t sums x[k] * y[k] for k = t, t + stride, ...: neighbouring threads read
    neighbouring elements."""
    s = 0.0
    for k in range(t, x.shape[0], stride):
        s += x[k] * y[k]
    partial[t] = s


@kernel(ndim=1, disjoint=True)
def _strided_total(t, x, stride, partial):
    s = 0.0
    for k in range(t, x.shape[0], stride):
        s += x[k]
    partial[t] = s


@kernel(ndim=1, disjoint=True)
def _dot_row(r, x2, y2, out):
    s = 0.0
    for j in range(x2.shape[1]):
        s += x2[r, j] * y2[r, j]
    out[r] = s


def dot(x: Any, y: Any) -> Any:
    """Dot product along the last axis with float64 accumulators: a host scalar of x's dtype
    for 1-D input, a host array of the leading shape otherwise."""
    float_input(x)
    float_input(y, "y")
    if len(x.shape) != 1:
        x2, y2 = _rows2(x), _rows2(y)
        values = _cuda().device_array(x2.shape[0], np.float64)
        _dot_row.launch(x2.shape[0], x2, y2, values, target="cuda")
        return values.copy_to_host().astype(x.dtype).reshape(tuple(x.shape)[:-1])
    flat_x, flat_y = x, y
    n = flat_x.shape[0]
    count = max(1, min(_PARTIALS, n))
    partial = _cuda().device_array(count, np.float64)
    _strided_sums.launch(count, flat_x, flat_y, count, partial, target="cuda")
    second = max(1, min(256, count))
    total = _cuda().device_array(second, np.float64)
    _strided_total.launch(second, partial, second, total, target="cuda")
    return np.dtype(x.dtype).type(total.copy_to_host().sum())
