"""``explain``: what jitbridge knows about one jitted function or kernel, in words.

It answers what people otherwise dig out of numba's internals: where the code is defined, what
its cache key is made of, which specializations the disk cache holds for the code as it is
now (and, for those it does not, why), and whether the compiled loops run on SIMD registers
or what stops them (a libm call per element, an allocation, a call that was not inlined).
"""
from __future__ import annotations

import dataclasses
import re
from typing import Any

from numba.core.types import intp

from . import config, errors, telemetry
from .cache.numba_cache import ContentCache
from .frontend.diagnostics import split_top_level
from .frontend.dispatcher import Dispatcher
from .frontend.kernel import Kernel
from .simd_report import CodeReport, reasons, vectorizer_remarks
from .targets import cpu

_ARRAY_REPR = re.compile(r"Array\((\w+), (\d), '(\w)', (False|True), aligned=True\)")

def explain(obj: Any, signature: str | None = None) -> str:
    """A report on a ``@jb.jit`` function or ``@jb.kernel``: definition, cache key parts,
    cached specializations and the SIMD verdict of each one compiled or cached. ``signature``
    (numba syntax, e.g. ``"float64[::1], float64"``) compiles one more specialization first."""
    holders = _cache_holders(obj)
    fn = obj.py_func
    code = fn.__code__
    lines = [f"{obj.jb_kind} {obj.jb_name}", f"  defined at {code.co_filename}:{code.co_firstlineno}"]
    if signature is not None:
        _compile(obj, signature)
    first = next((h for h in holders if h.disk_cache.persistent), None)
    if first is None:
        lines.append("  cache: off for this function (cache=False); nothing is kept on disk")
    else:
        lines += _key_lines(first.disk_cache)
        lines += _cache_lines(holders)
    lines += _code_lines(obj, holders)
    record = telemetry.stats().get(obj.jb_name)
    if record:
        counters = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()
                             if k != "recompile_reasons" and v)
        lines.append(f"  this process: {counters}")
        for reason in record.get("recompile_reasons", []):
            lines.append(f"    recompiled: {reason}")
    return "\n".join(lines)


def _readable(signature: str) -> str:
    """``Array(float64, 1, 'C', False, aligned=True)`` as numba prints types elsewhere."""
    def array(m: re.Match) -> str:
        return f"{'readonly ' if m[4] == 'True' else ''}array({m[1]}, {m[2]}d, {m[3]})"

    return _ARRAY_REPR.sub(array, signature)


def _kernel_arguments(signature: str, kernel: Any) -> str:
    """A launcher's ``(int64, <args>, int64)->none`` as the kernel's own ``(<args>)``."""
    inner = signature.split("->")[0].strip()[1:-1]
    parts = split_top_level(inner)
    return "(" + ", ".join(parts[kernel.ndim:kernel.ndim + len(kernel.arg_names)]) + ")"


def _cache_holders(obj: Any) -> list[Dispatcher]:
    """The dispatchers whose specializations are cached: the function itself, or a kernel's
    launch variants."""
    if isinstance(obj, Kernel):
        return [obj.cpu.launcher(obj.cpu.plan(variant)) for variant in cpu.VARIANTS]
    if isinstance(obj, Dispatcher):
        return [obj]
    raise errors.ArgumentError(
        f"explain takes a @jb.jit function or a @jb.kernel, not {type(obj).__name__}",
        where=errors.user_location(), values={"object": repr(obj)[:80]},
        fix="decorate the function with @jitbridge.jit or @jitbridge.kernel",
    )


def _compile(obj: Any, signature: str) -> None:
    if isinstance(obj, Kernel):
        obj.compile(signature, parallel=False)
        return
    try:
        obj.compile(f"({signature},)" if "(" not in signature else signature)
    except Exception as exc:
        translated = obj.translate(exc, signature)
        raise (translated if translated is not exc else errors.ArgumentError(
            f"cannot compile {obj.jb_name} for {signature!r}: {exc}", values={"signature": signature},
            fix='write argument types the numba way, e.g. "float64[::1], float64"')) from exc


def _key_lines(cache: ContentCache) -> list[str]:
    fp = cache.fingerprint
    lines = [f"  cache key: content digest {fp.digest[:16]} (bytecode {fp.code[:12]}"
             f", {len(fp.deps)} dependenc{'y' if len(fp.deps) == 1 else 'ies'}) + argument types + target"
             " + options + CPU + versions"]
    for name, digest in sorted(fp.deps.items()):
        lines.append(f"    depends on {name} ({digest[:12]})")
    return lines


def _cache_lines(holders: list[Dispatcher]) -> list[str]:
    lines = [f"  disk cache: {config.settings.cache_dir}" + (" (disabled by JITBRIDGE_DISABLE_CACHE)"
                                                            if config.settings.disable_cache else "")]
    found = False
    for holder in holders:
        magic = tuple(holder.targetctx.codegen().magic_tuple())
        variant = f" [{holder.jb_variant}]" if holder.jb_variant else ""
        for spec in holder.disk_cache.records.specializations(magic):
            found = True
            sig = spec.signature
            shown = _kernel_arguments(_readable(sig), holder.jb_owner) if holder.jb_variant else _readable(sig)
            if spec.size is not None:
                lines.append(f"    cached{variant} {shown} ({spec.size // 1024} KiB)")
            else:
                lines.append(f"    stale{variant} {shown}: {spec.reason}")
    if not found:
        lines.append("    no specialization cached yet: the first call compiles and stores one")
    return lines


def _code_lines(obj: Any, holders: list[Dispatcher]) -> list[str]:
    """SIMD verdict per specialization and launch variant (those compiled in this process, else
    those cached), with the reasons LLVM gives where a loop did not vectorize."""
    if isinstance(obj, Kernel):
        n = obj.ndim
        argtypes = list(dict.fromkeys(tuple(sig[n:n + len(obj.arg_names)]) for holder in holders
                                      for sig in (list(holder.signatures) or _cached_signatures(holder))))
        work = [(types, f" [{variant}]", holder, (intp,) * n + types + (intp,))
                for types in argtypes for variant, holder in zip(cpu.VARIANTS, holders)]
    else:
        holder = holders[0]
        work = [(sig, "", holder, sig) for sig in (list(holder.signatures) or _cached_signatures(holder))]
    if not work:
        return ["  code: nothing compiled or cached to look at; call it once, or pass a signature"]
    lines = [] if holders[0].jb_vector_math else ["  vector math: off (vector_math=False or JITBRIDGE_VECTOR_MATH=0)"]
    for shown, variant, holder, sig in work:
        holder.compile(sig)
        lines.append(f"  code for ({', '.join(str(t) for t in shown)}){variant}:")
        report = CodeReport.from_asm(holder.inspect_asm(sig)).lines()
        lines += [f"    {line}" for line in report]
        if report[0].startswith("SIMD: no"):
            for why, fix in reasons(vectorizer_remarks(lambda: _fresh_compile(obj, sig))):
                lines.append(f"    not vectorized: {why}; fix: {fix}")
    return lines


def _fresh_compile(obj: Any, sig: tuple[Any, ...]) -> None:
    """Compile ``sig`` again from scratch (body and loop included for a kernel), so LLVM's
    optimizer runs, and reports, on every loop; nothing is cached or counted. For a kernel this
    is the serial launcher without its overlap checks: both variants run the same loop, and the
    checks' and numba's thread-pool code would add loops of their own to the report."""
    if isinstance(obj, Kernel):
        from .frontend.launchers import KernelCompiler
        from .targets.cpu_launch import CpuKernel

        twin = CpuKernel(obj.spec, KernelCompiler(obj, cache=False))
        twin.launcher(dataclasses.replace(twin.plan("serial"), overlap_checks=())).compile(sig)
    else:
        Dispatcher(obj.py_func, obj.locals, obj.targetoptions, jb_name=f"{obj.jb_name} (explain)",
                   jb_counted=False, vector_math=obj.jb_vector_math).compile(sig)


def _cached_signatures(holder: Dispatcher) -> list[tuple[Any, ...]]:
    """Argument types of the entries cached for the code as it is now."""
    return holder.disk_cache.records.cached_signatures(tuple(holder.targetctx.codegen().magic_tuple()))
