"""clip, scale, saxpy and relu match NumPy bit for bit; gelu matches a float64 reference."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbridge.kernels as K
from jitbridge import errors

from _kernel_inputs import FLOATS, arrays, threads

SETTINGS = settings(max_examples=25, deadline=None)
numeric = arrays(specials=True)


@SETTINGS
@given(x=numeric, threads=threads, lo=st.integers(-50, 50), width=st.integers(0, 100),
       sides=st.sampled_from(["both", "lo", "hi"]))
def test_clip(x, threads, lo, width, sides) -> None:
    if x.dtype == np.uint8:
        lo = abs(lo)
    lo_arg = lo if sides != "hi" else None
    hi_arg = min(lo + width, 255) if sides != "lo" else None
    expected = np.clip(x, None if lo_arg is None else x.dtype.type(lo_arg),
                       None if hi_arg is None else x.dtype.type(hi_arg))
    np.testing.assert_array_equal(K.clip(x, lo_arg, hi_arg, threads=threads), expected)


@SETTINGS
@given(x=numeric, threads=threads, alpha=st.integers(-3, 3))
def test_scale_and_relu(x, threads, alpha) -> None:
    alpha = abs(alpha) if x.dtype == np.uint8 else alpha
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(K.scale(x, alpha, threads=threads), x.dtype.type(alpha) * x)
        relu = K.relu(x, threads=threads)
        np.testing.assert_array_equal(relu, np.maximum(x, x.dtype.type(0)))
        assert np.array_equal(np.signbit(relu), np.signbit(np.maximum(x, x.dtype.type(0))))


@SETTINGS
@given(x=numeric, threads=threads, alpha=st.sampled_from([0, 1, 2, 7]), seed=st.integers(0, 2**31))
def test_saxpy(x, threads, alpha, seed) -> None:
    y = np.random.default_rng(seed).permutation(x.ravel()).reshape(x.shape)
    with np.errstate(all="ignore"):
        expected = x.dtype.type(alpha) * x + y
    np.testing.assert_array_equal(K.saxpy(alpha, x, y, threads=threads), expected)


_erf = np.vectorize(math.erf, otypes=[np.float64])


@SETTINGS
@given(x=arrays(dtypes=FLOATS, specials=True, scales=(1.0, 5.0)), threads=threads,
       approximate=st.sampled_from(["none", "tanh"]))
def test_gelu(x, threads, approximate) -> None:
    v = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if approximate == "tanh":
            expected = 0.5 * v * (1 + np.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))
        else:
            expected = 0.5 * v * (1 + _erf(v / math.sqrt(2)))
    got = K.gelu(x, approximate=approximate, threads=threads)
    assert got.dtype == x.dtype
    eps = np.finfo(x.dtype).eps
    # 1 + erf(x) cancels for negative x: the error there scales with |x| * eps, not |gelu(x)|
    with np.errstate(invalid="ignore"):
        ok = (np.abs(got - expected) <= 8 * eps * (np.abs(expected) + np.abs(v))) | (got == expected)
    ok |= np.isnan(got) & np.isnan(expected)
    assert ok.all(), (x[~ok][:5], got[~ok][:5], expected[~ok][:5])


def test_bounds_and_arguments() -> None:
    x = np.arange(10, dtype=np.uint8)
    with pytest.raises(errors.ArgumentError, match="lo cannot be represented in uint8"):
        K.clip(x, -1, 5)
    with pytest.raises(errors.ArgumentError, match="alpha cannot be represented in uint8"):
        K.scale(x, 2.5)
    with pytest.raises(errors.ArgumentError, match="clip needs lo, hi or both"):
        K.clip(x)
    with pytest.raises(errors.ArgumentError, match="approximate"):
        K.gelu(np.ones(3), approximate="fast")
    with pytest.raises(errors.ArgumentError, match="y must match x"):
        K.saxpy(1.0, np.ones(3), np.ones(4))
    np.testing.assert_array_equal(K.clip(np.array([1.0, np.nan]), np.nan, 2.0), [np.nan, np.nan])
    assert K.relu(np.empty((0, 3))).shape == (0, 3)


def test_in_place() -> None:
    x = np.linspace(-2, 2, 101)
    expected = np.maximum(x, 0)
    assert K.relu(x, out=x) is x
    np.testing.assert_array_equal(x, expected)
    y = np.arange(10.0)
    K.scale(y[1:], 2.0, out=y[:-1])  # overlapping, shifted: computed into a temporary first
    np.testing.assert_array_equal(y[:-1], 2.0 * np.arange(1.0, 10.0))
