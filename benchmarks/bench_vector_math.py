"""Vector math: the same numba-style source under ``jb.jit`` and under ``numba.jit``.

Run (one benchmark at a time on this shared machine):

    flock /tmp/jb-bench.lock env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest \
        benchmarks/bench_vector_math.py --benchmark-only -p no:cacheprovider -s

Three workloads, each as numba's examples write them (scalar loops over ``math.*``/``np.*``):
Black-Scholes with a jitted normal-CDF helper, one loop per function, and a Gaussian kernel
density estimate. Each is timed under numba.jit and jb.jit in interleaved rounds (the minimum
of each: the machine is shared) and the summary prints numba / jitbridge. Black-Scholes and KDE
are also timed with ``error_model="numpy"`` on both sides: under numba's default error model a
``/`` checks for a zero divisor and raises, and a loop that can raise does not vectorize.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable

import numba
import numpy as np
import pytest

import jitbridge as jb

N = 1_000_000
RESULTS: dict[str, tuple[float, float]] = {}


def black_scholes_source() -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(cnd, black_scholes) as plain functions; the decorator is applied per side."""
    def cnd(d):
        a1, a2, a3, a4, a5 = 0.31938153, -0.356563782, 1.781477937, -1.821255978, 1.330274429
        k = 1.0 / (1.0 + 0.2316419 * math.fabs(d))
        value = 0.3989422804014327 * math.exp(-0.5 * d * d) * (k * (a1 + k * (a2 + k * (a3 + k * (a4 + k * a5)))))
        if d > 0:
            value = 1.0 - value
        return value

    def black_scholes(call, put, price, strike, years, rate, volatility):
        for i in range(len(price)):
            sqrt_t = math.sqrt(years[i])
            d1 = (math.log(price[i] / strike[i]) + (rate + 0.5 * volatility * volatility) * years[i]) \
                / (volatility * sqrt_t)
            d2 = d1 - volatility * sqrt_t
            cnd_d1 = CND(d1)
            cnd_d2 = CND(d2)
            discount = math.exp(-rate * years[i])
            call[i] = price[i] * cnd_d1 - strike[i] * discount * cnd_d2
            put[i] = strike[i] * discount * (1.0 - cnd_d2) - price[i] * (1.0 - cnd_d1)

    return cnd, black_scholes


def build_black_scholes(decorate: Callable[..., Any]) -> Callable[..., Any]:
    cnd, black_scholes = black_scholes_source()
    namespace = {"math": math, "CND": decorate(cnd)}
    fn = type(black_scholes)(black_scholes.__code__, namespace, "black_scholes")
    return decorate(fn)


def kde_source():
    def kde(points, samples, bandwidth, out):
        norm = 1.0 / (len(samples) * bandwidth * math.sqrt(2 * math.pi))
        for i in range(len(points)):
            total = 0.0
            for j in range(len(samples)):
                z = (points[i] - samples[j]) / bandwidth
                total += np.exp(-0.5 * z * z)
            out[i] = total * norm
    return kde


LOOPS = {"exp": "math.exp(a)", "log": "math.log(a)", "sin": "math.sin(a)", "cos": "math.cos(a)",
         "exp2": "math.exp2(a)", "expm1": "math.expm1(a)", "log2": "math.log2(a)", "log10": "math.log10(a)",
         "log1p": "math.log1p(a)", "tan": "math.tan(a)", "tanh": "math.tanh(a)", "sinh": "math.sinh(a)",
         "cosh": "math.cosh(a)", "erf": "math.erf(a)", "erfc": "math.erfc(a)", "atan": "math.atan(a)",
         "atan2": "math.atan2(a, b)", "pow": "a ** b"}


def build_loop(name: str, decorate: Callable[..., Any]) -> Callable[..., Any]:
    namespace = {"math": math, "np": np}
    exec(f"def loop(x, y, out):\n    for i in range(x.size):\n        a = x[i]\n        b = y[i]\n"
         f"        out[i] = {LOOPS[name]}\n", namespace)
    return decorate(namespace["loop"])


def interleaved(theirs: Callable[[], Any], ours: Callable[[], Any], rounds: int = 15) -> tuple[float, float]:
    theirs(), ours()
    best = [math.inf, math.inf]
    for _ in range(rounds):
        for k, fn in enumerate((theirs, ours)):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best[0], best[1]


def _bs_inputs():
    rng = np.random.default_rng(0)
    price, strike, years = rng.uniform(5, 30, N), rng.uniform(1, 100, N), rng.uniform(0.25, 10, N)
    return price, strike, years, np.empty(N), np.empty(N)


@pytest.mark.parametrize("error_model", ["python", "numpy"])
def test_black_scholes(benchmark, error_model: str) -> None:
    price, strike, years, call, put = _bs_inputs()
    theirs = build_black_scholes(numba.jit(nopython=True, error_model=error_model))
    ours = build_black_scholes(jb.jit(error_model=error_model))
    args = (call, put, price, strike, years, 0.02, 0.3)
    RESULTS[f"black-scholes ({error_model} error model)"] = interleaved(lambda: theirs(*args), lambda: ours(*args))
    reference = (call.copy(), put.copy())
    theirs(*args)
    np.testing.assert_allclose(call, reference[0], rtol=1e-12, atol=1e-12)
    benchmark.pedantic(ours, args, rounds=3, iterations=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(LOOPS))
def test_function_loop(benchmark, name: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0.05, 3.0, N).astype(dtype)
    y = rng.uniform(-2.0, 2.0, N).astype(dtype)
    out = np.empty_like(x)
    theirs, ours = build_loop(name, numba.njit), build_loop(name, jb.jit)
    RESULTS[f"loop {name} {dtype}"] = interleaved(lambda: theirs(x, y, out), lambda: ours(x, y, out), rounds=9)
    benchmark.pedantic(ours, (x, y, out), rounds=3, iterations=1)


@pytest.mark.parametrize("error_model", ["python", "numpy"])
def test_kde(benchmark, error_model: str) -> None:
    rng = np.random.default_rng(2)
    samples, points, out = rng.standard_normal(4000), np.linspace(-4, 4, 1000), np.empty(1000)
    theirs = numba.jit(nopython=True, error_model=error_model)(kde_source())
    ours = jb.jit(error_model=error_model)(kde_source())
    RESULTS[f"kde ({error_model} error model)"] = interleaved(lambda: theirs(points, samples, 0.3, out),
                                                             lambda: ours(points, samples, 0.3, out), rounds=7)
    benchmark.pedantic(ours, (points, samples, 0.3, out), rounds=3, iterations=1)


@pytest.fixture(scope="module", autouse=True)
def report():
    """The table of ratios, after the last benchmark of the module (shown with ``-s``)."""
    yield
    print("\n\nworkload                              numba ms   jitbridge ms   numba / jitbridge")
    for name, (theirs, ours) in RESULTS.items():
        print(f"{name:36s} {theirs * 1e3:9.2f}   {ours * 1e3:12.2f}   {theirs / ours:8.2f}x")
