"""What a launch checks before any code runs, read from the kernel's own body: extents of the
arrays indexed by the launch indices, races, overlapping arguments, options and sizes."""
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import jitbridge as jb
from jitbridge import errors


@jb.kernel
def saxpy(i, a, x, y, out):
    out[i] = a * x[i] + y[i]


@jb.kernel
def transpose(i, j, x, out):
    out[j, i] = x[i, j]


def test_unannotated_short_array_is_a_launch_error_not_a_crash():
    out = np.empty(8)
    with pytest.raises(errors.LaunchError, match=r"indexes 'x' with launch index i") as info:
        saxpy[1000](2.0, np.ones(8), np.ones(1000), np.empty(1000))
    assert "shape (8,)" in str(info.value) and "(1000,)" in str(info.value)
    with pytest.raises(errors.LaunchError, match="'out'"):
        saxpy[1000](2.0, np.ones(1000), np.ones(1000), out)


def test_short_array_in_a_subprocess_never_reaches_memory():
    """The original report: this launch corrupted memory and crashed at exit."""
    code = textwrap.dedent("""
        import numpy as np, jitbridge as jb
        @jb.kernel
        def saxpy(i, a, x, y, out):
            out[i] = a * x[i] + y[i]
        try:
            saxpy[1000](2.0, np.ones(8), np.ones(8), np.empty(8))
        except jb.errors.LaunchError:
            print("refused")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "refused", done.stderr


def test_each_axis_is_checked_against_its_launch_dimension():
    x = np.ones((3, 5))
    transpose[(3, 5)](x, np.empty((5, 3)))
    with pytest.raises(errors.LaunchError, match=r"'out' with launch index i on axis 1"):
        transpose[(3, 5)](x, np.empty((5, 2)))
    with pytest.raises(errors.LaunchError, match=r"'x' with launch index j on axis 1"):
        transpose[(3, 6)](x, np.empty((6, 3)))


def test_guarded_and_offset_accesses_are_the_kernels_business():
    @jb.kernel
    def guarded(i, x, out):
        if i < x.shape[0]:
            out[i] = x[i]

    @jb.kernel
    def shifted(i, x, out):
        out[i] = x[i + 1] - x[i]

    out = np.zeros(10)
    guarded[10](np.arange(4.0), out)
    assert out[:4].tolist() == [0, 1, 2, 3] and not out[4:].any()
    x = np.arange(6.0) ** 2
    diff = np.zeros(5)
    shifted[5](x, diff)
    np.testing.assert_array_equal(diff, np.diff(x))


def test_launch_sizes_beyond_intp_are_refused():
    with pytest.raises(errors.LaunchError, match="more indices than fit"):
        saxpy[2**63](2.0, np.ones(1), np.ones(1), np.ones(1))
    with pytest.raises(errors.LaunchError, match="more indices than fit"):
        transpose[(2**32, 2**32)](np.ones((1, 1)), np.ones((1, 1)))


def test_a_write_at_another_index_warns_once_with_the_line():
    def body(i, bins, counts):
        counts[bins[i]] += 1

    racy = jb.kernel(body)
    with pytest.warns(errors.RaceWarning, match=r"writes 'counts' at an index that does not hold the launch index i") as seen:
        racy[4](np.array([0, 1, 1, 0]), np.zeros(2, np.int64))
    assert seen[0].lineno == body.__code__.co_firstlineno + 1
    assert "jb.atomic" in str(seen[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        racy[4](np.array([0, 1, 1, 0]), np.zeros(2, np.int64))


def test_two_dimensional_write_missing_one_index_is_a_race():
    with pytest.warns(errors.RaceWarning, match="launch index j"):
        @jb.kernel
        def row_sums(i, j, x, out):
            out[i] += x[i, j]

        row_sums[(2, 3)](np.ones((2, 3)), np.zeros(2))


def test_disjoint_and_atomic_writes_do_not_warn():
    @jb.kernel(disjoint=["out"])
    def evens(i, x, out):
        out[2 * i] = x[i]

    @jb.kernel
    def counted(i, bins, counts):
        jb.atomic.add(counts, bins[i], 1)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = np.zeros(8)
        evens[4](np.ones(4), out)
        assert out.tolist() == [1, 0] * 4
        counts = np.zeros(3, np.int64)
        counted[4](np.array([0, 2, 2, 1]), counts)
        saxpy[3](1.0, np.ones(3), np.ones(3), np.zeros(3))
        transpose[(2, 2)](np.ones((2, 2)), np.zeros((2, 2)))
    assert counts.tolist() == [1, 1, 2]


def test_disjoint_names_must_be_parameters():
    with pytest.raises(errors.ArgumentError, match="disjoint names"):
        jb.kernel(disjoint=["nope"])(lambda i, out: None)


@pytest.mark.parametrize("n", [10, 100_000])
def test_the_same_array_passed_twice_is_updated_in_place(n):
    x = np.arange(n, dtype=np.float64)
    saxpy[n](2.0, x, x, x)
    np.testing.assert_array_equal(x, 3.0 * np.arange(n))


def test_partly_overlapping_arguments_run_in_index_order():
    @jb.kernel
    def shift(i, x, out):
        out[i] = x[i] + 1.0

    buf = np.zeros(100_001)
    shift[100_000](buf[:-1], buf[1:])
    np.testing.assert_array_equal(buf, np.arange(100_001.0))


@pytest.mark.parametrize("option, fragment", [("parallel", "threads=N"), ("target", "target='cuda'"),
                                              ("nopython", "nopython"), ("looplift", "nopython")])
def test_options_without_meaning_for_a_kernel_are_refused_by_name(option, fragment):
    with pytest.raises(errors.ArgumentError, match=f"does not take the option '{option}'") as info:
        jb.kernel(**{option: True})(lambda i, out: None)
    assert fragment in str(info.value)


def test_numba_options_that_fit_a_kernel_are_accepted():
    @jb.kernel(fastmath=True, error_model="python", boundscheck=False, inline="never", debug=False)
    def ratio(i, x, y, out):
        out[i] = x[i] / y[i]

    with pytest.raises(ZeroDivisionError):
        ratio[2](np.ones(2), np.zeros(2), np.zeros(2))
    with pytest.raises(errors.ArgumentError, match="error_model"):
        jb.kernel(error_model="c")(lambda i, out: None)


def test_division_by_zero_follows_numpy_by_default():
    @jb.kernel
    def ratio(i, x, y, out):
        out[i] = x[i] / y[i]

    out = np.empty(3)
    ratio[3](np.array([1.0, -1.0, 0.0]), np.zeros(3), out)
    assert out[0] == np.inf and out[1] == -np.inf and np.isnan(out[2])


def test_threads_and_serial_below_choose_the_launch():
    @jb.kernel(serial_below=4)
    def heavy(i, out):
        acc = 0.0
        for k in range(1000):
            acc += (i + k) % 7
        out[i] = acc

    out = np.zeros(64)
    heavy[64](out)
    assert set(heavy.cpu.launchers["parallel"].signatures), "64 indices >= serial_below=4 run in parallel"
    expected = np.array([sum((i + k) % 7 for k in range(1000)) for i in range(64)], float)
    np.testing.assert_array_equal(out, expected)
    out[:] = 0
    heavy.launch(64, out, threads=1)
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(errors.LaunchError, match="threads"):
        heavy.launch(64, out, threads=0)


def test_bounds_checked_index_error_names_array_index_and_line():
    def body(i, x, out):
        out[i] = x[i + 2]

    checked = jb.kernel(boundscheck=True)(body)
    with pytest.raises(errors.BoundsError) as info:
        checked[4](np.ones(4), np.zeros(4))
    text = str(info.value)
    assert isinstance(info.value, IndexError)
    assert re.search(r"index 4 is out of bounds for axis 0 of 'x' \(size 4\)", text), text
    assert info.value.where == (body.__code__.co_filename, body.__code__.co_firstlineno + 1)


def test_a_typo_in_a_body_names_the_users_line():
    def body(i, x, out):
        out[i] = x[i] * undefined_name  # noqa: F821

    typo = jb.kernel(body)
    with pytest.raises(errors.KernelTypingError) as info:
        typo[2](np.ones(2), np.zeros(2))
    assert info.value.where == (body.__code__.co_filename, body.__code__.co_firstlineno + 1)
    assert "undefined_name" in str(info.value)


@pytest.mark.parametrize("kind", ["error_model", "raise"])
def test_a_body_that_can_raise_runs_serially_so_the_error_arrives(kind):
    if kind == "error_model":
        @jb.kernel(error_model="python")
        def check(i, x, out):
            out[i] = 1.0 / x[i]
    else:
        @jb.kernel
        def check(i, x, out):
            if x[i] == 0.0:
                raise ValueError("zero")
            out[i] = 1.0 / x[i]

    x = np.ones(200_000)
    x[150_000] = 0.0
    with pytest.raises((ZeroDivisionError, ValueError)):
        check[x.size](x, np.empty_like(x))


def test_a_bound_launch_checks_what_launch_checks():
    """``k[n]`` calls the compiled launcher straight away, but a wrong argument count, an
    argument needing conversion, options and a short array behave as ``k.launch`` does."""
    x, out = np.arange(6.0), np.zeros(6)
    bound = saxpy[6]
    assert saxpy[6] is bound, "bound once per domain"
    calls = jb.stats().get(saxpy.jb_name, {}).get("calls", 0)
    bound(2.0, x, x, out)
    bound(1.0, memoryview(x), x, out, threads=1)  # converted, then launched serially
    np.testing.assert_array_equal(out, 2.0 * x)
    assert jb.stats()[saxpy.jb_name]["calls"] == calls + 2
    for args in [(2.0, x, x), (2.0, x, x, out, out)]:
        with pytest.raises(errors.LaunchError, match="takes 4 argument") as info:
            bound(*args)
        assert f"{__file__}:" in str(info.value), "the user's line, not generated code's"
    with pytest.raises(errors.LaunchError, match="'x'"):
        saxpy[7](2.0, x, x, np.zeros(7))
