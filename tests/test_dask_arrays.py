"""jitbridge.dask on dask.array in this process (Dask's synchronous scheduler): map_blocks of
every kind of function, the row-wise kernels and their error on a split last axis, and the
tree reductions against NumPy over random shapes and chunkings. The cluster itself, shipping
and compile counts are in test_dask.py."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitbridge as jb
import jitbridge.kernels as K
from jitbridge import errors

da = pytest.importorskip("dask.array", reason="the dask extra is not installed")
dask = pytest.importorskip("dask", reason="the dask extra is not installed")
jd = pytest.importorskip("jitbridge.dask", reason="the dask extra is not installed")


@pytest.fixture(autouse=True)
def synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@jb.kernel
def axpb(i, j, x, a, out):
    out[i, j] = a * x[i, j] + 1.0


@jb.kernel
def hypot_k(i, x, y, out):
    out[i] = np.sqrt(x[i] * x[i] + y[i] * y[i])


@jb.jit
def cube(x):
    return x * x * x


def rng_array(shape, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def test_map_blocks_of_kernels_and_functions() -> None:
    x, y = rng_array((40, 30)), rng_array((40, 30), 1)
    dx, dy = da.from_array(x, chunks=(7, 11)), da.from_array(y, chunks=(7, 11))
    np.testing.assert_array_equal(jd.map_blocks(axpb, dx, 3.0).compute(), 3.0 * x + 1.0)
    np.testing.assert_array_equal(jd.map_blocks(hypot_k, dx, dy).compute(), np.sqrt(x * x + y * y))
    np.testing.assert_array_equal(jd.map_blocks(cube, dx).compute(), x * x * x)
    as32 = jd.map_blocks(axpb, dx, 3.0, dtype=np.float32)
    assert as32.dtype == np.float32 and as32.compute().dtype == np.float32
    np.testing.assert_allclose(jd.map_blocks(K.gelu, dx).compute(), K.gelu(x), rtol=0)
    np.testing.assert_array_equal(jd.map_blocks(K.saxpy, 2.0, dx, dy).compute(), 2.0 * x + y)
    np.testing.assert_array_equal(jd.map_blocks(K.clip, dx, -0.5, 0.5).compute(), np.clip(x, -0.5, 0.5))


def test_row_wise_kernels_on_whole_rows() -> None:
    x = rng_array((50, 33))
    dx = da.from_array(x, chunks=(8, 33))
    w, b = rng_array(33, 2), rng_array(33, 3)
    np.testing.assert_array_equal(jd.softmax(dx).compute(), K.softmax(x))
    np.testing.assert_array_equal(jd.layernorm(dx, w, b, eps=1e-3).compute(), K.layernorm(x, w, b, eps=1e-3))
    np.testing.assert_array_equal(jd.normalize(dx).compute(), K.normalize(x))
    lse = jd.logsumexp(dx)
    assert lse.shape == (50,)
    np.testing.assert_allclose(lse.compute(), np.log(np.exp(x).sum(axis=-1)), rtol=1e-13)
    np.testing.assert_array_equal(jd.map_blocks(K.cumsum, dx).compute(), np.cumsum(x, axis=-1))
    windows = jd.map_blocks(K.rolling_sum, dx, 4)
    assert windows.shape == (50, 30)
    np.testing.assert_allclose(windows.compute(), K.rolling_sum(x, 4), rtol=0)
    np.testing.assert_array_equal(jd.map_blocks(K.argmax, dx).compute(), np.argmax(x, axis=-1))
    counts = da.from_array(np.arange(60, dtype=np.int32).reshape(6, 10), chunks=(2, 10))
    per_row = jd.map_blocks(K.sum_sq, counts)
    assert per_row.dtype == np.int64
    np.testing.assert_array_equal(per_row.compute(), (np.arange(60).reshape(6, 10) ** 2).sum(axis=-1))


@pytest.mark.parametrize("kernel", [K.softmax, K.layernorm, K.logsumexp, K.sum_sq])
def test_row_wise_kernels_refuse_a_split_last_axis(kernel) -> None:
    dx = da.from_array(rng_array((20, 30)), chunks=(5, 12))
    with pytest.raises(errors.ArgumentError, match="split into 3 chunks") as info:
        jd.map_blocks(kernel, dx)
    assert "x.rechunk({1: -1})" in str(info.value) and "test_dask_arrays.py" in str(info.value)
    with pytest.raises(errors.ArgumentError, match="whole rows"):
        jd.softmax(dx)


def test_map_blocks_errors() -> None:
    dx = da.from_array(rng_array((10, 10)), chunks=5)
    with pytest.raises(errors.ArgumentError, match="then one output array"):
        jd.map_blocks(axpb, dx)  # axpb needs x, a and then out
    with pytest.raises(errors.ArgumentError, match="no Dask array"):
        jd.map_blocks(cube, np.ones(3))
    with pytest.raises(errors.ArgumentError, match="histogram"):
        jd.map_blocks(K.histogram, dx)
    with pytest.raises(errors.ArgumentError, match="index parameters"):
        jd.map_blocks(axpb, da.ones((2, 2, 2), chunks=1), 1.0)
    with pytest.raises(errors.ArgumentError, match="positional"):
        jd.map_blocks(axpb, dx, a=1.0)


shapes = st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple)


@st.composite
def chunked(draw, dtype=np.float64, nan=False):
    shape = draw(shapes)
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    seed = draw(st.integers(0, 2**16))
    x = rng_array(shape, seed, dtype)
    if dtype == np.int64:
        x = np.random.default_rng(seed).integers(-5, 6, size=shape)
    if nan and x.size and draw(st.booleans()):
        x.flat[draw(st.integers(0, x.size - 1))] = np.nan
    if x.size > 1 and draw(st.booleans()):
        x.flat[draw(st.integers(0, x.size - 1))] = x.max() if not np.isnan(x).any() else 0  # ties
    return x, da.from_array(x, chunks=chunks)


fast = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(chunked(), st.sampled_from([None, -1]), st.integers(2, 4))
def test_sum_sq_and_dot_equal_numpy(data, axis, split_every) -> None:
    x, dx = data
    np.testing.assert_allclose(jd.sum_sq(dx, axis=axis, split_every=split_every).compute(),
                               np.sum(x * x, axis=axis), rtol=1e-12)
    y = x[::-1].copy() if x.ndim == 1 else x + 1.0
    dy = da.from_array(y, chunks=dx.chunks)
    np.testing.assert_allclose(jd.dot(dx, dy, axis=axis, split_every=split_every).compute(),
                               np.sum(x * y, axis=axis), rtol=1e-12, atol=1e-12)


@fast
@given(chunked(dtype=np.int64), st.sampled_from([None, -1]))
def test_integer_sum_sq_is_exact(data, axis) -> None:
    x, dx = data
    got = jd.sum_sq(dx, axis=axis).compute()
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, np.sum(x * x, axis=axis))


@pytest.mark.filterwarnings("ignore:Degrees of freedom")
@fast
@given(chunked(), st.sampled_from([None, -1]), st.integers(0, 1), st.integers(2, 4))
def test_variance_equals_numpy(data, axis, ddof, split_every) -> None:
    x, dx = data
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.var(x, axis=axis, ddof=ddof)
    np.testing.assert_allclose(jd.variance(dx, axis=axis, ddof=ddof, split_every=split_every).compute(),
                               expected, rtol=1e-10, atol=1e-14)


def test_variance_merge_keeps_precision_far_from_zero() -> None:
    """Chan's merge subtracts block means, not sums of squares: values 1e9 apart from their
    spread of 1e-3 keep their variance (a sum-of-squares merge would cancel to noise)."""
    x = 1e9 + np.random.default_rng(5).standard_normal(100_000) * 1e-3
    dx = da.from_array(x, chunks=7_001)
    np.testing.assert_allclose(jd.variance(dx).compute(), np.var(x), rtol=1e-6)
    ints = da.from_array(np.arange(10_000), chunks=999)
    assert jd.variance(ints).dtype == np.float64
    np.testing.assert_allclose(jd.variance(ints).compute(), np.var(np.arange(10_000)), rtol=1e-14)


@fast
@given(chunked(nan=True), st.sampled_from([None, -1]), st.integers(2, 4))
def test_argmax_equals_numpy_ties_and_nan(data, axis, split_every) -> None:
    x, dx = data
    np.testing.assert_array_equal(jd.argmax(dx, axis=axis, split_every=split_every).compute(),
                                  np.argmax(x, axis=axis))


@fast
@given(chunked(), st.integers(1, 20), st.booleans())
def test_histogram_equals_numpy(data, bins, given_range) -> None:
    x, dx = data
    span = (-1.0, 0.5) if given_range else None
    counts, edges = jd.histogram(dx, bins, range=span)
    want_counts, want_edges = np.histogram(x, bins, range=span)
    np.testing.assert_array_equal(counts.compute(), want_counts)
    np.testing.assert_array_equal(edges, want_edges)


def test_reduction_errors() -> None:
    dx = da.from_array(rng_array((6, 6)), chunks=3)
    with pytest.raises(errors.ArgumentError, match="last axis"):
        jd.sum_sq(dx, axis=0)
    with pytest.raises(errors.ArgumentError, match="shape and dtype"):
        jd.dot(dx, dx[:3])
    with pytest.raises(errors.ArgumentError, match="empty"):
        jd.argmax(da.ones((0,), chunks=1))
    nan = da.from_array(np.array([1.0, np.nan]), chunks=1)
    with pytest.raises(errors.ArgumentError, match="not finite"):
        jd.histogram(nan)
