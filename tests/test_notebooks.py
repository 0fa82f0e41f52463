"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel without an error.

The kernel is this test's own interpreter (the venv's python), named by a kernel spec the
test writes into a private Jupyter path, so a fresh clone needs no ``ipykernel install`` and
a user's own ``python3`` kernel spec is never picked up instead. The kernel inherits the
environment, including the per-test ``JITBRIDGE_CACHE_DIR`` set by the ``cache_dir`` fixture.
"""
import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
KERNEL_NAME = "jitbridge-test-python"
CELL_TIMEOUT_S = 120


@pytest.fixture
def kernel_name(tmp_path, monkeypatch):
    """A kernel spec that runs ``sys.executable``, and private Jupyter and IPython folders."""
    jupyter = tmp_path / "jupyter"
    spec = jupyter / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "jitbridge tests (this interpreter)",
        "language": "python",
    }))
    monkeypatch.setenv("JUPYTER_PATH", str(jupyter))
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    return KERNEL_NAME


def execute(nb: nbformat.NotebookNode, kernel_name: str) -> nbformat.NotebookNode:
    """Run ``nb`` in place, from the notebooks folder; a cell error raises CellExecutionError."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    return nb


def stdout_of(cell: nbformat.NotebookNode) -> str:
    return "".join(out.get("text", "") for out in cell.get("outputs", ()) if out.get("name") == "stdout")


def check_quickstart(nb: nbformat.NotebookNode, cache_dir: Path) -> None:
    assert any(cache_dir.rglob("*.jbc")), "the notebook's kernels did not use the test's cache folder"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    printed = [stdout_of(cell) for cell in code]

    # The empty cache: the first definition compiles once.
    first = next(cell for cell in code if cell.source.strip().endswith("jb.stats()[saxpy.jb_name]"))
    shown = first.outputs[0]["data"]["text/plain"]
    assert "'compiles': 1" in shown and "'cache_misses': 1" in shown, shown

    # Running the same definition again in another cell loads it from disk.
    rerun = next(text for text in printed if "cache_hits:" in text)
    assert int(re.search(r"^cache_hits: (\d+)$", rerun, re.MULTILINE)[1]) >= 1, rerun
    assert int(re.search(r"^compiles: (\d+)$", rerun, re.MULTILINE)[1]) == 0, rerun

    typing_error = next(text for text in printed if "kernel '__main__.halve'" in text)
    assert typing_error.startswith("cannot divide float64 and str in kernel '__main__.halve'"), typing_error
    assert 'out[i] = x[i] / "2"' in typing_error


# Notebook-specific checks of printed output, by file name (a notebook without one is only
# required to run without errors).
CHECKS = {"quickstart.ipynb": check_quickstart}


def test_kernel_is_this_interpreter_with_this_environment(kernel_name):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os, sys\nprint(sys.executable)\nprint(os.environ['JITBRIDGE_CACHE_DIR'])")])
    lines = stdout_of(execute(nb, kernel_name).cells[0]).splitlines()
    assert lines == [sys.executable, os.environ["JITBRIDGE_CACHE_DIR"]]


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebook_runs(path, kernel_name, cache_dir):
    nb = execute(nbformat.read(path, as_version=4), kernel_name)
    errors = [out for cell in nb.cells for out in cell.get("outputs", ()) if out.get("output_type") == "error"]
    assert not errors
    check = CHECKS.get(path.name)
    if check is not None:
        check(nb, cache_dir)
