"""Tensors over data that already lives elsewhere: memory-mapped ``.npy`` files.

(The export protocols, ``__array_interface__``, DLPack and Arrow, are methods of SharedTensor
itself, since each is one line over its NumPy view.)
"""
from __future__ import annotations

import os

import numpy as np

from .handle import TensorHandle, dtype_to_str, tensor_error
from .shared import SharedTensor

NPY_MODES = ("r", "r+")


def from_npy(path: str | os.PathLike, mode: str = "r") -> SharedTensor:
    """A tensor over the array stored in a ``.npy`` file, memory-mapped, never read into RAM.

    ``mode="r"`` maps it read-only (writes raise, in NumPy and in jitted code); ``"r+"`` writes
    through to the file. Its handle attaches in other processes like a shared-memory one, and
    nobody ever deletes the file: it is the user's data.
    """
    if mode not in NPY_MODES:
        raise tensor_error("unknown .npy mode", f"mode must be one of {NPY_MODES}", mode=mode)
    path = os.path.abspath(os.fspath(path))
    try:
        header = np.load(path, mmap_mode=mode)  # parses every .npy version; mapping dropped below
    except (OSError, ValueError) as exc:
        raise tensor_error(
            "cannot memory-map this .npy file", "pass an existing .npy file of a non-object dtype", segment=path
        ) from exc
    if not isinstance(header, np.memmap):
        raise tensor_error("not a .npy file", "pass a file written by np.save", segment=path)
    handle = TensorHandle(
        name=path,
        shape=header.shape,
        dtype=dtype_to_str(header.dtype),
        strides=header.strides,
        offset=header.offset,
        owner_pid=0,
        kind="file",
    )
    del header
    return SharedTensor.attach(handle, read_only=(mode == "r"))
