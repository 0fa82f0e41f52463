"""The CUDA target without a GPU: PTX for sm_90 from numba-cuda's NVVM, and launches in numba's
CUDA simulator (a subprocess with NUMBA_ENABLE_CUDASIM=1) checked against the CPU target.
Tests that need a real GPU are skipped with the reason when none is here."""
import json
import logging
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import jitbridge as jb
from jitbridge import errors
from jitbridge.targets import cuda as cuda_target

try:
    import numba.cuda  # noqa: F401
    from numba.cuda.cudadrv import nvvm

    HAVE_NVVM = nvvm.is_available()
except Exception:  # numba-cuda or its NVVM wheel is not installed
    HAVE_NVVM = False

needs_nvvm = pytest.mark.skipif(not HAVE_NVVM, reason="numba-cuda with NVVM is not installed (pip install jitbridge[cuda])")
needs_gpu = pytest.mark.skipif(not cuda_target.is_available(), reason=f"no usable GPU: {cuda_target.unavailable_reason()}")

twice = jb.jit(lambda v: v * 2.0)


@jb.kernel
def saxpy(i, a, x, y, out):
    out[i] = a * x[i] + y[i]


@jb.kernel
def with_helpers(i, x, out):
    out[i] = twice(x[i]) + jb.math.exp(x[i]) + jb.math.tanh(x[i])


@jb.kernel
def count_bins(i, bins, counts):
    jb.atomic.add(counts, bins[i], 1)


@needs_nvvm
def test_ptx_for_sm90_without_a_gpu():
    ptx = saxpy.compile_ptx("float64, float64[::1], float64[::1], float64[::1]", cc=(9, 0))
    assert ".target sm_90" in ptx and re.search(r"\.entry\s+\S*test_cuda5saxpy", ptx)
    assert "fma.rn.f64" in ptx and "ld.global.f64" in ptx and "st.global.f64" in ptx
    f32 = saxpy.compile_ptx("float32, float32[::1], float32[::1], float32[::1]", cc=(9, 0))
    assert "fma.rn.f32" in f32 and "st.global.f32" in f32 and "f64" not in f32


@needs_nvvm
def test_ptx_of_a_kernel_calling_helpers_math_and_atomics():
    """numba-cuda compiles a called device function for the current device, which needs a GPU;
    jitbridge inlines helpers at numba's IR level, so the whole kernel compiles for any cc."""
    ptx = with_helpers.compile_ptx("float64[::1], float64[::1]", cc=(9, 0))
    assert ".entry" in ptx and "st.global.f64" in ptx
    assert not re.search(r"^\s*call", ptx, re.M), "helpers, exp and tanh are all inlined"
    atomics = count_bins.compile_ptx("int64[::1], int64[::1]", cc=(8, 0))
    assert ".target sm_80" in atomics and "atom.global.add.u64" in atomics


def test_cuda_without_a_gpu_says_why():
    if cuda_target.is_available():
        pytest.skip("a GPU is usable here")
    with pytest.raises(errors.TargetUnavailableError, match="CUDA target is not usable") as info:
        saxpy.launch(2, 1.0, np.ones(2), np.ones(2), np.ones(2), target="cuda")
    assert info.value.values["reason"] == cuda_target.unavailable_reason()
    assert "target='cpu'" in info.value.fix


def test_auto_runs_host_arrays_on_the_cpu_and_logs_a_missing_gpu_once(caplog):
    out = np.zeros(3)
    with caplog.at_level(logging.INFO, logger="jitbridge"):
        for _ in range(3):
            saxpy.launch(3, 2.0, np.ones(3), np.ones(3), out, target="auto")
    assert out.tolist() == [3.0] * 3
    if not cuda_target.is_available():
        assert sum("running kernels on the CPU" in r.message for r in caplog.records) <= 1


SIMULATED = textwrap.dedent("""
    import json, math
    import numpy as np
    from numba import cuda
    import jitbridge as jb
    import jitbridge.kernels as K

    twice = jb.jit(lambda v: v * 2.0)

    @jb.kernel
    def with_helpers(i, x, out):
        out[i] = twice(x[i]) + jb.math.exp(x[i]) + jb.math.sigmoid(x[i])

    @jb.kernel
    def count_bins(i, bins, counts):
        jb.atomic.add(counts, bins[i], 1)

    @jb.kernel
    def extremes(i, x, lo, hi):
        jb.atomic.min(lo, 0, x[i])
        jb.atomic.max(hi, 0, x[i])

    @jb.kernel
    def outer(i, j, x, y, out):
        out[i, j] = x[i] * y[j]

    rng = np.random.default_rng(0)
    x = rng.standard_normal(29)
    results = {}
    gpu, cpu = np.empty(29), np.empty(29)
    with_helpers.launch(29, x, gpu, target="cuda")
    with_helpers.launch(29, x, cpu, target="cpu")
    results["helpers"] = bool(np.allclose(gpu, cpu, rtol=1e-13))
    bins = rng.integers(0, 7, 200)
    counts = np.zeros(7, np.int64)
    count_bins.launch(200, bins, counts, target="cuda")
    results["atomic add"] = counts.tolist() == np.bincount(bins, minlength=7).tolist()
    lo, hi = np.array([np.inf]), np.array([-np.inf])
    extremes.launch(29, x, lo, hi, target="cuda")
    results["atomic min/max"] = bool(lo[0] == x.min() and hi[0] == x.max())
    o = np.empty((3, 5))
    outer.launch((3, 5), np.arange(3.0), np.arange(5.0), o, target="cuda", threads_per_block=4)
    results["2-d"] = bool(np.array_equal(o, np.outer(np.arange(3.0), np.arange(5.0))))
    dx, dout = cuda.to_device(x), cuda.device_array(29)
    with_helpers[29](dx, dout)  # target "auto": the arguments live on the device
    results["auto on device"] = bool(np.allclose(dout.copy_to_host(), cpu, rtol=1e-13))
    try:
        with_helpers.launch(29, dx, dout, target="cpu")
    except jb.errors.LaunchError as exc:
        results["cpu refuses device"] = "GPU memory" in str(exc)
    m = rng.standard_normal((4, 9))
    dm = cuda.to_device(m)
    try:
        with_helpers.launch(40, np.ones(29), np.empty(40), target="cuda")
    except jb.errors.LaunchError as exc:
        results["extent checked"] = "'x'" in str(exc)
    results["library softmax"] = bool(np.allclose(K.softmax(dm).copy_to_host(), K.softmax(m), rtol=1e-12))
    results["library gelu"] = bool(np.allclose(K.gelu(dm).copy_to_host(), K.gelu(m), rtol=1e-12))
    results["library saxpy"] = bool(np.allclose(K.saxpy(2.0, dm, dm).copy_to_host(), K.saxpy(2.0, m, m)))
    results["library layernorm"] = bool(np.allclose(K.layernorm(dm).copy_to_host(), K.layernorm(m), rtol=1e-10))
    results["library logsumexp"] = bool(np.allclose(K.logsumexp(dm), K.logsumexp(m), rtol=1e-12))
    results["library sum_sq"] = bool(np.isclose(K.sum_sq(cuda.to_device(m[0])), K.sum_sq(m[0]), rtol=1e-12))
    results["library dot rows"] = bool(np.allclose(K.dot(dm, dm), K.dot(m, m), rtol=1e-12))
    print(json.dumps(results))
""")


def test_launches_in_the_cuda_simulator_match_the_cpu(tmp_path):
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "JITBRIDGE_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-c", SIMULATED], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    assert results and all(results.values()), results
    assert len(results) == 14, results


@needs_gpu
def test_saxpy_on_the_gpu_matches_the_cpu():
    n = 1 << 20
    x, y = np.random.default_rng(1).random(n), np.random.default_rng(2).random(n)
    gpu, cpu = np.empty(n), np.empty(n)
    saxpy.launch(n, 2.0, x, y, gpu, target="cuda")
    saxpy.launch(n, 2.0, x, y, cpu, target="cpu")
    np.testing.assert_allclose(gpu, cpu, rtol=1e-15)


SIG = "float64, float64[::1], float64[::1], float64[::1]"


def _cuda_verdicts():
    """The audit's verdicts on CUDA entries, and on every corrupt one (its metadata unread)."""
    from jitbridge.cache import audit
    from jitbridge.cache.store import current_store

    return [v for v in audit.audit_all(current_store()) if v.meta.get("target") == "cuda" or v.status == "corrupt"]


@needs_nvvm
def test_ptx_is_kept_in_the_cache_per_compute_capability_and_toolkit(cache_dir, monkeypatch):
    sm90 = saxpy.compile_ptx(SIG, cc=(9, 0))
    sm80 = saxpy.compile_ptx(SIG, cc=(8, 0))
    found = _cuda_verdicts()
    assert sorted(tuple(v.meta["cc"]) for v in found) == [(8, 0), (9, 0)]
    assert {v.status for v in found} == {"ok"}, "verified as PTX text, never unpickled"
    assert {v.meta["toolkit"] for v in found} == {cuda_target._nvvm_version()}

    def nvvm_called(*args, **kwargs):
        raise AssertionError("NVVM called although the cache holds this PTX")

    monkeypatch.setattr(numba.cuda, "compile_ptx", nvvm_called)
    assert saxpy.compile_ptx(SIG, cc=(9, 0)) == sm90 and saxpy.compile_ptx(SIG, cc=(8, 0)) == sm80
    monkeypatch.setattr(cuda_target, "_nvvm_version", lambda: "99.0")
    with pytest.raises(AssertionError, match="NVVM called"):  # another toolkit: another key
        saxpy.compile_ptx(SIG, cc=(9, 0))


@needs_nvvm
def test_a_cuda_entry_is_checked_against_its_key_before_use(cache_dir):
    from jitbridge.cache.store import current_store, pack

    saxpy.compile_ptx(SIG, cc=(9, 0))
    saxpy.compile_ptx(SIG, cc=(8, 0))
    store = current_store()
    entries = {tuple(v.meta["cc"]): v for v in _cuda_verdicts()}
    meta90 = entries[(9, 0)].meta
    sm80_payload = store.load(entries[(8, 0)].info.path, entries[(8, 0)].info.key)[1]
    entries[(9, 0)].info.path.write_bytes(pack(meta90, sm80_payload))  # sm_80 code filed as the sm_90 entry
    assert sorted((v.status, v.reason) for v in _cuda_verdicts()) == [
        ("corrupt", "a CUDA entry whose PTX is not an sm_90 kernel"), ("ok", None)]
    with pytest.warns(errors.CacheWarning, match="not an sm_90 kernel"):
        rebuilt = saxpy.compile_ptx(SIG, cc=(9, 0))
    assert ".target sm_90" in rebuilt and ".target sm_80" not in rebuilt, "refused, rebuilt"
    assert {v.status for v in _cuda_verdicts()} == {"ok"}


@needs_nvvm
def test_jitbridge_compile_target_cuda_builds_ptx_into_the_cache(cache_dir, tmp_path):
    from typer.testing import CliRunner

    from jitbridge.cli import app

    (tmp_path / "gpu_kernels_mod.py").write_text(textwrap.dedent("""
        import jitbridge as jb

        @jb.jit
        def twice(v):
            return v * 2.0

        @jb.kernel(signatures=["float64[::1], float64[::1]", "float32[::1], float32[::1]"])
        def double(i, x, out):
            out[i] = twice(x[i])
    """))
    runner = CliRunner()
    built = runner.invoke(app, ["compile", str(tmp_path / "gpu_kernels_mod.py"), "--target", "cuda", "--cc", "90",
                                "--cc", "80", "--jobs", "1"])
    assert built.exit_code == 0, built.output
    assert "4 specialization(s)" in built.output
    listed = runner.invoke(app, ["cache", "ls"]).output
    assert listed.count("gpu_kernels_mod.double [cuda sm_90, nvvm") == 2
    assert listed.count("[cuda sm_80, nvvm") == 2 and "(array(float32, 1d, C), array(float32, 1d, C))" in listed
    assert "[serial]" not in listed, "--target cuda builds no CPU code"
    bad = runner.invoke(app, ["compile", str(tmp_path / "gpu_kernels_mod.py"), "--target", "cuda", "--cc", "sm90"])
    assert bad.exit_code == 2 and "compute capability as digits" in bad.output
