"""The CUDA target on a real GPU (skipped without one): effective device-memory bandwidth of
saxpy, softmax over rows and a reduction, against the device's peak, and the cost of an empty
launch. Target: >= 80% of the device's memory bandwidth for saxpy and softmax.

    .venv/bin/python -m pytest benchmarks/bench_cuda.py --benchmark-only

The peak is measured, not looked up: a device-to-device copy of the same size (numba-cuda's
``copy_to_device``), which reads and writes every byte once, as saxpy and softmax do.
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np
import pytest

import jitbridge as jb
import jitbridge.kernels as K
from jitbridge.targets import cuda as cuda_target

from conftest import RESULTS

pytestmark = pytest.mark.skipif(not cuda_target.is_available(),
                                reason=f"no usable GPU: {cuda_target.unavailable_reason()}")

N = 1 << 26  # 64 Mi float32: 256 MiB per array


@jb.kernel
def saxpy(i, a, x, y, out):
    out[i] = a * x[i] + y[i]


@jb.kernel
def nothing(i, out):
    pass


def _timed(fn: Callable[[], Any], rounds: int = 20) -> float:
    """Median seconds of ``fn`` (synchronized), after a warm-up call."""
    from numba import cuda

    fn()
    cuda.synchronize()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.fixture(scope="module")
def device_data():
    from numba import cuda

    rng = np.random.default_rng(0)
    x = cuda.to_device(rng.random(N, dtype=np.float32))
    y = cuda.to_device(rng.random(N, dtype=np.float32))
    out = cuda.device_array(N, np.float32)
    copy_s = _timed(lambda: out.copy_to_device(x))
    RESULTS["device copy (GB/s, read + write)"] = 2 * x.nbytes / copy_s / 1e9
    return x, y, out, 2 * x.nbytes / copy_s


def test_saxpy_bandwidth(benchmark, device_data):
    x, y, out, peak = device_data
    seconds = benchmark.pedantic(lambda: _timed(lambda: saxpy[N](np.float32(2.0), x, y, out)), rounds=1, iterations=1)
    rate = 3 * x.nbytes / seconds
    RESULTS["saxpy (GB/s)"] = rate / 1e9
    RESULTS["saxpy / device copy (target >= 0.8)"] = rate / peak


def test_softmax_rows_bandwidth(benchmark, device_data):
    x, _, out, peak = device_data
    rows = x.reshape(N // 1024, 1024)
    dest = out.reshape(N // 1024, 1024)
    seconds = benchmark.pedantic(lambda: _timed(lambda: K.softmax(rows, out=dest)), rounds=1, iterations=1)
    rate = 2 * x.nbytes / seconds  # read once, write once (the row is re-read from cache)
    RESULTS["softmax rows (GB/s)"] = rate / 1e9
    RESULTS["softmax rows / device copy (target >= 0.8)"] = rate / peak


def test_reduction_bandwidth(benchmark, device_data):
    x, _, _, peak = device_data
    seconds = benchmark.pedantic(lambda: _timed(lambda: K.sum_sq(x)), rounds=1, iterations=1)
    RESULTS["sum_sq (GB/s of input)"] = x.nbytes / seconds / 1e9
    RESULTS["sum_sq / device copy"] = x.nbytes / seconds / peak * 2


def test_launch_overhead(benchmark):
    from numba import cuda

    out = cuda.device_array(1, np.float32)
    seconds = benchmark.pedantic(lambda: _timed(lambda: nothing[1](out), rounds=200), rounds=1, iterations=1)
    RESULTS["empty CUDA launch (us)"] = seconds * 1e6
