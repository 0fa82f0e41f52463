"""``make compat``: numba's own tests, run under numba and again under ``jitbridge.jit``.

Each module runs twice in fresh processes: once as shipped, once with ``swap/`` on
``PYTHONPATH`` (its ``sitecustomize`` makes ``numba.jit``/``numba.njit`` mean
``jitbridge.jit`` in test code only). Per module it prints how many of the tests that pass
under numba also pass under jitbridge, and each one that does not with its first error line.
Tests that read numba's own cache files or internals are left out of the figure; they are
listed, each with its reason, in docs/cache.md ("Tests left out of `make compat`"), which is
the one place that list lives.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
EXCLUSIONS_DOC = ROOT / "docs" / "cache.md"

# (module, every k-th test): test_np_functions is sampled, the rest run whole; slowest first,
# so two processes finish together
MODULES = [
    ("numba.tests.test_np_functions", 4),
    ("numba.tests.test_caching", 1),
    ("numba.tests.test_dispatcher", 1),
    ("numba.tests.test_dicts", 1),
    ("numba.tests.test_mathlib", 1),
    ("numba.tests.test_array_exprs", 1),
    ("numba.tests.test_generators", 1),
    ("numba.tests.test_tuples", 1),
    ("numba.tests.test_try_except", 1),
    ("numba.tests.test_exceptions", 1),
    ("numba.tests.test_closure", 1),
    ("numba.tests.test_optional", 1),
    ("numba.tests.test_errorhandling", 1),
    ("numba.tests.test_recursion", 1),
]
_EXCLUDED_ROW = re.compile(r"^\| `(numba\.tests\.[\w.]+)` \| (.+?) \|\s*$", re.MULTILINE)


def excluded_tests() -> dict[str, str]:
    """{test id: reason} from the table in docs/cache.md."""
    return dict(_EXCLUDED_ROW.findall(EXCLUSIONS_DOC.read_text()))


def run_module(module: str, every: int, swapped: bool, out_dir: Path, timeout: float) -> dict:
    """One module in one mode, in its own process; a crash or a timeout fails all its tests."""
    mode = "jitbridge" if swapped else "numba"
    out = out_dir / f"{module}.{mode}.json"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if swapped:
        env["PYTHONPATH"] = str(HERE / "swap")
        env["JITBRIDGE_CACHE_DIR"] = str(out_dir / "jitbridge-cache")
    cmd = [sys.executable, str(HERE / "unit.py"), module, "--every", str(every), "--json", str(out)]
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=env, cwd=out_dir, capture_output=True, text=True, timeout=timeout)
        problem = None if proc.returncode == 0 else \
            f"runner exited {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1]}"
    except subprocess.TimeoutExpired:
        problem = f"stopped after {timeout:.0f} s; the tests that ran are counted"
    result = json.loads(out.read_text()) if out.exists() else {"tests": {}}
    result.update(module=module, mode=mode, problem=problem, seconds=time.perf_counter() - started)
    return result


def report(modules: list[tuple[str, int]], results: dict[tuple[str, str], dict], excluded: dict[str, str]) -> float:
    """Print, per module, how many of numba's passing tests pass under jitbridge and each one
    that does not with its first error line; return the overall pass percentage."""
    total_ref = total_ok = total_excluded = 0
    for module, every in modules:
        ref, ours = results[(module, "numba")], results[(module, "jitbridge")]
        passing = sorted(t for t, o in ref["tests"].items() if o["outcome"] == "pass")
        counted = [t for t in passing if t not in excluded]
        failing = [t for t in counted if ours["tests"].get(t, {}).get("outcome") != "pass"]
        left_out = len(passing) - len(counted)
        total_ref, total_ok, total_excluded = total_ref + len(counted), total_ok + len(counted) - len(failing), \
            total_excluded + left_out
        print(f"{module}{f' (every {every}th test)' if every > 1 else ''}: "
              f"{len(counted) - len(failing)} of {len(counted)} pass under jitbridge"
              f"{f', {left_out} left out' if left_out else ''}"
              f"  [{ref['seconds']:.0f} s numba, {ours['seconds']:.0f} s jitbridge]")
        for r in (ref, ours):
            if r["problem"]:
                print(f"  PROBLEM ({r['mode']}): {r['problem']}")
        for test in failing:
            outcome = ours["tests"].get(test, {"outcome": "missing", "detail": "no result"})
            print(f"  {outcome['outcome'].upper()} {test.removeprefix(module + '.')}: {outcome['detail'][:300]}")
    percent = 100.0 * total_ok / total_ref if total_ref else 0.0
    print(f"\nTOTAL: {total_ok} of {total_ref} tests that pass under numba pass under jitbridge.jit "
          f"({percent:.1f}%) over {len(modules)} modules; {total_excluded} left out (docs/cache.md)")
    return percent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("modules", nargs="*", help="numba test modules (default: the standard set)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes at once")
    parser.add_argument("--timeout", type=float, default=2400, help="seconds per module and mode")
    parser.add_argument("--min-percent", type=float, default=98.0, help="exit 1 below this pass rate")
    parser.add_argument("--out", type=Path, default=None, help="keep the per-module JSON here")
    args = parser.parse_args(argv)

    sampling = dict(MODULES)
    named = [m if m.startswith("numba.") else f"numba.tests.{m}" for m in args.modules]
    modules = [(m, sampling.get(m, 1)) for m in named] or MODULES
    excluded = excluded_tests()
    with tempfile.TemporaryDirectory(prefix="jb-compat-") as tmp:
        out_dir = (args.out or Path(tmp)).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        jobs = [(m, every, swapped) for m, every in modules for swapped in (False, True)]
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_module, m, every, swapped, out_dir, args.timeout) for m, every, swapped in jobs]
            results = {(f.result()["module"], f.result()["mode"]): f.result() for f in futures}
        percent = report(modules, results, excluded)
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"time: {time.perf_counter() - started:.0f} s wall, {cpu.ru_utime + cpu.ru_stime:.0f} s CPU "
          f"in {args.jobs} processes at a time")
    return 0 if percent >= args.min_percent else 1


if __name__ == "__main__":
    sys.exit(main())
