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

import dataclasses

import numba

from .. import config

OK, ALIASED, WANTS_PARALLEL = 0, -1, -2
VARIANTS = ("serial", "parallel")
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
    bounds = ["lo0", "hi0"] + (["lo1", "hi1"] if plan.ndim > 1 else []) + (["n2"] if plan.ndim > 2 else [])
    params = bounds + [f"a{k}" for k in plan.unique_args()]
    ranges = ["range(lo0, hi0)", "range(lo1, hi1)", "range(n2)"][: plan.ndim]
    lines = [f"def loop({', '.join(params)}):"]
    for d, rng in enumerate(ranges):
        lines.append("    " * (d + 1) + f"for i{d} in {rng}:")
    # Launch indices are never negative; saying so (``nonneg``) lets LLVM drop the wraparound
    # of x[i], x[i + 1], ..., which otherwise turns vectorized loads and stores into gathers.
    call_args = [f"nonneg(i{d})" for d in range(plan.ndim)] + [f"a{pattern[k]}" for k in range(plan.nargs)]
    lines.append("    " * (plan.ndim + 1) + f"body({', '.join(call_args)})")
    return "\n".join(lines) + "\n"


def launcher_source(plan: Plan) -> str:
    """``launch(n0[, n1[, n2]], args..., limit)``: checks, then the loop(s); returns a code.

    ``limit`` is the size from which a serial launcher hands the launch back, and the number of
    thread chunks for a parallel one (numba's thread count cannot be read from cached code)."""
    dims = [f"n{d}" for d in range(plan.ndim)]
    args = [f"a{k}" for k in range(plan.nargs)]
    lines = [f"def launch({', '.join(dims + args)}, limit):"]
    for code, (arg, axis, dim) in enumerate(plan.extents, start=1):
        lines.append(f"    if extent(a{arg}, {axis}) < n{dim}:")
        lines.append(f"        return {code}")
    if plan.overlap_checks:
        test = " or ".join(f"overlaps(a{w}, a{o})" for w, o in plan.overlap_checks)
        lines += [f"    if {test}:", f"        return {ALIASED}"]
    unique = plan.unique_args()
    tail = ([] if plan.ndim < 3 else ["n2"])
    if plan.mode == "parallel":
        lines += _parallel_lines(plan, unique, tail)
    else:
        total = " * ".join(dims)
        if plan.mode == "serial":
            lines += [f"    if {total} >= limit:", f"        return {WANTS_PARALLEL}"]
        # ``zero`` is a run-time 0, so serial and parallel launchers share one loop specialization
        # (a literal 0 would be typed as Literal[int](0) and compile the loop twice).
        whole = ["zero", "n0"] + (["zero", "n1"] if plan.ndim > 1 else []) + tail
        passed = [f"as_private(a{k})" if k in plan.atomic_only else f"a{k}" for k in unique]
        lines += ["    zero = n0 * 0", f"    loop({', '.join(whole + passed)})"]
    lines.append(f"    return {OK}")
    return "\n".join(lines) + "\n"


def _parallel_lines(plan: Plan, unique: list[int], tail: list[str]) -> list[str]:
    if plan.ndim == 1:
        split, bounds = "    split = 0", ["lo0, hi0 = c * n0 // nc, (c + 1) * n0 // nc"]
        rect = ["lo0", "hi0"]
    else:
        split = "    split = split_dim(n0, n1, nc)"
        bounds = ["lo0, hi0, lo1, hi1 = chunk(c, nc, split, n0, n1)"]
        rect = ["lo0", "hi0", "lo1", "hi1"] + tail

    def chunked(passed: list[str], indent: str) -> list[str]:
        return ([f"{indent}for c in prange(nc):"] + [f"{indent}    {b}" for b in bounds]
                + [f"{indent}    loop({', '.join(rect + passed)})"])

    lines = ["    nc = limit", split]
    private = {arg: op for arg, op in plan.privatized if arg in unique}
    if private:
        total = " * ".join(f"n{d}" for d in range(plan.ndim))
        fits = " and ".join(f"private_fits(a{k}, nc, {total})" for k in private)
        lines.append(f"    if {fits}:")
        lines += [f"        p{k} = private_copies(a{k}, nc, {op!r})" for k, op in private.items()]
        lines += chunked([f"as_private(p{k}[c])" if k in private else f"a{k}" for k in unique], "        ")
        lines += [f"        merge(a{k}, p{k}, {op!r})" for k, op in private.items()]
        lines.append(f"        return {OK}")
    lines += chunked([f"a{k}" for k in unique], "    ")
    return lines
