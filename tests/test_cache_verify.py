"""``cache verify`` / ``prune --stale`` / ``export`` / ``ls`` on entries built from code that has
changed since: reported stale with the reason, removed on request, left out of bundles."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import zipfile

import pytest
from typer.testing import CliRunner

from jitbridge.cli import app

runner = CliRunner()

APP = textwrap.dedent("""\
    import jitbridge as jb
    import helpers

    g = jb.jit(helpers.g)

    @jb.kernel(signatures=["float64[::1], float64[::1]"])
    def double(i, x, out):
        out[i] = g(x[i])

    def make(k):
        @jb.jit(cache=True)
        def shifted(x):
            return x + k
        return shifted

    shift_one, shift_two = make(1.0), make(2.0)

    def __jitbridge_prebuild__():
        return [_build]

    def _build():
        shift_one(1.0)
        shift_two(1.0)
    """)


def _compile(project) -> None:
    done = subprocess.run([sys.executable, "-m", "jitbridge", "compile", "app.py", "--jobs", "1"], cwd=project,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _cli(*args: str):
    result = runner.invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.fixture
def project(tmp_path, cache_dir):
    """A project built, then its helper edited and the project built again."""
    (tmp_path / "helpers.py").write_text("def g(v):\n    return v * 2.0\n")
    (tmp_path / "app.py").write_text(APP)
    _compile(tmp_path)
    (tmp_path / "helpers.py").write_text("def g(v):\n    return v * 3.0\n")
    _compile(tmp_path)
    return tmp_path


def _lines(output: str, status: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(status + " ")]


def test_verify_reports_each_entry_and_why_the_old_ones_are_stale(project) -> None:
    verified = _cli("cache", "verify")
    assert verified.exit_code == 0, verified.output
    stale, ok = _lines(verified.output, "stale"), _lines(verified.output, "ok")
    assert len(stale) == 2 and all("dependency helpers.g changed since it was built" in line for line in stale)
    assert {line.split("app.double ")[1].split(" ")[0] for line in stale} == {"[serial]", "[parallel]"}
    assert len(ok) == 4, "the rebuilt kernel's two variants, and both closures of the factory"
    assert sum("app.make.<locals>.shifted" in line for line in ok) == 2, \
        "two live closures of one factory are not stale for each other"
    assert verified.output.rstrip().endswith("4 ok, 2 stale, 0 corrupt")


def test_ls_tells_the_variants_and_arguments_apart(project) -> None:
    listing = _cli("cache", "ls").output.splitlines()
    doubles = sorted(line.split("  ")[-1] for line in listing if "app.double" in line)
    assert doubles == ["app.double [parallel] (array(float64, 1d, C), array(float64, 1d, C))"] * 2 + \
        ["app.double [serial] (array(float64, 1d, C), array(float64, 1d, C))"] * 2
    assert sum("app.make.<locals>.shifted (float64)" in line for line in listing) == 2


def test_export_leaves_stale_entries_out_unless_asked(project, tmp_path) -> None:
    fresh = _cli("cache", "export", str(tmp_path / "fresh.zip"))
    assert fresh.exit_code == 0 and "exported 4 entries" in fresh.output and "left out 2 stale" in fresh.output
    everything = _cli("cache", "export", str(tmp_path / "all.zip"), "--include-stale")
    assert everything.exit_code == 0 and "exported 6 entries" in everything.output
    with zipfile.ZipFile(tmp_path / "fresh.zip") as zf:
        shipped = {name[len("entries/"):-len(".jbc")] for name in zf.namelist() if name.startswith("entries/")}
    stale_keys = {line.split()[1] for line in _lines(_cli("cache", "verify").output, "stale")}
    assert len(shipped) == 4 and not any(key.startswith(s) for key in shipped for s in stale_keys)


def test_prune_stale_removes_exactly_the_stale_entries(project) -> None:
    plain = _cli("cache", "prune")
    assert "stale" not in plain.output and "entries:  6" in _cli("cache", "info").output, "kept without --stale"
    pruned = _cli("cache", "prune", "--stale")
    assert pruned.exit_code == 0 and "removed 2 stale entries" in pruned.output
    after = _cli("cache", "verify")
    assert after.output.rstrip().endswith("4 ok, 0 stale, 0 corrupt")
    done = subprocess.run([sys.executable, "-c", "import numpy as np, app, jitbridge as jb; "
                           "out = np.empty(3); app.double[3](np.ones(3), out); print(out[0], jb.stats())"],
                          cwd=project, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.startswith("3.0 ") and "'compiles': 0" in done.stdout, done.stdout


def test_entries_of_other_versions_are_stale_with_what_differs(cache_dir) -> None:
    import pickle

    from jitbridge.cache.store import current_store

    current_store().write("e" * 64, {"name": "old.kernel", "versions": {"numba": "0.1"}, "machine": ["x", "y", "z"]},
                          pickle.dumps(None))
    verified = _cli("cache", "verify")
    (line,) = _lines(verified.output, "stale")
    assert "built for other versions (" in line and "numba 0.1 -> " in line
