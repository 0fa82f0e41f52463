"""`make demo`: a jitbridge kernel against NumPy on this machine, with the measured speed-up."""
from __future__ import annotations

import statistics
import time

import numpy as np

import jitbridge as jb


@jb.kernel
def fused_axpby(i, a, x: "n", b, y: "n", out: "n"):
    """out = relu(a*x + b*y): NumPy makes three passes and two temporaries; the kernel one."""
    v = a * x[i] + b * y[i]
    out[i] = v if v > 0.0 else 0.0


def numpy_axpby(a, x, b, y, out):
    np.maximum(a * x + b * y, 0.0, out=out)


def median_ms(fn, repeat: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    n = 10_000_000
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    out, ref = np.empty(n), np.empty(n)
    started = time.perf_counter()
    fused_axpby[n](2.0, x, -0.5, y, out)
    first = time.perf_counter() - started
    numpy_axpby(2.0, x, -0.5, y, ref)
    np.testing.assert_allclose(out, ref, rtol=1e-15)
    ours = median_ms(lambda: fused_axpby[n](2.0, x, -0.5, y, out))
    theirs = median_ms(lambda: numpy_axpby(2.0, x, -0.5, y, ref))
    stats = jb.stats()[fused_axpby.jb_name]
    print(f"relu(a*x + b*y) on {n:,} float64 ({jb.__version__}, {jb.config.settings.cache_dir})")
    print(f"  first call (compile or cache load): {first * 1e3:8.1f} ms   "
          f"compiles={stats['compiles']} cache_hits={stats['cache_hits']}")
    print(f"  jitbridge kernel                  : {ours:8.2f} ms")
    print(f"  NumPy                             : {theirs:8.2f} ms")
    print(f"  speed-up                          : {theirs / ours:8.2f}x  (results match NumPy)")


if __name__ == "__main__":
    main()
