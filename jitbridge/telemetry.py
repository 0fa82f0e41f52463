"""Per-kernel counters and timings, and the log line that says why something recompiled.

Counters are plain ints in a dict keyed by the kernel's qualified name; updating one is a
dict lookup and an add, cheap enough for the launch path.
"""
from __future__ import annotations

import logging
from typing import Any

from . import config

log = logging.getLogger("jitbridge")

_FIELDS = ("compiles", "cache_hits", "cache_misses", "calls", "compile_seconds", "load_seconds")
_stats: dict[str, dict[str, Any]] = {}


@config.on_change
def configure_logging(settings: config.Settings) -> None:
    """Apply JITBRIDGE_LOG_LEVEL to the ``jitbridge`` logger; print to stderr unless the
    application has configured logging itself."""
    log.setLevel(settings.log_level)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("jitbridge %(levelname)s: %(message)s"))
        log.addHandler(handler)


def entry(name: str) -> dict[str, Any]:
    """The live counter dict for ``name`` (created on first use)."""
    found = _stats.get(name)
    if found is None:
        found = _stats[name] = {field: 0 for field in _FIELDS}
        found["recompile_reasons"] = []
    return found


def count(name: str, field: str, amount: float = 1) -> None:
    entry(name)[field] += amount


def note_recompile(name: str, reason: str) -> None:
    """Record and log why ``name`` missed the cache although it was cached before."""
    entry(name)["recompile_reasons"].append(reason)
    log.info("recompiling %s: %s", name, reason)


def stats() -> dict[str, dict[str, Any]]:
    """A snapshot: {qualified kernel name: {"compiles", "cache_hits", "cache_misses", "calls", ...}},
    for every kernel with something to report."""
    return {name: {k: (list(v) if isinstance(v, list) else v) for k, v in d.items()}
            for name, d in _stats.items() if any(d.values())}


def reset_stats() -> None:
    """Zero every counter. Entries are zeroed in place, not dropped: a kernel keeps its own
    entry so that counting a launch is one dict update."""
    for counters in _stats.values():
        for field in _FIELDS:
            counters[field] = 0
        counters["recompile_reasons"].clear()
