"""sum_sq, dot, variance and argmax against NumPy: every dtype, 1-D/2-D/strided, sizes
0..10^5, serial and threaded, fast and deterministic."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbridge.kernels as K
from jitbridge import config, errors

from _kernel_inputs import FLOATS, acc_dtype, arrays, modes, threads

SETTINGS = settings(max_examples=30, deadline=None)


def close(got, expected, dtype: np.dtype, scale: float = 1.0) -> None:
    """Floats agree to a few ulp of the accumulated magnitude; integers exactly."""
    got, expected = np.asarray(got), np.asarray(expected)
    if dtype.kind == "f":
        rtol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * scale)
    else:
        np.testing.assert_array_equal(got, expected)


@SETTINGS
@given(x=arrays(specials=True), threads=threads, det=modes)
def test_sum_sq(x, threads, det) -> None:
    got = K.sum_sq(x, threads=threads, deterministic=det)
    wide = x.astype(acc_dtype(x.dtype))
    expected = np.sum(wide * wide, axis=-1)
    assert np.shape(got) == x.shape[:-1]
    assert np.asarray(got).dtype == (x.dtype if x.dtype.kind == "f" else expected.dtype)
    with np.errstate(invalid="ignore"):
        close(got, expected, x.dtype)


@SETTINGS
@given(x=arrays(), threads=threads, det=modes, seed=st.integers(0, 2**31))
def test_dot(x, threads, det, seed) -> None:
    y = np.random.default_rng(seed).permutation(x.ravel()).reshape(x.shape)
    got = K.dot(x, y, threads=threads, deterministic=det)
    acc = acc_dtype(x.dtype)
    expected = np.sum(x.astype(acc) * y.astype(acc), axis=-1)
    close(got, expected, x.dtype, scale=float(np.sum(np.abs(x.astype(np.float64)) ** 2)))


@SETTINGS
@given(x=arrays(specials=True), threads=threads, det=modes, ddof=st.sampled_from([0, 1]))
def test_variance(x, threads, det, ddof) -> None:
    got = K.variance(x, ddof=ddof, threads=threads, deterministic=det)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy warns on empty rows and ddof
        expected = np.var(x.astype(np.float64), axis=-1, ddof=ddof)
        biggest = float(np.nanmax(np.abs(expected), initial=0))
    assert np.asarray(got).dtype == (x.dtype if x.dtype.kind == "f" else np.float64)
    rtol = 1e-4 if x.dtype == np.float32 else 1e-9
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol * biggest)


@SETTINGS
@given(x=arrays(min_n=1, specials=True, scales=(1.0, 1e-3)), threads=threads, det=modes)
def test_argmax_first_max_or_first_nan(x, threads, det) -> None:
    got = K.argmax(x, threads=threads, deterministic=det)
    np.testing.assert_array_equal(got, np.argmax(x, axis=-1))


def test_argmax_ties_and_nan_in_later_blocks() -> None:
    x = np.zeros(300_000)
    x[[5, 150_000, 299_999]] = 1.0
    assert K.argmax(x, threads=2) == 5
    x[200_000] = np.nan
    assert K.argmax(x, threads=2) == 200_000 == np.argmax(x)


def test_empty_inputs_follow_numpy() -> None:
    assert K.sum_sq(np.empty(0)) == 0.0
    assert K.dot(np.empty(0, np.int32), np.empty(0, np.int32)) == 0
    assert np.isnan(K.variance(np.empty(0)))
    assert K.sum_sq(np.empty((0, 4))).shape == (0,)
    np.testing.assert_array_equal(K.variance(np.empty((3, 0))), np.full(3, np.nan))
    for empty in (np.empty(0), np.empty((2, 0))):
        with pytest.raises(errors.ArgumentError, match="empty"):
            K.argmax(empty)
        with pytest.raises(ValueError):
            np.argmax(empty, axis=-1)


def test_bad_arguments_name_the_argument() -> None:
    x = np.ones(10)
    with pytest.raises(errors.ArgumentError, match="x has dtype complex128"):
        K.sum_sq(x.astype(complex))
    with pytest.raises(errors.ArgumentError, match="y must match x"):
        K.dot(x, np.ones(11))
    with pytest.raises(errors.ArgumentError, match="y must match x"):
        K.dot(x, np.ones(10, np.float32))
    with pytest.raises(errors.ArgumentError, match="last axis"):
        K.variance(np.ones((3, 4)), axis=0)
    with pytest.raises(errors.ArgumentError, match="threads"):
        K.sum_sq(x, threads=0)
    with pytest.raises(errors.ArgumentError, match="at least 1 dimension"):
        K.sum_sq(np.float64(3.0))


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
def test_deterministic_mode_is_bit_identical_across_thread_counts(dtype) -> None:
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(1_000_003) * 1e3).astype(dtype)
    y = rng.standard_normal(x.size).astype(dtype)
    for kernel, args in ((K.sum_sq, (x,)), (K.dot, (x, y)), (K.variance, (x,))):
        results = [kernel(*args, threads=t, deterministic=True) for t in (1, 2, 2, 1)]
        assert len({np.asarray(r).tobytes() for r in results}) == 1, kernel.__name__
    with config.scope(deterministic=True):
        assert K.sum_sq(x, threads=2).tobytes() == K.sum_sq(x, threads=1).tobytes()
