"""``@jb.jit``: a drop-in for ``numba.jit``/``numba.njit`` that caches by content when
``cache=True``.

Options mean what they mean in numba 0.68: ``nopython=False`` is accepted with numba's
deprecation warning and compiles in nopython mode; ``forceobj=True`` (and the loop-lifting
that comes with it) is numba's object mode, run by numba and not cached by jitbridge.
"""
from __future__ import annotations

import inspect
import warnings
from types import MappingProxyType
from typing import Any, Callable, Mapping

from numba.core import config as numba_config
from numba.core import extending, sigutils, typeinfer
from numba.core import errors as nb_errors

from .. import config, errors
from .dispatcher import Dispatcher

_NOPYTHON_FALSE = ("The keyword argument 'nopython=False' was supplied. From Numba 0.59.0 the default is True "
                   "and supplying this argument has no effect.")


def _signatures(spec: Any) -> list[Any] | None:
    if spec is None:
        return None
    if isinstance(spec, (list, tuple)) and not sigutils.is_signature(spec):
        return list(spec)
    return [spec]


def _apply_numba_mode(options: dict[str, Any]) -> None:
    """numba's checks on ``nopython``/``forceobj``, and its reading of them: object mode only
    with ``forceobj=True``."""
    for removed in ("argtypes", "restype"):
        if removed in options:
            raise nb_errors.DeprecationError(f"Deprecated keyword argument `{removed}`. Signatures should be passed "
                                             "as the first positional argument.")
    nopython, forceobj = options.get("nopython"), bool(options.get("forceobj", False))
    if nopython is not None and type(nopython) is not bool:
        raise errors.ArgumentError("nopython option must be a bool", where=errors.user_location(),
                                   values={"nopython": repr(nopython)}, fix="pass nopython=True or leave it out")
    if nopython is True and forceobj:
        raise errors.ArgumentError("Only one of 'nopython' or 'forceobj' can be True.", where=errors.user_location(),
                                   fix="drop one of them (jit compiles in nopython mode by default)")
    if nopython is False:
        warnings.warn(_NOPYTHON_FALSE, nb_errors.NumbaDeprecationWarning, stacklevel=3)
    options["nopython"] = not forceobj


def jit(signature_or_function: Any = None, locals: Mapping[str, Any] = MappingProxyType({}), cache: bool = False,
        pipeline_class: Any = None, boundscheck: bool | None = None, vector_math: bool | None = None,
        **options: Any) -> Any:
    """Compile ``fn`` as ``numba.jit`` would, accepting numba's options unchanged.

    ``cache=True`` keeps the machine code in jitbridge's content-addressed cache, which unlike
    numba's is keyed on what the code is, not where its file lives. ``vector_math=False`` (or
    ``JITBRIDGE_VECTOR_MATH=0``) keeps ``math.*``/``np.*`` transcendentals as numba's libm calls
    instead of SIMD versions in vectorized loops (docs/guide.md, "Vector math").
    """
    if vector_math is None:
        vector_math = config.settings.vector_math
    _apply_numba_mode(options)
    target = options.pop("_target", options.pop("target", "cpu"))
    if target != "cpu":
        raise errors.ArgumentError(
            f"jb.jit compiles for the CPU; target={target!r} is not a jit target",
            where=errors.user_location(),
            fix="use @jb.kernel and launch(..., target='cuda') for GPU code",
        )
    if boundscheck is None and config.settings.boundscheck:
        boundscheck = True
    if boundscheck is not None:
        options["boundscheck"] = boundscheck
    settings = {"locals": dict(locals), "cache": cache, "pipeline_class": pipeline_class, "options": options,
                "vector_math": vector_math}

    if callable(signature_or_function) and not sigutils.is_signature(signature_or_function):
        return _wrap(signature_or_function, None, **settings)
    sigs = _signatures(signature_or_function)

    def decorate(fn: Callable[..., Any]) -> Any:
        return _wrap(fn, sigs, **settings)

    return decorate


def _wrap(fn: Callable[..., Any], sigs: list[Any] | None, *, locals: dict[str, Any], cache: bool,
          pipeline_class: Any, options: dict[str, Any], vector_math: bool) -> Any:
    if extending.is_jitted(fn):
        raise errors.ArgumentError(
            f"A jit decorator was called on an already jitted function {fn}.",
            where=errors.user_location(),
            fix="decorate the function once; the original Python function is its .py_func attribute",
        )
    if not inspect.isfunction(fn):
        raise errors.ArgumentError(
            f"The decorated object is not a function (got type {type(fn)}).",
            where=errors.user_location(),
            values={"got": repr(fn)},
            fix="apply @jb.jit directly to a def",
        )
    if numba_config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: numba's switch for debugging as plain Python
        return fn
    extra = {"pipeline_class": pipeline_class} if pipeline_class is not None else {}
    disp = Dispatcher(fn, locals=locals, targetoptions=dict(options), jb_cache=cache, vector_math=vector_math,
                      **extra)
    if sigs:
        # registered with type inference first, so a signature's body can call the function itself
        with typeinfer.register_dispatcher(disp):
            for sig in sigs:
                _compile_eagerly(disp, sig)
        disp.disable_compile()
    return disp


def _compile_eagerly(disp: Dispatcher, sig: Any) -> None:
    try:
        disp.compile(sig)
    except nb_errors.TypingError as exc:
        translated = disp.translate(exc, sigutils.normalize_signature(sig)[0])
        if translated is exc:
            raise
        raise translated from exc
