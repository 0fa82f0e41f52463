"""Where a stream's chunks come from: rows of an array (a ``.npy`` file mapped with
``jb.tensor.from_npy``, or an array already in hand), or the items of an iterable.

A source hands out ``Chunk``s in order. ``load`` runs in the reader thread and does the
reading (for a mapped file: its pages come in); ``done`` runs once the chunk has been
computed and lets go of what it held (for a file this package mapped: its pages).
"""
from __future__ import annotations

import dataclasses
import math
import os
from typing import Any, Iterable, Iterator

import numpy as np

from .. import config, errors
from . import pages

DEFAULT_CHUNK = "32M"


@dataclasses.dataclass
class Chunk:
    index: int
    data: Any
    rows: tuple[int, int] | None  # rows of the source, when it has them


class ArraySource:
    """Chunks of ``rows_per_chunk`` rows (the first axis) of ``array``; ``mapped``: the array
    is a shared mapping (a file), whose pages are read ahead and released chunk by chunk."""

    def __init__(self, array: np.ndarray, rows_per_chunk: int, mapped: bool, keep: Any = None) -> None:
        self.array, self.rows_per_chunk, self.mapped = array, rows_per_chunk, mapped
        self._keep = keep  # the tensor that owns the mapping, alive while the stream runs
        self.rows = array.shape[0]
        self.chunks_total = math.ceil(self.rows / rows_per_chunk) if self.rows else 0

    def __iter__(self) -> Iterator[Chunk]:
        for index, start in enumerate(range(0, self.rows, self.rows_per_chunk)):
            stop = min(start + self.rows_per_chunk, self.rows)
            yield Chunk(index, self.array[start:stop], (start, stop))

    def load(self, chunk: Chunk) -> None:
        if self.mapped:
            pages.read_ahead(chunk.data)

    def done(self, chunk: Chunk) -> None:
        if self.mapped:
            pages.release(chunk.data)


class IterableSource:
    """The items of an iterable, each one chunk, as arrays."""

    mapped = False
    rows = None

    def __init__(self, items: Iterable[Any]) -> None:
        self._items = items
        self.chunks_total = len(items) if hasattr(items, "__len__") else None

    def __iter__(self) -> Iterator[Chunk]:
        for index, item in enumerate(self._items):
            yield Chunk(index, np.asarray(item) if not isinstance(item, np.ndarray) else item, None)

    def load(self, chunk: Chunk) -> None:
        """Reading happens in the iterable's own ``next``, already on the reader thread."""

    def done(self, chunk: Chunk) -> None:
        """The chunk's memory is freed when nothing refers to it any more."""


def rows_per_chunk(chunk_size: int | str | None, row_bytes: int) -> int:
    """``chunk_size`` as rows: an int is rows, a string is a size (``"32M"``); default 32 MiB."""
    if chunk_size is None:
        chunk_size = DEFAULT_CHUNK
    if isinstance(chunk_size, str):
        try:
            size = config.parse_size(chunk_size)
        except ValueError:
            size = 0
        if size <= 0:
            raise errors.ArgumentError("chunk_size must be a number of rows or a size such as '32M'",
                                       where=errors.user_location(), values={"chunk_size": repr(chunk_size)},
                                       fix="pass chunk_size=10_000 (rows) or chunk_size='64M' (bytes)")
        return max(1, size // max(row_bytes, 1))
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise errors.ArgumentError("chunk_size must be a positive number of rows or a size such as '32M'",
                                   where=errors.user_location(), values={"chunk_size": repr(chunk_size)},
                                   fix="pass chunk_size=10_000 (rows) or chunk_size='64M' (bytes)")
    return int(chunk_size)


def open_source(source: Any, chunk_size: int | str | None) -> ArraySource | IterableSource:
    """The source for ``source``: a path to a ``.npy`` file (mapped read-only), an array,
    ``np.memmap`` or SharedTensor (its rows), or any other iterable (its items; ``chunk_size``
    must then be None)."""
    if isinstance(source, (str, os.PathLike)):
        from ..tensor import from_npy

        tensor = from_npy(source, mode="r")
        array = np.asarray(tensor)
        return ArraySource(_rows_array(array, source), rows_per_chunk(chunk_size, _row_bytes(array)), True, tensor)
    if isinstance(source, np.ndarray) or hasattr(source, "__array_interface__"):
        array = np.asarray(source)
        return ArraySource(_rows_array(array, "source"), rows_per_chunk(chunk_size, _row_bytes(array)),
                           pages.shared_mapping(source), source)
    if chunk_size is not None:
        raise errors.ArgumentError("chunk_size applies to arrays and .npy files; an iterable's items are its chunks",
                                   where=errors.user_location(), values={"chunk_size": repr(chunk_size)},
                                   fix="leave chunk_size out, or make the iterable yield chunks of the size you want")
    try:
        iter(source)
    except TypeError:
        raise errors.ArgumentError("source must be a .npy path, an array or an iterable of arrays",
                                   where=errors.user_location(), values={"source": type(source).__name__},
                                   fix="pass a path to a .npy file, or an iterable (a generator) of arrays") from None
    return IterableSource(source)


def _rows_array(array: np.ndarray, name: Any) -> np.ndarray:
    if array.ndim == 0:
        raise errors.ArgumentError("a stream needs an array with rows (at least one dimension)",
                                   where=errors.user_location(), values={"source": f"{name}, shape ()"},
                                   fix="pass an array of at least one dimension")
    return array


def _row_bytes(array: np.ndarray) -> int:
    return array.itemsize * (math.prod(array.shape[1:]) if array.ndim > 1 else 1)
