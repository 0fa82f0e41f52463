"""The jitbridge command line: the imported ``app`` is the whole command, help reads well, and
run from a project folder as a user runs it, it finds the project's code."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jitbridge.cli import app

runner = CliRunner()
SCRIPT = Path(sys.executable).parent / "jitbridge"  # the console script pip installed
COMMANDS = [[], ["info"], ["compile"], ["explain"], ["lock"], ["verify"], ["cache"], ["tensor"],
            *(["cache", c] for c in ("ls", "info", "clear", "prune", "verify", "keygen", "export", "import")),
            ["tensor", "gc"], ["tensor", "ls"]]


def test_the_imported_app_has_every_command_and_group() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("info", "compile", "explain", "lock", "verify", "cache", "tensor"):
        assert f"  {name} " in result.output
    assert "verify" in runner.invoke(app, ["cache", "--help"]).output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "jitbridge")
def test_help_is_reflowed_and_free_of_type_noise(command) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    if command == ["explain"]:  # a docstring written over two lines reads as one paragraph
        assert ("Where a jitted function or kernel is defined, what its cache key depends on, which specializations "
                "are cached, and whether their loops use SIMD (and if not, why).") in result.output


def test_info_reports_versions_cpu_threads_cuda_and_cache() -> None:
    import numba

    result = runner.invoke(app, ["info"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"numba:           {numba.__version__}" in out
    for field in ("llvmlite:", "numpy:", "cpu:", "simd:", "threads:", "threading layer:", "cuda:", "cache dir:"):
        assert field in out
    assert "avx" in out or "sse" in out or "neon" in out


def test_python_dash_m_and_console_script_agree() -> None:
    result = subprocess.run([sys.executable, "-m", "jitbridge", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "info" in result.stdout


def test_import_does_not_import_numba_cuda() -> None:
    code = "import sys, jitbridge; print('numba.cuda' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr


# -- run from a project folder, as a user would ---------------------------------------------

OPS = textwrap.dedent("""\
    import jitbridge as jb
    from . import helpers

    g = jb.jit(helpers.g)

    @jb.kernel(signatures=["float64[::1], float64[::1]"])
    def double(i, x, out):
        out[i] = g(x[i])
    """)


@pytest.fixture
def project(tmp_path, cache_dir):
    """A project folder with a package whose module imports a sibling relatively."""
    package = tmp_path / "mykern"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helpers.py").write_text("def g(v):\n    return v * 2.0\n")
    (package / "ops.py").write_text(OPS)
    return tmp_path


def _jitbridge(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    if not SCRIPT.is_file():
        pytest.skip(f"no console script at {SCRIPT} (jitbridge not pip-installed into this interpreter)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


def test_explain_finds_a_package_module_of_the_current_folder(project) -> None:
    dotted = _jitbridge("explain", "mykern.ops:double", cwd=project)
    assert dotted.returncode == 0, dotted.stderr
    assert "kernel mykern.ops.double" in dotted.stdout and "depends on mykern.helpers.g" in dotted.stdout
    by_path = _jitbridge("explain", "mykern/ops.py:double", cwd=project)
    assert by_path.returncode == 0, by_path.stderr
    assert "kernel mykern.ops.double" in by_path.stdout, "a file in a package is imported under its dotted name"


def test_compile_and_lock_find_the_project_too(project) -> None:
    built = _jitbridge("compile", "mykern.ops", "--jobs", "1", cwd=project)
    assert built.returncode == 0, built.stderr
    assert "1 module(s), 2 specialization(s)" in built.stdout
    locked = _jitbridge("lock", "mykern/ops.py:double", cwd=project)
    assert locked.returncode == 0, locked.stderr
    assert "locked 1 function(s) and kernel(s) from 1 module(s)" in locked.stdout
    verified = _jitbridge("verify", cwd=project)
    assert verified.returncode == 0 and "1 of 1 have cache entries" in verified.stdout, verified.stdout


def test_user_errors_are_messages_and_exit_2_never_tracebacks(project) -> None:
    (project / "mykern" / "broken.py").write_text("import jitbridge as jb\nfrom . import nothing_here\n")
    cases = {
        ("explain", "mykern/broken.py:f"): ["cannot import 'mykern/broken.py'", "broken.py:2", "nothing_here"],
        ("explain", "mykern.ops:nope"): ["mykern.ops has no 'nope'"],
        ("explain", "mykern.ops"): ["expected MODULE:NAME"],
        ("explain", "no_such_module:f"): ["cannot import 'no_such_module'"],
        ("lock", "mykern.ops:g"): [],
        ("lock", "mykern.helpers:g"): ["is not a jitbridge function or kernel"],
        ("compile", "mykern"): ["cannot import 'mykern'", "broken.py:2"],
        ("cache", "keygen", str(project)): ["cannot create the key file"],
    }
    for args, fragments in cases.items():
        done = _jitbridge(*args, cwd=project)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        if not fragments:
            assert done.returncode == 0, (args, done.stderr)
            continue
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        for fragment in fragments:
            assert fragment in done.stderr, (args, fragment, done.stderr)
