"""jb.kernel: index-space launches over 1-3 dimensions, checked against NumPy."""
import array
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jitbridge as jb


@jb.kernel
def saxpy(i, a, x, y, out):
    out[i] = a * x[i] + y[i]


@jb.kernel
def add_outer(i, j, x, y, out):
    out[i, j] = x[i] + y[j]


@jb.kernel
def scale3(i, j, k, a, x, out):
    out[i, j, k] = a * x[i, j, k]


@jb.kernel(ndim=1)
def fill_row(row, value, out):
    out[row] = value


@pytest.mark.parametrize("n", [1, 10, 100_003])
def test_saxpy_matches_numpy(n):
    rng = np.random.default_rng(n)
    x, y, out = rng.random(n), rng.random(n), np.empty(n)
    saxpy[n](2.5, x, y, out)
    np.testing.assert_allclose(out, 2.5 * x + y, rtol=1e-15)


def test_both_serial_and_parallel_launches_are_correct():
    n = 50_000
    x, y = np.arange(n, dtype=np.float64), np.ones(n)
    for threshold in (1, 10**9):
        out = np.zeros(n)
        with jb.config.scope(serial_threshold=threshold):
            saxpy[n](3.0, x, y, out)
        np.testing.assert_array_equal(out, 3.0 * x + 1)


def test_2d_and_3d_domains():
    x, y = np.arange(4.0), np.arange(5.0) * 10
    out = np.zeros((4, 5))
    add_outer[(4, 5)](x, y, out)
    np.testing.assert_array_equal(out, x[:, None] + y[None, :])
    cube = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
    out3 = np.zeros_like(cube)
    scale3.launch((3, 4, 5), np.float32(2), cube, out3)
    np.testing.assert_allclose(out3, 2 * cube, rtol=1e-6)


def test_ndim_option_names_index_parameters_freely():
    out = np.zeros(4)
    fill_row[4](7.0, out)
    assert out.tolist() == [7.0] * 4


def test_zero_size_domain_is_an_empty_launch():
    out = np.full(3, -1.0)
    saxpy[0](1.0, np.ones(3), np.ones(3), out)
    add_outer[(0, 5)](np.ones(3), np.ones(5), np.ones((3, 5)))
    assert out.tolist() == [-1.0] * 3


def test_one_specialization_per_dtype_and_layout():
    @jb.kernel
    def copy(i, x, out):
        out[i] = x[i]

    for dtype in (np.float32, np.float64, np.int32):
        x = np.arange(8, dtype=dtype)
        out = np.zeros(8, dtype=dtype)
        copy[8](x, out)
        np.testing.assert_array_equal(out, x)
    strided = np.arange(16.0)[::2]
    out = np.zeros(8)
    copy[8](strided, out)
    np.testing.assert_array_equal(out, strided)
    described = [str(s) for s in copy.signatures]
    assert len(copy.signatures) == 4, described
    assert any("A" in s for s in described)


def test_serial_launch_inner_loop_is_simd_vectorized():
    n = 64
    saxpy.compile("float64, float64[::1], float64[::1], float64[::1]", parallel=False)
    asm = "\n".join(saxpy.inspect_asm(parallel=False).values())
    assert re.search(r"\bv(mul|add|fmadd\w*)pd\s+.*%[yz]mm", asm), "no packed double arithmetic found"
    out = np.zeros(n)
    saxpy[n](2.0, np.ones(n), np.ones(n), out)
    assert out.tolist() == [3.0] * n


def _twice(v):
    return v * 2.0


twice = jb.jit(_twice)


@jb.kernel
def doubled(i, x, out):
    out[i] = twice(x[i]) + 1.0


@pytest.mark.parametrize("parallel", [False, True])
def test_a_body_calling_a_jitted_helper_still_vectorizes(parallel):
    """numba's IR inlining of the body used to leave the helper call in the serial loop."""
    doubled.compile("float64[::1], float64[::1]", parallel=parallel)
    asm = "\n".join(doubled.inspect_asm(parallel=parallel).values())
    assert re.search(r"\bv(mul|add|fmadd\w*)pd\s+.*%[yz]mm", asm), "no packed double arithmetic found"
    out = np.zeros(40)
    doubled[40](np.arange(40.0), out)
    np.testing.assert_array_equal(out, 2 * np.arange(40.0) + 1)


def test_parallel_launch_is_vectorized_too():
    saxpy.compile("float64, float64[::1], float64[::1], float64[::1]", parallel=True)
    asm = "\n".join(saxpy.inspect_asm(parallel=True).values())
    assert re.search(r"\bv(mul|add|fmadd\w*)pd\s+.*%[yz]mm", asm)


class _ArrayInterfaceOnly:
    """An object numba knows nothing about, exposing memory through __array_interface__."""

    def __init__(self, arr):
        self._arr = arr
        self.__array_interface__ = arr.__array_interface__


@pytest.mark.parametrize("make", [
    lambda: _ArrayInterfaceOnly(np.zeros(6)),
    lambda: memoryview(np.zeros(6)),
    lambda: array.array("d", [0.0] * 6),
    lambda: bytearray(48),
])
def test_array_likes_are_passed_without_copying(make, monkeypatch):
    from jitbridge.frontend import args as argmod

    buf = make()
    seen = []
    original = argmod.as_array_or_scalar

    def spy(value, name):
        converted = original(value, name)
        seen.append(converted)
        return converted

    monkeypatch.setattr(argmod, "as_array_or_scalar", spy)
    expected_ptr = np.asarray(buf).__array_interface__["data"][0]

    @jb.kernel
    def put(i, out):
        out[i] = 1

    put[6](buf)
    assert seen[0].__array_interface__["data"][0] == expected_ptr
    assert np.asarray(buf).view(np.uint8).any(), "the kernel's writes must land in the caller's memory"


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 300), a=st.floats(-1e3, 1e3), seed=st.integers(0, 2**32 - 1))
def test_saxpy_property(n, a, seed):
    rng = np.random.default_rng(seed)
    x, y, out = rng.standard_normal(n), rng.standard_normal(n), np.zeros(n)
    saxpy[n](a, x, y, out)
    np.testing.assert_allclose(out, a * x + y, rtol=1e-12, atol=1e-12)


def test_calls_counted_per_kernel():
    jb.reset_stats()
    for _ in range(3):
        saxpy[2](1.0, np.ones(2), np.ones(2), np.ones(2))
    assert jb.stats()[saxpy.jb_name]["calls"] == 3


def test_cuda_target_without_gpu_is_a_clear_error():
    from jitbridge.targets import cuda

    if cuda.is_available():
        pytest.skip("a CUDA GPU is present; the unavailable path cannot be shown here")
    with pytest.raises(jb.errors.TargetUnavailableError):
        saxpy.launch(2, 1.0, np.ones(2), np.ones(2), np.ones(2), target="cuda")
    out = np.zeros(2)
    saxpy.launch(2, 1.0, np.ones(2), np.ones(2), out, target="auto")
    assert out.tolist() == [2.0, 2.0]


def test_boundscheck_turns_out_of_range_access_into_index_error():
    @jb.kernel(boundscheck=True)
    def shifted(i, x, out):
        out[i] = x[i + 1]

    with pytest.raises(IndexError):
        shifted[4](np.ones(4), np.zeros(4))
    with jb.config.scope(boundscheck=True):
        @jb.kernel
        def shifted_by_setting(i, x, out):
            out[i] = x[i + 1]
    with pytest.raises(IndexError):
        shifted_by_setting[4](np.ones(4), np.zeros(4))


def test_declared_any_layout_signature_serves_contiguous_launches(monkeypatch):
    from jitbridge.frontend.dispatcher import Dispatcher

    @jb.kernel(signatures=["float64, float64[:], float64[:]"])
    def axpy_any(i, a, x, out):
        out[i] = a * x[i] + out[i]

    calls = []
    original = Dispatcher._reuse
    monkeypatch.setattr(Dispatcher, "_reuse", lambda self, argtypes: calls.append(1) or original(self, argtypes))
    jb.reset_stats()
    out = np.zeros(4)
    for _ in range(3):
        axpy_any[4](2.0, np.ones(4), out)
    assert out.tolist() == [6.0] * 4
    assert jb.stats()[axpy_any.jb_name]["compiles"] == 1
    assert [str(s[1]) for s in axpy_any.signatures] == ["array(float64, 1d, A)"]
    assert len(calls) == 1, "after the first launch numba's C dispatch finds the entry itself"


def test_short_outer_dimension_parallelizes_the_inner_one():
    from jitbridge.targets import cpu_support

    @jb.kernel
    def rowscale(i, j, w, m, out):
        out[i, j] = w[i] * m[i, j]

    m = np.random.default_rng(3).random((2, 100_000))
    w, out = np.array([2.0, -1.0]), np.zeros_like(m)
    rowscale[m.shape](w, m, out)
    np.testing.assert_array_equal(out, w[:, None] * m)
    assert cpu_support.split_dim(2, 100_000, 2) == 1, "two rows cannot keep two threads busy: split the columns"
    assert cpu_support.split_dim(100_000, 2, 2) == 0
    assert cpu_support.chunk(1, 2, 1, 2, 100_000) == (0, 2, 50_000, 100_000)
    tall = np.random.default_rng(4).random((100_000, 2))
    out2 = np.zeros_like(tall)
    rowscale[tall.shape](np.ones(100_000), tall, out2)
    np.testing.assert_array_equal(out2, tall)
