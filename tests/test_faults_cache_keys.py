"""Every entry answers for the key it is filed under, and every option that changes the code
is in that key: swapped entries, ``locals``, bounds checking from any source, and a test
that enumerates numba's and jitbridge's options so a new one cannot be forgotten."""
import inspect
import pickle
import subprocess
import sys
import zipfile

import numba
import numpy as np
import pytest
from numba.core import compiler, cpu, options, types

import jitbridge as jb
from jitbridge import config
from jitbridge.cache import bundle
from jitbridge.cache import key as keys
from jitbridge.cache.store import current_store
from jitbridge.cache.store import Store, unpack

from _subprocess import run_json

SWAP_MODULE = """
import jitbridge as jb

@jb.jit(cache=True)
def plus1(x):
    return x + 1.0

@jb.jit(cache=True)
def times10(x):
    return x * 10.0

@jb.jit(cache=True)
def total(a):
    return a.sum()
"""
SWAP_RUN = """
import json, warnings, numpy as np, jitbridge as jb
from jitbridge import errors
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import swapmod
    values = [swapmod.plus1(2.0), swapmod.times10(2.0), float(swapmod.total(np.ones(4))),
              float(swapmod.total(np.ones((2, 3, 4))))]
print(json.dumps({"values": values, "stats": jb.stats(),
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, errors.CacheWarning)]}))
"""
EXPECTED = [3.0, 20.0, 4.0, 24.0]


def _entries(cache_dir):
    """{(short name, signature): path} of every entry."""
    found = {}
    for path in cache_dir.rglob("*.jbc"):
        meta = unpack(path.read_bytes())[0]
        found[(meta["name"].rsplit(".", 1)[-1], meta["signature"])] = path
    return found


def _swap(a, b):
    blob_a, blob_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(blob_b)
    b.write_bytes(blob_a)


def test_swapped_entries_are_caught_on_load_and_by_verify(tmp_path, cache_dir):
    (tmp_path / "swapmod.py").write_text(SWAP_MODULE)
    assert run_json(SWAP_RUN, cwd=tmp_path)["values"] == EXPECTED
    entries = _entries(cache_dir)
    plus1, times10 = (next(p for (name, _), p in entries.items() if name == wanted) for wanted in ("plus1", "times10"))
    one_d, three_d = (p for (name, sig), p in sorted(entries.items()) if name == "total")
    assert "float64, 1, 'C'" in unpack(one_d.read_bytes())[0]["signature"]
    _swap(plus1, times10)  # plus1(2.0) returned 20.0
    _swap(one_d, three_d)  # a 3-d entry run on a 1-d array segfaulted
    verified = subprocess.run([sys.executable, "-m", "jitbridge", "cache", "verify"], capture_output=True, text=True,
                              timeout=120)
    assert verified.returncode == 1 and verified.stdout.count("stored under another key") == 4, verified.stdout

    after = run_json(SWAP_RUN, cwd=tmp_path)
    assert after["values"] == EXPECTED
    assert sum("stored under another key" in w for w in after["warnings"]) == 4, after["warnings"]
    again = run_json(SWAP_RUN, cwd=tmp_path)
    assert again["values"] == EXPECTED and not again["warnings"]
    assert sum(s["compiles"] for s in again["stats"].values()) == 0, "rebuilt entries are hits again"


def test_an_entry_renamed_to_another_key_is_refused_by_bundles(tmp_path):
    source = Store(tmp_path / "a")
    payload = pickle.dumps(("payload",))
    source.write("a" * 64, {"name": "k"}, payload)
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("entries/" + "b" * 64 + ".jbc", source.path("a" * 64).read_bytes())
    imported, rejected = bundle.import_(Store(tmp_path / "t"), path, trust_unsigned=True)
    assert imported == 0 and "stored under another key" in rejected[0][1]


def test_edited_key_parts_are_caught(tmp_path):
    store = Store(tmp_path / "c")
    parts = keys.key_parts("fp", "sig", "cpu", {"x": 1}, ("t", "c", "f"))
    key = keys.digest(parts)
    store.write(key, {"key_parts": parts}, pickle.dumps(1))
    assert store.read(key) is not None
    store.write(key, {"key_parts": {**parts, "options": "{}"}}, pickle.dumps(1))
    with pytest.warns(jb.errors.CacheWarning, match="do not hash to its key"):
        assert store.read(key) is None


# -- options in the key ---------------------------------------------------------------------


def _accumulate(x):
    s = 0.0
    for v in x:
        s += v
    return s


def test_locals_are_part_of_the_key(cache_dir):
    x = np.full(100_000, 0.1) + np.arange(100_000) * 1e-3
    low = jb.jit(cache=True, locals={"s": types.float32})(_accumulate)
    high = jb.jit(cache=True)(_accumulate)
    low_value, high_value = low(x), high(x)
    assert high_value == pytest.approx(float(np.sum(x)), rel=1e-12), "float64 accumulation, not float32's"
    assert low_value != high_value
    reloaded = jb.jit(cache=True)(_accumulate)
    assert reloaded(x) == high_value


OUT_OF_BOUNDS_MODULE = """
import jitbridge as jb

@jb.jit(cache=True)
def at(x, i):
    return x[i]
"""
OUT_OF_BOUNDS_RUN = """
import json, numpy as np, oobmod
try:
    oobmod.at(np.ones(4), 6)
    print(json.dumps({"raised": None}))
except IndexError as exc:
    print(json.dumps({"raised": "IndexError"}))
"""


@pytest.mark.parametrize("variable", ["NUMBA_BOUNDSCHECK", "JITBRIDGE_BOUNDSCHECK"])
def test_bounds_checking_from_the_environment_is_honoured_on_a_warm_cache(tmp_path, cache_dir, variable):
    (tmp_path / "oobmod.py").write_text(OUT_OF_BOUNDS_MODULE)
    warm = "import numpy as np, oobmod; oobmod.at(np.ones(4), 0)"
    subprocess.run([sys.executable, "-c", warm], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    assert list(cache_dir.rglob("*.jbc")), "warm"
    assert run_json(OUT_OF_BOUNDS_RUN, cwd=tmp_path, env={variable: "1"})["raised"] == "IndexError"


def _plain(x):
    return x + 1.0


def _key(disp, sig=(types.float64,)):
    return disp._cache.key(sig, disp.targetctx.codegen())


def _numba_option_names():
    return sorted(name for name in dir(cpu.CPUTargetOptions)
                  if isinstance(getattr(cpu.CPUTargetOptions, name), options.TargetOptions.Mapping))


class _OtherPipeline(compiler.Compiler):
    pass


# jb.jit's own keyword arguments: a value different from the default for each one that
# changes the code; those that do not, with the reason. A new argument fails the test until
# it is added to one of the two.
JIT_VALUES = {"locals": {"x": types.float32}, "pipeline_class": _OtherPipeline, "boundscheck": True,
              "vector_math": False}
JIT_NOT_CODE = {"signature_or_function": "the signature is the other half of the key",
                "cache": "whether to cache at all", "options": "numba options, enumerated separately"}
KERNEL_VALUES = {"locals": {"x": types.float32}, "vector_math": False}
# numba options a kernel passes to its body (``**options``), each with a non-default value.
KERNEL_OPTIONS = {"fastmath": True, "boundscheck": True, "error_model": "python", "inline": "always", "debug": True}
KERNEL_NOT_CODE = {"fn": "the kernel itself", "cache": "whether to cache at all",
                   "signatures": "which specializations to prebuild", "ndim": "changes the launch signature",
                   "serial_below": "chooses serial or parallel per launch, both compiled the same",
                   "disjoint": "only silences race warnings", "options": "numba options, enumerated separately"}
# numba options jb.jit decides itself (nopython only), so a user's value never reaches the key.
JIT_FIXED = {"nopython", "forceobj"}


def test_every_compile_option_is_in_the_key():
    """Enumerates numba's CPU target options and jitbridge's own decorator arguments; each
    must change the key. The key takes options whole, so this fails only if an option stops
    reaching it (or jb.jit gains an argument nobody classified)."""
    base = _key(jb.jit(cache=True)(_plain))
    missing = []
    for name in _numba_option_names():
        if name in JIT_FIXED:
            continue
        if _key(jb.jit(cache=True, **{name: f"<non-default {name}>"})(_plain)) == base:
            missing.append(name)
    for name, param in inspect.signature(jb.jit).parameters.items():
        if name in JIT_NOT_CODE:
            continue
        assert name in JIT_VALUES, f"new jb.jit argument {name!r}: add a non-default value to JIT_VALUES"
        if _key(jb.jit(cache=True, **{name: JIT_VALUES[name]})(_plain)) == base:
            missing.append(f"jb.jit {name}")
    assert not missing, f"options that do not change the cache key: {missing}"
    assert set(_numba_option_names()) >= {"boundscheck", "fastmath", "error_model", "parallel", "nogil", "inline"}


def test_every_kernel_option_is_in_the_key():
    def body(i, x, out):
        out[i] = x[i]

    sig = (types.intp, types.float64[::1], types.float64[::1], types.intp)

    def key_of(kernel):
        return _key(kernel.cpu.launcher(kernel.cpu.plan("serial")), sig)

    base = key_of(jb.kernel(body))
    for name in inspect.signature(jb.kernel).parameters:
        if name in KERNEL_NOT_CODE:
            continue
        assert name in KERNEL_VALUES, f"new jb.kernel argument {name!r}: add a non-default value to KERNEL_VALUES"
        assert key_of(jb.kernel(body, **{name: KERNEL_VALUES[name]})) != base, name
    from jitbridge.frontend.kernel_options import PASSED as _PASSED

    assert set(_PASSED) == set(KERNEL_OPTIONS), "a new numba option for kernels needs a value here"
    for name, value in KERNEL_OPTIONS.items():
        assert key_of(jb.kernel(body, **{name: value})) != base, name


def test_numba_settings_that_change_code_are_in_the_key(monkeypatch):
    base = _key(jb.jit(cache=True)(_plain))
    for name in keys.NUMBA_CODE_SETTINGS:
        with monkeypatch.context() as patch:
            patch.setattr(numba.core.config, name, "<changed>")
            assert _key(jb.jit(cache=True)(_plain)) != base, name
    with config.scope(boundscheck=True):
        assert _key(jb.jit(cache=True)(_plain)) != base, "JITBRIDGE_BOUNDSCHECK"


def test_a_callees_locals_change_the_callers_key():
    ns = {"jb": jb, "types": types}
    exec("@jb.jit\ndef callee(x):\n    s = x\n    return s\n", ns)
    caller_src = "@jb.jit(cache=True)\ndef caller(x):\n    return callee(x)\n"
    exec(caller_src, ns)
    before = _key(ns["caller"])
    exec("@jb.jit(locals={'s': types.float32})\ndef callee(x):\n    s = x\n    return s\n", ns)
    exec(caller_src, ns)
    assert _key(ns["caller"]) != before


def test_entries_record_their_key_and_its_parts(cache_dir):
    jb.jit(cache=True)(_plain)(1.0)
    store = current_store()
    info = next(store.entries())
    meta = store.load_meta(info)
    assert meta["key"] == info.key and keys.digest(meta["key_parts"]) == info.key
    assert "locals" in meta["key_parts"]["options"] and "BOUNDSCHECK" in meta["key_parts"]["options"]
