"""The CUDA target: the same kernel body as a ``cuda.jit`` device function, launched over a
grid that covers the domain. numba.cuda is imported here only, and only when asked for."""
from __future__ import annotations

import functools
import math
from typing import Any

from .. import errors

_THREADS = 256


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not (kept: probing costs ~0.3 s)."""
    try:
        from numba import cuda
    except Exception as exc:
        return f"numba.cuda cannot be imported ({exc}); install jitbridge[cuda]"
    try:
        if cuda.is_available():
            return None
    except Exception as exc:
        return f"the CUDA driver failed: {exc}"
    return "no CUDA GPU or driver is present on this machine"


def is_available() -> bool:
    return unavailable_reason() is None


def require() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise errors.TargetUnavailableError(
            "the CUDA target is not usable here",
            where=errors.user_location(),
            values={"reason": reason},
            fix="launch with target='cpu' (or 'auto' to fall back), or run on a machine with an NVIDIA GPU",
        )


def launcher_source(ndim: int, nargs: int) -> str:
    """One thread per index; threads past the domain's end return at once."""
    dims = [f"n{d}" for d in range(ndim)]
    index = [f"i{d}" for d in range(ndim)]
    args = [f"a{k}" for k in range(nargs)]
    grid = "cuda.grid(1)" if ndim == 1 else f"cuda.grid({ndim})"
    inside = " and ".join(f"{i} < {n}" for i, n in zip(index, dims))
    target = index[0] if ndim == 1 else ", ".join(index)
    return (f"def launch({', '.join(dims + args)}):\n"
            f"    {target} = {grid}\n"
            f"    if {inside}:\n"
            f"        body({', '.join(index + args)})\n")


@functools.lru_cache(maxsize=None)
def _compiled(kernel: Any) -> Any:
    from numba import cuda

    body = cuda.jit(device=True)(kernel.py_func)
    namespace: dict[str, Any] = {"cuda": cuda, "body": body}
    exec(compile(launcher_source(kernel.ndim, len(kernel.arg_names)), f"<jitbridge-cuda {kernel.jb_name}>", "exec"),
         namespace)
    return cuda.jit(namespace["launch"])


def launch(kernel: Any, dims: tuple[int, ...], args: tuple[Any, ...]) -> None:
    require()
    if not math.prod(dims):
        return
    threads = (_THREADS,) if len(dims) == 1 else ((16, 16) if len(dims) == 2 else (8, 8, 4))
    blocks = tuple(-(-n // t) for n, t in zip(dims, threads))
    _compiled(kernel)[blocks, threads](*dims, *args)
