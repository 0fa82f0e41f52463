"""What waits for jitbridge's first use instead of running at ``import jitbridge``."""
from __future__ import annotations

from .. import profiling, telemetry
from ..targets import cpu

_defined = _compiled = False


def first_definition() -> None:
    """At the first ``jb.jit`` or ``jb.kernel``: JITBRIDGE_PROFILE's whole-process profile
    starts here, before any launch it should count."""
    global _defined
    if not _defined:
        _defined = True
        profiling.from_settings()


def first_compile() -> None:
    """At the first compile (or cache load): numba's compile events, and the
    JITBRIDGE_NUM_THREADS setting (setting numba's thread count starts its thread pool)."""
    global _compiled
    if not _compiled:
        _compiled = True
        telemetry.listen()
        cpu.register_thread_setting()
