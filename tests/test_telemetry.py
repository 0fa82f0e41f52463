"""``jb.telemetry.on``: each hook fires once per event, with what a user needs to log it, and
costs nothing once removed."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import jitbridge as jb
from jitbridge import errors
from jitbridge.frontend.dispatcher import Dispatcher
from jitbridge.frontend.kernel import Kernel


def _define(source: str, name: str, module: str = "telemetry_mod"):
    """A function defined fresh under a fixed module and name, as an edited file would be."""
    scope = {"jb": jb, "np": np, "__name__": module}
    exec(compile(source, f"<{module}>", "exec"), scope)
    return scope[name]


@pytest.fixture
def events():
    """Every event of every kind while the test runs, as (kind, Event)."""
    seen = []
    handles = [jb.telemetry.on(kind, seen.append) for kind in jb.telemetry.EVENTS]
    yield seen
    for handle in handles:
        handle.remove()


def _of(events, kind):
    return [e for e in events if e.kind == kind]


def test_compile_hook_fires_once_per_compile_with_name_signature_and_time(events) -> None:
    f = jb.jit(_define("def twice(x):\n    return 2 * x\n", "twice"))
    f(1.5)
    f(2.5)
    f(np.ones(3))
    compiles = _of(events, "compile")
    assert [(e.name, e.signature, e.variant) for e in compiles] == [
        ("telemetry_mod.twice", "(float64)", None), ("telemetry_mod.twice", "(array(float64, 1d, C))", None)]
    assert all(e.seconds > 0 for e in compiles)
    assert jb.stats()["telemetry_mod.twice"]["compiles"] == 2


def test_kernel_compiles_are_reported_per_launch_variant_not_per_body_or_loop(events) -> None:
    k = jb.kernel(_define("def inc(i, x):\n    x[i] += 1.0\n", "inc"), cache=False)
    k.compile("float64[::1]")
    compiles = _of(events, "compile")
    assert sorted(e.variant for e in compiles) == ["parallel", "serial"]
    assert {e.signature for e in compiles} == {"(array(float64, 1d, C))"}, "launch indices and limit left out"


def test_cache_miss_says_why_and_cache_hit_reports_the_load(events, cache_dir) -> None:
    source = "def scaled(x):\n    return x * {}\n"
    first = jb.jit(cache=True)(_define(source.format(2.0), "scaled"))
    first(1.0)
    again = jb.jit(cache=True)(_define(source.format(2.0), "scaled"))  # a new process would hold this one
    again(1.0)
    edited = jb.jit(cache=True)(_define("def scaled(x):\n    return x + 1.0\n", "scaled"))
    edited(1.0)
    misses, hits = _of(events, "cache_miss"), _of(events, "cache_hit")
    assert [e.reason for e in misses] == ["not built before (no record of this name in the cache)", "source changed"]
    assert [(e.name, e.signature) for e in hits] == [("telemetry_mod.scaled", "(float64)")]
    assert hits[0].seconds > 0
    assert len(_of(events, "compile")) == 2, "the hit loaded instead of compiling"


def test_launch_hook_sees_domain_argument_types_shapes_and_bytes(events) -> None:
    k = jb.kernel(_define("def axpy(i, a, x, out):\n    out[i] = a * x[i]\n", "axpy"), cache=False)
    x = np.ones(16, np.float32)
    out = np.empty(16, np.float32)
    k[16](2.0, x, out)
    k[8](2.0, x[::2], out[:8])
    f = jb.jit(_define("def total(x):\n    return x.sum()\n", "total"))
    f(x)
    launches = _of(events, "launch")
    assert [(e.name, e.dims) for e in launches] == [("telemetry_mod.axpy", (16,)), ("telemetry_mod.axpy", (8,)),
                                                   ("telemetry_mod.total", None)]
    first, strided, call = launches
    assert first.signature == "(float64, array(float32, 1d, C), array(float32, 1d, C))"
    assert strided.signature == "(float64, array(float32, 1d, A), array(float32, 1d, C))"
    assert first.shapes == ((16,), (16,)) and first.dtypes == ("float32", "float32") and first.nbytes == 128
    assert call.signature == "(array(float32, 1d, C))" and call.nbytes == 64
    assert all(e.seconds > 0 for e in launches)


def test_the_same_array_twice_counts_its_bytes_once(events) -> None:
    k = jb.kernel(_define("def sq(i, x, out):\n    out[i] = x[i] * x[i]\n", "sq"), cache=False)
    x = np.ones(10)
    k[10](x, x)
    assert _of(events, "launch")[0].nbytes == 80


def test_remove_stops_a_hook_and_the_plain_launch_path_comes_back() -> None:
    k = jb.kernel(_define("def neg(i, x):\n    x[i] = -x[i]\n", "neg"), cache=False)
    x = np.ones(4)
    k[4](x)
    plain = Kernel.launch
    seen = []
    handle = jb.telemetry.on("launch", seen.append)
    assert Kernel.launch is not plain and "__call__" in Dispatcher.__dict__
    k[4](x)
    handle.remove()
    handle.remove()  # a second remove does nothing
    k[4](x)
    assert len(seen) == 1
    assert Kernel.launch is plain and "__call__" not in Dispatcher.__dict__
    assert k[4].launch_fn.__func__ is plain, "k[n] bound before the hook binds the plain launch again"
    with jb.telemetry.on("launch", seen.append):
        k[4](x)
    assert len(seen) == 2 and Kernel.launch is plain


def test_a_failing_hook_is_logged_and_never_fails_the_launch(caplog) -> None:
    k = jb.kernel(_define("def one(i, x):\n    x[i] = 1.0\n", "one"), cache=False)
    x = np.zeros(3)

    def broken(event):
        raise RuntimeError("metrics backend down")

    with caplog.at_level(logging.ERROR, logger="jitbridge"), jb.telemetry.on("launch", broken):
        k[3](x)
    assert (x == 1.0).all()
    assert "telemetry hook" in caplog.text and "metrics backend down" in caplog.text


def test_forwarding_to_python_logging_as_the_guide_shows(caplog) -> None:
    log = logging.getLogger("myapp.kernels")

    def forward(event):
        log.info("%s %s%s %.3f s %s", event.kind, event.name, event.signature, event.seconds, event.reason or "")

    handles = [jb.telemetry.on(kind, forward) for kind in ("compile", "cache_hit", "cache_miss")]
    try:
        with caplog.at_level(logging.INFO, logger="myapp.kernels"):
            jb.jit(_define("def cube(x):\n    return x * x * x\n", "cube"))(2.0)
    finally:
        for handle in handles:
            handle.remove()
    assert "compile telemetry_mod.cube(float64)" in caplog.text


def test_unknown_events_and_uncallable_hooks_are_errors_with_a_fix() -> None:
    with pytest.raises(errors.ArgumentError, match="compile, cache_hit, cache_miss, launch"):
        jb.telemetry.on("compiled", print)
    with pytest.raises(errors.ArgumentError, match="callable"):
        jb.telemetry.on("launch", None)


def test_import_registers_nothing_until_the_first_compile() -> None:
    from _subprocess import run_json

    out = run_json("""
import json
from numba.core import event
import jitbridge as jb
before = len(event._registered["numba:compile"])
jb.jit(lambda x: x + 1)(1)
print(json.dumps({"before": before, "after": len(event._registered["numba:compile"]),
                  "compiles": jb.stats()[next(iter(jb.stats()))]["compiles"]}))
""")
    assert out == {"before": 0, "after": 1, "compiles": 1, "stderr": out["stderr"]}
