"""``map_chunks``: a function or kernel over data larger than memory, one chunk at a time.

A reader thread reads the next chunk while the current one computes (``reader``), never more
than ``prefetch`` chunks at once; each result is either yielded or written into a
memory-mapped output, whose written pages are handed back to the file as soon as they are
written. So memory stays about ``(prefetch + 2) * chunk``: the input chunks in flight, the
result being made and the output being written, whatever the size of the file.

Kernels that can write their result straight into the output's rows do (a ``jb.kernel``, a
library kernel keeping a float chunk's shape), so only the chunks in flight and the output's
pages are in memory. A chunk that fails stops the stream: the reader stops, the output written so far is flushed,
and a ``StreamError`` names the chunk, its rows and the rows of the output that are complete.
An output file given by path is written under ``<name>.partial`` and renamed to its name only
once complete, so a file at that name is always whole, even after a crash.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .. import errors
from ..blockwise import BlockFunction
from . import pages, progress
from .reader import Reader, ReadFailed
from .sources import ArraySource, Chunk, IterableSource, open_source

PARTIAL = ".partial"


def map_chunks(fn: Any, source: Any, chunk_size: int | str | None = None, prefetch: int = 2, out: Any = None, *,
               dtype: Any = None, threads: int | None = None, progress: bool | None = None) -> Any:
    """Run ``fn`` (a ``jb.jit`` function, a ``jb.kernel``, a library kernel or any callable)
    over ``source`` chunk by chunk.

    ``source``: a path to a ``.npy`` file (memory-mapped with ``jb.tensor.from_npy``, read
    chunk by chunk), an array, ``np.memmap`` or SharedTensor (chunks of rows), or an iterable
    of arrays (each item is a chunk). ``chunk_size``: rows per chunk, or a size such as
    ``"64M"`` (default 32 MiB of rows; not for iterables). ``prefetch``: the most input chunks
    in memory at once (2: one computing while the next is read).

    Without ``out``, returns an iterator of the results, one per chunk (the reading starts at
    the first ``next``). With ``out`` (a path to a ``.npy`` file to create, or an array,
    ``np.memmap`` or SharedTensor with the source's rows), writes the results one after the
    other along the first axis and returns the output (a path's file is opened read-only).
    A kernel maps each chunk element-wise to an output of its shape (``dtype=`` or the
    chunk's). ``progress``: show a bar (default: when stderr is a terminal).
    """
    if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 1:
        raise errors.ArgumentError("prefetch must be a positive int", where=errors.user_location(),
                                   values={"prefetch": repr(prefetch)},
                                   fix="prefetch=2 reads one chunk ahead while one computes; 1 reads none ahead")
    block = BlockFunction(fn, dtype=None if dtype is None else np.dtype(dtype), threads=threads)
    src = open_source(source, chunk_size)
    if out is None:
        return _results(block, src, int(prefetch), progress)
    target = Output(out, src)
    target.prepare(block, src)
    return _write(block, src, int(prefetch), target, progress)


def _results(block: BlockFunction, src: ArraySource | IterableSource, prefetch: int,
             shown: bool | None) -> Iterator[Any]:
    reader = Reader(src, prefetch)
    try:
        with progress.bar(shown, src.chunks_total, "map_chunks") as advance:
            for chunk in reader:
                yield _computed(block, reader, chunk, None)
                advance()
    finally:
        reader.close()


def _write(block: BlockFunction, src: ArraySource | IterableSource, prefetch: int, target: "Output",
           shown: bool | None) -> Any:
    reader = Reader(src, prefetch)
    try:
        with progress.bar(shown, src.chunks_total, "map_chunks") as advance:
            for chunk in reader:
                result = _computed(block, reader, chunk, target, target.slot(chunk, block))
                try:
                    target.write(result, chunk)
                except Exception as exc:
                    raise _failed("writing", chunk.index, chunk.rows, exc, target) from exc
                advance()
    finally:
        reader.close()
        target.flush()
    return target.finish()


def _computed(block: BlockFunction, reader: Reader, chunk: Chunk | ReadFailed, target: "Output | None",
              into: np.ndarray | None = None) -> Any:
    """``block`` of one chunk (written ``into`` the output's rows when given), or the
    StreamError that stops the stream."""
    if isinstance(chunk, ReadFailed):
        raise _failed("reading", chunk.index, chunk.rows, chunk.error, target) from chunk.error
    try:
        return block(chunk.data, out=into)
    except Exception as exc:
        raise _failed("computing", chunk.index, chunk.rows, exc, target) from exc
    finally:
        reader.done(chunk)


def _failed(doing: str, index: int, rows: tuple[int, int] | None, exc: BaseException,
            target: "Output | None") -> errors.StreamError:
    values: dict[str, Any] = {"chunk": index}
    if rows is not None:
        values["rows"] = f"{rows[0]}:{rows[1]}"
    completed = None
    fix = "fix the cause (below) and run the stream again"
    if target is not None:
        target.flush()
        completed = (0, target.position)
        values["out"] = target.describe()
        if target.position:
            fix += f"; rows 0:{target.position} of the output are complete and need not be computed again"
    return errors.StreamError(f"chunk {index} of the stream failed while {doing}: {type(exc).__name__}: {exc}",
                              chunk=index, rows=rows, completed=completed, values=values, fix=fix)


class Output:
    """Where results go: a new ``.npy`` file (created at the first result, with the source's
    rows and the result's row shape and dtype) or an array given by the caller."""

    def __init__(self, out: Any, src: ArraySource | IterableSource) -> None:
        self.rows = src.rows
        self.position = 0
        self.flushed = False
        self.path: Path | None = None
        self.array: np.ndarray | None = None
        self.given = out
        if isinstance(out, (str, os.PathLike)):
            if src.rows is None:
                raise errors.ArgumentError(
                    "out=PATH needs a source with a known number of rows (a .npy file or an array)",
                    where=errors.user_location(), values={"source": "an iterable"},
                    fix="pass out=np.lib.format.open_memmap(path, 'w+', dtype, shape) with the total shape")
            self.path = Path(out)
            self.shared = True
            return
        array = np.asarray(out)
        if not array.flags.writeable or array.ndim == 0 or (src.rows is not None and array.shape[0] != src.rows):
            raise errors.ArgumentError(
                "out must be a writable array with one row per row of the source",
                where=errors.user_location(),
                values={"out": f"shape {array.shape}, writable {array.flags.writeable}", "source rows": src.rows},
                fix="allocate out with the source's first dimension, e.g. np.lib.format.open_memmap(path, 'w+', ...)")
        self.array = array
        self.shared = pages.shared_mapping(out)

    @property
    def partial_path(self) -> Path:
        assert self.path is not None
        return self.path.with_name(self.path.name + PARTIAL)

    def slot(self, chunk: Chunk | ReadFailed, block: BlockFunction) -> np.ndarray | None:
        """The output rows ``chunk``'s result goes to, when ``block`` can compute straight into
        them (no result buffer, no copy); None when the result must be made and copied."""
        if self.array is None or not isinstance(chunk, Chunk) or not np.ndim(chunk.data):
            return None
        rows = np.asarray(self.array[self.position:self.position + chunk.data.shape[0]])
        if rows.shape[0] != chunk.data.shape[0] or not rows.flags.c_contiguous:
            return None
        return rows if block.writes_into(rows, chunk.data) else None

    def write(self, result: Any, chunk: Chunk) -> None:
        result = np.asarray(result)
        if self.array is None:
            self._create(result)
        assert self.array is not None
        rows = result.shape[0] if result.ndim else 0
        expected = chunk.rows[1] - chunk.rows[0] if chunk.rows is not None else rows
        fits = result.ndim and result.shape[1:] == self.array.shape[1:] and self.position + rows <= self.array.shape[0]
        if not fits or rows != expected:
            raise errors.ArgumentError(
                "writing into out needs one result row per input row, each of out's row shape",
                values={"result": f"{result.dtype}{list(result.shape)}", "chunk rows": expected,
                        "out": f"{self.array.dtype}{list(self.array.shape)}"},
                fix="return an array of the chunk's rows from fn, or iterate over the results without out=")
        written = self.array[self.position:self.position + rows]
        if not np.may_share_memory(written, result):  # else it was computed in place (``slot``)
            written[...] = result
        if self.shared:
            pages.release(written)
        self.position += rows

    def prepare(self, block: BlockFunction, src: ArraySource | IterableSource) -> None:
        """Create an output file now when ``block`` can compute every chunk straight into it
        (its shape and dtype are then known before the first result): the first chunk needs
        no result buffer either."""
        if self.path is None or not isinstance(src, ArraySource):
            return
        probe = src.array[:0]
        dtype = block.output_dtype((probe,)) or probe.dtype
        if block.writes_into(np.empty(probe.shape, dtype), probe):
            self._create(np.empty(probe.shape, dtype))

    def _create(self, first: np.ndarray) -> None:
        if first.ndim == 0:
            raise errors.ArgumentError("writing into out needs results with rows, fn returned a scalar",
                                       values={"result": repr(first)},
                                       fix="return an array of the chunk's rows, or iterate over the results without out=")
        assert self.rows is not None
        self.array = np.lib.format.open_memmap(self.partial_path, mode="w+", dtype=first.dtype,
                                               shape=(self.rows,) + first.shape[1:])

    def flush(self) -> None:
        """Make what was written reach the file (shared mappings only; other memory has no file)."""
        if self.array is not None and self.shared:
            self.flushed = pages.flush(self.array)

    def describe(self) -> str:
        where = str(self.partial_path) if self.path is not None else "the out array"
        total = self.array.shape[0] if self.array is not None else self.rows
        if not self.position:
            return f"{where}: nothing written"
        state = "written and flushed" if self.flushed else "written"
        return f"{where}: rows 0:{self.position} of {total} {state}; rows {self.position}: not written"

    def finish(self) -> Any:
        """The output once the stream is done: a path's file under its own name, read-only."""
        if self.path is None:
            return self.given
        if self.array is None:  # an empty source: a file of zero rows
            self._create(np.empty((0,)))
        self.array = None
        os.replace(self.partial_path, self.path)
        return np.load(self.path, mmap_mode="r")
