"""jitbridge.dask on a real cluster: ``LocalCluster(processes=True, n_workers=2)``, one thread
per worker, both workers sharing one cache folder as processes on one machine do (one cluster
for the module, so the workers start once).

- Results equal NumPy's.
- Workers sharing a cache folder compile each kernel specialization (each cache entry) once
  between them, even when both start the same new kernel at the same moment: the cache's
  lock makes the other wait and load.
- After ``ship_cache``, the present workers compile nothing for the shipped kernels, and
  neither does a worker that joins later with a cache folder of its own (as on another
  machine): the plugin gives it the bundle before it takes a task.
"""
from __future__ import annotations

import collections
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import pytest

import jitbridge as jb
import jitbridge.kernels as K

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")
jd = pytest.importorskip("jitbridge.dask", reason="the dask extra is not installed")

from jitbridge.blockwise import BlockFunction  # noqa: E402
from jitbridge.cache.store import Store  # noqa: E402
from jitbridge.dask.ship import bundle_bytes, names_of  # noqa: E402


@jb.kernel
def lock_probe(i, x, out):
    out[i] = x[i] * 0.5 + 0.25


@jb.kernel
def shipped_probe(i, j, x, out):
    out[i, j] = x[i, j] - 1.5


@jb.jit(cache=True)
def poly(x):
    return 3.0 * x * x - x


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    shared = tmp_path_factory.mktemp("dask") / "worker-cache"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"JITBRIDGE_CACHE_DIR": str(shared)}) as lc, distributed.Client(lc) as client:
        client.run(_import_test_module)
        yield SimpleNamespace(lc=lc, client=client, shared=shared)


def _import_test_module() -> None:
    """Import this module (and so jitbridge and numba) on a worker ahead of the tests."""
    __import__(__name__)


def _counts(stats: dict, names: set[str], field: str) -> int:
    return sum(per.get(name, {}).get(field, 0) for per in stats.values() for name in names)


def _launch_at(moment: float) -> tuple[float, float, float]:
    """Wait for ``moment``, then launch ``lock_probe`` (compiling or loading it)."""
    time.sleep(max(0.0, moment - time.time()))
    started = time.time()
    x = np.arange(1000.0)
    out = np.empty_like(x)
    lock_probe.launch(1000, x, out, threads=1)
    return started, time.time(), float(out.sum())


def test_workers_sharing_a_cache_folder_compile_a_new_kernel_once(cluster) -> None:
    client = cluster.client
    client.run(jb.reset_stats)
    workers = sorted(client.scheduler_info()["workers"])
    moment = time.time() + 0.5
    runs = client.gather([client.submit(_launch_at, moment, workers=[w], allow_other_workers=False, pure=False)
                          for w in workers])
    assert [r[2] for r in runs] == [float(np.sum(np.arange(1000.0) * 0.5 + 0.25))] * 2
    assert max(r[0] for r in runs) < min(r[1] for r in runs), "the two launches must overlap in time"
    stats = jd.worker_stats(client)
    name = {lock_probe.jb_name}
    assert _counts(stats, name, "compiles") == 1, stats
    assert _counts(stats, name, "cache_hits") == 1, "the other worker waited for the lock and loaded"


def test_results_equal_numpy_on_the_cluster(cluster) -> None:
    client = cluster.client
    client.run(jb.reset_stats)
    x = np.random.default_rng(0).standard_normal((300, 64))
    y = np.random.default_rng(1).standard_normal((300, 64))
    dx, dy = da.from_array(x, chunks=(60, 64)), da.from_array(y, chunks=(60, 64))
    split = da.from_array(x, chunks=(60, 16))
    w = np.linspace(0.5, 1.5, 64)
    (soft, norm, lse, gelu, jitted, kernel, ss, ss_rows, dots, var, var_rows, arg, (counts, edges)) = (
        jd.softmax(dx), jd.layernorm(dx, weight=w), jd.logsumexp(dx), jd.map_blocks(K.gelu, split),
        jd.map_blocks(poly, split), jd.map_blocks(shipped_probe, split), jd.sum_sq(split),
        jd.sum_sq(split, axis=-1), jd.dot(dx, dy), jd.variance(split, ddof=1), jd.variance(split, axis=-1),
        jd.argmax(split), jd.histogram(split, bins=16))
    results = client.compute([soft, norm, lse, gelu, jitted, kernel, ss, ss_rows, dots, var, var_rows, arg,
                              counts], sync=True)
    np.testing.assert_allclose(results[0], np_softmax(x), rtol=1e-12)
    np.testing.assert_allclose(results[1], (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True)
                                                                                   + 1e-5) * w, rtol=1e-9)
    np.testing.assert_allclose(results[2], np.log(np.exp(x).sum(-1)), rtol=1e-13)
    np.testing.assert_allclose(results[3], K.gelu(x), rtol=0)
    np.testing.assert_allclose(results[4], 3.0 * x * x - x, rtol=1e-15)
    np.testing.assert_array_equal(results[5], x - 1.5)
    np.testing.assert_allclose(results[6], np.sum(x * x), rtol=1e-12)
    np.testing.assert_allclose(results[7], np.sum(x * x, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(results[8], np.sum(x * y), rtol=1e-12)
    np.testing.assert_allclose(results[9], np.var(x, ddof=1), rtol=1e-12)
    np.testing.assert_allclose(results[10], np.var(x, axis=-1), rtol=1e-12)
    assert results[11] == np.argmax(x)
    want_counts, want_edges = np.histogram(x, bins=16)
    np.testing.assert_array_equal(results[12], want_counts)
    np.testing.assert_array_equal(edges, want_edges)
    stats = jd.worker_stats(client)
    launched = {name for per in stats.values() for name, counts in per.items() if counts["calls"]}
    assert shipped_probe.jb_name in launched and len(launched) > 5
    store = Store(cluster.shared)
    built = collections.Counter(store.load_meta(info)["name"] for info in store.entries())
    twice = {name: (_counts(stats, {name}, "compiles"), built[name]) for name in launched
             if _counts(stats, {name}, "compiles") > built[name]}
    assert not twice, f"compiles between the workers vs entries in their shared cache folder: {twice}"


def _run_shipped(x: np.ndarray) -> dict:
    """On the late worker: what map_blocks would run on one block, then its counters."""
    softmax = BlockFunction(K.softmax, threads=1)(x)
    probe = BlockFunction(shipped_probe, threads=1)(x)
    return {"softmax": softmax, "probe": probe, "stats": jb.stats(), "shipped": jd.ship._report()}


def _start_worker(address: str, cache: str) -> subprocess.Popen:
    tests = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "JITBRIDGE_CACHE_DIR": cache,
           "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                             "--nthreads", "1", "--no-dashboard", "--name", "late"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_shipped_kernels_compile_nothing_on_present_and_later_workers(cluster, tmp_path) -> None:
    client = cluster.client
    x32 = np.random.default_rng(2).standard_normal((64, 100)).astype(np.float32)
    blocks = da.from_array(x32, chunks=(16, 100))
    jobs = [jd.softmax(blocks), jd.map_blocks(shipped_probe, blocks)]
    import dask

    dask.compute(*jobs, scheduler="synchronous")  # builds, in this process, exactly what the workers will run
    shipped = names_of([K.softmax, shipped_probe])
    reports = jd.ship_cache(client, kernels=[K.softmax, shipped_probe])
    assert len(reports) == 2
    for report in reports.values():
        assert report["cache_dir"] == str(cluster.shared) and report["rejected"] == []
        assert 0 < report["imported"] == report["shipped"] < bundle_bytes()[1], "only the named kernels' entries"
    client.run(jb.reset_stats)
    soft, probe = client.compute(jobs, sync=True)
    np.testing.assert_allclose(soft, np_softmax(x32.astype(np.float64)), rtol=1e-5)
    np.testing.assert_array_equal(probe, x32 - np.float32(1.5))
    stats = jd.worker_stats(client)
    assert _counts(stats, shipped, "compiles") == 0, stats
    assert _counts(stats, shipped, "cache_hits") >= 2

    late_cache = tmp_path / "late-worker-cache"
    worker = _start_worker(cluster.lc.scheduler_address, str(late_cache))
    try:
        client.wait_for_workers(3, timeout=180)
        late = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "late")
        ran = client.submit(_run_shipped, x32, workers=[late], allow_other_workers=False, pure=False).result()
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    np.testing.assert_allclose(ran["softmax"], np_softmax(x32.astype(np.float64)), rtol=1e-5)
    np.testing.assert_array_equal(ran["probe"], x32 - np.float32(1.5))
    (report,) = ran["shipped"].values()
    assert report["cache_dir"] == str(late_cache) and report["imported"] > 0, report
    assert _counts({"late": ran["stats"]}, shipped, "compiles") == 0, ran["stats"]
    assert _counts({"late": ran["stats"]}, shipped, "cache_hits") >= 2
