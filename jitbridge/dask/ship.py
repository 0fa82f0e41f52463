"""Compiled kernels for every Dask worker, present and future, so that no worker compiles.

Under Dask with plain numba every worker process compiles every kernel again: numba's cache
is keyed on paths and nothing moves it. jitbridge's cache is content-addressed, so an entry
built anywhere is valid on any worker with the same versions and CPU. ``ship_cache`` exports
this process's cache (all of it, or the entries of the given functions and kernels) as a
bundle and registers a Dask ``WorkerPlugin`` carrying it: the scheduler hands the plugin to
every worker that is running now and to every worker that joins later, and on each the plugin
points jitbridge's cache folder where asked and imports the bundle there, before the worker
takes any task.

The bundle is not signed, on purpose: it travels inside a plugin, which is code the client
runs on the workers, so whoever could forge the bundle could run anything there already; a
key sent along with it would prove nothing more. Each entry is still checked on import, as
``jitbridge cache import`` does (key, checksum, allow-list, size caps).

Workers that share a cache folder (processes on one machine, or a shared filesystem) share
its entries even without shipping; the cache's per-entry lock makes one of them compile a
missing entry while the others wait for it and load it.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import os
import tempfile
import types
from pathlib import Path
from typing import Any, Iterable

from distributed.diagnostics.plugin import WorkerPlugin

from .. import config, errors, telemetry
from ..cache import bundle
from ..cache.store import current_store
from ..frontend import deps
from ..frontend.dispatcher import Dispatcher
from ..frontend.kernel import Kernel

PLUGIN_PREFIX = "jitbridge-cache-"

# On a worker: {plugin name: what its setup imported, or why it failed}.
_REPORTS: dict[str, dict[str, Any]] = {}


def names_of(objects: Iterable[Any]) -> set[str]:
    """The names cache entries are filed under for these functions and kernels: each ``jb.jit``
    function or ``jb.kernel`` and every one it reaches; for a plain function (a library kernel
    such as ``K.softmax``), every one it reaches, through globals, closures, defaults, module
    attributes and the containers holding them; for a module, everything defined in it."""
    names: set[str] = set()
    seen: set[int] = set()
    for obj in objects:
        if isinstance(obj, types.ModuleType):
            prefix = obj.__name__
            members = [v for v in vars(obj).values() if (getattr(v, "__module__", None) or "").startswith(prefix)]
            _reach(members, names, seen)
        elif isinstance(obj, (Kernel, Dispatcher)) or inspect.isfunction(obj):
            _reach(obj, names, seen)
        else:
            raise errors.ArgumentError("ship_cache(kernels=...) takes jb.jit functions, jb.kernels, library "
                                       "kernels and modules", where=errors.user_location(),
                                       values={"got": repr(obj)},
                                       fix="pass the functions or kernels the workers will run")
    return names


def _reach(obj: Any, names: set[str], seen: set[int]) -> None:
    if id(obj) in seen or isinstance(obj, (types.ModuleType, type)):
        return
    seen.add(id(obj))
    if isinstance(obj, (list, tuple, set, frozenset)):
        for item in obj:
            _reach(item, names, seen)
        return
    if isinstance(obj, dict):
        for item in obj.values():
            _reach(item, names, seen)
        return
    if isinstance(obj, (Kernel, Dispatcher)):
        names.add(obj.jb_name)
        obj = obj.py_func
    if isinstance(obj, functools.partial):
        _reach((obj.func, obj.args, obj.keywords), names, seen)
        return
    if not inspect.isfunction(obj):
        return
    for chain in deps._referenced(obj.__code__):
        _reach(_resolve(obj.__globals__, chain), names, seen)
    _reach([cell.cell_contents for cell in obj.__closure__ or () if _filled(cell)], names, seen)
    _reach(obj.__defaults__ or (), names, seen)


def _resolve(scope: dict[str, Any], chain: tuple[str, ...]) -> Any:
    """What ``a.b.c`` in a function's code refers to, following module attributes."""
    found = scope.get(chain[0]) if chain else None
    for attribute in chain[1:]:
        if not isinstance(found, types.ModuleType):
            break
        found = getattr(found, attribute, None)
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _prebuild(objects: Iterable[Any]) -> None:
    """Kernels with declared signatures are compiled (or loaded) here first, so that their
    entries exist to be shipped (``jb.jit`` functions with signatures compiled when defined)."""
    for obj in objects:
        if isinstance(obj, Kernel):
            for signature in obj.declared_signatures:
                obj.compile(signature)


def bundle_bytes(kernels: Iterable[Any] | None = None) -> tuple[bytes, int]:
    """(bundle of this process's cache, number of entries in it): every valid entry, or only
    those of ``kernels``; warns about given kernels that have no entry to ship."""
    store = current_store()
    entries = None
    if kernels is not None:
        kernels = list(kernels)
        _prebuild(kernels)
        wanted = names_of(kernels)
        entries, found = [], set()
        for info in store.entries():
            try:
                name = store.load_meta(info).get("name")
            except Exception:  # an entry that does not check out is not exported either
                continue
            if name in wanted:
                entries.append(info)
                found.add(name)
        _warn_unbuilt(kernels, found, store.root)
    with tempfile.TemporaryDirectory(prefix="jitbridge-ship-") as folder:
        path = Path(folder) / "cache.zip"
        count = bundle.export(store, path, entries)
        return path.read_bytes(), count


def _warn_unbuilt(kernels: list[Any], found: set[str], root: Path) -> None:
    missing = [getattr(k, "jb_name", None) or getattr(k, "__name__", repr(k)) for k in kernels
               if not isinstance(k, types.ModuleType) and not (names_of([k]) & found)]
    if missing:
        errors.warn_cache(f"nothing compiled to ship for {', '.join(missing)}: the workers will compile "
                          "it themselves", root,
                          "run it once on small data of the real dtypes (or `jitbridge compile`) before ship_cache")


def install(data: bytes, cache_dir: str | None, name: str) -> dict[str, Any]:
    """On a worker: point jitbridge's cache folder at ``cache_dir`` (None: the worker's
    ``JITBRIDGE_CACHE_DIR``, read again now, since a worker may have imported jitbridge before
    Dask applied its ``env``) and import the bundle there."""
    report: dict[str, Any] = {"pid": os.getpid()}
    try:
        if cache_dir is None:
            config.reload()
        else:
            config.settings.cache_dir = Path(cache_dir)
        store = current_store()
        report["cache_dir"] = str(store.root)
        with tempfile.TemporaryDirectory(prefix="jitbridge-ship-") as folder:
            path = Path(folder) / "cache.zip"
            path.write_bytes(data)
            imported, rejected = bundle.import_(store, path, trust_unsigned=True)
        report.update(imported=imported, rejected=rejected)
    except Exception as exc:
        report["error"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _REPORTS[name] = report
    return report


class CachePlugin(WorkerPlugin):
    """Carries a bundle to every worker, present and future (see the module docstring).
    Named after the bundle's contents: shipping the same bundle again changes nothing, and
    bundles of different kernels are all kept for workers that join later."""

    idempotent = True

    def __init__(self, data: bytes, cache_dir: str | None = None) -> None:
        self.data = data
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        digest = hashlib.sha256(data + (self.cache_dir or "").encode()).hexdigest()[:16]
        self.name = PLUGIN_PREFIX + digest

    async def setup(self, worker: Any) -> None:
        await asyncio.to_thread(install, self.data, self.cache_dir, self.name)


def _report(name: str | None = None) -> dict[str, Any]:
    return dict(_REPORTS.get(name, {})) if name is not None else {k: dict(v) for k, v in _REPORTS.items()}


def ship_cache(client: Any, kernels: Iterable[Any] | None = None,
               cache_dir: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Send this process's compiled kernels to every worker of ``client``'s cluster, now and
    whenever a worker joins; returns, per worker present now, the entries it imported, those
    it rejected (and why), its cache folder and pid.

    ``kernels``: only the entries of these ``jb.jit`` functions, ``jb.kernel``s, library
    kernels or modules (default: every entry). ``cache_dir``: the folder each worker's cache
    is pointed at (default: its own ``JITBRIDGE_CACHE_DIR``)."""
    data, count = bundle_bytes(kernels)
    plugin = CachePlugin(data, None if cache_dir is None else os.fspath(cache_dir))
    try:
        client.register_plugin(plugin, name=plugin.name)
        reports = client.run(_report, plugin.name)
    except errors.JitBridgeError:
        raise
    except Exception as exc:
        raise errors.CacheError(f"could not ship the cache to the cluster's workers: {exc}",
                                values={"bundle": f"{count} entries, {len(data)} bytes"},
                                fix="check that the same jitbridge version is installed on every worker") from exc
    return {worker: {**report, "shipped": count} for worker, report in reports.items()}


def shipped(client: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """What every shipped bundle did on each worker, including workers that joined later:
    ``{worker: {plugin name: report}}``."""
    return client.run(_report)


def worker_stats(client: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """``jb.stats()`` of every worker process, by worker address."""
    return client.run(telemetry.stats)
