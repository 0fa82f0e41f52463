"""``jb.explain`` and ``jitbridge explain``: the SIMD verdict, libm advice, and cache status
that follows the code (cached, then stale with the reason once a dependency changes)."""
from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jitbridge as jb
from jitbridge import errors
from jitbridge import math as jm
from jitbridge.inspection import CodeReport

ASM = """\
_ZN8__main__1fB2v1E:
\tvmulpd\t(%rdi), %zmm0, %zmm1
\tvfmadd231pd\t%ymm2, %ymm3, %ymm4
\tvaddsd\t%xmm0, %xmm1, %xmm1
\tmovabsq\t$exp, %rax
\tcallq\t*%rax
\tmovabsq\t$_ZN8__main__1fB2v1E, %rcx
\tmovabsq\t$NRT_MemInfo_alloc_aligned, %rax
"""


def test_code_report_reads_widths_calls_and_allocations() -> None:
    report = CodeReport.from_asm(ASM)
    assert report.packed == {512: 1, 256: 1} and report.scalar == 1
    assert report.symbols == ["exp", "NRT_MemInfo_alloc_aligned"]  # its own label is not a call
    text = "\n".join(report.lines())
    assert "SIMD: no" in text and "allocates memory" in text
    assert "exp() per element: vector math has a SIMD version, but this loop did not vectorize" in text
    float32 = CodeReport.from_asm("\tmovabsq\t$erff, %rax\n\tmovabsq\t$powf, %rcx\n\tmovabsq\t$buf, %rdx\n")
    assert float32.libm() == [("erff", "erf"), ("powf", "pow")]


def _vectorizable(x, out):
    for i in range(x.size):
        out[i] = 2.0 * x[i] + 1.0


def _libm(x, out):
    for i in range(x.size):
        out[i] = math.asin(x[i])  # no SIMD version of asin: one libm call per element


def _ours(x, out):
    for i in range(x.size):
        out[i] = jm.exp(x[i])


@pytest.mark.parametrize(("body", "simd", "advice"), [
    (_vectorizable, "SIMD: yes, widest", None),
    (_libm, "SIMD: no", "calls libm asin() per element"),
    (_ours, "SIMD: yes, widest", None),
])
def test_simd_verdict_per_specialization(body, simd, advice) -> None:
    fn = jb.jit(body)
    x = np.linspace(0, 1, 64)
    fn(x, np.empty_like(x))
    text = jb.explain(fn)
    assert f"function {fn.jb_name}" in text and f"defined at {__file__}" in text
    assert simd in text
    assert (advice in text) if advice else "libm" not in text


def test_signature_compiles_one_more_and_bad_ones_say_how_to_write_them(cache_dir) -> None:
    fn = jb.jit(cache=True)(_vectorizable)
    text = jb.explain(fn, "float32[::1], float32[::1]")
    assert "cached (array(float32, 1d, C), array(float32, 1d, C))" in text
    assert "code for (array(float32, 1d, C), array(float32, 1d, C))" in text
    with pytest.raises(errors.ArgumentError, match="numba way"):
        jb.explain(fn, "float64[::1]")
    with pytest.raises(errors.ArgumentError, match="@jb.jit function or a @jb.kernel"):
        jb.explain(len)


def test_kernel_lists_its_launch_variants(cache_dir) -> None:
    @jb.kernel
    def axpy(i, a, x, out):
        out[i] = a * x[i]

    x = np.ones(8)
    axpy[8](2.0, x, np.empty(8))
    text = jb.explain(axpy)
    assert text.startswith("kernel ") and "cached [serial]" in text
    serial, parallel = text.split("code for (float64, array(float64, 1d, C), array(float64, 1d, C))")[1:]
    assert serial.startswith(" [serial]:") and parallel.startswith(" [parallel]:")
    assert "SIMD: yes" in serial and "SIMD: yes" in parallel, "both variants that can run are reported"


def test_simd_no_comes_with_llvms_reason_and_the_fix(cache_dir) -> None:
    @jb.kernel(error_model="python")
    def ratio(i, x, y, out):
        out[i] = x[i] / y[i]

    @jb.kernel(disjoint=True)
    def running(i, x, out):
        out[i + 1] = out[i] + x[i]

    ratio[4](np.ones(4), np.ones(4), np.empty(4))
    text = jb.explain(ratio)
    assert "SIMD: no" in text and "error_model='numpy'" in text and "loop can stop part-way" in text
    running[3](np.ones(3), np.zeros(4))
    assert "loop-carried dependency" in jb.explain(running)


def test_explain_a_kernel_defined_in_main(tmp_path, cache_dir) -> None:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent("""\
        import numpy as np, jitbridge as jb

        @jb.kernel
        def scale(i, a, x, out):
            out[i] = a * x[i]

        scale[16](2.0, np.ones(16), np.empty(16))
        print(jb.explain(scale))
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "kernel __main__.scale" in done.stdout and "[serial]" in done.stdout and "[parallel]" in done.stdout
    assert done.stdout.count("SIMD: yes") == 2


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jitbridge", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def test_cli_follows_the_code_from_cached_to_stale(tmp_path, cache_dir) -> None:
    (tmp_path / "helpers.py").write_text("def g(v):\n    return v * 2.0\n")
    (tmp_path / "app.py").write_text(textwrap.dedent("""\
        import jitbridge as jb
        import helpers

        g = jb.jit(helpers.g)

        @jb.kernel(signatures=["float64[::1], float64[::1]"])
        def double(i, x, out):
            out[i] = g(x[i])
        """))
    built = _cli("compile", "app.py", "--jobs", "1", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    first = _cli("explain", "app.py:double", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "cached [serial]" in first.stdout and "cached [parallel]" in first.stdout
    assert "depends on helpers.g" in first.stdout and "SIMD: yes" in first.stdout

    (tmp_path / "helpers.py").write_text("def g(v):\n    return v * 3.0\n")
    second = _cli("explain", "app.py:double", cwd=tmp_path)
    assert "stale [serial]" in second.stdout and "dependency helpers.g changed" in second.stdout

    missing = _cli("explain", "app.py:nothing", cwd=tmp_path)
    assert missing.returncode == 2 and "app has no 'nothing'" in missing.stderr
