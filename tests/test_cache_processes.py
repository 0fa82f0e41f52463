"""The cache across real processes: reuse, invalidation by content, moves, races, prebuilds."""
import json
import shutil
import textwrap

import pytest

from _subprocess import run_json, start, total

MODULE_B = """
import jitbridge as jb

@jb.jit(cache=True)
def g(x):
    return x * {factor}
"""

MODULE_A = """
import numpy as np
import jitbridge as jb
import b

@jb.jit(cache=True)
def f(x):
    s = 0.0
    for i in range(x.shape[0]):
        s += b.g(x[i])
    return s
"""

RUN_A = """
import json, numpy as np, jitbridge as jb, a
value = a.f(np.arange(4.0))
print(json.dumps({"value": value, "stats": jb.stats()}))
"""


def _project(root, factor=2.0):
    root.mkdir(parents=True, exist_ok=True)
    (root / "b.py").write_text(MODULE_B.format(factor=factor))
    (root / "a.py").write_text(MODULE_A)
    return root


def test_two_module_project_compiles_once_then_follows_content(tmp_path, cache_dir):
    project = _project(tmp_path / "proj")
    first = run_json(RUN_A, cwd=project)
    assert first["value"] == 12.0 and total(first["stats"], "compiles") >= 1
    second = run_json(RUN_A, cwd=project)
    assert second["value"] == 12.0
    assert total(second["stats"], "compiles") == 0 and total(second["stats"], "cache_hits") >= 1

    (project / "b.py").write_text(MODULE_B.format(factor=3.0))
    edited = run_json(RUN_A, cwd=project, env={"JITBRIDGE_LOG_LEVEL": "INFO"})
    assert edited["value"] == 18.0, "a stale a.f would still multiply by 2"
    assert total(edited["stats"], "compiles") >= 1
    assert "dependency b.g changed" in edited["stderr"]

    moved = shutil.copytree(project, tmp_path / "elsewhere" / "copy")
    after_move = run_json(RUN_A, cwd=moved)
    assert after_move["value"] == 18.0 and total(after_move["stats"], "compiles") == 0


RACE = """
import json, numpy as np, jitbridge as jb

@jb.kernel
def racer(i, x, out):
    out[i] = x[i] * 7.0 + 1.0

x = np.arange(100.0)
out = np.empty(100)
racer[100](x, out)
assert (out == x * 7.0 + 1.0).all()
print(json.dumps({"stats": jb.stats()}))
"""


def test_four_processes_on_an_empty_cache_compile_once(tmp_path, cache_dir):
    (tmp_path / "racer_main.py").write_text(RACE)
    procs = [start(RACE, cwd=tmp_path) for _ in range(4)]
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    assert sum(total(o["stats"], "compiles") for o in outputs) == 1
    assert sum(total(o["stats"], "cache_hits") for o in outputs) == 3


EXEC_AND_CLOSURE = """
import json, numpy as np, jitbridge as jb

namespace = {"jb": jb}
exec('''
@jb.kernel
def from_exec(i, x, out):
    out[i] = x[i] + 100.0
''', namespace)

def make(scale):
    @jb.kernel
    def scaled(i, x, out):
        out[i] = x[i] * scale
    return scaled

x, out = np.arange(3.0), np.empty(3)
namespace["from_exec"][3](x, out)
results = [out.tolist()]
make(5.0)[3](x, out)
results.append(out.tolist())
print(json.dumps({"results": results, "stats": jb.stats()}))
"""


def test_exec_and_closure_kernels_are_cached(tmp_path, cache_dir):
    first = run_json(EXEC_AND_CLOSURE, cwd=tmp_path)
    assert first["results"] == [[100.0, 101.0, 102.0], [0.0, 5.0, 10.0]]
    assert total(first["stats"], "compiles") == 2
    second = run_json(EXEC_AND_CLOSURE, cwd=tmp_path)
    assert second["results"] == first["results"]
    assert total(second["stats"], "compiles") == 0 and total(second["stats"], "cache_hits") == 2


def test_closure_value_is_part_of_the_key(tmp_path, cache_dir):
    code = EXEC_AND_CLOSURE.replace("make(5.0)", "make(6.0)")
    run_json(EXEC_AND_CLOSURE, cwd=tmp_path)
    changed = run_json(code, cwd=tmp_path)
    assert changed["results"][1] == [0.0, 6.0, 12.0]


PACKAGE_INIT = ""
PACKAGE_KERNELS = """
import jitbridge as jb

@jb.kernel(signatures=["float64, float64[::1], float64[::1]"])
def axpy(i, a, x, out):
    out[i] = a * x[i] + out[i]
"""
USE_PACKAGE = """
import json, numpy as np, jitbridge as jb
from mypkg.kernels import axpy
x = np.arange(5.0)
small = np.zeros(5)
axpy[5](2.0, x, small)
big = np.zeros(100_000)
axpy[100_000](2.0, np.ones(100_000), big)
print(json.dumps({"ok": small.tolist() == (2 * x).tolist() and bool((big == 2.0).all()), "stats": jb.stats()}))
"""


def _cli(*args, cwd, env=None):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "jitbridge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_compile_then_export_clear_import(tmp_path, cache_dir):
    pkg = tmp_path / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(PACKAGE_INIT)
    (pkg / "kernels.py").write_text(PACKAGE_KERNELS)
    built = _cli("compile", str(pkg), "--jobs", "2", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    assert "2 specialization(s)" in built.stdout

    used = run_json(USE_PACKAGE, cwd=tmp_path)
    assert used["ok"] and total(used["stats"], "compiles") == 0 and total(used["stats"], "cache_hits") == 2

    bundle = tmp_path / "kernels.jbb"
    key = tmp_path / "ci.key"
    assert _cli("cache", "keygen", str(key), cwd=tmp_path).returncode == 0
    assert _cli("cache", "export", str(bundle), "--sign", str(key), cwd=tmp_path).returncode == 0
    assert "removed" in _cli("cache", "clear", cwd=tmp_path).stdout
    assert not list(cache_dir.rglob("*.jbc"))
    imported = _cli("cache", "import", str(bundle), "--verify", str(key), cwd=tmp_path)
    assert imported.returncode == 0 and "imported 2 entries" in imported.stdout
    again = run_json(USE_PACKAGE, cwd=tmp_path)
    assert again["ok"] and total(again["stats"], "compiles") == 0


RECORDED = """
import json, numpy as np, jitbridge as jb
import recorded_mod
out = np.zeros(4)
recorded_mod.double[4](np.arange(4.0), out)
print(json.dumps({"out": out.tolist(), "twice": recorded_mod.twice(3), "stats": jb.stats()}))
"""


def test_record_manifest_then_compile_prebuilds_exactly_what_ran(tmp_path, cache_dir):
    (tmp_path / "recorded_mod.py").write_text(textwrap.dedent("""
        import jitbridge as jb

        @jb.kernel
        def double(i, x, out):
            out[i] = 2 * x[i]

        @jb.jit(cache=True)
        def twice(v):
            return 2 * v
    """))
    manifest = tmp_path / "manifest.jsonl"
    first = run_json(RECORDED, cwd=tmp_path, env={"JITBRIDGE_RECORD": str(manifest)})
    assert first["out"] == [0.0, 2.0, 4.0, 6.0]
    assert len(manifest.read_text().splitlines()) == 2
    assert "removed" in _cli("cache", "clear", cwd=tmp_path).stdout
    built = _cli("compile", "recorded_mod.py", "--manifest", str(manifest), "--jobs", "1", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    second = run_json(RECORDED, cwd=tmp_path)
    assert second["twice"] == 6 and total(second["stats"], "compiles") == 0


WARM_THEN_NEW = """
import json, numpy as np, jitbridge as jb, a
loaded = a.f(np.arange(4.0))
fresh = jb.jit(lambda m: np.sqrt(np.sum(m * m)) + np.sum(np.sort(m)))(np.arange(4.0))
print(json.dumps({"loaded": loaded, "fresh": fresh, "stats": jb.stats()}))
"""


def test_compiling_after_a_warm_load_still_works(tmp_path, cache_dir):
    """Loading skips numba's full registry refresh; a later compile must still find everything."""
    project = _project(tmp_path / "proj")
    run_json(RUN_A, cwd=project)
    out = run_json(WARM_THEN_NEW, cwd=project)
    assert out["loaded"] == 12.0 and abs(out["fresh"] - (14 ** 0.5 + 6)) < 1e-12


KERNEL_MOD = """
import jitbridge as jb

@jb.kernel
def triple(i, x, out):
    out[i] = x[i] * {factor}
"""
RUN_KERNEL = """
import json, numpy as np, jitbridge as jb, kmod
out = np.zeros(3)
kmod.triple[3](np.ones(3), out)
print(json.dumps({"out": out.tolist(), "stats": jb.stats()}))
"""


def test_reasons_for_kernel_edits_and_cpu_changes(tmp_path, cache_dir):
    (tmp_path / "kmod.py").write_text(KERNEL_MOD.format(factor=3.0))
    run_json(RUN_KERNEL, cwd=tmp_path)
    (tmp_path / "kmod.py").write_text(KERNEL_MOD.format(factor=4.0))
    edited = run_json(RUN_KERNEL, cwd=tmp_path)
    assert edited["out"] == [4.0] * 3
    assert edited["stats"]["kmod.triple"]["recompile_reasons"] == ["source changed"]
    other_cpu = run_json(RUN_KERNEL, cwd=tmp_path, env={"NUMBA_CPU_NAME": "generic"})
    assert other_cpu["stats"]["kmod.triple"]["recompile_reasons"][0].startswith("CPU changed")


def test_compile_cli_errors_are_messages_not_tracebacks(tmp_path, cache_dir):
    missing = _cli("compile", "no_such_module_anywhere", cwd=tmp_path)
    assert missing.returncode == 2 and "cannot import" in missing.stderr and "Traceback" not in missing.stderr
    assert _cli("compile", cwd=tmp_path).returncode != 0
    (tmp_path / "not-a-bundle.jbb").write_bytes(b"hello")
    bad = _cli("cache", "import", str(tmp_path / "not-a-bundle.jbb"), cwd=tmp_path)
    assert bad.returncode == 2 and "cannot read the bundle" in bad.stderr


def test_compile_prebuilds_the_kernel_library(tmp_path, cache_dir):
    """`make demo`'s path: the library's prebuild hook, then a process that compiles nothing."""
    built = _cli("compile", "jitbridge.kernels", "--jobs", "2", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    used = run_json("""
import json, numpy as np, jitbridge as jb
from jitbridge import kernels as K
x = np.linspace(-1, 1, 1000)
K.softmax(x, threads=1); K.layernorm(x.reshape(10, 100), threads=2); K.sum_sq(x, threads=1, deterministic=True)
print(json.dumps({"stats": jb.stats()}))
""", cwd=tmp_path)
    assert total(used["stats"], "compiles") == 0 and total(used["stats"], "cache_hits") >= 3
