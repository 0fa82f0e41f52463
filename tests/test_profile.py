"""``jb.profile()``: per kernel and specialization, calls, times, shapes, dtypes, bytes,
compiles and cache hits/misses with reasons; as text, JSON and HTML; nothing left behind."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

import jitbridge as jb
from jitbridge.frontend.dispatcher import Dispatcher
from jitbridge.frontend.kernel import Kernel
from jitbridge.frontend.launchers import LaunchDispatcher


def _define(source: str, name: str, module: str = "profile_mod"):
    scope = {"jb": jb, "np": np, "__name__": module}
    exec(compile(textwrap.dedent(source), f"<{module}>", "exec"), scope)
    return scope[name]


SAXPY = """
def saxpy(i, a, x, y, out):
    out[i] = a * x[i] + y[i]
"""


def test_rows_per_kernel_and_specialization(cache_dir) -> None:
    saxpy = jb.kernel(_define(SAXPY, "saxpy"))
    total = jb.jit(_define("def total(x):\n    return x.sum()\n", "total"))
    x, out = np.ones(10), np.empty(10)
    x32, out32 = np.ones(6, np.float32), np.empty(6, np.float32)
    with jb.profile() as p:
        for _ in range(5):
            saxpy[10](2.0, x, x, out)
        saxpy[5](2.0, x[:5], x[:5], out[:5])
        saxpy[6](2.0, x32, x32, out32)
        total(x)
    rows = {(r.name, r.signature): r for r in p.rows}
    f64 = rows[("profile_mod.saxpy", "(float64, array(float64, 1d, C), array(float64, 1d, C), array(float64, 1d, C))")]
    f32 = rows[("profile_mod.saxpy", "(float64, array(float32, 1d, C), array(float32, 1d, C), array(float32, 1d, C))")]
    assert f64.calls == 6 and f32.calls == 1
    assert f64.shapes == [[[10], [10], [10]], [[5], [5], [5]]] and f64.dtypes == ["float64"]
    assert f64.nbytes == 5 * 160 + 80, "x passed twice counts once per launch"
    assert f64.compiles == 1 and f64.cache_misses == 1 and f64.variants == ["serial"]
    assert f64.miss_reasons == {"not built before (no record of this name in the cache)": 1}
    assert f64.total_seconds >= f64.first_seconds > 0
    assert f64.mean_seconds == pytest.approx((f64.total_seconds - f64.first_seconds) / 5)
    assert f64.first_seconds > f64.mean_seconds, "the first launch carries the compile"
    assert rows[("profile_mod.total", "(array(float64, 1d, C))")].calls == 1
    assert p.rows[0].name == "profile_mod.saxpy", "the kernel with the most time comes first"


def test_json_report_round_trips_with_every_field(cache_dir) -> None:
    saxpy = jb.kernel(_define(SAXPY, "saxpy"))
    x, out = np.ones(4), np.empty(4)
    saxpy[4](2.0, x, x, out)  # compiled and cached before the profile: inside, a plain launch
    with jb.profile() as p:
        saxpy[4](2.0, x, x, out)
        saxpy[4](2.0, x, x, out)
    report = json.loads(p.to_json())
    assert report["wall_seconds"] > 0
    (kernel,) = report["kernels"]
    assert kernel["name"] == "profile_mod.saxpy" and kernel["calls"] == 2
    (spec,) = kernel["specializations"]
    assert set(spec) == {"name", "signature", "calls", "total_seconds", "first_seconds", "mean_seconds", "nbytes",
                         "compiles", "compile_seconds", "cache_hits", "cache_misses", "miss_reasons", "shapes",
                         "more_shapes", "dtypes", "variants"}
    assert spec["calls"] == 2 and spec["compiles"] == 0 and spec["cache_misses"] == 0 and spec["nbytes"] == 2 * 64
    assert spec["shapes"] == [[[4], [4], [4]]]
    assert json.loads(p.to_json(indent=None)) == report


def test_text_and_html_tables_name_every_row() -> None:
    k = jb.kernel(_define("def fill(i, x, v):\n    x[i] = v\n", "fill"), cache=False)
    with jb.profile() as p:
        k[3](np.zeros(3), 1.0)
        k[3](np.zeros(3, np.int64), 1)
    text = str(p)
    assert text.startswith("jitbridge profile: 1 kernel(s), 2 call(s)")
    for column in ("kernel", "specialization", "calls", "total", "first", "mean", "bytes", "compiles", "hits", "misses"):
        assert column in text.splitlines()[1]
    assert "(array(float64, 1d, C), float64)" in text and "(array(int64, 1d, C), int64)" in text
    assert "miss:" not in text and "shapes: (3,)" in text
    html = p._repr_html_()
    assert html.startswith("<table>") and html.count("<tr>") == 3 and "profile_mod.fill" in html
    assert "nothing compiled" in str(jb.profile())


def test_profiling_leaves_the_plain_launch_path_behind() -> None:
    k = jb.kernel(_define("def neg(i, x):\n    x[i] = -x[i]\n", "neg"), cache=False)
    x = np.ones(8)
    k[8](x)
    plain, bound = Kernel.launch, k[8]
    with jb.profile() as outer:
        with jb.profile() as inner:
            k[8](x)
        k[8](x)
        assert Kernel.launch is not plain
        assert LaunchDispatcher.__call__ is Dispatcher.__mro__[-2].__call__, "a launcher call stays in C"
    assert [r.calls for r in inner.rows] == [1] and [r.calls for r in outer.rows] == [2]
    assert Kernel.launch is plain and "__call__" not in Dispatcher.__dict__
    assert "__call__" not in LaunchDispatcher.__dict__, "launchers are back on numba's C call path"
    assert k[8] is not bound and k[8].launch_fn.__func__ is plain
    k[8](x)
    assert outer.rows[0].calls == 2, "a finished profile records nothing more"


def test_a_profile_runs_once_at_a_time() -> None:
    p = jb.profile()
    with p, pytest.raises(RuntimeError, match="already running"):
        p.__enter__()


def test_jitbridge_profile_env_prints_the_report_at_exit(tmp_path) -> None:
    import subprocess
    import sys

    script = tmp_path / "app.py"
    script.write_text(textwrap.dedent("""\
        import numpy as np, jitbridge as jb

        @jb.kernel
        def scale(i, a, x, out):
            out[i] = a * x[i]

        x = np.ones(32)
        for _ in range(3):
            scale[32](2.0, x, np.empty(32))
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "JITBRIDGE_PROFILE": "1"})
    assert done.returncode == 0, done.stderr
    assert "jitbridge profile: 1 kernel(s), 3 call(s)" in done.stderr
    assert "__main__.scale" in done.stderr and "shapes: (32,), (32,)" in done.stderr
