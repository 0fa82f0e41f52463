"""Jitted functions take SharedTensors directly, as arrays, writing into the shared memory."""
from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import prange

from jitbridge.errors import TensorError
from jitbridge.tensor import SharedTensor
from jitbridge.tensor.numba_ext import SharedTensorType


@pytest.fixture
def grid():
    with SharedTensor.from_array(np.arange(12.0).reshape(3, 4)) as t:
        yield t


@numba.njit
def total(a):
    return a.sum()


@numba.njit
def double_in_place(a):
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            a[i, j] *= 2.0


@numba.njit
def nested(a):
    return total(a) + total(a[1:, ::2]) + np.sum(a * 2.0)


@numba.njit(parallel=True)
def row_sums_then_mark(a):
    out = np.empty(a.shape[0])
    for i in prange(a.shape[0]):
        out[i] = a[i].sum()
    for i in prange(a.shape[0]):
        a[i, 0] = -1.0
    return out


def test_typeof_is_an_array_of_its_own_kind(grid):
    ty = numba.typeof(grid)
    assert isinstance(ty, SharedTensorType) and isinstance(ty, numba.types.Array)
    assert (ty.dtype, ty.ndim, ty.layout, ty.mutable) == (numba.float64, 2, "C", True)
    assert numba.typeof(grid[:, 1]).layout == "A"
    assert not numba.typeof(SharedTensor.attach(grid.handle, read_only=True)).mutable


def test_sum_write_slicing_and_calls(grid):
    plain = np.arange(12.0).reshape(3, 4)
    assert total(grid) == plain.sum()
    assert nested(grid) == plain.sum() + plain[1:, ::2].sum() + 2 * plain.sum()
    double_in_place(grid)
    np.testing.assert_array_equal(np.asarray(grid), plain * 2)
    double_in_place(grid[1:, ::2])  # a strided view, written through its own tensor
    assert np.asarray(grid)[1, 2] == plain[1, 2] * 4


def test_parallel_prange(grid):
    np.testing.assert_array_equal(row_sums_then_mark(grid), np.arange(12.0).reshape(3, 4).sum(axis=1))
    assert (np.asarray(grid)[:, 0] == -1.0).all()


def test_same_layout_compiles_once_and_plain_arrays_keep_working():
    @numba.njit
    def first(a):
        return a[0]

    tensors = [SharedTensor.from_array(np.full(5, float(i))) for i in range(3)]
    assert [first(t) for t in tensors] == [0.0, 1.0, 2.0]
    assert first(np.ones(3)) == 1.0
    assert len(first.signatures) == 2  # one for the tensor type, one for ndarray
    for t in tensors:
        t.close()


def test_branch_unifying_tensor_and_array(grid):
    @numba.njit
    def pick(a, use_tensor):
        b = a if use_tensor else np.zeros_like(a)
        return b.sum()

    assert pick(grid, True) == 66.0 and pick(grid, False) == 0.0


def test_tuples_records_fortran_and_returning_the_argument():
    records = SharedTensor.zeros(3, dtype=[("a", "f8"), ("b", "i4")])
    fortran = SharedTensor.from_array(np.asfortranarray(np.ones((2, 3))))

    @numba.njit
    def fill_records(r, f):
        for i in range(r.shape[0]):
            r[i].a = i + f.sum()
            r[i].b = 2 * i
        return f

    returned = fill_records(records, fortran)
    np.testing.assert_array_equal(np.asarray(records)["a"], [6.0, 7.0, 8.0])
    assert isinstance(returned, np.ndarray) and np.shares_memory(returned, np.asarray(fortran))

    @numba.njit
    def pair_sum(pair):
        return pair[0].sum() + pair[1].sum()

    assert pair_sum((fortran, fortran[0])) == 9.0


def test_writing_a_read_only_tensor_is_a_typing_error(grid):
    read_only = SharedTensor.attach(grid.handle, read_only=True)
    assert total(read_only) == 66.0

    @numba.njit
    def poke(a):
        a[0, 0] = 1.0

    with pytest.raises(numba.core.errors.TypingError, match="readonly"):
        poke(read_only)
    assert np.asarray(grid)[0, 0] == 0.0


def test_closed_tensor_raises_tensor_error_from_jitted_call(grid):
    total(grid)  # compiled for this type already
    grid.close()
    with pytest.raises(TensorError, match="closed") as info:
        total(grid)
    assert grid.name in str(info.value)


def test_eager_signature_rejects_tensor_clearly_and_takes_its_view(grid):
    eager = numba.njit("float64(float64[:, :])")(lambda a: a.sum())
    with pytest.raises(TypeError, match="No matching definition"):
        eager(grid)
    assert eager(np.asarray(grid)) == 66.0


def test_jb_jit_eager_signatures_accept_tensors_and_stay_unambiguous():
    import jitbridge as jb

    t = jb.SharedTensor.from_array(np.arange(5.0))
    try:
        for spec in ("float64(float64[:])", "float64(float64[::1])"):
            f = jb.jit(spec)(lambda x: x.sum())
            assert f(t) == 10.0 and f(np.arange(5.0)) == 10.0 and f(t) == 10.0
        with pytest.raises(TypeError, match="No matching definition for argument type"):
            f(jb.SharedTensor.from_array(np.arange(5, dtype=np.int32)))
    finally:
        t.close()


def test_jb_jit_and_kernel_take_tensors():
    import jitbridge as jb

    @jb.kernel
    def double(i, x, out):
        out[i] = 2 * x[i]

    src, out = jb.SharedTensor.from_array(np.arange(6.0)), jb.SharedTensor.zeros((6,))
    try:
        double[6](src, out)
        assert np.asarray(out).tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
        assert jb.jit(lambda x: x.sum())(out) == 30.0
    finally:
        src.close()
        out.close()
