"""Lock files: a record of exactly which code, versions and CPU a project's kernels were
built from, and a check that a later run is on the same ground.

``write`` fingerprints every ``jb.jit`` function and ``jb.kernel`` defined in the given
modules (the content hash behind the cache key: bytecode plus everything reached) together
with the Python/jitbridge/numba/llvmlite/NumPy versions and the CPU LLVM targets.
``differences`` recomputes all of it and says, per kernel and for the environment, what is
no longer the same, in the words the cache uses for a recompile. Same lock, same code: the
same machine code from the cache, and with deterministic mode the same bits.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from . import config, errors
from .cache import key as keys
from .cache import records
from .frontend import deps, prebuild
from .frontend.dispatcher import Dispatcher
from .frontend.kernel import Kernel
from .targets import cpu

FORMAT = 1


def _jitted(target: str) -> tuple[list[ModuleType], dict[str, Any]]:
    """The modules ``target`` names and every jitbridge function and kernel defined (not just
    imported) in them; with ``MODULE:NAME``, the one it names."""
    module_name, name = prebuild.split_target(target)
    if name is not None:
        obj = prebuild.find(target)
        if not isinstance(obj, (Kernel, Dispatcher)):
            raise errors.ArgumentError(f"{target} is not a jitbridge function or kernel", values={"found": repr(obj)[:80]},
                                       fix="name a @jb.jit function or @jb.kernel, or lock the whole module")
        return [sys.modules[obj.py_func.__module__]], {obj.jb_name: obj}
    modules = prebuild.import_target(module_name)
    found = {}
    for module in modules:
        for obj in vars(module).values():
            if isinstance(obj, (Kernel, Dispatcher)) and obj.py_func.__module__ == module.__name__:
                found[obj.jb_name] = obj
    return modules, found


def _entry(obj: Any) -> dict[str, Any]:
    fp = deps.fingerprint(obj.py_func)
    return {"kind": obj.jb_kind, "digest": fp.digest, "code": fp.code, "deps": fp.deps,
            "signatures": list(getattr(obj, "declared_signatures", ())) or [str(s) for s in obj.signatures]}


def build(targets: list[str]) -> dict[str, Any]:
    """The lock for the modules, packages or files in ``targets`` (each may end in ``:NAME``
    to lock one function or kernel)."""
    modules: dict[str, ModuleType] = {}
    found: dict[str, Any] = {}
    for target in targets:
        target_modules, jitted = _jitted(target)
        modules.update((m.__name__, m) for m in target_modules)
        found.update(jitted)
    kernels = {name: _entry(obj) for name, obj in sorted(found.items())}
    return {"format": FORMAT, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "targets": list(targets),
            "modules": list(modules), "versions": dict(keys.versions()), "machine": list(keys.machine()),
            "deterministic": config.settings.deterministic, "kernels": kernels}


def write(targets: list[str], path: Path) -> dict[str, Any]:
    lock = build(targets)
    path.write_text(json.dumps(lock, indent=1, sort_keys=True) + "\n")
    return lock


def read(path: Path) -> dict[str, Any]:
    try:
        lock = json.loads(path.read_text())
    except OSError as exc:
        raise errors.ArgumentError(f"cannot read the lock file {path}: {exc.strerror}", values={"path": str(path)},
                                   fix="write one first with: jitbridge lock MODULE... -o " + path.name) from None
    except ValueError as exc:
        raise errors.ArgumentError(f"{path} is not a jitbridge lock file: {exc}", values={"path": str(path)},
                                   fix="write it again with: jitbridge lock MODULE...") from None
    if not isinstance(lock, dict) or lock.get("format") != FORMAT or not isinstance(lock.get("kernels"), dict):
        raise errors.ArgumentError(f"{path} is not a jitbridge lock file of format {FORMAT}",
                                   values={"path": str(path), "format": repr(lock.get("format")
                                                                             if isinstance(lock, dict) else None)},
                                   fix="write it again with this jitbridge: jitbridge lock MODULE...")
    return lock


def differences(lock: dict[str, Any]) -> list[str]:
    """What is not as locked, one line each; empty when everything matches."""
    now = build(lock["targets"])
    found = []
    for name, old in sorted(lock["versions"].items()):
        if now["versions"].get(name) != old:
            found.append(f"version: {name} {old} -> {now['versions'].get(name)}")
    if now["machine"] != lock["machine"]:
        found.append(f"machine: {lock['machine'][1]} -> {now['machine'][1]}"
                     + (" (same CPU name, other features)" if lock["machine"][1] == now["machine"][1] else ""))
    if now["deterministic"] != lock["deterministic"]:
        found.append(f"setting: JITBRIDGE_DETERMINISTIC {int(lock['deterministic'])} -> {int(now['deterministic'])}")
    for name in sorted(set(lock["kernels"]) | set(now["kernels"])):
        old, new = lock["kernels"].get(name), now["kernels"].get(name)
        if new is None:
            found.append(f"{name}: gone (locked, but no longer defined)")
        elif old is None:
            found.append(f"{name}: new (not in the lock)")
        elif old["digest"] != new["digest"]:
            record = {**old, "versions": now["versions"], "machine": now["machine"]}
            current = keys.Fingerprint(new["digest"], new["code"], new["deps"])
            found.append(f"{name}: {records.reason(record, current, '', now['machine'])}")
    return found


def cached_fraction(lock: dict[str, Any]) -> tuple[int, int]:
    """(kernels whose code as locked has cache entries here, kernels locked): a quick read of
    whether a run will load or compile."""
    have = 0
    for name, entry in lock["kernels"].items():
        found = [records.read(name, variant) for variant in (None, *cpu.VARIANTS)]
        have += any((r.get("code"), r.get("deps")) == (entry["code"], entry["deps"]) for r in found)
    return have, len(lock["kernels"])
