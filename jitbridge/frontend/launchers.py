"""The compiled pieces of one kernel on the CPU: its body, its loops and its launchers, each a
dispatcher built on first use and kept. Launchers are the disk-cached units; a launcher's cache
key covers the body (its fingerprint) and the generated loop and launcher source."""
from __future__ import annotations

import warnings
from typing import Any

from numba.core import types

from .. import atomic, errors
from ..targets import cpu, cpu_lowering, cpu_support
from ..targets.spec import KernelSpec
from . import analysis, deps
from .args import NeedsConversion
from .dispatcher import Dispatcher


class LaunchDispatcher(Dispatcher):
    """A launcher: typing an argument numba cannot pass as it is asks the caller to convert it."""

    def typeof_pyval(self, val: Any) -> Any:
        found = super().typeof_pyval(val)
        if found is types.pyobject or isinstance(found, (types.List, types.Set, types.DictType)) or (
                isinstance(found, types.Buffer) and not isinstance(found, types.Array)):
            raise NeedsConversion
        return found


class CpuLaunchers:
    def __init__(self, spec: KernelSpec, owner: Any, cache: bool, disjoint: frozenset[str]) -> None:
        self.spec = spec
        self.owner = owner
        self.cache = cache
        self.facts = analysis.analyze(spec.py_func, spec.ndim, atomic.OPS)
        _warn_races(spec, self.facts, disjoint)
        options = dict(spec.options)
        options.setdefault("error_model", "numpy")
        self.options = {"nopython": True, **options}
        body_options = {**self.options}
        if body_options.get("inline", "never") == "never":
            body_options["forceinline"] = True
        self.body = Dispatcher(spec.py_func, locals=dict(spec.locals), targetoptions=body_options,
                               pipeline_class=cpu_lowering.BodyCompiler, jb_name=spec.name, jb_owner=owner,
                               jb_counted=False, vector_math=spec.vector_math)
        self._loops: dict[tuple[tuple[int, ...] | None, bool], Dispatcher] = {}
        self.launchers: dict[str, Dispatcher] = {}
        self.extents = tuple(sorted({(e.arg, e.axis, e.dim) for e in self.facts.extents}))
        array_like = set(range(spec.nargs))
        self.overlap_checks = tuple((w, o) for w in sorted(self.facts.written) for o in sorted(array_like)
                                    if o != w and not (o in self.facts.written and o < w))

    def plan(self, mode: str, pattern: tuple[int, ...] | None = None) -> cpu.Plan:
        return cpu.Plan(
            ndim=self.spec.ndim, nargs=self.spec.nargs, mode=mode, extents=self.extents,
            overlap_checks=() if pattern is not None or mode == "overlap" else self.overlap_checks,
            pattern=pattern, atomic_only=self.facts.atomic_only(), privatized=self.facts.privatizable())

    def launcher(self, plan: cpu.Plan) -> Dispatcher:
        found = self.launchers.get(plan.variant)
        if found is None:
            found = self.launchers[plan.variant] = self._build(plan)
        return found

    def _loop(self, plan: cpu.Plan) -> Dispatcher:
        noalias = plan.mode != "overlap"
        key = (plan.pattern, noalias)
        found = self._loops.get(key)
        if found is None:
            fn = _function(cpu.loop_source(plan), "loop", {"body": self.body, "nonneg": cpu_support.nonneg},
                           self.spec, f"<loop:{plan.variant}>")
            found = self._loops[key] = Dispatcher(fn, targetoptions={k: v for k, v in self.options.items()
                                                                        if k != "inline"},
                                                  jb_name=self.spec.name, jb_owner=self.owner, jb_counted=False,
                                                  vector_math=self.spec.vector_math)
            if noalias:
                cpu_lowering.noalias_flags(found)
        return found

    def _build(self, plan: cpu.Plan) -> Dispatcher:
        loop = self._loop(plan)
        launch_text = cpu.launcher_source(plan)
        fn = _function(launch_text, "launch", {**cpu_support.SUPPORT, "loop": loop}, self.spec, f"<launch:{plan.variant}>")
        options = {k: v for k, v in self.options.items() if k not in ("inline", "locals")}
        options.update(nogil=True, parallel=plan.mode == "parallel")
        key_text = launch_text + cpu.loop_source(plan) + repr(sorted(self.body.targetoptions.items())) \
            + repr(self.spec.locals)
        launcher = LaunchDispatcher(fn, targetoptions=options, jb_cache=self.cache, jb_name=self.spec.name,
                                    jb_owner=self.owner, jb_variant=plan.variant,
                                    jb_fingerprint=lambda: deps.fingerprint(self.spec.py_func, extra=key_text),
                                    vector_math=self.spec.vector_math)
        return launcher


def _function(source: str, name: str, namespace: dict[str, Any], spec: KernelSpec, tag: str) -> Any:
    scope = {**namespace, "__name__": spec.py_func.__module__}
    exec(compile(source, f"<jitbridge {spec.name} {tag}>", "exec"), scope)
    fn = scope[name]
    fn.__qualname__ = f"{spec.py_func.__qualname__}.{tag}"
    return fn


def _warn_races(spec: KernelSpec, facts: analysis.BodyFacts, disjoint: frozenset[str]) -> None:
    """One RaceWarning per racy write, at the user's line, unless declared disjoint."""
    index_names = list(spec.py_func.__code__.co_varnames[: spec.ndim])
    for race in facts.races:
        name = spec.arg_names[race.arg]
        if name in disjoint:
            continue
        missing = ", ".join(index_names[d] for d in race.missing)
        message = errors.format_message(
            f"kernel '{spec.name}' writes '{name}' at an index that does not hold the launch "
            f"index {missing}: launch indices that differ only in {missing} may write the same element at once",
            where=(race.filename, race.line),
            fix=f"use jb.atomic (e.g. jb.atomic.add({name}, idx, value)) for shared updates, or declare the "
                f"writes disjoint with @jb.kernel(disjoint=[{name!r}]) if they never collide")
        warnings.warn_explicit(message, errors.RaceWarning, race.filename, race.line)
