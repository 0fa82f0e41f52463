"""The jitbridge command line: help, info, and the module entry point."""
import subprocess
import sys

from typer.testing import CliRunner

from jitbridge import cli

runner = CliRunner()


def _app():
    return cli.app


def test_help_lists_command_groups():
    result = runner.invoke(_app(), ["--help"])
    assert result.exit_code == 0
    for name in ("info", "compile", "cache", "tensor"):
        assert name in result.output


def test_info_reports_versions_cpu_threads_cuda_and_cache():
    import numba

    result = runner.invoke(_app(), ["info"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"numba:           {numba.__version__}" in out
    for field in ("llvmlite:", "numpy:", "cpu:", "simd:", "threads:", "threading layer:", "cuda:", "cache dir:"):
        assert field in out
    assert "avx" in out or "sse" in out or "neon" in out


def test_python_dash_m_and_console_script_agree():
    result = subprocess.run([sys.executable, "-m", "jitbridge", "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "info" in result.stdout


def test_import_does_not_import_numba_cuda():
    code = "import sys, jitbridge; print('numba.cuda' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stderr
