"""cumsum, rolling_sum and histogram against NumPy: exact for integers (and for serial float
cumsum), within rounding otherwise; histogram edges and counts identical."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

import jitbridge.kernels as K
from jitbridge import errors

from _kernel_inputs import FLOATS, NUMERIC, acc_dtype, arrays, modes, threads

SETTINGS = settings(max_examples=30, deadline=None)


def assert_sums_close(got, expected, magnitude, dtype) -> None:
    if dtype.kind == "f":
        eps = np.finfo(dtype).eps
        assert np.all(np.abs(got - expected) <= 64 * eps * magnitude), np.max(np.abs(got - expected) / magnitude)
    else:
        np.testing.assert_array_equal(got, expected)


@SETTINGS
@given(x=arrays(), threads=threads, det=modes)
def test_cumsum(x, threads, det) -> None:
    got = K.cumsum(x, threads=threads, deterministic=det)
    expected = np.cumsum(x, axis=-1)
    assert got.dtype == expected.dtype and got.shape == x.shape
    if threads == 1 and not det:
        np.testing.assert_array_equal(got, expected)  # the same sequential adds as NumPy
    magnitude = np.cumsum(np.abs(x.astype(np.float64)), axis=-1)
    assert_sums_close(got, np.cumsum(x.astype(acc_dtype(x.dtype)), axis=-1), magnitude, x.dtype)


@SETTINGS
@given(x=arrays(min_n=1), threads=threads, data=st.data())
def test_rolling_sum(x, threads, data) -> None:
    window = min(data.draw(st.one_of(st.integers(1, 5), st.integers(1, x.shape[-1]))), x.shape[-1])
    got = K.rolling_sum(x, window, threads=threads)
    expected = sliding_window_view(x.astype(acc_dtype(x.dtype)), window, axis=-1).sum(axis=-1)
    assert got.shape == expected.shape and got.dtype == np.cumsum(x[..., :1], axis=-1).dtype
    magnitude = sliding_window_view(np.abs(x.astype(np.float64)), window, axis=-1).sum(axis=-1)
    assert_sums_close(got, expected, magnitude, x.dtype)


def test_rolling_sum_is_the_same_bits_for_any_split() -> None:
    x = np.random.default_rng(5).standard_normal(500_000)
    runs = {K.rolling_sum(x, 777, threads=t).tobytes() for t in (1, 2)}
    assert len(runs) == 1


@SETTINGS
@given(x=arrays(dtypes=NUMERIC, layouts=("1d", "2d", "strided1d"), specials=False),
       threads=threads, bins=st.integers(1, 300), ranged=st.booleans(), data=st.data())
def test_histogram(x, threads, bins, ranged, data) -> None:
    hist_range = None
    if ranged:
        lo = data.draw(st.integers(-20, 20))
        hist_range = (lo, lo + data.draw(st.sampled_from([0.5, 1, 7, 40.25])))
    expected_counts, expected_edges = np.histogram(x, bins, hist_range)
    counts, edges = K.histogram(x, bins, hist_range, threads=threads)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(edges, expected_edges)
    assert edges.dtype == expected_edges.dtype and counts.dtype == expected_counts.dtype


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: d.__name__)
def test_histogram_edges_nan_and_outside_values(dtype) -> None:
    x = np.concatenate([np.linspace(0, 1, 1001), [np.nan, -1.0, 2.0, 1.0, 0.0]]).astype(dtype)
    for t in (1, 2):
        counts, edges = K.histogram(x, 10, (0.0, 1.0), threads=t)
        expected = np.histogram(x, 10, (0.0, 1.0))
        np.testing.assert_array_equal(counts, expected[0])
        np.testing.assert_array_equal(edges, expected[1])
    with pytest.raises(errors.ArgumentError, match="not finite"):
        K.histogram(x, 10)


@pytest.mark.parametrize("special", [np.nan, np.inf, -np.inf])
def test_histogram_range_of_a_long_input_is_numpys(special) -> None:
    """The autodetected range of a long float input comes from one threaded pass over blocks:
    the same min and max as NumPy's, and a non-finite value in any block is refused."""
    x = np.random.default_rng(6).standard_normal(300_000).astype(np.float32)
    for t in (1, 2):
        counts, edges = K.histogram(x, 50, threads=t)
        expected = np.histogram(x, 50)
        np.testing.assert_array_equal(counts, expected[0])
        np.testing.assert_array_equal(edges, expected[1])
    x[250_000] = special
    with pytest.raises(errors.ArgumentError, match="not finite"):
        K.histogram(x, 50, threads=2)


def test_scan_arguments() -> None:
    with pytest.raises(errors.ArgumentError, match="window"):
        K.rolling_sum(np.ones(5), 6)
    with pytest.raises(errors.ArgumentError, match="window"):
        K.rolling_sum(np.ones(5), 0)
    with pytest.raises(errors.ArgumentError, match="bins"):
        K.histogram(np.ones(5), bins=[0, 1, 2])
    with pytest.raises(errors.ArgumentError, match="range"):
        K.histogram(np.ones(5), range=(2, 1))
    counts, edges = K.histogram(np.empty(0), 4)
    np.testing.assert_array_equal(counts, np.zeros(4))
    np.testing.assert_array_equal(edges, np.linspace(0, 1, 5))
    assert K.cumsum(np.empty((3, 0), np.uint8)).dtype == np.uint64


def test_cumsum_deterministic_blocks() -> None:
    x = np.random.default_rng(9).standard_normal(600_000).astype(np.float32)
    results = {K.cumsum(x, threads=t, deterministic=True).tobytes() for t in (1, 2)}
    assert len(results) == 1
