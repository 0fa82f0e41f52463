"""jitbridge.stream.map_chunks: results equal NumPy's, chunks are read ahead but never more
than ``prefetch`` at once, a 1 GiB file streams in bounded memory (measured in a fresh
process), and a failing chunk stops the stream with its index and the completed rows."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import jitbridge as jb
import jitbridge.kernels as K
from jitbridge import errors
from jitbridge.stream import map_chunks


@jb.kernel
def double_plus(i, x, out):
    out[i] = 2.0 * x[i] + 1.0


@jb.jit
def row_max(x):
    out = np.empty(x.shape[0])
    for r in range(x.shape[0]):
        out[r] = x[r].max()
    return out


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.fixture
def data(tmp_path):
    x = np.random.default_rng(0).standard_normal((1000, 48))
    path = tmp_path / "x.npy"
    np.save(path, x)
    return x, path


def test_results_of_a_npy_file_equal_numpy(data) -> None:
    x, path = data
    parts = list(map_chunks(K.softmax, path, chunk_size=128))
    assert [len(p) for p in parts] == [128] * 7 + [104]
    np.testing.assert_allclose(np.concatenate(parts), np_softmax(x), rtol=1e-12)
    sizes = [len(p) for p in map_chunks(K.relu, path, chunk_size="100K")]
    assert sizes == [266, 266, 266, 202]  # 100 KiB of 384-byte rows


def test_kernels_functions_and_iterables(data) -> None:
    x, _ = data
    pieces = [x[:300], x[300:301], x[301:]]
    np.testing.assert_array_equal(np.concatenate(list(map_chunks(double_plus, pieces))), 2.0 * x + 1.0)
    np.testing.assert_array_equal(np.concatenate(list(map_chunks(row_max, x, chunk_size=333))), x.max(axis=1))
    totals = list(map_chunks(K.sum_sq, x.reshape(-1), chunk_size=10_000))
    np.testing.assert_allclose(sum(totals), np.sum(x * x), rtol=1e-12)
    t = jb.SharedTensor.from_array(x)
    try:
        np.testing.assert_array_equal(np.concatenate(list(map_chunks(K.relu, t, chunk_size=64))), np.maximum(x, 0))
    finally:
        t.close()


def test_out_path_is_written_whole_then_renamed(data, tmp_path) -> None:
    x, path = data
    target = tmp_path / "p.npy"
    result = map_chunks(K.softmax, path, chunk_size=100, out=target)
    assert isinstance(result, np.memmap) and not result.flags.writeable
    np.testing.assert_allclose(np.load(target), np_softmax(x), rtol=1e-12)
    assert not (tmp_path / "p.npy.partial").exists()
    per_row = map_chunks(K.logsumexp, path, chunk_size=300, out=tmp_path / "l.npy")  # one value per row
    np.testing.assert_allclose(per_row, np.log(np.exp(x).sum(axis=1)), rtol=1e-12)


def test_out_array_and_memmap(data, tmp_path) -> None:
    x, path = data
    out = np.lib.format.open_memmap(tmp_path / "o.npy", mode="w+", dtype=x.dtype, shape=x.shape)
    assert map_chunks(double_plus, path, chunk_size=250, out=out) is out
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), 2.0 * x + 1.0)
    plain = np.empty_like(x)
    map_chunks(K.relu, [x[:10], x[10:]], out=plain)
    np.testing.assert_array_equal(plain, np.maximum(x, 0))


def _raise_on_chunk(bad_row: float):
    def fn(chunk: np.ndarray) -> np.ndarray:
        if chunk[0, 0] == bad_row:
            raise ValueError("bad data here")
        return chunk * 3.0
    return fn


def _no_reader_left() -> bool:
    return not any(t.name == "jitbridge-stream-reader" and t.is_alive() for t in threading.enumerate())


def test_an_error_in_a_chunk_stops_the_stream_and_reports_the_written_rows(data, tmp_path) -> None:
    x, path = data
    target = tmp_path / "y.npy"
    with pytest.raises(errors.StreamError) as info:
        map_chunks(_raise_on_chunk(x[400, 0]), path, chunk_size=100, out=target)
    err = info.value
    assert (err.chunk, err.rows, err.completed) == (4, (400, 500), (0, 400))
    assert isinstance(err.__cause__, ValueError) and "bad data here" in str(err)
    assert "rows 0:400 of 1000 written and flushed" in str(err)
    assert not target.exists(), "a file under the output's name must always be complete"
    partial = np.load(tmp_path / "y.npy.partial", mmap_mode="r")
    np.testing.assert_array_equal(partial[:400], x[:400] * 3.0)
    assert _no_reader_left()


def test_an_error_while_reading_names_the_chunk(data) -> None:
    x, _ = data

    def source():
        yield x[:10]
        yield x[10:20]
        raise OSError("the disk went away")

    results = map_chunks(K.relu, source())
    with pytest.raises(errors.StreamError, match="chunk 2 .* while reading: OSError") as info:
        list(results)
    assert info.value.chunk == 2 and info.value.completed is None
    assert _no_reader_left()


def _eventually(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_reads_ahead_while_computing_but_never_more_than_prefetch() -> None:
    n, prefetch = 12, 3
    pulled, computed, most_ahead, read_ahead = [0], [0], [0], []

    def source():
        for k in range(n):
            pulled[0] += 1  # the reader takes a slot before it asks for the next item
            yield np.full(4, float(k))

    def fn(chunk: np.ndarray) -> np.ndarray:
        if chunk[0] == 0:
            read_ahead.append(_eventually(lambda: pulled[0] >= 2))
        most_ahead[0] = max(most_ahead[0], pulled[0] - computed[0])
        computed[0] += 1
        return chunk

    results = list(map_chunks(fn, source(), prefetch=prefetch))
    assert len(results) == n
    assert read_ahead == [True], "the next chunk was not read while the first one computed"
    assert 1 < most_ahead[0] <= prefetch, f"{most_ahead[0]} chunks were in memory at once, prefetch={prefetch}"


def test_leaving_early_stops_the_reader(data) -> None:
    _, path = data
    results = map_chunks(K.relu, path, chunk_size=10)
    next(results)
    results.close()
    assert _no_reader_left()


def test_progress_bar_when_asked(data, capsys) -> None:
    _, path = data
    list(map_chunks(K.relu, path, chunk_size=100, progress=True))
    assert "map_chunks" in capsys.readouterr().err
    list(map_chunks(K.relu, path, chunk_size=100, progress=False))
    assert capsys.readouterr().err == ""


def test_bad_arguments(data, tmp_path) -> None:
    x, path = data
    with pytest.raises(errors.ArgumentError, match="prefetch"):
        map_chunks(K.relu, path, prefetch=0)
    with pytest.raises(errors.ArgumentError, match="chunk_size"):
        map_chunks(K.relu, [x], chunk_size=10)
    with pytest.raises(errors.ArgumentError, match="chunk_size"):
        map_chunks(K.relu, path, chunk_size="lots")
    with pytest.raises(errors.ArgumentError, match="known number of rows"):
        map_chunks(K.relu, iter([x]), out=tmp_path / "z.npy")
    with pytest.raises(errors.ArgumentError, match="one row per row"):
        map_chunks(K.relu, path, out=np.empty((10, 48)))
    with pytest.raises(errors.StreamError, match="one result row per input row") as info:
        map_chunks(lambda c: c[:-1], path, chunk_size=100, out=tmp_path / "w.npy")
    assert info.value.chunk == 0 and info.value.completed == (0, 0)


GIB_ROWS, COLS = 1 << 18, 512  # 2**18 rows of 512 float64: 1 GiB
PIECE = 1 << 14


def _piece(k: int) -> np.ndarray:
    return np.random.default_rng(k).standard_normal((PIECE, COLS))


# Peak RSS from /proc (VmHWM), not getrusage: Linux carries ru_maxrss across exec, so a child
# of a large test process would report the parent's size. Writing 5 to clear_refs resets the
# peak to the present size, so the stream's own peak is read from a known start.
STREAM_1GIB = """
    import json, sys
    import numpy as np
    import jitbridge.kernels as K
    from jitbridge.stream import map_chunks

    def status(field):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

    fn = K.softmax if sys.argv[3] == "kernel" else (lambda chunk: K.softmax(chunk))
    map_chunks(fn, np.zeros((4, 512)), out=np.empty((4, 512)))   # the same code, loaded before measuring
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    base = status("VmRSS")
    map_chunks(fn, sys.argv[1], chunk_size="32M", prefetch=2, out=sys.argv[2])
    print(json.dumps({"base_mib": base, "peak_mib": status("VmHWM")}))
"""


def test_a_1_gib_npy_streams_in_bounded_memory(tmp_path) -> None:
    """The library kernel writes each chunk straight into the output file; a plain function
    makes a result that is copied there: both stay within (prefetch + 2) chunks."""
    source, target = tmp_path / "big.npy", tmp_path / "soft.npy"
    with open(source, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (GIB_ROWS, COLS)})
        for k in range(GIB_ROWS // PIECE):
            f.write(_piece(k).tobytes())
    assert source.stat().st_size > 1 << 30
    map_chunks(K.softmax, np.zeros((4, COLS)), out=np.empty((4, COLS)))  # built here, loaded there
    chunk_mib, prefetch = 32, 2
    for how in ("kernel", "function"):
        result = subprocess.run([sys.executable, "-c", textwrap.dedent(STREAM_1GIB), str(source), str(target), how],
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr
        rss = json.loads(result.stdout.strip().splitlines()[-1])
        assert rss["peak_mib"] < 512, (how, rss)
        assert rss["peak_mib"] - rss["base_mib"] <= (prefetch + 2) * chunk_mib + 16, (how, rss)
    offset = os.path.getsize(target) - GIB_ROWS * COLS * 8
    with open(target, "rb") as f:
        for k in range(GIB_ROWS // PIECE):
            got = np.fromfile(f, np.float64, PIECE * COLS, offset=offset if k == 0 else 0).reshape(PIECE, COLS)
            np.testing.assert_allclose(got, np_softmax(_piece(k)), rtol=1e-12, atol=1e-300)
