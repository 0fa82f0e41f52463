"""The reader thread: reads chunks ahead while the caller computes, never more than
``prefetch`` at a time.

A chunk takes one of ``prefetch`` slots from the moment the reader starts reading it until
the caller has computed it, so at most ``prefetch`` input chunks are in memory at once
(being read, waiting, or being computed), whatever the size of the source. The default of
two is one chunk computing while the next is read.
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

from .sources import ArraySource, Chunk, IterableSource

_END = object()


class ReadFailed:
    """What the reader hands over instead of chunk ``index`` when reading it raised."""

    def __init__(self, index: int, rows: tuple[int, int] | None, error: BaseException) -> None:
        self.index, self.rows, self.error = index, rows, error


class Reader:
    def __init__(self, source: ArraySource | IterableSource, prefetch: int) -> None:
        self._source = source
        self._slots = threading.Semaphore(prefetch)
        self._ready: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="jitbridge-stream-reader", daemon=True)
        self._thread.start()

    def _take_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.05):
            if self._stop.is_set():
                return False
        return not self._stop.is_set()

    def _run(self) -> None:
        chunks = iter(self._source)
        index = 0
        while self._take_slot():
            try:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                self._source.load(chunk)
            except BaseException as exc:  # handed to the caller, raised there with the chunk's index
                self._ready.put(ReadFailed(index, self._rows(index), exc))
                return
            self._ready.put(chunk)
            index += 1
        self._ready.put(_END)

    def _rows(self, index: int) -> tuple[int, int] | None:
        if isinstance(self._source, ArraySource):
            start = index * self._source.rows_per_chunk
            return start, min(start + self._source.rows_per_chunk, self._source.rows)
        return None

    def __iter__(self) -> Iterator[Chunk | ReadFailed]:
        while True:
            item: Any = self._ready.get()
            if item is _END:
                return
            yield item
            if isinstance(item, ReadFailed):
                return

    def done(self, chunk: Chunk) -> None:
        """The caller has computed ``chunk``: its pages go, and its slot is free."""
        self._source.done(chunk)
        self._slots.release()

    def close(self) -> None:
        """Stop reading and wait for the thread (it finishes the chunk it is reading)."""
        self._stop.set()
        self._thread.join()
        while not self._ready.empty():
            item = self._ready.get_nowait()
            if isinstance(item, Chunk):
                self._source.done(item)
