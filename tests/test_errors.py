"""Every misuse gives a jitbridge error that names the kernel, the user's line and the fix."""
import numba
import numpy as np
import pytest

import jitbridge as jb
from jitbridge import errors


@jb.kernel
def adds_tuple(i, x, out):
    out[i] = x + (1, 2)


@jb.kernel
def saxpy(i, a, x: "n", y: "n", out: "n"):
    out[i] = a * x[i] + y[i]


@jb.kernel
def matrix_row_scale(i: "rows", j, w: "rows", m: "rows, cols", out: "rows, cols"):
    out[i, j] = w[i] * m[i, j]


def test_hierarchy():
    for cls in (errors.KernelTypingError, errors.LaunchError, errors.ArgumentError, errors.CacheError,
                errors.TensorError, errors.TargetUnavailableError):
        assert issubclass(cls, errors.JitBridgeError)
    assert issubclass(errors.KernelTypingError, numba.core.errors.TypingError)


def test_typing_error_headline_names_kernel_line_and_types():
    with pytest.raises(errors.KernelTypingError) as info:
        adds_tuple[3](np.ones(3), np.ones(3))
    first, second = str(info.value).splitlines()[:2]
    assert "cannot add array(float64, 1d, C) and Tuple(int64, int64)" in first
    assert "adds_tuple" in first
    assert f"{__file__}:12" in first
    assert second.strip() == "out[i] = x + (1, 2)"
    assert isinstance(info.value.__cause__, numba.core.errors.TypingError)
    assert "No implementation" not in first


def test_typing_error_in_jit_function():
    f = jb.jit(lambda x: x.no_such_attribute)
    with pytest.raises(errors.KernelTypingError, match="no_such_attribute"):
        f(np.ones(2))


def test_eager_signature_typing_error_is_translated():
    with pytest.raises(errors.KernelTypingError, match="cannot add"):
        jb.jit("float64(float64[:])")(lambda x: x + (1, 2))


@pytest.mark.parametrize("args", [(1.0, np.ones(3)), (1.0, np.ones(3), np.ones(3), np.ones(3), 5)])
def test_wrong_argument_count(args):
    with pytest.raises(errors.LaunchError, match="takes 4 argument"):
        saxpy[3](*args)


@pytest.mark.parametrize("dims", [-1, 2.5, None, True, "3", (3, -1), ()])
def test_bad_launch_dims(dims):
    with pytest.raises(errors.LaunchError, match="non-negative ints"):
        saxpy.launch(dims, 1.0, np.ones(3), np.ones(3), np.ones(3))


def test_domain_rank_must_match_index_parameters():
    with pytest.raises(errors.LaunchError, match="2 index parameter"):
        matrix_row_scale[5](np.ones(5), np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(errors.LaunchError, match="1-D domain"):
        matrix_row_scale[5](np.ones(5), np.ones((5, 2)), np.ones((5, 2)))


def test_numpy_integer_dims_are_accepted():
    out = np.zeros(3)
    saxpy[np.int64(3)](1.0, np.ones(3), np.ones(3), out)
    assert out.tolist() == [2.0] * 3


def test_declared_lengths_must_agree():
    with pytest.raises(errors.ArgumentError) as info:
        saxpy[4](1.0, np.ones(4), np.ones(3), np.ones(4))
    message = str(info.value)
    assert "'n'" in message and "argument 'y'" in message and "test_errors.py" in message


def test_launch_dimension_bound_to_a_symbol_is_checked():
    with pytest.raises(errors.ArgumentError, match="launch dimension 0"):
        matrix_row_scale[(6, 2)](np.ones(5), np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(errors.ArgumentError, match="cols"):
        matrix_row_scale[(5, 2)](np.ones(5), np.ones((5, 2)), np.ones((5, 3)))
    with pytest.raises(errors.ArgumentError, match="dimension"):
        matrix_row_scale[(5, 2)](np.ones(5), np.ones(5), np.ones((5, 2)))


def test_unsupported_argument_type():
    with pytest.raises(errors.ArgumentError, match="argument 'x'"):
        saxpy[1](1.0, {"not": "an array"}, np.ones(1), np.ones(1))


def test_kernel_without_index_parameters_is_refused_at_decoration():
    with pytest.raises(errors.ArgumentError, match="index parameter"):
        jb.kernel(lambda x, out: None)


def test_bad_shape_annotation():
    with pytest.raises(errors.ArgumentError, match="annotation"):
        @jb.kernel
        def k(i, x: "n m!"):
            pass


def test_message_formatting_in_one_place():
    err = errors.ArgumentError("bad thing", where=(__file__, 1), values={"x": 3}, fix="do better")
    lines = str(err).splitlines()
    assert lines[0] == f"bad thing (at {__file__}:1)"
    assert lines[1].strip() == '"""Every misuse gives a jitbridge error that names the kernel, the user\'s line and the fix."""'
    assert "  x: 3" in lines and "  fix: do better" in lines
