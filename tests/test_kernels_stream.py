"""Streaming (non-temporal) stores: the same bits as ordinary stores for every kernel that
uses them, whatever the alignment of the output, and real non-temporal instructions."""
from __future__ import annotations

import platform
import re
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbridge.kernels as K
from jitbridge import jit
from jitbridge.kernels import _dispatch
from jitbridge.kernels._stream import streaming

from _kernel_inputs import FLOATS, arrays, threads

CALLS = {
    "clip": lambda x, o, **kw: K.clip(x, 3, 40, out=o, **kw),
    "scale": lambda x, o, **kw: K.scale(x, 3, out=o, **kw),
    "saxpy": lambda x, o, **kw: K.saxpy(2, x, x[::-1].copy(), out=o, **kw),
    "relu": lambda x, o, **kw: K.relu(x, out=o, **kw),
    "normalize": lambda x, o, **kw: K.normalize(x, out=o, **kw),
    "layernorm": lambda x, o, **kw: K.layernorm(x, out=o, **kw),
}


def run(name: str, x: np.ndarray, offset: int, stream: bool, **kw) -> np.ndarray:
    """The kernel's result written into ``out`` starting ``offset`` elements into a buffer,
    so the streamed part starts at every alignment."""
    buf = np.full(x.size + offset + 1, 7, x.dtype)
    out = buf[offset:offset + x.size].reshape(x.shape)
    with mock.patch.object(_dispatch, "STREAM_BYTES", 0 if stream else 1 << 62), np.errstate(all="ignore"):
        CALLS[name](x, out, **kw)
    assert buf[-1] == 7 and (offset == 0 or buf[offset - 1] == 7), "wrote outside out"
    return out


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(sorted(CALLS)), x=arrays(specials=True), offset=st.integers(0, 9),
       threads=threads)
def test_streamed_results_are_bit_identical(name, x, offset, threads) -> None:
    if name in ("normalize", "layernorm") and x.dtype not in FLOATS:
        x = x.astype(np.float64)
    plain = run(name, x, offset, False, threads=threads)
    streamed = run(name, x, offset, True, threads=threads)
    np.testing.assert_array_equal(streamed, plain)
    assert np.array_equal(np.signbit(streamed), np.signbit(plain))


def test_only_large_passes_stream() -> None:
    small, large = np.empty(1000), np.empty(_dispatch.STREAM_BYTES // 8)
    assert not _dispatch.streams(small, small)
    assert _dispatch.streams(large, small)


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction names")
def test_streaming_stores_are_non_temporal() -> None:
    double = streaming(lambda a, x, y, p, q: a.add(x, y))

    @jit
    def f(x, y, out, stream):
        double(x, y, out, 0.0, 0.0, stream)

    x = np.arange(100.0)
    out = np.empty_like(x)
    f(x, x, out, True)
    np.testing.assert_array_equal(out, 2 * x)
    asm = f.inspect_asm(f.signatures[0])
    assert re.search(r"vmovnt(pd|dq)", asm) and "sfence" in asm
