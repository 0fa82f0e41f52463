"""`make demo`: the kernel library against NumPy on this machine, after `jitbridge compile`
has prebuilt its cache, so the run itself compiles nothing."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

import jitbridge as jb
from jitbridge import kernels as K

N = 10_000_000


def _np_softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _np_layernorm(x):
    return (x - x.mean()) / np.sqrt(x.var() + 1e-5)


def _np_logsumexp(x):
    m = x.max()
    return m + np.log(np.exp(x - m).sum())


def _np_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x * x * x)))


CASES: list[tuple[str, Callable, Callable]] = [
    ("softmax", lambda x: K.softmax(x), _np_softmax),
    ("logsumexp", lambda x: K.logsumexp(x), _np_logsumexp),
    ("layernorm", lambda x: K.layernorm(x), _np_layernorm),
    ("gelu (tanh)", lambda x: K.gelu(x, approximate="tanh"), _np_gelu),
    ("variance", lambda x: K.variance(x), np.var),
    ("sum_sq", lambda x: K.sum_sq(x), lambda x: np.dot(x, x)),
    ("cumsum", lambda x: K.cumsum(x), np.cumsum),
]


def median_ms(fn: Callable[[], object], repeat: int = 7) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    x = np.random.default_rng(0).standard_normal(N)
    print(f"jitbridge {jb.__version__}: kernel library vs NumPy on {N:,} float64 "
          f"(cache: {jb.config.settings.cache_dir})")
    print(f"{'kernel':<14}{'jitbridge ms':>14}{'NumPy ms':>12}{'speed-up':>10}")
    for name, ours, theirs in CASES:
        np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-6, atol=1e-9)
        t_ours, t_np = median_ms(lambda: ours(x)), median_ms(lambda: theirs(x))
        print(f"{name:<14}{t_ours:>14.2f}{t_np:>12.2f}{t_np / t_ours:>9.2f}x")
    stats = jb.stats()
    compiles = sum(entry["compiles"] for entry in stats.values())
    hits = sum(entry["cache_hits"] for entry in stats.values())
    print(f"this run: {compiles} compiles, {hits} cache hits (prebuilt by `jitbridge compile jitbridge.kernels`)")


if __name__ == "__main__":
    main()
