"""jb.atomic: exact under parallel launches, privatized or not, on every supported dtype."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbridge as jb

THREADS = 2


@jb.kernel
def count_bins(i, bins, counts):
    jb.atomic.add(counts, bins[i], 1)


@jb.kernel
def centroid_sums(i, points, labels, sums, counts):
    c = labels[i]
    for d in range(points.shape[1]):
        jb.atomic.add(sums, (c, d), points[i, d])
    jb.atomic.add(counts, c, 1)


@jb.kernel
def claim_first(i, keys, owner, seen):
    old = jb.atomic.cas(owner, keys[i], -1, i)
    seen[i] = old


@jb.kernel
def extremes(i, x, groups, lo, hi):
    jb.atomic.min(lo, groups[i], x[i])
    jb.atomic.max(hi, groups[i], x[i])


def _parallel(kernel, n, *args):
    """A launch on THREADS threads whatever its size."""
    kernel.launch(n, *args, threads=THREADS)


@pytest.mark.parametrize("nbins", [16, 200_000], ids=["privatized", "shared-atomic"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint32, np.uint64, np.float32, np.float64])
def test_histogram_matches_bincount_on_two_threads(nbins, dtype):
    n = 300_000
    bins = np.random.default_rng(nbins).integers(0, nbins, n)
    counts = np.zeros(nbins, dtype)
    _parallel(count_bins, n, bins, counts)
    np.testing.assert_array_equal(counts, np.bincount(bins, minlength=nbins).astype(dtype))


def test_jitbridge_num_threads_setting_drives_parallel_atomics():
    n = 1_000_000
    bins = np.random.default_rng(7).integers(0, 256, n)
    counts = np.zeros(256, np.int64)
    with jb.config.scope(num_threads=2, serial_threshold=1):
        count_bins[n](bins, counts)
    np.testing.assert_array_equal(counts, np.bincount(bins, minlength=256))


@pytest.mark.parametrize("k", [4, 50_000], ids=["privatized", "shared-atomic"])
def test_kmeans_sums_match_add_at(k):
    n, dims = 200_000, 3
    rng = np.random.default_rng(k)
    # Multiples of 1/8 add exactly in any order, so the parallel sums must equal NumPy's bits.
    points = rng.integers(-64, 64, (n, dims)) / 8.0
    labels = rng.integers(0, k, n)
    sums, counts = np.zeros((k, dims)), np.zeros(k, np.int64)
    _parallel(centroid_sums, n, points, labels, sums, counts)
    expected = np.zeros((k, dims))
    np.add.at(expected, labels, points)
    np.testing.assert_array_equal(sums, expected)
    np.testing.assert_array_equal(counts, np.bincount(labels, minlength=k))


def test_cas_lets_exactly_one_index_claim_each_slot():
    n, slots = 100_000, 64
    keys = np.random.default_rng(3).integers(0, slots, n)
    owner, seen = np.full(slots, -1, np.int64), np.empty(n, np.int64)
    _parallel(claim_first, n, keys, owner, seen)
    winners = np.flatnonzero(seen == -1)
    assert sorted(keys[winners]) == sorted(set(keys)), "each used slot is claimed exactly once"
    np.testing.assert_array_equal(keys[owner[owner >= 0]], np.flatnonzero(owner >= 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_min_max_per_group(dtype):
    n, groups = 200_000, 10
    rng = np.random.default_rng(5)
    x = (rng.standard_normal(n) * 1000).astype(dtype)
    g = rng.integers(0, groups, n)
    lo = np.full(groups, np.iinfo(dtype).max if dtype in (np.int32, np.int64) else np.inf, dtype)
    hi = np.full(groups, np.iinfo(dtype).min if dtype in (np.int32, np.int64) else -np.inf, dtype)
    _parallel(extremes, n, x, g, lo, hi)
    for k in range(groups):
        assert lo[k] == x[g == k].min() and hi[k] == x[g == k].max()


def test_float_min_max_ignore_a_nan_value_and_keep_a_nan_element():
    x = np.array([1.0, np.nan, 3.0])
    lo, hi = np.array([np.inf, np.nan]), np.array([-np.inf, np.nan])
    extremes[3](x, np.array([0, 0, 0]), lo, hi)
    assert lo[0] == 1.0 and hi[0] == 3.0
    extremes[3](x, np.array([1, 1, 1]), lo, hi)
    assert np.isnan(lo[1]) and np.isnan(hi[1])


def test_atomics_return_the_old_value_in_jitted_code_and_in_python():
    def ops(a, f):
        return (jb.atomic.add(a, 0, 5), jb.atomic.sub(a, 0, 2), jb.atomic.max(a, 1, 9), jb.atomic.min(a, 1, -4),
                jb.atomic.cas(a, 2, 7, 1), jb.atomic.cas(a, 2, 7, 2), jb.atomic.add(f, (1, 0), 0.5))

    jitted = jb.jit(ops)
    for run in (ops, jitted):
        a, f = np.array([1, 2, 7], np.int64), np.zeros((2, 2))
        assert run(a, f) == (1, 6, 2, 9, 7, 1, 0.0)
        assert a.tolist() == [4, -4, 1] and f[1, 0] == 0.5


def test_wrong_array_or_index_is_a_typing_error():
    @jb.kernel
    def bad_index(i, counts):
        jb.atomic.add(counts, (i, i), 1)

    @jb.kernel
    def cas_on_float(i, f):
        jb.atomic.cas(f, i, 0.0, 1.0)

    with pytest.raises(jb.errors.KernelTypingError, match="1 integer index"):
        bad_index[2](np.zeros(2))
    with pytest.raises(jb.errors.KernelTypingError, match="cas needs an array of int32"):
        cas_on_float[2](np.zeros(2))


@settings(max_examples=20, deadline=None)
@given(values=st.lists(st.integers(0, 31), min_size=0, max_size=3000), threads=st.sampled_from([1, 2]))
def test_histogram_property(values, threads):
    bins = np.array(values, np.int64)
    counts = np.zeros(32, np.int64)
    count_bins.launch(bins.size, bins, counts, threads=threads)
    np.testing.assert_array_equal(counts, np.bincount(bins, minlength=32))
