"""Kernel library against NumPy on 10^7 elements, and against the machine's read bandwidth.

Run (NumPy's BLAS with its own CPU detection, as the comparison should be):

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest \
        benchmarks/bench_kernels.py --benchmark-only

At the end it prints one table: kernel, dtype, jitbridge ms on 1 and 2 threads, NumPy ms,
NumPy / jitbridge(1 thread), and GB/s of the 2-thread run against the read bandwidth of this
machine at that moment: the best of a bare threaded sum and ``np.dot(x, x)`` over the same
input, timed in rounds interleaved with the kernel's own (the VM's bandwidth drifts between
40 and 68 GB/s from minute to minute, so a figure taken at another time is no yardstick).
Times are the minimum over rounds: this machine is shared, and the minimum is what the code
can do.

``python benchmarks/bench_kernels.py crossover`` measures, per kernel, the smallest size at
which 2 threads beat 1 (the table behind ``kernels/_dispatch.CROSSOVER``);
``python benchmarks/bench_kernels.py stream`` times ``scale`` with and without streaming
stores per size (the table behind ``kernels/_dispatch.STREAM_BYTES``).
"""
from __future__ import annotations

import math
import sys
import time
from typing import Any, Callable

import numba
import numpy as np
import pytest

import jitbridge.kernels as K
from jitbridge import jit, prange

N = 10**7
WINDOW = 64
RESULTS: dict[tuple[str, str], dict[str, float]] = {}


@jit(parallel=True, fastmath={"reassoc"}, error_model="numpy")
def _read_all(x):
    s = 0.0
    for i in prange(x.size):
        s += x[i]
    return s


def read_bandwidth(threads: int) -> float:
    """GB/s of the fastest plain read of 160 MB seen now, on ``threads`` threads (the
    summary line; the per-kernel percentages use ``_interleaved``)."""
    x = np.random.default_rng(0).standard_normal(2 * N)
    numba.set_num_threads(threads)
    try:
        _read_all(x)
        best = min(_timed(lambda: _read_all(x)) for _ in range(30))
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return x.nbytes / best / 1e9


def _interleaved(run: Callable[[], Any], x: np.ndarray, rounds: int = 15) -> tuple[float, float]:
    """(best time of ``run``, read GB/s of the best plain read of ``x``), rounds alternating
    so that both see the same machine."""
    readers = (lambda: _read_all(x), lambda: np.dot(x, x))
    kernel, read = [], []
    for _ in range(rounds):
        kernel.append(_timed(run))
        read.extend(_timed(r) for r in readers)
    return min(kernel), x.nbytes / min(read) / 1e9


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def np_logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    return m[..., 0] + np.log(np.sum(np.exp(x - m), axis=-1))


def np_layernorm(x):
    return (x - x.mean()) / np.sqrt(x.var() + 1e-5)


def np_softmax_rows(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_layernorm_rows(x):
    return (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)


def rows(a):
    """The same 10^7 elements as 10^4 rows of 10^3: the row-wise case of ML code."""
    return a.reshape(10_000, 1000)


def np_gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * (x * x * x))))


def np_rolling(x):
    c = np.cumsum(x)
    return np.concatenate(([c[WINDOW - 1]], c[WINDOW:] - c[:-WINDOW]))


# name: (jitbridge call(x, y, out, threads), NumPy call(x, y, out), bytes moved / x.nbytes).
# jitbridge writes into a preallocated ``out``; NumPy gets ``out=`` wherever its API takes one
# and otherwise runs the usual formula with its temporaries. Rows kernels keep each row in
# cache between their two passes, so they move the array through memory only once each way.
CASES: dict[str, tuple[Callable, Callable, float]] = {
    "sum_sq": (lambda x, y, o, t: K.sum_sq(x, threads=t), lambda x, y, o: np.dot(x, x), 1),
    "dot": (lambda x, y, o, t: K.dot(x, y, threads=t), lambda x, y, o: np.dot(x, y), 2),
    "variance": (lambda x, y, o, t: K.variance(x, threads=t), lambda x, y, o: np.var(x), 1),
    "argmax": (lambda x, y, o, t: K.argmax(x, threads=t), lambda x, y, o: np.argmax(x), 1),
    "softmax": (lambda x, y, o, t: K.softmax(x, out=o, threads=t), lambda x, y, o: np_softmax(x), 3),
    "logsumexp": (lambda x, y, o, t: K.logsumexp(x, threads=t), lambda x, y, o: np_logsumexp(x), 1),
    "layernorm": (lambda x, y, o, t: K.layernorm(x, out=o, threads=t), lambda x, y, o: np_layernorm(x), 3),
    "normalize": (lambda x, y, o, t: K.normalize(x, out=o, threads=t),
                  lambda x, y, o: np.divide(x, np.linalg.norm(x), out=o), 3),
    "gelu (tanh)": (lambda x, y, o, t: K.gelu(x, "tanh", out=o, threads=t), lambda x, y, o: np_gelu_tanh(x), 2),
    "gelu (erf)": (lambda x, y, o, t: K.gelu(x, out=o, threads=t), lambda x, y, o: np_gelu_tanh(x), 2),
    "clip": (lambda x, y, o, t: K.clip(x, -1, 1, out=o, threads=t), lambda x, y, o: np.clip(x, -1, 1, out=o), 2),
    "scale": (lambda x, y, o, t: K.scale(x, 3, out=o, threads=t), lambda x, y, o: np.multiply(x, 3, out=o), 2),
    "saxpy": (lambda x, y, o, t: K.saxpy(3, x, y, out=o, threads=t),
              lambda x, y, o: np.add(np.multiply(x, 3), y, out=o), 3),
    "relu": (lambda x, y, o, t: K.relu(x, out=o, threads=t), lambda x, y, o: np.maximum(x, 0, out=o), 2),
    "cumsum": (lambda x, y, o, t: K.cumsum(x, out=o, threads=t), lambda x, y, o: np.cumsum(x, out=o), 2),
    "rolling_sum": (lambda x, y, o, t: K.rolling_sum(x, WINDOW, threads=t), lambda x, y, o: np_rolling(x), 2),
    "histogram": (lambda x, y, o, t: K.histogram(x, 100, threads=t), lambda x, y, o: np.histogram(x, 100), 1),
    "softmax rows": (lambda x, y, o, t: K.softmax(rows(x), out=rows(o), threads=t),
                     lambda x, y, o: np_softmax_rows(rows(x)), 2),
    "layernorm rows": (lambda x, y, o, t: K.layernorm(rows(x), out=rows(o), threads=t),
                       lambda x, y, o: np_layernorm_rows(rows(x)), 2),
    "normalize rows": (lambda x, y, o, t: K.normalize(rows(x), out=rows(o), threads=t),
                       lambda x, y, o: np.divide(rows(x), np.linalg.norm(rows(x), axis=-1, keepdims=True),
                                                 out=rows(o)), 2),
    "logsumexp rows": (lambda x, y, o, t: K.logsumexp(rows(x), threads=t),
                       lambda x, y, o: np_logsumexp(rows(x)), 1),
}
FLOAT32_CASES = ("softmax", "logsumexp", "layernorm", "gelu (tanh)", "gelu (erf)", "sum_sq", "softmax rows")
PARAMS = [(name, "float64") for name in CASES] + [(name, "float32") for name in FLOAT32_CASES]


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    out = {}
    for dtype in ("float64", "float32"):
        x, y = (rng.standard_normal(N).astype(dtype) for _ in range(2))
        out[dtype] = (x, y, np.empty_like(x))
    return out


@pytest.fixture(scope="module", autouse=True)
def report(request: pytest.FixtureRequest):
    """After the module: the summary table, in the Markdown that docs/kernels.md carries."""
    yield
    if not RESULTS:
        return
    read2, read1 = read_bandwidth(2), read_bandwidth(1)
    lines = [
        f"read bandwidth at the end (best plain read of 160 MB): {read2:.1f} GB/s on 2 threads, {read1:.1f} on 1",
        "| kernel | dtype | jitbridge 1 thread (ms) | jitbridge 2 threads (ms) | NumPy (ms) "
        "| NumPy / jitbridge 1t | GB/s (2 threads) | read GB/s then | % of read bandwidth |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, dtype), r in RESULTS.items():
        if not {"jitbridge-1", "jitbridge-2", "numpy", "read"} <= r.keys():
            continue
        gbs = r["bytes"] / r["jitbridge-2"] / 1e9
        lines.append(
            f"| {name} | {dtype} | {r['jitbridge-1'] * 1e3:.2f} | {r['jitbridge-2'] * 1e3:.2f} "
            f"| {r['numpy'] * 1e3:.2f} | {r['numpy'] / r['jitbridge-1']:.2f}x | {gbs:.1f} | {r['read']:.1f} "
            f"| {100 * gbs / r['read']:.0f}% |"
        )
    if "python-loop" in RESULTS.get(("sum_sq", "float64"), {}):
        r = RESULTS[("sum_sq", "float64")]
        lines.append(f"sum_sq vs a Python loop over the array: {r['python-loop'] / r['jitbridge-1']:.0f}x on 1 thread, "
                     f"{r['python-loop'] / r['jitbridge-2']:.0f}x on 2 ({r['python-loop']:.2f} s vs "
                     f"{r['jitbridge-1'] * 1e3:.2f} / {r['jitbridge-2'] * 1e3:.2f} ms)")
    if ("one BLAS thread", "float64") in RESULTS:
        b = RESULTS[("one BLAS thread", "float64")]
        lines.append(f"one thread each (OPENBLAS_NUM_THREADS=1): sum_sq {b['K.sum_sq(x, threads=1)'] * 1e3:.2f} ms vs "
                     f"np.dot(x, x) {b['np.dot(x, x)'] * 1e3:.2f} ms "
                     f"({b['K.sum_sq(x, threads=1)'] / b['np.dot(x, x)']:.2f}x its time); dot "
                     f"{b['K.dot(x, y, threads=1)'] * 1e3:.2f} ms vs {b['np.dot(x, y)'] * 1e3:.2f} ms "
                     f"({b['K.dot(x, y, threads=1)'] / b['np.dot(x, y)']:.2f}x)")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():
        print("\n" + "\n".join(lines), flush=True)


@pytest.mark.parametrize("impl", ["jitbridge-1", "jitbridge-2", "numpy"])
@pytest.mark.parametrize(("name", "dtype"), PARAMS, ids=[f"{n}-{d}" for n, d in PARAMS])
def test_kernel(benchmark, data, name: str, dtype: str, impl: str) -> None:
    ours, theirs, passes = CASES[name]
    x, y, out = data[dtype]
    if impl == "numpy":
        run = lambda: theirs(x, y, out)  # noqa: E731
    else:
        threads = int(impl.split("-")[1])
        run = lambda: ours(x, y, out, threads)  # noqa: E731
        run()  # compile outside the timing
    benchmark.pedantic(run, rounds=15, warmup_rounds=1)
    entry = RESULTS.setdefault((name, dtype), {"bytes": passes * x.nbytes})
    entry[impl] = benchmark.stats.stats.min
    if impl == "jitbridge-2":
        best, entry["read"] = _interleaved(run, x)
        entry[impl] = min(entry[impl], best)


def test_sum_sq_against_a_python_loop(benchmark, data) -> None:
    """The loop a notebook user writes over the array itself."""
    values = data["float64"][0]

    def python_loop() -> float:
        total = 0.0
        for v in values:
            total += v * v
        return total

    benchmark.pedantic(python_loop, rounds=1, iterations=1)
    RESULTS.setdefault(("sum_sq", "float64"), {"bytes": 8 * N})["python-loop"] = benchmark.stats.stats.min


_ONE_BLAS_THREAD = """
import time, numpy as np, jitbridge.kernels as K
x, y = (np.random.default_rng(s).standard_normal(%d) for s in (1, 2))
runs = {"np.dot(x, x)": lambda: np.dot(x, x), "K.sum_sq(x, threads=1)": lambda: K.sum_sq(x, threads=1),
        "np.dot(x, y)": lambda: np.dot(x, y), "K.dot(x, y, threads=1)": lambda: K.dot(x, y, threads=1)}
best = dict.fromkeys(runs, 1e9)
for _ in range(15):
    for name, run in runs.items():
        t = time.perf_counter(); run(); best[name] = min(best[name], time.perf_counter() - t)
print(repr(best))
"""


def test_one_thread_against_one_blas_thread(benchmark) -> None:
    """Like for like: NumPy's BLAS held to one thread (``OPENBLAS_NUM_THREADS=1``, which
    must be set before NumPy loads, hence a fresh process) against the kernels on one."""
    import ast
    import os
    import subprocess

    def run() -> dict[str, float]:
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        done = subprocess.run([sys.executable, "-c", _ONE_BLAS_THREAD % N], env=env, capture_output=True,
                              text=True, check=True)
        return ast.literal_eval(done.stdout.strip().splitlines()[-1])

    best = benchmark.pedantic(run, rounds=1, iterations=1)
    RESULTS[("one BLAS thread", "float64")] = best


def crossover(kernel: str, make: Callable[[int], Callable[[int], Any]]) -> int:
    """Smallest power-of-two size from 2^10 where 2 threads run faster than 1."""
    for exponent in range(10, 24):
        run = make(1 << exponent)
        run(1), run(2)
        t1 = min(_timed(lambda: run(1)) for _ in range(50))
        t2 = min(_timed(lambda: run(2)) for _ in range(50))
        if t2 < t1:
            return 1 << exponent
    return 1 << 24


def _crossover_table() -> None:
    rng = np.random.default_rng(0)
    for name, (ours, _, _) in CASES.items():
        if name.endswith(" rows"):
            continue

        def make(n: int, ours=ours) -> Callable[[int], Any]:
            x, y = rng.standard_normal(n), rng.standard_normal(n)
            out = np.empty_like(x)
            return lambda t: ours(x, y, out, t)

        print(f"{name}: {crossover(name, make)}", flush=True)


def _stream_table() -> None:
    from jitbridge.kernels import _dispatch

    for exponent in range(14, 25):
        x = np.random.default_rng(0).standard_normal(1 << exponent)
        out = np.empty_like(x)
        times = []
        for limit in (1 << 62, 0):
            _dispatch.STREAM_BYTES = limit
            K.scale(x, 3.0, out=out)
            times.append(min(_timed(lambda: K.scale(x, 3.0, out=out)) for _ in range(max(5, (1 << 26) >> exponent))))
        print(f"{x.nbytes / 2**20:7.2f} MiB in + out each: ordinary stores {times[0] * 1e6:8.1f} us, "
              f"streaming {times[1] * 1e6:8.1f} us, streaming faster by {times[0] / times[1]:.2f}x", flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["crossover"]:
    _crossover_table()
if __name__ == "__main__" and sys.argv[1:] == ["stream"]:
    _stream_table()
