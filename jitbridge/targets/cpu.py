"""The CPU target: a launch becomes a ``prange`` loop over the outer launch dimension
calling the kernel body, which LLVM inlines, so numba's parfors spread it over threads and
LLVM vectorizes the innermost loop. Small launches use a serial twin that skips the thread pool.
"""
from __future__ import annotations

import types
from typing import Any

import numba

from .. import config

_threads_set = False


@config.on_change
def apply_thread_setting(settings: config.Settings) -> None:
    """Honour JITBRIDGE_NUM_THREADS for this thread's parallel code (numba's count is per thread;
    its pool size is fixed when numba starts, so more threads than that cannot be had)."""
    global _threads_set
    wanted = settings.num_threads
    if wanted is not None:
        numba.set_num_threads(min(wanted, numba.config.NUMBA_NUM_THREADS))
        _threads_set = True
    elif _threads_set:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        _threads_set = False


# Launch variants: which loop of the nest is the ``prange`` (None: all serial).
VARIANTS = {"serial": None, "parallel": 0, "parallel-inner": 1}
# An outer dimension shorter than this cannot keep every thread busy; a longer inner one can.
_OUTER_MIN = 4 * numba.config.NUMBA_NUM_THREADS


def choose_variant(dims: tuple[int, ...], total: int) -> str:
    """Serial below the threshold (thread wake-up costs more than it saves); otherwise split
    the outer dimension, or the second one when the outer is too short to share out."""
    if total < config.settings.serial_threshold:
        return "serial"
    if len(dims) > 1 and dims[0] < _OUTER_MIN <= dims[1]:
        return "parallel-inner"
    return "parallel"


def launcher_source(ndim: int, nargs: int, variant: str) -> str:
    """Python source of the launch loop nest; the same text for every kernel of this shape."""
    dims = [f"n{d}" for d in range(ndim)]
    index = [f"i{d}" for d in range(ndim)]
    args = [f"a{k}" for k in range(nargs)]
    lines = [f"def launch({', '.join(dims + args)}):"]
    for d in range(ndim):
        loop = "prange" if VARIANTS[variant] == d else "range"
        lines.append("    " * (d + 1) + f"for {index[d]} in {loop}({dims[d]}):")
    lines.append("    " * (ndim + 1) + f"body({', '.join(index + args)})")
    return "\n".join(lines) + "\n"


def launcher_function(body: Any, ndim: int, nargs: int, variant: str, module: str, qualname: str) -> types.FunctionType:
    """Build the launch loop around ``body`` (a jitted dispatcher that LLVM inlines; numba's own
    ``inline="always"`` would stop the serial loop vectorizing when the body calls another
    jitted function)."""
    namespace: dict[str, Any] = {"prange": numba.prange, "body": body, "__name__": module}
    # numba loses an exception raised inside a prange (none at all in 1-D, SystemError in 2-D),
    # so a bounds-checked body runs in serial loops: an index out of bounds must raise IndexError.
    checked = body.targetoptions.get("boundscheck") if numba.config.BOUNDSCHECK is None else numba.config.BOUNDSCHECK
    loops = "serial" if checked else variant
    code = compile(launcher_source(ndim, nargs, loops), f"<jitbridge-launch {qualname} {variant}>", "exec")
    exec(code, namespace)
    fn = namespace["launch"]
    fn.__qualname__ = f"{qualname}.<launch:{variant}>"
    return fn
