"""How kernels choose their compiled variant and thread count, and handle ``out=``."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import jitbridge.kernels as K
from jitbridge import config, errors
from jitbridge.kernels import _dispatch as d


def test_size_picks_serial_or_threaded_and_threads_overrides() -> None:
    small, big = d.CROSSOVER["sum_sq"], d.CROSSOVER["sum_sq"] + 1
    available = numba.config.NUMBA_NUM_THREADS
    assert not d.plan("sum_sq", small, None, False).parallel
    assert d.plan("sum_sq", big, None, False).parallel == (available > 1)
    assert not d.plan("sum_sq", big, 1, False).parallel
    assert d.plan("sum_sq", 10, 2, False).parallel == (available > 1)
    assert d.plan("sum_sq", 10, 10_000, False).threads == available


def test_deterministic_variant_depends_on_size_only() -> None:
    for threads in (None, 1, 2):
        assert d.plan("dot", 10, threads, True).parallel is False
        assert d.plan("dot", 10**7, threads, True).parallel is True
        assert d.plan("dot", 10**7, threads, True).block(10**7) == d.DETERMINISTIC_BLOCK
    with config.scope(deterministic=True):
        assert d.plan("dot", 10**7, 1, None).deterministic


def test_fast_blocks_are_one_aligned_share_per_thread() -> None:
    plan = d.Plan(parallel=True, threads=2, deterministic=False)
    assert plan.block(1001) % d.BLOCK_ALIGN == 0 and 2 * plan.block(1001) >= 1001


def test_configured_thread_count_and_restoring_numba_state() -> None:
    before = numba.get_num_threads()
    with config.scope(num_threads=1):
        assert d.plan("relu", 10**8, None, None).threads == 1
    K.relu(np.ones(10), threads=1)
    K.relu(np.ones(1_000_000), threads=2)
    assert numba.get_num_threads() == before


def test_threads_must_be_positive_integers() -> None:
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises(errors.ArgumentError, match="threads"):
            K.relu(np.ones(3), threads=bad)


def test_out_must_match_and_may_be_strided() -> None:
    x = np.arange(12.0).reshape(3, 4)
    with pytest.raises(errors.ArgumentError, match="out has the wrong shape or dtype") as info:
        K.relu(x, out=np.empty(12))
    assert info.value.values["expected"] == "float64[3, 4]"
    with pytest.raises(errors.ArgumentError, match="out"):
        K.cumsum(x.astype(np.int32), out=np.empty((3, 4), np.int32))  # cumsum of int32 is int64
    out = np.zeros((3, 8))[:, ::2]
    assert K.cumsum(x, out=out) is out
    np.testing.assert_array_equal(out, np.cumsum(x, axis=-1))


def test_strided_and_higher_dimensional_inputs_run_along_the_last_axis() -> None:
    x = np.random.default_rng(2).standard_normal((2, 3, 50))[..., ::2]
    np.testing.assert_allclose(K.sum_sq(x), (x**2).sum(-1))
    np.testing.assert_array_equal(K.argmax(x), x.argmax(-1))
    np.testing.assert_array_equal(K.cumsum(x), np.cumsum(x, -1))
