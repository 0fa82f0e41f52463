"""``jitbridge lock`` / ``jitbridge verify``: a lock matches until the code, a dependency,
a version, the CPU or deterministic mode changes, and then it says which."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

APP = textwrap.dedent("""\
    import jitbridge as jb
    import helpers

    g = jb.jit(helpers.g)

    @jb.kernel(signatures=["float64[::1], float64[::1]"])
    def double(i, x, out):
        out[i] = g(x[i])

    @jb.jit(cache=True)
    def total(x):
        return x.sum()
    """)


def _cli(*args: str, cwd, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jitbridge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


@pytest.fixture
def project(tmp_path, cache_dir):
    (tmp_path / "helpers.py").write_text("def g(v):\n    return v * 2.0\n")
    (tmp_path / "app.py").write_text(APP)
    locked = _cli("lock", "app.py", cwd=tmp_path)
    assert locked.returncode == 0, locked.stderr
    assert "locked 2 function(s) and kernel(s) from 1 module(s)" in locked.stdout
    return tmp_path


def test_verify_passes_until_a_dependency_changes(project) -> None:
    same = _cli("verify", cwd=project)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "2 function(s) and kernel(s), versions and CPU match" in same.stdout
    assert "0 of 2 have cache entries" in same.stdout
    assert _cli("compile", "app.py", "--jobs", "1", cwd=project).returncode == 0
    assert "1 of 2 have cache entries" in _cli("verify", cwd=project).stdout

    (project / "helpers.py").write_text("def g(v):\n    return v * 3.0\n")
    changed = _cli("verify", cwd=project)
    assert changed.returncode == 1
    assert changed.stdout.splitlines() == ["app.double: dependency helpers.g changed"]


def test_verify_names_versions_cpu_setting_and_kernels_added_or_gone(project) -> None:
    path = project / "jitbridge.lock"
    lock = json.loads(path.read_text())
    lock["versions"]["numba"] = "0.1.0"
    lock["machine"][1] = "pentium4"
    lock["kernels"]["app.retired"] = lock["kernels"].pop("app.total")
    path.write_text(json.dumps(lock))
    found = _cli("verify", cwd=project, env={"JITBRIDGE_DETERMINISTIC": "1"})
    assert found.returncode == 1
    lines = found.stdout.splitlines()
    assert any(line.startswith("version: numba 0.1.0 -> ") for line in lines)
    assert any(line.startswith("machine: pentium4 -> ") for line in lines)
    assert "setting: JITBRIDGE_DETERMINISTIC 0 -> 1" in lines
    assert "app.retired: gone (locked, but no longer defined)" in lines
    assert "app.total: new (not in the lock)" in lines


def test_missing_or_foreign_lock_files_are_errors_with_a_fix(tmp_path) -> None:
    missing = _cli("verify", "--lock", "nope.lock", cwd=tmp_path)
    assert missing.returncode == 2 and "fix: write one first with: jitbridge lock" in missing.stderr
    (tmp_path / "other.lock").write_text('{"format": 99}')
    foreign = _cli("verify", "--lock", "other.lock", cwd=tmp_path)
    assert foreign.returncode == 2 and "not a jitbridge lock file of format 1" in foreign.stderr
    bad = _cli("lock", "no_such_module_here", cwd=tmp_path)
    assert bad.returncode == 2 and "cannot import" in bad.stderr
