"""jb.jit means what numba.jit means: object mode, eager recursion, numba's wording in errors,
numba's "cannot cache" warning. One test per case issue 16 found in numba's own test suite."""
import ctypes
import ctypes.util
import logging
import warnings
from pathlib import Path

import numba
import numpy as np
import pytest
from numba.core.errors import NumbaDeprecationWarning, NumbaWarning, TypingError

import jitbridge as jb
from _subprocess import run_json
from jitbridge import errors


def _entries(cache_dir):
    return list(cache_dir.rglob("*.jbc"))


def test_nopython_false_warns_like_numba_and_compiles_in_nopython_mode():
    with pytest.warns(NumbaDeprecationWarning, match="nopython=False"):
        f = jb.jit(nopython=False)(lambda x: x + 1)
    assert f(1) == 2
    assert f.targetoptions["nopython"] is True
    assert f.nopython_signatures  # object-mode overloads are not nopython signatures


def test_nopython_and_forceobj_together_is_numba_s_value_error():
    with pytest.raises(ValueError, match="Only one of 'nopython' or 'forceobj'"):
        jb.jit(nopython=True, forceobj=True)


def make_objects(n):
    words = {}
    for i in range(n):
        words.setdefault(str(i % 3), []).append(i)
    return sorted(words.items())


@pytest.mark.filterwarnings("ignore:\\s*Compilation is falling back to object mode")
def test_forceobj_runs_in_numba_object_mode_and_is_not_cached(cache_dir, caplog):
    with caplog.at_level(logging.INFO, logger="jitbridge"):
        f = jb.jit(forceobj=True, cache=True)(make_objects)
        g = jb.jit(forceobj=True)(lambda v: object() is not None and v)
    with pytest.warns(NumbaWarning, match='Cannot cache compiled function "make_objects"'):
        assert f(7) == make_objects(7)
    assert g(3) == 3 and f(7) == make_objects(7)
    assert f.targetoptions["nopython"] is False and not f.nopython_signatures
    assert _entries(cache_dir) == []
    said = [r.getMessage() for r in caplog.records if "object mode" in r.getMessage()]
    assert len(said) == 2 and "make_objects" in said[0] and "not cached" in said[0]


def lifted_sum(n):
    object()  # forces object mode for the function; the loop below is lifted to nopython
    total = 0
    for i in range(n):
        total += i
    return total


def test_loop_lifting_in_object_mode():
    f = jb.jit(forceobj=True)(lifted_sum)
    assert f(10) == 45
    (cres,) = f.overloads.values()
    assert cres.lifted, "the loop was not lifted"


def test_forceobj_with_an_eager_signature():
    f = jb.jit((numba.intp,), forceobj=True)(lambda x: [x] * 2)
    assert f(3) == [3, 3]


@jb.jit("int64(int64)")
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@jb.jit  # mutual recursion compiles on call, as in numba (at decoration is_odd does not exist yet)
def is_even(n):
    return True if n == 0 else is_odd(n - 1)


@jb.jit
def is_odd(n):
    return False if n == 0 else is_even(n - 1)


def test_eager_signature_self_recursion():
    assert fib(20) == 6765
    assert fib.signatures == [(numba.int64,)]


def test_mutual_recursion():
    assert is_even(10) and not is_even(7) and is_odd(7)


def test_eager_signature_recursion_of_an_inner_function():
    def outer(n):
        @jb.jit("int64(int64)")
        def countdown(k):
            return 0 if k <= 0 else 1 + countdown(k - 1)

        return countdown(n)

    assert outer(5) == 5


def triu(n):
    return np.triu_indices(n)


def test_typing_error_says_what_numba_says_plus_location_and_fix():
    with pytest.raises(TypingError) as info:
        jb.jit(triu)(1.5)
    assert isinstance(info.value, errors.KernelTypingError)
    text = str(info.value)
    with pytest.raises(TypingError) as numba_info:
        numba.njit(triu)(1.5)
    first = text.splitlines()[0]
    assert "triu_indices" in first and f"{__file__}:" in first
    assert "  reason: n must be an integer" in text
    assert "fix:" in text
    # numba indents its candidate list deeper after each failure in a process: compare stripped lines
    core = [ln.strip() for ln in str(numba_info.value).splitlines() if ln.strip() and "0x" not in ln]
    assert all(ln in text for ln in core), [ln for ln in core if ln not in text]


def test_typing_error_keeps_numba_s_type_spelling_with_the_layout():
    with pytest.raises(TypingError) as info:
        jb.jit(lambda x: x.no_such_attribute)(np.ones((2, 2))[:, :1])
    assert "array(float64, 2d, A)" in str(info.value).splitlines()[0]
    assert "argument types: (array(float64, 2d, A))" in str(info.value)


def test_missing_prange_import_keeps_numba_s_hint():
    source = "def f(n):\n    s = 0\n    for i in prange(n):\n        s += i\n    return s\n"
    namespace = {}
    exec(compile(source, "<no-prange>", "exec"), namespace)
    with pytest.raises(TypingError, match="has it been imported"):
        jb.jit(namespace["f"])(3)


def test_no_matching_definition_is_numba_s_type_error():
    f = jb.jit("float64(float64[:])")(lambda x: x.sum())
    with pytest.raises(TypeError, match=r"No matching definition for argument type\(s\) array\(int32, 1d, C\)") as info:
        f(np.ones(3, dtype=np.int32))
    assert isinstance(info.value, errors.ArgumentError) and "float64" in str(info.value)


def test_too_many_arguments_is_numba_s_message():
    f = jb.jit(lambda x: x)
    with pytest.raises(TypeError, match="too many arguments: expected 1, got 2"):
        f(1, 2)


def test_already_jitted_and_non_functions_are_numba_s_type_errors():
    with pytest.raises(TypeError, match="already jitted"):
        jb.jit(fib)
    with pytest.raises(TypeError, match="not a function"):
        jb.jit(np.sum)


_libm = ctypes.util.find_library("m")


@pytest.mark.skipif(_libm is None, reason="no C math library found for a ctypes function pointer")
def test_dynamic_globals_are_warned_about_like_numba_and_not_cached(cache_dir):
    c_sin = ctypes.CDLL(_libm).sin
    c_sin.argtypes, c_sin.restype = [ctypes.c_double], ctypes.c_double

    def use_c_sin(x):
        return c_sin(x)

    f = jb.jit(cache=True)(use_c_sin)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", NumbaWarning)
        assert f(0.5) == pytest.approx(np.sin(0.5))
    said = [str(w.message) for w in caught if issubclass(w.category, NumbaWarning)]
    assert said == ['Cannot cache compiled function "use_c_sin" as it uses dynamic globals '
                    '(such as ctypes pointers and large global arrays)']
    assert _entries(cache_dir) == []


def test_make_compat_swaps_the_decorators_in_test_code_only():
    """tools/compat/swap: code outside numba's library gets jb.jit for numba.jit/njit, however it
    imports them; numba's own modules keep numba's decorators."""
    swap = Path(__file__).resolve().parents[1] / "tools" / "compat" / "swap"
    out = run_json("""
        import json
        import numba as nb
        from numba import njit, jit
        from numba.experimental import structref  # numba's own module: `from numba import njit` there
        import jitbridge
        print(json.dumps({"njit": njit is jitbridge.jit, "jit": jit is jitbridge.jit, "attr": nb.njit is jitbridge.jit,
                          "library": structref.njit is nb.core.decorators.njit}))
    """, env={"PYTHONPATH": str(swap)})
    assert out == {"njit": True, "jit": True, "attr": True, "library": True, "stderr": out["stderr"]}


def test_object_mode_takes_arrays_nopython_code_cannot():
    f = jb.jit(forceobj=True)(lambda a: a[0].upper())
    assert f(np.array(["x", None], dtype=object)) == "X"
