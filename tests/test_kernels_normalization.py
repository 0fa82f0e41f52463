"""softmax, logsumexp, normalize and layernorm against float64 NumPy formulas, with NaN and
infinities, 1-D/2-D/strided, serial and threaded, fast and deterministic."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbridge.kernels as K
from jitbridge import errors

from _kernel_inputs import FLOATS, arrays, modes, threads

SETTINGS = settings(max_examples=30, deadline=None)
floats = arrays(dtypes=FLOATS, specials=True, scales=(1.0, 30.0))


def tolerance(dtype: np.dtype) -> dict[str, float]:
    return {"rtol": 2e-5, "atol": 2e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}


def reference(fn):
    """Evaluate a NumPy formula in float64 with NumPy's warnings about NaN/inf silenced."""
    def wrapped(x, *args):
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(x.astype(np.float64), *args)
    return wrapped


@reference
def np_softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@reference
def np_logsumexp(x):
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1], -np.inf)
    m = x.max(axis=-1)
    finite = np.where(np.isfinite(m), m, 0)
    value = finite + np.log(np.exp(x - finite[..., None]).sum(axis=-1))
    value = np.where(np.isinf(m), m, value)  # all -inf gives -inf; any +inf gives +inf
    return np.where(np.isnan(x).any(axis=-1), np.nan, value)


@reference
def np_layernorm(x, weight=None, bias=None):
    y = (x - x.mean(axis=-1, keepdims=True)) / np.sqrt(x.var(axis=-1, keepdims=True) + 1e-5)
    return y * (1 if weight is None else weight) + (0 if bias is None else bias)


@SETTINGS
@given(x=floats, threads=threads, det=modes)
def test_softmax(x, threads, det) -> None:
    if x.shape[-1] == 0:
        assert K.softmax(x).shape == x.shape
        return
    got = K.softmax(x, threads=threads, deterministic=det)
    assert got.dtype == x.dtype and got.shape == x.shape
    np.testing.assert_allclose(got, np_softmax(x), **tolerance(x.dtype))


@SETTINGS
@given(x=floats, threads=threads, det=modes)
def test_logsumexp(x, threads, det) -> None:
    got = K.logsumexp(x, threads=threads, deterministic=det)
    assert np.shape(got) == x.shape[:-1] and np.asarray(got).dtype == x.dtype
    tol = tolerance(x.dtype)
    np.testing.assert_allclose(got, np_logsumexp(x), rtol=tol["rtol"], atol=tol["rtol"] * 100)


@SETTINGS
@given(x=floats, threads=threads, det=modes)
def test_normalize(x, threads, det) -> None:
    got = K.normalize(x, threads=threads, deterministic=det)
    expected = reference(lambda v: v / np.sqrt((v * v).sum(axis=-1, keepdims=True)))(x)
    np.testing.assert_allclose(got, expected, **tolerance(x.dtype))


@SETTINGS
@given(x=floats, threads=threads, det=modes, affine=st.sampled_from(["none", "weight", "both"]),
       seed=st.integers(0, 2**31))
def test_layernorm(x, threads, det, affine, seed) -> None:
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal(x.shape[-1]).astype(x.dtype) if affine != "none" else None
    bias = rng.standard_normal(x.shape[-1]).astype(x.dtype) if affine == "both" else None
    got = K.layernorm(x, weight, bias, threads=threads, deterministic=det)
    tol = {"rtol": 2e-4, "atol": 2e-4} if x.dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-9}
    np.testing.assert_allclose(got, np_layernorm(x, weight, bias), **tol)


def test_softmax_rows_with_infinities_follow_the_formula() -> None:
    x = np.array([[0.0, -np.inf, 1.0], [-np.inf, -np.inf, -np.inf], [np.inf, 0.0, 1.0], [np.nan, 0, 1]])
    np.testing.assert_allclose(K.softmax(x), np_softmax(x))
    np.testing.assert_array_equal(K.logsumexp(x)[1:], [-np.inf, np.inf, np.nan])


def test_long_rows_where_the_max_grows_late_and_leading_blocks_are_minus_inf() -> None:
    x = np.full(400_000, -np.inf)
    x[300_000:] = np.linspace(-50, 700, 100_000)
    for t in (1, 2):
        np.testing.assert_allclose(K.softmax(x, threads=t), np_softmax(x), rtol=1e-12, atol=1e-300)
        assert K.logsumexp(x, threads=t) == pytest.approx(np_logsumexp(x), rel=1e-14)


def test_in_place_and_out_arguments() -> None:
    x = np.random.default_rng(1).standard_normal((4, 100))
    expected = np_softmax(x)
    out = np.empty_like(x)
    assert K.softmax(x, out=out) is out
    np.testing.assert_allclose(out, expected)
    assert K.softmax(x, out=x) is x
    np.testing.assert_allclose(x, expected)
    strided = np.empty((4, 200))[:, ::2]
    K.layernorm(x, out=strided)
    np.testing.assert_allclose(strided, np_layernorm(x))


def test_bad_arguments() -> None:
    x = np.ones((3, 5))
    with pytest.raises(errors.ArgumentError, match="x has dtype int64"):
        K.softmax(np.ones(5, np.int64))
    with pytest.raises(errors.ArgumentError, match="weight must match"):
        K.layernorm(x, weight=np.ones(4))
    with pytest.raises(errors.ArgumentError, match="bias must match"):
        K.layernorm(x, bias=np.ones(5, np.float32))
    with pytest.raises(errors.ArgumentError, match="out has the wrong shape"):
        K.normalize(x, out=np.empty((3, 4)))
    with pytest.raises(errors.ArgumentError, match="out has the wrong shape or dtype"):
        K.softmax(x, out=np.empty((3, 5), np.float32))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
def test_deterministic_mode_is_bit_identical_across_thread_counts(dtype) -> None:
    x = np.random.default_rng(3).standard_normal(700_001).astype(dtype)
    for kernel in (K.softmax, K.logsumexp, K.normalize, K.layernorm):
        results = {np.asarray(kernel(x, threads=t, deterministic=True)).tobytes() for t in (1, 2, 1)}
        assert len(results) == 1, kernel.__name__
