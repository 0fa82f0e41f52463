"""Dask clusters without recompiles: send the compiled cache to every worker, and read the
workers' counters back to see that they loaded instead of compiling.

Under Dask (or Ray) with plain numba, every worker process compiles every kernel again: the
cache is keyed on paths that differ between machines, and nothing moves it. jitbridge's
cache is content-addressed, so an entry built anywhere is valid on any worker with the same
versions and CPU. Workers on one machine share the cache folder already; for workers on
other machines, ``ship_cache`` exports this process's cache as a bundle and imports it on
each of them (every entry is checked on import, as ``jitbridge cache import`` does; the
bundle is not signed, since the channel it travels on, ``client.run``, already runs the
client's code on the workers).

    from dask.distributed import Client
    import jitbridge.cluster

    client = Client("scheduler:8786")
    jitbridge.cluster.ship_cache(client)          # {worker: entries imported}
    y = x.map_blocks(jitbridge.kernels.softmax)   # dask.array; runs compiled, compiles nothing
    jitbridge.cluster.worker_stats(client)        # {worker: jb.stats() there}
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from . import config, errors, telemetry
from .cache import bundle
from .cache.store import current_store


def _bundle_bytes() -> bytes:
    with tempfile.TemporaryDirectory(prefix="jitbridge-ship-") as folder:
        path = Path(folder) / "cache.zip"
        bundle.export(current_store(), path)
        return path.read_bytes()


def _import_on_worker(data: bytes) -> dict[str, Any]:
    """Runs on a worker: import the bundle into the worker's own cache folder. The settings
    are read again first: a worker that imported jitbridge before Dask applied its ``env``
    (spawned workers re-import the client's ``__main__``) would otherwise still hold the
    cache folder of the environment it started in."""
    config.reload()
    with tempfile.TemporaryDirectory(prefix="jitbridge-ship-") as folder:
        path = Path(folder) / "cache.zip"
        path.write_bytes(data)
        # Unsigned on purpose: the bundle arrives through ``client.run``, which runs any
        # function the client sends on this worker, so whoever could forge this bundle could
        # run code here anyway; a key sent along with it would prove nothing more. Each entry
        # is still checked (key, checksum, allow-list, size caps).
        imported, rejected = bundle.import_(current_store(), path, trust_unsigned=True)
    return {"imported": imported, "rejected": rejected, "cache_dir": str(current_store().root), "pid": os.getpid()}


def ship_cache(client: Any) -> dict[str, dict[str, Any]]:
    """Copy every valid entry of this process's cache into each worker's cache; returns, per
    worker address, how many entries it imported and which it rejected (and why)."""
    data = _bundle_bytes()
    try:
        return client.run(_import_on_worker, data)
    except errors.JitBridgeError:
        raise
    except Exception as exc:
        raise errors.CacheError(f"could not ship the cache to the cluster's workers: {exc}",
                                values={"bundle bytes": len(data)},
                                fix="check that jitbridge of the same version is installed on every worker") from exc


def worker_stats(client: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``jb.stats()`` of every worker process, by worker address."""
    return client.run(telemetry.stats)
