"""Handing a 1 GiB float64 array to a worker process: a SharedTensor handle vs pickling the array.

Run:  .venv/bin/python -m pytest benchmarks/bench_tensor.py --benchmark-only -s

Both paths use one pre-started, warmed-up spawn worker, so process start-up and imports are not
measured; each round sends the data (a handle, or the pickled array), the worker computes a
checksum and sends it back. Three checksums are timed, since each answers another question:

* ``ends``: the first and last element. The hand-off itself: what it costs to give another
  process the array (for the shared path: send a handle, attach, touch two pages).
* ``sampled``: 1024 elements, one per MiB. The worker touches 1024 pages; on this project's
  VMs a first touch of a page costs ~5 us, so this is dominated by page faults.
* ``full``: every element. The shared path maps all pages up front (``populate=True``) and
  then reads at memory bandwidth; pickling pays that too, on top of copying.

``-s`` prints the pickle/shared ratio of each. Peak memory is about 4 GiB (the tensor, the
pickle bytes, and the worker's unpickled copy).
"""
from __future__ import annotations

import multiprocessing
import time

import numpy as np
import pytest

from jitbridge.tensor import SharedTensor

GIB = 1 << 30
ELEMENTS = GIB // 8
SAMPLE_STEP = (1 << 20) // 8  # one element per MiB
CHECKSUMS = {
    "ends": lambda a: float(a[0] + a[-1]),
    "sampled": lambda a: float(a[::SAMPLE_STEP].sum()),
    "full": lambda a: float(a.sum()),
}
medians: dict[tuple[str, str], float] = {}


def pickled(checksum: str, array: np.ndarray) -> float:
    """Worker side of the pickle path: ``array`` arrived as a copy."""
    return CHECKSUMS[checksum](array)


def shared(checksum: str, handle) -> float:
    """Worker side of the shared path: map the same memory, read it in place."""
    tensor = SharedTensor.attach(handle, read_only=True, populate=checksum == "full")
    return CHECKSUMS[checksum](np.asarray(tensor))


def attach_seconds(handle) -> float:
    start = time.perf_counter()
    SharedTensor.attach(handle, read_only=True)
    return time.perf_counter() - start


@pytest.fixture(scope="module")
def worker():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(time.sleep, (0,))  # start it now, not inside a measured round
        yield pool


@pytest.fixture(scope="module")
def gib_tensor(worker):
    with SharedTensor.empty(ELEMENTS, "float64") as tensor:
        array = np.asarray(tensor)
        chunk = 1 << 24
        for start in range(0, ELEMENTS, chunk):
            array[start : start + chunk] = np.arange(start, start + chunk, dtype=np.float64)
        worker.apply(attach_seconds, (tensor.handle,))  # the worker's imports happen here
        yield tensor
        del array


ROUNDS = {("shared", "ends"): 50, ("shared", "sampled"): 50, ("shared", "full"): 5}


@pytest.mark.parametrize("checksum", list(CHECKSUMS))
@pytest.mark.parametrize("path", ["shared", "pickle"])  # shared first: the pickle run reports the ratio
def test_handoff(benchmark, worker, gib_tensor, path, checksum):
    array = np.asarray(gib_tensor)
    if path == "shared":
        fn, payload = shared, gib_tensor.handle
    else:
        fn, payload = pickled, array
    rounds = ROUNDS.get((path, checksum), 3)
    result = benchmark.pedantic(lambda: worker.apply(fn, (checksum, payload)), rounds=rounds, warmup_rounds=1)
    assert result == CHECKSUMS[checksum](array)
    medians[path, checksum] = benchmark.stats.stats.median
    if path == "pickle":
        speedup = medians["pickle", checksum] / medians["shared", checksum]
        benchmark.extra_info["speedup_vs_shared"] = speedup
        print(f"\n{checksum}: pickle {medians['pickle', checksum]:.3f} s, "
              f"shared {medians['shared', checksum] * 1e3:.3f} ms, shared is {speedup:.0f}x faster")


def test_attach_in_worker(benchmark, worker, gib_tensor):
    """Attach time as the worker measures it (the parent's round trip is not included)."""
    handle = gib_tensor.handle
    benchmark.pedantic(lambda: worker.apply(attach_seconds, (handle,)), rounds=50, warmup_rounds=2, iterations=1)
    inside = sorted(worker.apply(attach_seconds, (handle,)) for _ in range(51))
    benchmark.extra_info["attach_median_s_inside_worker"] = inside[25]
    print(f"\nattach of 1 GiB inside the worker: median {inside[25] * 1e6:.0f} us")
    assert inside[25] < 1e-3


def test_attach_in_process(benchmark, gib_tensor):
    handle = gib_tensor.handle
    benchmark(lambda: SharedTensor.attach(handle, read_only=True))
    assert benchmark.stats.stats.median < 1e-3
