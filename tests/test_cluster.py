"""Dask: a real LocalCluster whose worker processes have their own, empty cache folder (as
on other machines) compile until the cache is shipped to them, then load it and compile
nothing, and get NumPy's answers."""
from __future__ import annotations

import numpy as np
import pytest

import jitbridge.kernels as K
from jitbridge import cluster

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
distributed = pytest.importorskip("dask.distributed", reason="the dask extra is not installed")


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_workers_load_the_shipped_cache_and_compile_nothing(tmp_path) -> None:
    x = np.random.default_rng(0).standard_normal((64, 300))
    K.softmax(x[:2], threads=1)  # this process has the serial row kernel cached
    remote = tmp_path / "worker-cache"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"JITBRIDGE_CACHE_DIR": str(remote)}) as lc, distributed.Client(lc) as client:
        before = da.from_array(x, chunks=(16, 300)).map_blocks(K.relu, dtype=x.dtype).compute()
        np.testing.assert_array_equal(before, np.maximum(x, 0))
        compiled = cluster.worker_stats(client)
        assert sum(s["compiles"] for stats in compiled.values() for s in stats.values()) > 0, \
            "workers with an empty cache folder must compile (else this test proves nothing)"
        client.run(lambda: __import__("jitbridge").reset_stats())
        shipped = cluster.ship_cache(client)
        assert len(shipped) == 2
        for report in shipped.values():
            assert report["cache_dir"] == str(remote) and report["imported"] > 0 and report["rejected"] == []
        result = da.from_array(x, chunks=(16, 300)).map_blocks(K.softmax, dtype=x.dtype).compute()
        np.testing.assert_allclose(result, np_softmax(x), rtol=1e-13)
        per_worker = cluster.worker_stats(client)
    assert len({report["pid"] for report in shipped.values()}) == 2
    assert sum(s["compiles"] for stats in per_worker.values() for s in stats.values()) == 0
    assert sum(s["cache_hits"] for stats in per_worker.values() for s in stats.values()) > 0
