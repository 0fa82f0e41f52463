"""jb.jit is a drop-in for numba.njit: same options, same results, same introspection."""
import numba
import numpy as np
import pytest

import jitbridge as jb


def _pair(source_fn, **options):
    """The same Python function compiled by numba.njit and by jb.jit with ``options``."""
    return numba.njit(**options)(source_fn), jb.jit(**options)(source_fn)


def norm_and_sum(x):
    return np.sqrt(np.sum(x * x)), x.sum()


def parallel_sum_sq(x):
    total = 0.0
    for i in numba.prange(x.shape[0]):
        total += x[i] * x[i]
    return total


def clipped_mean(x, lo, hi):
    return np.mean(np.clip(x, lo, hi))


def argmax_pair(x):
    best = 0
    for i in range(x.shape[0]):
        if x[i] > x[best]:
            best = i
    return best, x[best]


@pytest.mark.parametrize("fn,options", [
    (norm_and_sum, {}),
    (parallel_sum_sq, {"parallel": True}),
    (clipped_mean, {"fastmath": True}),
    (argmax_pair, {"nogil": True, "error_model": "numpy", "boundscheck": False}),
])
def test_same_results_as_numba(fn, options):
    x = np.random.default_rng(0).standard_normal(1001)
    ref, ours = _pair(fn, **options)
    args = (x, -0.5, 0.5) if fn is clipped_mean else (x,)
    np.testing.assert_allclose(ours(*args), ref(*args), rtol=1e-12)
    np.testing.assert_allclose(ours(*args), fn(*args), rtol=1e-12)


@jb.jit
def _callee(a, b):
    return a * b + 1.0


@jb.jit
def _caller(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _callee(x[i], 2.0)
    return out


def test_calls_other_jitted_functions():
    x = np.arange(5.0)
    np.testing.assert_array_equal(_caller(x), 2 * x + 1)


def test_callable_from_plain_numba():
    outer = numba.njit(lambda v: _callee(v, 3.0))
    assert outer(2.0) == 7.0


def test_eager_signatures_compile_at_decoration_and_fix_the_types():
    f = jb.jit("float64(float64[:])")(lambda x: x.sum())
    g = jb.jit(["int64(int64)", "float64(float64)"])(lambda v: v + 1)
    assert len(f.signatures) == 1 and len(g.signatures) == 2
    assert f(np.ones(3)) == 3.0 and g(1) == 2 and g(1.5) == 2.5
    with pytest.raises(TypeError):
        f(np.ones(3, dtype=np.int32))


def test_introspection():
    x = np.ones(4)
    _caller(x)
    assert _caller.py_func(x).tolist() == _caller(x).tolist()
    assert _caller.signatures
    sig = _caller.signatures[0]
    assert "define" in _caller.inspect_llvm(sig)
    assert "ret" in _caller.inspect_asm(sig)


def test_prange_and_vectorize_reexported():
    assert jb.prange is numba.prange

    @jb.vectorize(["float64(float64, float64)"])
    def hypot(a, b):
        return (a * a + b * b) ** 0.5

    np.testing.assert_allclose(hypot(np.array([3.0]), np.array([4.0])), [5.0])


def test_boundscheck_raises_instead_of_reading_past_the_end():
    f = jb.jit(boundscheck=True)(lambda x: x[10])
    with pytest.raises(IndexError):
        f(np.ones(3))


def test_error_model_numpy_gives_inf_not_exception():
    f = jb.jit(error_model="numpy")(lambda a, b: a / b)
    assert f(1.0, 0.0) == np.inf
    g = jb.jit(lambda a, b: a / b)
    with pytest.raises(ZeroDivisionError):
        g(1.0, 0.0)


def test_foreign_targets_are_refused():
    with pytest.raises(jb.errors.ArgumentError):
        jb.jit(target="cuda")(lambda x: x)


def test_decorating_a_non_function_is_an_argument_error():
    with pytest.raises(jb.errors.ArgumentError):
        jb.jit(np.sum)


def test_pickles_like_a_numba_dispatcher():
    import pickle

    clone = pickle.loads(pickle.dumps(_callee))
    assert clone(2.0, 2.0) == 5.0


def test_compile_counts_in_stats():
    jb.reset_stats()
    f = jb.jit(lambda x: x + 1)
    f(1)
    f(2)
    f(1.0)
    name = next(n for n in jb.stats() if "lambda" in n)
    assert jb.stats()[name]["compiles"] == 2
