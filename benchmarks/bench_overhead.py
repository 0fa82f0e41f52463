"""Issue 2 targets: jb.jit call overhead <= 1.10x numba.njit; 1-D kernel launch on 10
elements <= 3 us; ``import jitbridge`` <= 1.2x ``import numba``. Run with
``make bench`` or ``pytest benchmarks/bench_overhead.py --benchmark-only``."""
import numba
import numpy as np
import pytest

import jitbridge as jb

from conftest import RESULTS, fresh_process_seconds, median


def _body(x):
    return x[0] + x[-1]


nb_fn = numba.njit(_body)
jb_fn = jb.jit(_body)


@jb.kernel
def saxpy(i, a, x, y, out):
    out[i] = a * x[i] + y[i]


X = np.ones(10)
OUT = np.empty(10)


@pytest.mark.benchmark(group="call-overhead")
def test_numba_njit_call(benchmark, record_median):
    nb_fn(X)
    record_median(benchmark, "numba.njit call (s)", nb_fn, X)


@pytest.mark.benchmark(group="call-overhead")
def test_jb_jit_call(benchmark, record_median):
    jb_fn(X)
    record_median(benchmark, "jb.jit call (s)", jb_fn, X)
    if "numba.njit call (s)" in RESULTS:
        RESULTS["jb.jit / numba.njit call ratio (target <= 1.10)"] = (
            RESULTS["jb.jit call (s)"] / RESULTS["numba.njit call (s)"])


@pytest.mark.benchmark(group="launch-overhead")
def test_kernel_launch_10_elements(benchmark, record_median):
    def launch():
        saxpy[10](2.0, X, X, OUT)
    launch()
    seconds = record_median(benchmark, "jb.kernel launch, 10 elements (s; target <= 3e-6)", launch)
    assert OUT[0] == 3.0 and seconds > 0


@pytest.mark.benchmark(group="import")
def test_import_time_vs_numba(benchmark):
    timer = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"

    def both():
        numba_s, jitbridge_s = [], []
        for _ in range(9):  # interleaved, so background load hits both alike
            numba_s += fresh_process_seconds(timer.format("numba"), repeat=1)
            jitbridge_s += fresh_process_seconds(timer.format("jitbridge"), repeat=1)
        RESULTS["import numba (s)"] = median(numba_s)
        RESULTS["import jitbridge (s)"] = median(jitbridge_s)

    benchmark.pedantic(both, rounds=1, iterations=1)
    RESULTS["import jitbridge / import numba (target <= 1.2)"] = (
        RESULTS["import jitbridge (s)"] / RESULTS["import numba (s)"])


SMALL = np.random.default_rng(0).standard_normal(1000)
SMALL_OUT = np.empty_like(SMALL)


@pytest.mark.benchmark(group="library-call")
@pytest.mark.parametrize("name", ["sum_sq", "scale", "softmax"])
def test_library_call_on_1000_elements(benchmark, record_median, name):
    """What a kernel-library call costs where the arithmetic is nothing: argument checks,
    the serial/threaded choice and numba's dispatch, against the NumPy equivalent."""
    import jitbridge.kernels as K

    ours = {"sum_sq": lambda: K.sum_sq(SMALL), "scale": lambda: K.scale(SMALL, 2.0, out=SMALL_OUT),
            "softmax": lambda: K.softmax(SMALL, out=SMALL_OUT)}[name]
    theirs = {"sum_sq": lambda: np.dot(SMALL, SMALL), "scale": lambda: np.multiply(SMALL, 2.0, out=SMALL_OUT),
              "softmax": lambda: np.divide(e := np.exp(SMALL - SMALL.max()), e.sum(), out=SMALL_OUT)}[name]
    ours()
    record_median(benchmark, f"K.{name}, 1000 float64 (s)", ours)
    numpy_s = median([min(_time(theirs) for _ in range(200)) for _ in range(5)])
    RESULTS[f"NumPy {name}, 1000 float64 (s)"] = numpy_s
    RESULTS[f"K.{name} / NumPy, 1000 float64"] = RESULTS[f"K.{name}, 1000 float64 (s)"] / numpy_s


def _time(fn) -> float:
    import time

    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
