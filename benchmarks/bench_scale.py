"""jitbridge on Dask (issue 14): the same 2-worker cluster and data, jitbridge's kernels against
the NumPy expression a user would write, and the time to a first result on a fresh cluster
with and without ``ship_cache``.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m pytest benchmarks/bench_scale.py --benchmark-only

- Throughput: a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` holds
  x = 40000 x 1000 float64 (320 MB, 8 blocks of 40 MB, the size Dask advises) in worker memory; each variant
  is persisted on the workers and waited for (nothing comes back to the client), in rounds
  that alternate between the variants; medians. Softmax of every row: ``jd.softmax(x)``
  against the dask.array expression ``exp(x - max) / sum`` and against ``map_blocks`` of
  the NumPy function; gelu (tanh form): ``jd.map_blocks(K.gelu, x, approximate="tanh")``
  against the same two. Target: jitbridge >= 2x faster on both. A copy of every block through
  the same machinery is timed alongside: what Dask and a fresh output cost with no arithmetic,
  the part of every variant's time that no kernel can shrink.
- Time to first result: a fresh cluster (new worker processes, an empty cache folder) runs
  a small pipeline (softmax, gelu, sum_sq, variance) once; measured from the cluster being
  up to the results being back, without shipping (the workers compile) and with
  ``ship_cache`` first (its time included). The client builds the entries beforehand by
  running the pipeline once with Dask's synchronous scheduler.
"""
from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from typing import Any, Callable

import numpy as np
import pytest

import jitbridge.kernels as K
from conftest import RESULTS

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
dask = pytest.importorskip("dask", reason="the dask extra is not installed")
distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
jd = pytest.importorskip("jitbridge.dask", reason="the dask extra is not installed")

ROWS, COLS, BLOCK = 40_000, 1000, 5000
ROUNDS = 15
FRESH_ROUNDS = 3
C1, C3 = np.sqrt(2.0 / np.pi), 0.044715


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def np_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(C1 * (x + C3 * x * x * x)))


def dask_softmax(x: Any) -> Any:
    e = da.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def dask_gelu(x: Any) -> Any:
    return 0.5 * x * (1.0 + da.tanh(C1 * (x + C3 * x * x * x)))


def _cluster(cache_dir: str) -> tuple[Any, Any]:
    lc = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"JITBRIDGE_CACHE_DIR": cache_dir})
    return lc, distributed.Client(lc)


@pytest.fixture(scope="module")
def cluster():
    lc, client = _cluster(tempfile.mkdtemp(prefix="jitbridge-bench-workers-"))
    x = da.random.default_rng(0).standard_normal((ROWS, COLS), chunks=(BLOCK, COLS)).persist()
    distributed.wait(x)
    yield client, x
    client.close()
    lc.close()


def _identity(block: np.ndarray) -> np.ndarray:
    return block


def _persisted(make: Callable[[Any], Any], x: Any) -> Callable[[], None]:
    """Run ``make(x)``'s graph on the workers, keep the result there until it is done, drop
    it. Each run reads ``x`` under new keys, so no run can find the last one's result still
    in memory."""
    runs = itertools.count()

    def run() -> None:
        fresh = x.map_blocks(_identity, dtype=x.dtype, token=f"input-{next(runs)}")
        result = make(fresh).persist()
        distributed.wait(result)
        del result
    return run


def _copied(x: Any) -> Any:
    """The floor under every variant: the same tasks and a fresh output block, no arithmetic."""
    return x.map_blocks(np.copy, dtype=x.dtype)


def interleaved(variants: dict[str, Callable[[], None]], rounds: int = ROUNDS) -> dict[str, float]:
    """Median seconds of each variant, timed in rounds that alternate between them, after one
    warm-up call each (which also compiles or loads the kernels on the workers)."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():
        run()
    for _ in range(rounds):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def report(work: str, medians: dict[str, float]) -> None:
    ours = medians["jitbridge"]
    for name, seconds in medians.items():
        RESULTS[f"{work}: {name} (ms)"] = seconds * 1e3
    floor = medians["Dask alone (a copy per block)"]
    for name, seconds in medians.items():
        if name not in ("jitbridge", "Dask alone (a copy per block)"):
            RESULTS[f"{work}: {name} / jitbridge time"] = seconds / ours
            RESULTS[f"{work}: {name} / jitbridge, above the copy floor"] = (seconds - floor) / (ours - floor)


@pytest.mark.benchmark(group="scale")
def test_softmax_rows_on_two_workers(benchmark, cluster):
    client, x = cluster
    check = x[:BLOCK].compute()
    np.testing.assert_allclose(jd.softmax(x[:BLOCK]).compute(), np_softmax(check), rtol=1e-12)
    variants = {"jitbridge": _persisted(jd.softmax, x),
                "dask.array expression": _persisted(dask_softmax, x),
                "map_blocks(NumPy)": _persisted(lambda v: v.map_blocks(np_softmax, dtype=v.dtype), x),
                "Dask alone (a copy per block)": _persisted(_copied, x)}
    report("softmax rows 40000x1000, 2 workers", benchmark.pedantic(lambda: interleaved(variants), rounds=1,
                                                                     iterations=1))


@pytest.mark.benchmark(group="scale")
def test_gelu_on_two_workers(benchmark, cluster):
    client, x = cluster
    check = x[:BLOCK].compute()
    np.testing.assert_allclose(jd.map_blocks(K.gelu, x[:BLOCK], approximate="tanh").compute(), np_gelu(check),
                               rtol=1e-13, atol=1e-15)
    variants = {"jitbridge": _persisted(lambda v: jd.map_blocks(K.gelu, v, approximate="tanh"), x),
                "dask.array expression": _persisted(dask_gelu, x),
                "map_blocks(NumPy)": _persisted(lambda v: v.map_blocks(np_gelu, dtype=v.dtype), x),
                "Dask alone (a copy per block)": _persisted(_copied, x)}
    report("gelu (tanh) 40000x1000, 2 workers", benchmark.pedantic(lambda: interleaved(variants), rounds=1,
                                                                    iterations=1))


def pipeline(x: Any) -> list[Any]:
    return [jd.softmax(x), jd.map_blocks(K.gelu, x), jd.sum_sq(x), jd.variance(x)]


def _first_result(ship: bool, sample: np.ndarray) -> tuple[float, float]:
    """(seconds from a fresh cluster being up to the pipeline's results, of which ship_cache)."""
    lc, client = _cluster(tempfile.mkdtemp(prefix="jitbridge-bench-fresh-"))
    try:
        client.wait_for_workers(2)
        start = time.perf_counter()
        if ship:
            jd.ship_cache(client, kernels=[K.softmax, K.gelu, K.sum_sq, K.variance])
        shipped = time.perf_counter()
        results = client.compute(pipeline(da.from_array(sample, chunks=(250, COLS))), sync=True)
        done = time.perf_counter()
        compiles = sum(s["compiles"] for per in jd.worker_stats(client).values() for s in per.values())
    finally:
        client.close()
        lc.close()
    np.testing.assert_allclose(results[0], np_softmax(sample), rtol=1e-12)
    assert (compiles == 0) == ship, f"ship={ship}: {compiles} compiles on the workers"
    return done - start, shipped - start


@pytest.mark.benchmark(group="scale")
def test_time_to_first_result_on_a_fresh_cluster(benchmark):
    sample = np.random.default_rng(1).standard_normal((1000, COLS))
    dask.compute(*pipeline(da.from_array(sample, chunks=(250, COLS))), scheduler="synchronous")

    def measure() -> dict[str, list[tuple[float, float]]]:
        runs: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
        for _ in range(FRESH_ROUNDS):
            runs["without"].append(_first_result(False, sample))
            runs["with"].append(_first_result(True, sample))
        return runs

    runs = benchmark.pedantic(measure, rounds=1, iterations=1)
    without = statistics.median(t for t, _ in runs["without"])
    with_ship = statistics.median(t for t, _ in runs["with"])
    RESULTS["first result, fresh cluster, no ship_cache (s)"] = without
    RESULTS["first result, fresh cluster, ship_cache + compute (s)"] = with_ship
    RESULTS["  of which ship_cache (s)"] = statistics.median(s for _, s in runs["with"])
    RESULTS["first result: without / with ship_cache"] = without / with_ship
