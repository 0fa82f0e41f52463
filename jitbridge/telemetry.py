"""Per-kernel counters and timings, why something recompiled, and hooks that show a program
each compile, cache hit, cache miss and launch as it happens.

Counters are plain ints in a dict keyed by the kernel's qualified name; updating one is a
dict lookup and an add, cheap enough for the launch path. Hooks cost nothing while none is
registered: compiles are numba's own ``numba:compile`` events (``numba.core.event``), cache
hits and misses are reported by the cache adapter, and launches are timed by a launch path
that is swapped in only while a ``"launch"`` hook is registered (``instrumentation``), so an
unwatched launch runs exactly the code it runs without telemetry.

    import logging, jitbridge as jb
    log = logging.getLogger("myapp.kernels")
    handle = jb.telemetry.on("compile", lambda e: log.info("compiled %s%s in %.2f s", e.name, e.signature, e.seconds))
    ...
    handle.remove()
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, NamedTuple

from numba.core import event as numba_event

from . import config, errors

log = logging.getLogger("jitbridge")

EVENTS = ("compile", "cache_hit", "cache_miss", "launch")
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


class Event(NamedTuple):
    """What a hook receives. ``name`` is the function's or kernel's qualified name and
    ``signature`` the argument types as numba prints them, e.g. ``(float64, array(float64, 1d, C))``.

    - ``compile``: ``seconds`` compiling (numba's front end and LLVM); ``variant`` is the
      kernel launch variant (``serial``, ``parallel``, ...), None for a ``jb.jit`` function.
    - ``cache_hit``: ``seconds`` loading the entry; ``variant`` as for compile.
    - ``cache_miss``: ``reason``, in words (``source changed``, ``new signature ...``).
    - ``launch``: a kernel launch (``dims`` its domain) or a call of a ``jb.jit`` function
      from Python (``dims`` None); ``seconds`` the whole call (a first call includes its
      compile or cache load); ``shapes``, ``dtypes`` and ``nbytes`` those of its array
      arguments (``nbytes`` counts each array once).
    """

    kind: str
    name: str
    signature: str = ""
    variant: str | None = None
    seconds: float = 0.0
    reason: str | None = None
    dims: tuple[int, ...] | None = None
    shapes: tuple[tuple[int, ...], ...] = ()
    dtypes: tuple[str, ...] = ()
    nbytes: int = 0


Hook = Callable[[Event], None]
_hooks: dict[str, list[Hook]] = {kind: [] for kind in EVENTS}
_switches: list[Callable[[bool], None]] = []
_lock = threading.RLock()


class Handle:
    """A registered hook; ``remove()`` unregisters it (once; later calls do nothing). Also a
    context manager that removes the hook on exit."""

    def __init__(self, kind: str, callback: Hook) -> None:
        self.kind, self.callback = kind, callback
        self._active = True

    def remove(self) -> None:
        with _lock:
            if not self._active:
                return
            self._active = False
            hooks = _hooks[self.kind]
            hooks.remove(self.callback)
            if self.kind == "launch" and not hooks:
                for switch in _switches:
                    switch(False)

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"<jitbridge telemetry hook on {self.kind!r}{'' if self._active else ' (removed)'}>"


def on(event: str, callback: Hook) -> Handle:
    """Call ``callback(event)`` on every ``event``: "compile", "cache_hit", "cache_miss" or
    "launch" (see ``Event``). Hooks run in the thread that compiled or launched; an exception
    in one is logged and never fails the compile or launch. Returns a handle with
    ``.remove()``."""
    if event not in EVENTS:
        raise errors.ArgumentError(f"there is no telemetry event {event!r}", where=errors.user_location(),
                                   values={"event": repr(event)}, fix=f"use one of {', '.join(EVENTS)}")
    if not callable(callback):
        raise errors.ArgumentError("a telemetry hook must be callable", where=errors.user_location(),
                                   values={"callback": repr(callback)}, fix="pass a function taking one Event")
    with _lock:
        first_launch_hook = event == "launch" and not _hooks["launch"]
        _hooks[event].append(callback)
        if first_launch_hook:
            for switch in _switches:
                switch(True)
    return Handle(event, callback)


def wanted(kind: str) -> bool:
    """Whether any hook listens for ``kind`` (so the caller can skip building the event)."""
    return bool(_hooks[kind])


def emit(kind: str, **fields: Any) -> None:
    """Send an event to the hooks registered for ``kind`` (nothing to do when there are none)."""
    hooks = _hooks[kind]
    if not hooks:
        return
    event = Event(kind, **fields)
    for hook in list(hooks):
        try:
            hook(event)
        except Exception:
            log.exception("telemetry hook %r failed on %s of %s", hook, kind, event.name)


def instrumentation(switch: Callable[[bool], None]) -> Callable[[bool], None]:
    """Register ``switch``: called with True when the first "launch" hook is registered and
    with False when the last is removed (now, too, if launch hooks exist already). The
    frontend swaps its timed launch and call paths in and out with it."""
    with _lock:
        _switches.append(switch)
        if _hooks["launch"]:
            switch(True)
    return switch


class _CompileListener(numba_event.Listener):
    """numba's ``numba:compile`` events for jitbridge's dispatchers: counted in ``stats()`` and
    sent to "compile" hooks. Bodies and loops of a kernel (``jb_counted`` False) are part of
    their launcher's compile; numba's own dispatchers are not ours to count. Compiles nest
    (a callee compiles inside its caller) and run under numba's compiler lock: a stack of
    start times is enough."""

    def __init__(self) -> None:
        self._started: list[float] = []

    def on_start(self, event: Any) -> None:
        if getattr(event.data["dispatcher"], "jb_counted", False):
            self._started.append(time.perf_counter())

    def on_end(self, event: Any) -> None:
        dispatcher = event.data["dispatcher"]
        if not getattr(dispatcher, "jb_counted", False):
            return
        seconds = time.perf_counter() - self._started.pop()
        # numba adds the overload before the end event only when the compile succeeded (its
        # Event.is_failed reads the other way round in numba 0.68, so it is not asked)
        if tuple(event.data["args"]) not in dispatcher.overloads:
            return
        name = dispatcher.jb_name
        count(name, "compiles")
        count(name, "compile_seconds", seconds)
        emit("compile", name=name, variant=dispatcher.jb_variant, signature=dispatcher.jb_arguments(event.data["args"]),
             seconds=seconds)


_listener: _CompileListener | None = None


def listen() -> None:
    """Start listening to numba's compile events (once per process; at the first compile,
    not at import)."""
    global _listener
    if _listener is None:
        _listener = _CompileListener()
        numba_event.register("numba:compile", _listener)
