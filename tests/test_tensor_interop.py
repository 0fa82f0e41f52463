"""Every export is zero-copy: the consumer's data pointer is the tensor's own."""
from __future__ import annotations

import numba
import numpy as np
import pytest

from jitbridge.errors import TensorError
from jitbridge.tensor import SharedTensor, from_npy


def address(obj) -> int:
    return np.asarray(obj).__array_interface__["data"][0]


@pytest.fixture
def tensor():
    with SharedTensor.from_array(np.arange(6.0).reshape(2, 3)) as t:
        yield t


def test_asarray_and_array_interface_share_memory(tensor):
    view = np.asarray(tensor)
    assert tensor.__array_interface__["data"] == (address(tensor), False)
    assert view.base is tensor
    view[0, 0] = 42.0
    assert np.asarray(SharedTensor.attach(tensor.handle))[0, 0] == 42.0


def test_numpy_dlpack_shares_memory(tensor):
    assert tensor.__dlpack_device__() == (1, 0)
    exported = np.from_dlpack(tensor)
    assert address(exported) == address(tensor)
    exported[1, 2] = -1.0
    assert np.asarray(tensor)[1, 2] == -1.0


def test_read_only_tensor_exports_dlpack_only_as_a_copy(tensor):
    read_only = SharedTensor.attach(tensor.handle, read_only=True)
    with pytest.raises(TensorError, match="read-only"):
        np.from_dlpack(read_only)
    copied = np.from_dlpack(read_only, copy=True)
    assert address(copied) != address(read_only) and copied.sum() == 15.0


def test_torch_from_dlpack_shares_memory(tensor):
    torch = pytest.importorskip("torch", reason="torch not installed (pip install torch to run this check)")
    shared = torch.from_dlpack(tensor)
    assert shared.data_ptr() == address(tensor)
    shared[0, 1] = 7.0
    assert np.asarray(tensor)[0, 1] == 7.0


def test_to_arrow_is_a_buffer_over_the_same_bytes(tensor):
    pytest.importorskip("pyarrow", reason="pyarrow not installed (pip install pyarrow to run this check)")
    buffer = tensor.to_arrow()
    assert buffer.address == address(tensor) and buffer.size == tensor.nbytes and buffer.is_mutable
    assert not SharedTensor.attach(tensor.handle, read_only=True).to_arrow().is_mutable
    with SharedTensor.from_array(np.asfortranarray(np.ones((2, 3)))) as fortran:
        assert fortran.to_arrow().address == address(fortran)
    with pytest.raises(TensorError, match="contiguous"):
        tensor[:, ::2].to_arrow()


@pytest.fixture
def npy(tmp_path):
    path = tmp_path / "grid.npy"
    np.save(path, np.arange(12, dtype=np.int32).reshape(3, 4))
    return path


def test_from_npy_maps_the_file_read_only(npy):
    mapped = from_npy(npy)
    assert mapped.read_only and mapped.shape == (3, 4) and mapped.dtype == np.int32
    assert mapped.handle.kind == "file" and mapped.handle.name == str(npy)
    assert address(mapped) % 64 == 0
    with pytest.raises(TensorError, match="read-only"):
        mapped[0, 0] = 1


def test_from_npy_read_write_is_the_file_itself(npy):
    reader = from_npy(npy, mode="r")
    writer = from_npy(npy, mode="r+")
    writer[0, 0] = 99
    assert np.asarray(reader)[0, 0] == 99  # same page cache pages: no copy anywhere

    @numba.njit
    def negate(a):
        for i in range(a.shape[0]):
            a[i, 1] = -a[i, 1]

    negate(writer)
    attached = SharedTensor.attach(writer.handle, read_only=True)
    writer.close()
    assert np.asarray(attached)[2, 1] == -9
    assert np.load(npy)[2, 1] == -9 and np.load(npy)[0, 0] == 99


def test_from_npy_errors(tmp_path, npy):
    with pytest.raises(TensorError, match="unknown .npy mode"):
        from_npy(npy, mode="w")
    with pytest.raises(TensorError, match="cannot memory-map") as info:
        from_npy(tmp_path / "missing.npy")
    assert "missing.npy" in str(info.value)
    objects = tmp_path / "objects.npy"
    np.save(objects, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(TensorError, match="cannot memory-map"):
        from_npy(objects)
