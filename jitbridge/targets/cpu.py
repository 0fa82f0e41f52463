"""The CPU target: the Python source of a kernel's launch loops, and the compiled helpers
those loops call to check a launch and share it out.

A launch is three jitted functions:

- the *body*, the user's function, compiled to be inlined (``cpu_lowering``);
- a *loop* over a rectangle of the domain calling the body, compiled ``noalias`` so LLVM
  vectorizes its innermost dimension as it would a hand-written loop;
- a *launcher* that checks the arguments against the domain in compiled code and then runs the
  loop over the whole domain (serial), or once per thread over a slice of it (parallel, a
  ``prange`` over thread chunks). It returns 0, or a code that tells the caller what to do.

Serial launchers hand launches of ``limit`` indices or more back with ``WANTS_PARALLEL``, so a
small launch is one compiled call and a large one costs one extra call.
"""
from __future__ import annotations

import contextlib
import dataclasses

import numba

from .. import config
from . import source
from .source import Source

OK, ALIASED, WANTS_PARALLEL = 0, -1, -2
VARIANTS = ("serial", "parallel")
_threads_set = False


def register_thread_setting() -> None:
    """Honour JITBRIDGE_NUM_THREADS from now on (and whenever settings change). The frontend
    calls this at its first compile, not at import: setting numba's count starts its thread
    pool, which an import must not do."""
    config.on_change(apply_thread_setting)


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


@dataclasses.dataclass(frozen=True)
class Plan:
    """Everything that shapes one launcher's source (and so its cache key)."""

    ndim: int
    nargs: int
    mode: str  # "serial", "parallel" or "overlap" (serial, arguments may overlap: no noalias)
    extents: tuple[tuple[int, int, int], ...] = ()  # (arg, axis, launch dim) to check
    overlap_checks: tuple[tuple[int, int], ...] = ()  # (written arg, other arg) that must not overlap
    pattern: tuple[int, ...] | None = None  # arg -> the argument it is identical to
    atomic_only: tuple[int, ...] = ()  # args touched only by jb.atomic (plain ops when serial)
    privatized: tuple[tuple[int, str], ...] = ()  # (arg, merge op) per-thread copies when parallel

    @property
    def variant(self) -> str:
        if self.pattern is None or self.mode == "overlap":
            return self.mode
        return f"{self.mode}@{','.join(map(str, self.pattern))}"

    def unique_args(self) -> list[int]:
        pattern = self.pattern or tuple(range(self.nargs))
        return [k for k in range(self.nargs) if pattern[k] == k]


def loop_source(plan: Plan) -> str:
    """``loop(lo0, hi0[, lo1, hi1[, n2]], args...)``: the body over one rectangle."""
    pattern = plan.pattern or tuple(range(plan.nargs))
    src = Source()
    ranges = ["range(lo0, hi0)", "range(lo1, hi1)", "range(n2)"][: plan.ndim]
    with src.define("loop", _rect(plan.ndim) + source.args(plan.unique_args())):
        with contextlib.ExitStack() as nest:
            for index, rng in zip(source.indices(plan.ndim), ranges):
                nest.enter_context(src.block(f"for {index} in {rng}:"))
            # Launch indices are never negative; saying so (``nonneg``) lets LLVM drop the
            # wraparound of x[i], x[i + 1], ..., which otherwise turns vectorized loads and
            # stores into gathers.
            src.line(src.call("body", [f"nonneg({i})" for i in source.indices(plan.ndim)]
                              + [f"a{pattern[k]}" for k in range(plan.nargs)]))
    return src.text


def _rect(ndim: int) -> list[str]:
    """The loop's bounds parameters: a range of the first two dimensions, the third whole."""
    return ["lo0", "hi0"] + (["lo1", "hi1"] if ndim > 1 else []) + (["n2"] if ndim > 2 else [])


def launcher_source(plan: Plan) -> str:
    """``launch(n0[, n1[, n2]], args..., limit)``: checks, then the loop(s); returns a code.

    ``limit`` is the size from which a serial launcher hands the launch back, and the number of
    thread chunks for a parallel one (numba's thread count cannot be read from cached code)."""
    dims = source.dims(plan.ndim)
    src = Source()
    with src.define("launch", dims + source.args(range(plan.nargs)) + ["limit"]):
        for code, (arg, axis, dim) in enumerate(plan.extents, start=1):
            with src.block(f"if extent(a{arg}, {axis}) < n{dim}:"):
                src.line(f"return {code}")
        if plan.overlap_checks:
            with src.block("if " + " or ".join(f"overlaps(a{w}, a{o})" for w, o in plan.overlap_checks) + ":"):
                src.line(f"return {ALIASED}")
        unique = plan.unique_args()
        if plan.mode == "parallel":
            _parallel(src, plan, unique)
        else:
            if plan.mode == "serial":
                with src.block(f"if {' * '.join(dims)} >= limit:"):
                    src.line(f"return {WANTS_PARALLEL}")
            # ``zero`` is a run-time 0, so serial and parallel launchers share one loop
            # specialization (a literal 0 would be typed Literal[int](0) and compile it twice).
            whole = ["zero", "n0"] + (["zero", "n1"] if plan.ndim > 1 else []) + (["n2"] if plan.ndim > 2 else [])
            src.line("zero = n0 * 0")
            src.line(src.call("loop", whole + [f"as_private(a{k})" if k in plan.atomic_only else f"a{k}"
                                               for k in unique]))
        src.line(f"return {OK}")
    return src.text


def _parallel(src: Source, plan: Plan, unique: list[int]) -> None:
    """One loop call per thread chunk (``prange``), through per-thread copies of small atomic
    targets when they fit."""
    def chunked(passed: list[str]) -> None:
        with src.block("for c in prange(nc):"):
            if plan.ndim == 1:
                src.line("lo0, hi0 = c * n0 // nc, (c + 1) * n0 // nc")
            else:
                src.line("lo0, hi0, lo1, hi1 = chunk(c, nc, split, n0, n1)")
            src.line(src.call("loop", _rect(plan.ndim) + passed))

    src.line("nc = limit")
    src.line("split = split_dim(n0, n1, nc)" if plan.ndim > 1 else "split = 0")
    private = {arg: op for arg, op in plan.privatized if arg in unique}
    if private:
        total = " * ".join(source.dims(plan.ndim))
        with src.block("if " + " and ".join(f"private_fits(a{k}, nc, {total})" for k in private) + ":"):
            for k, op in private.items():
                src.line(f"p{k} = private_copies(a{k}, nc, {op!r})")
            chunked([f"as_private(p{k}[c])" if k in private else f"a{k}" for k in unique])
            for k, op in private.items():
                src.line(f"merge(a{k}, p{k}, {op!r})")
            src.line(f"return {OK}")
    chunked([f"a{k}" for k in unique])
