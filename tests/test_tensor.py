"""SharedTensor in one process: creation, layout, views, handles, ownership, and its errors."""
from __future__ import annotations

import gc
import os
import pickle
import stat

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from jitbridge.errors import TensorError
from jitbridge.tensor import SharedTensor, TensorHandle

SHM = "/dev/shm"


def shm_exists(name: str) -> bool:
    return os.path.exists(os.path.join(SHM, name))


def address(obj) -> int:
    return np.asarray(obj).__array_interface__["data"][0]


# -- creation and layout -------------------------------------------------------------------


@pytest.mark.parametrize("order", ["C", "F"])
def test_empty_and_zeros_layout(order):
    for make in (SharedTensor.empty, SharedTensor.zeros):
        with make((3, 5, 7), "int16", order=order) as t:
            a = np.asarray(t)
            assert (t.shape, t.dtype, t.ndim, t.size, t.nbytes, len(t)) == ((3, 5, 7), np.int16, 3, 105, 210, 3)
            assert t.strides == a.strides
            assert a.flags[f"{order}_CONTIGUOUS"]
            assert not a.any()
            assert address(t) % 64 == 0


def test_segment_is_private_and_named_for_its_owner():
    with SharedTensor.empty(4) as t:
        mode = os.stat(os.path.join(SHM, t.name)).st_mode
        assert stat.S_IMODE(mode) == 0o600
        prefix, pid, start, pidns, token = t.name.split("_")
        assert (prefix, int(pid)) == ("jb", os.getpid())
        assert int(pidns) == os.stat("/proc/self/ns/pid").st_ino  # pids mean something only in their namespace
        assert len(token) == 32  # 128 random bits: unguessable
        assert t.owned


def test_names_are_unique():
    tensors = [SharedTensor.empty(1) for _ in range(20)]
    assert len({t.name for t in tensors}) == 20
    for t in tensors:
        t.close()


def test_zero_size_and_zero_dim():
    with SharedTensor.empty((0, 3)) as empty, SharedTensor.from_array(np.array(2.5)) as scalar:
        assert empty.shape == (0, 3) and np.asarray(empty).size == 0
        assert scalar.shape == () and float(np.asarray(scalar)) == 2.5
        assert SharedTensor.attach(empty.handle).shape == (0, 3)


def test_from_array_copies_once_and_keeps_fortran_order():
    source = np.asfortranarray(np.arange(12.0).reshape(3, 4))
    with SharedTensor.from_array(source) as t:
        assert np.asarray(t).flags.f_contiguous
        source[0, 0] = 99.0
        assert np.asarray(t)[0, 0] == 0.0
    with SharedTensor.from_array(source, order="C") as t:
        assert np.asarray(t).flags.c_contiguous


@settings(max_examples=60, deadline=None)
@given(
    array=hnp.arrays(
        dtype=st.one_of(hnp.scalar_dtypes(), hnp.byte_string_dtypes(), hnp.unicode_string_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
    ),
    order=st.sampled_from(["C", "F", "K"]),
)
def test_from_array_round_trip(array, order):
    """Every dtype/shape/order survives from_array and attach bit for bit."""
    with SharedTensor.from_array(array, order=order) as t:
        attached = SharedTensor.attach(pickle.loads(pickle.dumps(t.handle)))
        for view in (np.asarray(t), np.asarray(attached)):
            assert view.dtype == array.dtype and view.shape == array.shape
            assert view.tobytes() == array.tobytes()  # bitwise, so NaNs compare too
        assert address(t) % 64 == 0
        if order != "K" and array.ndim > 1 and array.size > 1:
            assert np.asarray(t).flags[f"{order}_CONTIGUOUS"]


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_slice_handles_attach_to_the_same_window(data):
    shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    key = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    source = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
    with SharedTensor.from_array(source) as t:
        view = t[key]
        expected = source[key]
        if not isinstance(view, SharedTensor):
            assert np.isscalar(view) and view == expected
            return
        attached = SharedTensor.attach(view.handle)
        np.testing.assert_array_equal(np.asarray(attached), expected)
        if expected.size:
            np.asarray(attached)[...] = -1
            assert (np.asarray(t)[key] == -1).all()


def test_views_and_indexing():
    with SharedTensor.from_array(np.arange(10)) as t:
        view = t[2:8:3]
        assert isinstance(view, SharedTensor) and view.handle.offset == 2 * 8
        assert t[3] == 3 and not isinstance(t[3], SharedTensor)
        fancy = t[[1, 2]]
        assert isinstance(fancy, np.ndarray) and not np.shares_memory(fancy, np.asarray(t))
        backwards = t[::-1]
        assert list(np.asarray(SharedTensor.attach(backwards.handle))) == list(range(9, -1, -1))
        view[:] = 7
        assert list(np.asarray(t)[[2, 5]]) == [7, 7]


def test_handle_is_small_and_picklable():
    with SharedTensor.from_array(np.zeros((4, 4), dtype=[("x", "<f8"), ("y", "<i4", (2,))])) as t:
        handle = t.handle
        assert isinstance(handle, TensorHandle)
        assert len(pickle.dumps(handle)) < 512
        assert pickle.loads(pickle.dumps(handle)) == handle
        assert np.asarray(SharedTensor.attach(handle)).dtype == np.asarray(t).dtype


def test_setitem_and_array_protocol():
    with SharedTensor.zeros((2, 3)) as t:
        t[0] = [1, 2, 3]
        t[1, :] = np.asarray(t)[0] * 2
        assert np.asarray(t).sum() == 18
        assert np.array(t, copy=True) is not np.asarray(t)
        assert np.asarray(t, dtype=np.float32).dtype == np.float32


# -- ownership ------------------------------------------------------------------------------


def test_close_removes_name_but_keeps_earlier_arrays_valid():
    t = SharedTensor.from_array(np.arange(5.0))
    early = np.asarray(t)
    t.close()
    assert not shm_exists(t.name)
    assert early.sum() == 10.0  # still mapped: no crash, no garbage
    t.close()  # closing twice is harmless


def test_with_block_and_garbage_collection_remove_the_segment():
    with SharedTensor.empty(3) as t:
        name = t.name
        assert shm_exists(name)
    assert not shm_exists(name)
    t = SharedTensor.empty(3)
    name = t.name
    del t
    gc.collect()
    assert not shm_exists(name)


def test_segment_lives_while_numpy_views_of_the_tensor_exist():
    array = np.asarray(SharedTensor.from_array(np.arange(4.0)))
    gc.collect()
    assert array.sum() == 6.0
    assert shm_exists(array.base.name)  # NumPy keeps the tensor as the array's base


def test_attached_tensor_never_unlinks():
    with SharedTensor.empty(3) as owner:
        attached = SharedTensor.attach(owner.handle)
        assert not attached.owned
        attached.close()
        del attached
        gc.collect()
        assert shm_exists(owner.name)


def test_closing_a_view_leaves_the_base_open_and_closing_the_base_closes_views():
    t = SharedTensor.zeros(6)
    view = t[1:3]
    view.close()
    assert not t.closed and shm_exists(t.name)
    other = t[3:]
    t.close()
    assert other.closed


# -- errors ---------------------------------------------------------------------------------

CLOSED_USES = {
    "shape": lambda t: t.shape,
    "dtype": lambda t: t.dtype,
    "handle": lambda t: t.handle,
    "len": len,
    "getitem": lambda t: t[0],
    "setitem": lambda t: t.__setitem__(0, 1.0),
    "asarray": np.asarray,
    "array_interface": lambda t: t.__array_interface__,
    "dlpack": lambda t: t.__dlpack__(),
    "with": lambda t: t.__enter__(),
}


@pytest.mark.parametrize("use", CLOSED_USES.values(), ids=list(CLOSED_USES))
def test_every_use_after_close_raises_tensor_error(use):
    t = SharedTensor.zeros(4)
    t.close()
    with pytest.raises(TensorError, match="closed") as info:
        use(t)
    assert t.name in str(info.value)


def bad_handles(handle: TensorHandle) -> dict:
    replace = TensorHandle._replace
    return {
        "not a handle": ("not a TensorHandle", ("jb_1_2_x", (3,))),
        "foreign name": ("not a jitbridge segment name", replace(handle, name="../../etc/passwd")),
        "shape too big": ("does not fit", replace(handle, shape=(10**6,))),
        "dtype too wide": ("does not fit", replace(handle, dtype="<c16", strides=(16,))),
        "garbage dtype": ("unreadable dtype", replace(handle, dtype="float-ish")),
        "object dtype": ("object dtypes", replace(handle, dtype="|O")),
        "strides rank": ("equally long", replace(handle, strides=(8, 8))),
        "negative offset": ("does not fit", replace(handle, offset=-8)),
        "unknown kind": ("unknown kind", replace(handle, kind="tape")),
        "shape not a tuple": ("equally long", replace(handle, shape=None)),
        "dtype not a string": ("must be strings", replace(handle, dtype=8)),
    }


def test_bad_handles_raise_tensor_errors_naming_the_segment():
    with SharedTensor.zeros(8) as t:
        for label, (message, bad) in bad_handles(t.handle).items():
            with pytest.raises(TensorError, match=message) as info:
                SharedTensor.attach(bad)
            if label != "not a handle":
                assert bad.name in str(info.value), label


def test_attaching_a_removed_segment_names_it():
    t = SharedTensor.zeros(2)
    handle = t.handle
    t.close()
    with pytest.raises(TensorError, match="segment not found") as info:
        SharedTensor.attach(handle)
    assert handle.name in str(info.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (((2,), object), "object dtypes"),
        (((-1,), "f8"), "non-negative"),
        (((2,), "no-such-dtype"), "not a NumPy dtype"),
        (((2,), "f8", "Z"), "unknown memory order"),
        ((2.5, "f8"), "non-negative integers"),
    ],
)
def test_bad_creation_arguments(args, message):
    with pytest.raises(TensorError, match=message):
        SharedTensor.empty(*args)


def test_unknown_device():
    with pytest.raises(TensorError, match="unknown device"):
        SharedTensor.empty(3, device="tpu")


def test_setitem_mismatches_and_read_only_writes():
    with SharedTensor.zeros((2, 3)) as t:
        with pytest.raises(TensorError, match="shape or dtype mismatch") as info:
            t[0] = [1.0, 2.0]
        assert t.name in str(info.value)
        with pytest.raises(TensorError, match="shape or dtype mismatch"):
            t[0] = "not a number"
        ro = SharedTensor.attach(t.handle, read_only=True)
        assert ro.read_only and not np.asarray(ro).flags.writeable
        with pytest.raises(TensorError, match="read-only"):
            ro[0, 0] = 1.0
        with pytest.raises(ValueError):
            np.asarray(ro)[0, 0] = 1.0
