"""``jb.kernel`` against the fastest thing a user would write instead (issue 9).

Each ratio is measured in one run: the two sides alternate round by round (this machine's
speed drifts by tens of percent from minute to minute), and the ratio is of the medians.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest benchmarks/bench_dsl.py --benchmark-only

- Black-Scholes (the body of numba-examples' ``black_scholes_numba`` with a jitted ``cnd``
  helper and ``math.exp/log/sqrt``) as a kernel vs the same body in a numba ``prange`` loop;
  target <= 1.05x the time. Also vs the same loop under ``jb.jit(parallel=True)``, which gets
  the same vector math: the launch's own cost.
- A 5x5 blur of a 4000x4000 image, the weights passed as an array, vs numba ``prange``;
  target <= 1.05x.
- A histogram kernel with ``jb.atomic.add``: integer bins vs ``np.bincount`` (target >= 1.0x
  faster), and float binning vs ``jitbridge.kernels.histogram`` (target <= 1.5x its time).
- A k-means centroid update (``jb.atomic.add`` of each point into its cluster's sum) vs
  NumPy's ``np.add.at`` + ``np.bincount``.
"""
from __future__ import annotations

import math
import statistics
import time
import types
from typing import Any, Callable

import numba
import numpy as np
import pytest

import jitbridge as jb
import jitbridge.kernels as K

from conftest import RESULTS

ROUNDS = 15


def interleaved(ours: Callable[[], Any], theirs: Callable[[], Any], rounds: int = ROUNDS) -> tuple[float, float]:
    """Median seconds of each, timed in alternating rounds after one warm-up call each."""
    ours(), theirs()
    a, b = [], []
    for _ in range(rounds):
        for fn, times in ((ours, a), (theirs, b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b)


def report(name: str, ours: float, theirs: float, what: str) -> None:
    RESULTS[f"{name}: jitbridge (ms)"] = ours * 1e3
    RESULTS[f"{name}: {what} (ms)"] = theirs * 1e3
    RESULTS[f"{name}: jitbridge / {what} time"] = ours / theirs


# Black-Scholes -------------------------------------------------------------------------

A1, A2, A3, A4, A5 = 0.31938153, -0.356563782, 1.781477937, -1.821255978, 1.330274429
RSQRT2PI = 0.39894228040143267793994605993438


def _cnd(d):
    K_ = 1.0 / (1.0 + 0.2316419 * math.fabs(d))
    ret_val = RSQRT2PI * math.exp(-0.5 * d * d) * (K_ * (A1 + K_ * (A2 + K_ * (A3 + K_ * (A4 + K_ * A5)))))
    if d > 0:
        ret_val = 1.0 - ret_val
    return ret_val


cnd_jb = jb.jit(_cnd)
cnd_nb = numba.njit(_cnd)


@jb.kernel
def black_scholes(i, call, put, S, X, T, R, V):
    s, x, t = S[i], X[i], T[i]
    sqrt_t = math.sqrt(t)
    d1 = (math.log(s / x) + (R + 0.5 * V * V) * t) / (V * sqrt_t)
    d2 = d1 - V * sqrt_t
    cndd1, cndd2 = cnd_jb(d1), cnd_jb(d2)
    exp_rt = math.exp(-1.0 * R * t)
    call[i] = s * cndd1 - x * exp_rt * cndd2
    put[i] = x * exp_rt * (1.0 - cndd2) - s * (1.0 - cndd1)


cnd = cnd_nb  # the helper the loop below calls; _calling rebinds it for each compiler


def _black_scholes_prange(call, put, S, X, T, R, V):
    for i in numba.prange(S.size):
        s, x, t = S[i], X[i], T[i]
        sqrt_t = math.sqrt(t)
        d1 = (math.log(s / x) + (R + 0.5 * V * V) * t) / (V * sqrt_t)
        d2 = d1 - V * sqrt_t
        cndd1, cndd2 = cnd(d1), cnd(d2)
        exp_rt = math.exp(-1.0 * R * t)
        call[i] = s * cndd1 - x * exp_rt * cndd2
        put[i] = x * exp_rt * (1.0 - cndd2) - s * (1.0 - cndd1)


def _calling(fn: Callable, cnd: Any) -> Callable:
    """``fn`` with its global ``cnd`` bound to ``cnd``: one loop source for numba and jb.jit."""
    return types.FunctionType(fn.__code__, {**fn.__globals__, "cnd": cnd}, fn.__name__)


black_scholes_prange = numba.njit(parallel=True)(_calling(_black_scholes_prange, cnd_nb))
# the same loop under jb.jit: vector math serves math.exp/log there too, so the ratio against
# it is the kernel launch's own cost, apart from vector math
black_scholes_prange_jb = jb.jit(parallel=True)(_calling(_black_scholes_prange, cnd_jb))


@pytest.mark.benchmark(group="dsl")
def test_black_scholes_vs_prange(benchmark):
    n = 4_000_000
    rng = np.random.default_rng(0)
    S, X, T = rng.uniform(5, 30, n), rng.uniform(1, 100, n), rng.uniform(0.25, 10, n)
    c1, p1, c2, p2 = (np.empty(n) for _ in range(4))
    ours, theirs = benchmark.pedantic(lambda: interleaved(lambda: black_scholes[n](c1, p1, S, X, T, 0.02, 0.3),
                                                          lambda: black_scholes_prange(c2, p2, S, X, T, 0.02, 0.3)),
                                      rounds=1, iterations=1)
    np.testing.assert_allclose(c1, c2, rtol=1e-9)  # jitbridge's vector exp/log: within 2 ulp of libm
    report("Black-Scholes 4e6 (target <= 1.05)", ours, theirs, "numba prange")
    ours, same_math = interleaved(lambda: black_scholes[n](c1, p1, S, X, T, 0.02, 0.3),
                                  lambda: black_scholes_prange_jb(c2, p2, S, X, T, 0.02, 0.3))
    report("Black-Scholes 4e6, same vector math", ours, same_math, "jb.jit prange")


# Blur ----------------------------------------------------------------------------------

@jb.kernel
def blur(i, j, img, w, out):
    acc = 0.0
    for a in range(5):
        for b in range(5):
            acc += w[a, b] * img[i + a, j + b]
    out[i, j] = acc


@numba.njit(parallel=True)
def blur_prange(img, w, out):
    for i in numba.prange(out.shape[0]):
        for j in range(out.shape[1]):
            acc = 0.0
            for a in range(5):
                for b in range(5):
                    acc += w[a, b] * img[i + a, j + b]
            out[i, j] = acc


@pytest.mark.benchmark(group="dsl")
def test_blur_weights_as_array_vs_prange(benchmark):
    m = 4000
    rng = np.random.default_rng(1)
    img, w = rng.random((m, m)), rng.random((5, 5))
    o1, o2 = np.empty((m - 4, m - 4)), np.empty((m - 4, m - 4))
    ours, theirs = benchmark.pedantic(lambda: interleaved(lambda: blur[o1.shape](img, w, o1),
                                                          lambda: blur_prange(img, w, o2)),
                                      rounds=1, iterations=1)
    np.testing.assert_allclose(o1, o2, rtol=1e-12)
    report("blur 5x5 on 4000x4000 (target <= 1.05)", ours, theirs, "numba prange")


# Histograms ----------------------------------------------------------------------------

@jb.kernel
def count_bins(i, bins, counts):
    jb.atomic.add(counts, bins[i], 1)


@jb.kernel
def histogram_kernel(i, x, lo, scale, counts):
    b = int((x[i] - lo) * scale)
    if b >= 0 and b < counts.size:
        jb.atomic.add(counts, b, 1)


@pytest.mark.benchmark(group="dsl")
def test_histogram_kernel_vs_bincount(benchmark):
    n = 10**7
    bins = np.random.default_rng(2).integers(0, 256, n)
    counts = np.zeros(256, np.int64)

    def ours():
        counts[:] = 0
        count_bins[n](bins, counts)

    ours_s, theirs_s = benchmark.pedantic(lambda: interleaved(ours, lambda: np.bincount(bins, minlength=256)),
                                          rounds=1, iterations=1)
    np.testing.assert_array_equal(counts, np.bincount(bins, minlength=256))
    report("histogram 1e7 ints, 256 bins (target <= 1.0)", ours_s, theirs_s, "np.bincount")


@pytest.mark.benchmark(group="dsl")
def test_histogram_kernel_vs_library(benchmark):
    n = 10**7
    x = np.random.default_rng(3).random(n)
    counts = np.zeros(256, np.int64)

    def ours():
        counts[:] = 0
        histogram_kernel[n](x, 0.0, 256.0, counts)

    ours_s, theirs_s = benchmark.pedantic(lambda: interleaved(ours, lambda: K.histogram(x, 256, (0.0, 1.0))),
                                          rounds=1, iterations=1)
    np.testing.assert_array_equal(counts, np.histogram(x, 256, (0.0, 1.0))[0])
    report("histogram 1e7 floats, 256 bins (target <= 1.5)", ours_s, theirs_s, "jitbridge.kernels.histogram")


@numba.njit(parallel=True)
def histogram_prange_partials(x, nbins, lo, hi):
    """The fastest histogram a numba user writes: per-thread partial counts, merged after."""
    threads = numba.get_num_threads()
    parts = np.zeros((threads, nbins), np.int64)
    chunk = (x.size + threads - 1) // threads
    scale = nbins / (hi - lo)
    for t in numba.prange(threads):
        for i in range(t * chunk, min(x.size, (t + 1) * chunk)):
            b = int((x[i] - lo) * scale)
            if b == nbins:
                b -= 1
            if 0 <= b < nbins:
                parts[t, b] += 1
    return parts.sum(axis=0)


@pytest.mark.benchmark(group="dsl")
def test_library_histogram_vs_prange_partials(benchmark):
    """The library's histogram (NumPy's edges and edge rules) against the bare prange loop,
    with the range given and with the range found from the data (both sides pay for it)."""
    x = np.random.default_rng(5).standard_normal(10**7)

    def both():
        ranged = interleaved(lambda: K.histogram(x, 256, (-5.0, 5.0)),
                             lambda: histogram_prange_partials(x, 256, -5.0, 5.0))
        found = interleaved(lambda: K.histogram(x, 256),
                            lambda: histogram_prange_partials(x, 256, float(x.min()), float(x.max())))
        return ranged, found

    ranged, found = benchmark.pedantic(both, rounds=1, iterations=1)
    np.testing.assert_array_equal(K.histogram(x, 256, (-5.0, 5.0))[0], histogram_prange_partials(x, 256, -5.0, 5.0))
    report("library histogram 1e7, range given", *ranged, "prange partials")
    report("library histogram 1e7, range from the data", *found, "prange partials + NumPy min/max")


# k-means -------------------------------------------------------------------------------

@jb.kernel
def centroid_sums(i, points, labels, sums, counts):
    c = labels[i]
    for d in range(points.shape[1]):
        jb.atomic.add(sums, (c, d), points[i, d])
    jb.atomic.add(counts, c, 1)


@pytest.mark.benchmark(group="dsl")
def test_kmeans_update_vs_add_at(benchmark):
    n, dims, k = 2_000_000, 8, 16
    rng = np.random.default_rng(4)
    points, labels = rng.random((n, dims)), rng.integers(0, k, n)
    sums, counts = np.zeros((k, dims)), np.zeros(k, np.int64)

    def ours():
        sums[:] = 0
        counts[:] = 0
        centroid_sums[n](points, labels, sums, counts)

    def numpy_way():
        s = np.zeros((k, dims))
        np.add.at(s, labels, points)
        return s, np.bincount(labels, minlength=k)

    ours_s, theirs_s = benchmark.pedantic(lambda: interleaved(ours, numpy_way, rounds=7), rounds=1, iterations=1)
    expected_sums, expected_counts = numpy_way()
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-9)
    np.testing.assert_array_equal(counts, expected_counts)
    report("k-means update 2e6 x 8, 16 clusters", ours_s, theirs_s, "np.add.at + np.bincount")
