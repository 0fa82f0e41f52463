"""The CPU backend: a kernel's body, loops and launchers, and what to do with the code a
launcher returns.

Launchers are the disk-cached units; their cache key covers the body (its fingerprint) and the
generated loop and launcher source. Dispatchers come from the ``compiler`` the frontend hands
in (its caching dispatcher), so this module never imports the frontend.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import numba
import numpy as np

from .. import errors
from . import cpu, cpu_lowering, cpu_support
from .spec import KernelSpec

INTP_MAX = int(np.iinfo(np.intp).max)


class Compiler(Protocol):
    """Makes the dispatchers a CPU kernel is built from (the frontend's, with its cache)."""

    def body(self, py_func: Callable[..., Any], options: dict[str, Any]) -> Any: ...

    def loop(self, fn: Callable[..., Any], options: dict[str, Any]) -> Any: ...

    def launcher(self, fn: Callable[..., Any], options: dict[str, Any], variant: str, key_text: str) -> Any: ...


class CpuBackend:
    name = "cpu"

    def unavailable_reason(self) -> str | None:
        return None

    def prepare(self, spec: KernelSpec, compiler: Compiler) -> "CpuKernel":
        return CpuKernel(spec, compiler)


BACKEND = CpuBackend()


class CpuKernel:
    """One kernel's CPU code, built on first use and kept."""

    def __init__(self, spec: KernelSpec, compiler: Compiler) -> None:
        self.spec = spec
        self.facts = spec.facts
        self._compiler = compiler
        options = dict(spec.options)
        options.setdefault("error_model", "numpy")
        self.options = {"nopython": True, **options}
        body_options = dict(self.options)
        if body_options.get("inline", "never") == "never":
            body_options["forceinline"] = True
        self.body = compiler.body(spec.py_func, body_options)
        self._loops: dict[tuple[tuple[int, ...] | None, bool], Any] = {}
        self.launchers: dict[str, Any] = {}
        self.extents = tuple(sorted({(e.arg, e.axis, e.dim) for e in self.facts.extents}))
        written = self.facts.written
        self.overlap_checks = tuple((w, o) for w in sorted(written) for o in range(spec.nargs)
                                    if o != w and not (o in written and o < w))

    def plan(self, mode: str, pattern: tuple[int, ...] | None = None) -> cpu.Plan:
        return cpu.Plan(
            ndim=self.spec.ndim, nargs=self.spec.nargs, mode=mode, extents=self.extents,
            overlap_checks=() if pattern is not None or mode == "overlap" else self.overlap_checks,
            pattern=pattern, atomic_only=self.facts.atomic_only(), privatized=self.facts.privatizable())

    def plan_named(self, variant: str) -> cpu.Plan:
        mode, _, pattern = variant.partition("@")
        return self.plan(mode, tuple(int(p) for p in pattern.split(",")) if pattern else None)

    def launcher(self, plan: cpu.Plan) -> Any:
        found = self.launchers.get(plan.variant)
        if found is None:
            found = self.launchers[plan.variant] = self._build(plan)
        return found

    def _loop(self, plan: cpu.Plan) -> Any:
        noalias = plan.mode != "overlap"
        key = (plan.pattern, noalias)
        found = self._loops.get(key)
        if found is None:
            fn = _function(cpu.loop_source(plan), "loop", {"body": self.body, "nonneg": cpu_support.nonneg},
                           self.spec, f"<loop:{plan.variant}>")
            found = self._loops[key] = self._compiler.loop(fn, {k: v for k, v in self.options.items() if k != "inline"})
            if noalias:
                cpu_lowering.noalias_flags(found)
        return found

    def _build(self, plan: cpu.Plan) -> Any:
        loop = self._loop(plan)
        launch_text = cpu.launcher_source(plan)
        fn = _function(launch_text, "launch", {**cpu_support.SUPPORT, "loop": loop}, self.spec,
                       f"<launch:{plan.variant}>")
        options = {k: v for k, v in self.options.items() if k != "inline"}
        options.update(nogil=True, parallel=plan.mode == "parallel")
        key_text = launch_text + cpu.loop_source(plan) + repr(sorted(self.body.targetoptions.items())) \
            + repr(self.spec.locals)
        return self._compiler.launcher(fn, options, plan.variant, key_text)

    # -- launching ------------------------------------------------------------------------

    def launch(self, shape: tuple[int, ...], args: tuple[Any, ...], limit: int) -> None:
        """A launch with ``limit`` (serial below it, parallel from it). Raises the frontend's
        NeedsConversion (before running anything) when an argument must be converted first."""
        if math.prod(shape) >= limit:
            code = self.launcher(self.plan("parallel"))(*shape, *args, numba.get_num_threads())
        else:
            code = self.launcher(self.plan("serial"))(*shape, *args, limit)
        if code:
            self.after(code, shape, args, limit)

    def after(self, code: int, shape: tuple[int, ...], args: tuple[Any, ...], limit: int) -> None:
        """What a launcher handed back: run in parallel, run around overlapping arguments, or
        report an array too short for the domain."""
        if code == cpu.WANTS_PARALLEL:
            code = self.launcher(self.plan("parallel"))(*shape, *args, numba.get_num_threads())
        if code == cpu.ALIASED:
            code = self._aliased(shape, args, limit)
        if code > 0:
            self._too_short(*self.extents[code - 1], shape, args)

    def _aliased(self, shape: tuple[int, ...], args: tuple[Any, ...], limit: int) -> int:
        """Identical arrays passed twice (``k[n](x, x)``) share one name in the compiled loop;
        arrays that partly overlap run serially, in index order, with no ``noalias`` promise."""
        pattern = _identity_pattern(args)
        partial = any(np.may_share_memory(args[w], args[o]) and pattern[w] != pattern[o]
                      for w, o in self.overlap_checks
                      if isinstance(args[w], np.ndarray) and isinstance(args[o], np.ndarray))
        if partial:
            return self.launcher(self.plan("overlap"))(*shape, *args, INTP_MAX)
        if math.prod(shape) < limit:
            return self.launcher(self.plan("serial", pattern))(*shape, *args, limit)
        return self.launcher(self.plan("parallel", pattern))(*shape, *args, numba.get_num_threads())

    def _too_short(self, arg: int, axis: int, dim: int, shape: tuple[int, ...], args: tuple[Any, ...]) -> None:
        raise errors.array_too_short(self.spec.name, self.spec.arg_names[arg],
                                     self.spec.py_func.__code__.co_varnames[dim], axis, np.shape(args[arg]),
                                     shape, dim)


def _identity_pattern(args: tuple[Any, ...]) -> tuple[int, ...]:
    """For each argument, the first argument that is the very same array view."""
    pattern: list[int] = []
    for k, a in enumerate(args):
        same = k
        if isinstance(a, np.ndarray):
            for j in range(k):
                b = args[j]
                if (isinstance(b, np.ndarray) and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
                        and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype):
                    same = pattern[j]
                    break
        pattern.append(same)
    return tuple(pattern)


def _function(text: str, name: str, namespace: dict[str, Any], spec: KernelSpec, tag: str) -> Any:
    scope = {**namespace, "__name__": spec.py_func.__module__}
    exec(compile(text, f"<jitbridge {spec.name} {tag}>", "exec"), scope)
    fn = scope[name]
    fn.__qualname__ = f"{spec.py_func.__qualname__}.{tag}"
    return fn
