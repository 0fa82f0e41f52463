"""``@jb.jit``: a drop-in for ``numba.jit``/``numba.njit`` that is always nopython and caches
by content when ``cache=True``."""
from __future__ import annotations

import inspect
from typing import Any, Callable

from numba.core import sigutils

from .. import config, errors
from .dispatcher import Dispatcher


def _signatures(spec: Any) -> list[Any] | None:
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)) and not sigutils.is_signature(spec):
        return list(spec)
    return [spec]


def jit(signature_or_function: Any = None, locals: dict[str, Any] | None = None, cache: bool = False,
        pipeline_class: Any = None, boundscheck: bool | None = None, vector_math: bool | None = None,
        **options: Any) -> Any:
    """Compile ``fn`` in nopython mode, accepting numba's options unchanged.

    ``cache=True`` keeps the machine code in jitbridge's content-addressed cache, which unlike
    numba's is keyed on what the code is, not where its file lives. ``vector_math=False`` (or
    ``JITBRIDGE_VECTOR_MATH=0``) keeps ``math.*``/``np.*`` transcendentals as numba's libm calls
    instead of SIMD versions in vectorized loops (docs/guide.md, "Vector math").
    """
    if vector_math is None:
        vector_math = config.settings.vector_math
    if options.get("forceobj", False) or options.get("nopython", True) is False:
        raise errors.ArgumentError(
            "jitbridge compiles in nopython mode only",
            where=errors.user_location(),
            values={"options": {k: options[k] for k in ("nopython", "forceobj") if k in options}},
            fix="drop nopython=False/forceobj=True; code that needs object mode should stay plain Python",
        )
    target = options.pop("_target", options.pop("target", "cpu"))
    if target != "cpu":
        raise errors.ArgumentError(
            f"jb.jit compiles for the CPU; target={target!r} is not a jit target",
            where=errors.user_location(),
            fix="use @jb.kernel and launch(..., target='cuda') for GPU code",
        )
    options.pop("forceobj", None)
    options["nopython"] = True
    if boundscheck is None and config.settings.boundscheck:
        boundscheck = True
    if boundscheck is not None:
        options["boundscheck"] = boundscheck

    if callable(signature_or_function) and not sigutils.is_signature(signature_or_function):
        return _wrap(signature_or_function, None, locals, cache, pipeline_class, options, vector_math)
    sigs = _signatures(signature_or_function)

    def decorate(fn: Callable[..., Any]) -> Dispatcher:
        return _wrap(fn, sigs, locals, cache, pipeline_class, options, vector_math)

    return decorate


def _wrap(fn: Callable[..., Any], sigs: list[Any] | None, locals: dict[str, Any] | None, cache: bool,
          pipeline_class: Any, options: dict[str, Any], vector_math: bool) -> Dispatcher:
    if not inspect.isfunction(fn):
        raise errors.ArgumentError(
            "jb.jit decorates plain Python functions",
            where=errors.user_location(),
            values={"got": repr(fn)},
            fix="apply @jb.jit directly to a def",
        )
    extra = {"pipeline_class": pipeline_class} if pipeline_class is not None else {}
    disp = Dispatcher(fn, locals=locals or {}, targetoptions=dict(options), jb_cache=cache,
                      vector_math=vector_math, **extra)
    if sigs:
        for sig in sigs:
            try:
                disp.compile(sig)
            except Exception as exc:
                translated = disp.translate(exc, sigutils.normalize_signature(sig)[0])
                if translated is exc:
                    raise
                raise translated from exc
        disp.disable_compile()
    return disp
