"""SharedTensor and argument handling under attack: segments of other PID namespaces and
other users, forged handles, sizes beyond intp, and arrays compiled code cannot take. Each
gives a JitBridgeError or is left alone; none unlinks what is not provably dead."""
import _posixshmem
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jitbridge as jb
from jitbridge import errors
from jitbridge.tensor import SharedTensor, TensorHandle, list_segments, reclaim_dead_segments
from jitbridge.tensor.segment import pid_namespace

SHM = "/dev/shm"
PIDNS = pid_namespace()


def _shm_exists(name):
    return os.path.exists(os.path.join(SHM, name))


def _unshare_prefix(mount_proc: bool = True) -> list[str] | None:
    """A command prefix running its command as pid 1 of a new PID namespace, or None."""
    if shutil.which("unshare") is None:
        return None
    prefix = ["unshare"] + ([] if os.geteuid() == 0 else ["--user", "--map-root-user"]) + ["--pid", "--fork"]
    prefix += ["--mount-proc"] if mount_proc else []
    try:
        probe = subprocess.run(prefix + ["true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return prefix if probe.returncode == 0 else None


needs_unshare = pytest.mark.skipif(_unshare_prefix() is None,
                                   reason="unshare --pid is not available or not permitted here")
OWNER = textwrap.dedent("""
    import time
    from jitbridge.tensor import SharedTensor
    t = SharedTensor.zeros(16)
    print(t.name, flush=True)
    time.sleep(120)
""")


@needs_unshare
def test_a_segment_of_another_pid_namespace_is_never_reclaimed_from_here():
    owner = subprocess.Popen(_unshare_prefix() + [sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
    name = owner.stdout.readline().strip()
    try:
        assert _shm_exists(name)
        state = {info.name: info.state for info in list_segments()}[name]
        assert state == "other PID namespace"
        assert name not in reclaim_dead_segments()
        os.killpg(owner.pid, signal.SIGKILL)
        owner.wait(30)
        gc = subprocess.run([sys.executable, "-m", "jitbridge", "tensor", "gc"], capture_output=True, text=True,
                            timeout=120)
        assert gc.returncode == 0 and _shm_exists(name), "its owner's pid means nothing here: not provably dead"
    finally:
        owner.stdout.close()
        if owner.poll() is None:
            os.killpg(owner.pid, signal.SIGKILL)
        if _shm_exists(name):
            _posixshmem.shm_unlink("/" + name)


@needs_unshare
@pytest.mark.parametrize("mount_proc", [True, False], ids=["own /proc", "the host's /proc"])
def test_a_process_in_another_pid_namespace_leaves_our_live_segments_alone(mount_proc):
    prefix = _unshare_prefix(mount_proc)
    if prefix is None:
        pytest.skip("unshare without --mount-proc is not permitted here")
    reclaim = ("from jitbridge.tensor import SharedTensor, reclaim_dead_segments; "
               "print(reclaim_dead_segments()); SharedTensor.empty(1).close()")
    with SharedTensor.zeros(8) as mine:
        inside = subprocess.run(prefix + [sys.executable, "-c", reclaim], capture_output=True, text=True, timeout=120)
        assert inside.returncode == 0, inside.stderr
        gc = subprocess.run(prefix + [sys.executable, "-m", "jitbridge", "tensor", "gc"], capture_output=True,
                            text=True, timeout=120)
        assert gc.returncode == 0, gc.stderr
        assert _shm_exists(mine.name), "our pid does not exist in their namespace, but we are alive"
        assert mine.name not in inside.stdout


def _fake_segment(name):
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    os.ftruncate(fd, 8)
    os.close(fd)


def _dead_pid():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return dead.pid


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make a segment of another user")
def test_other_users_dead_segments_are_left_alone_even_as_root():
    name = f"jb_{_dead_pid()}_1_{PIDNS}_{os.urandom(16).hex()}"
    _fake_segment(name)
    os.chown(os.path.join(SHM, name), 65534, -1)
    try:
        assert {i.name: i.state for i in list_segments()}[name] == "other user"
        assert name not in reclaim_dead_segments() and _shm_exists(name)
    finally:
        _posixshmem.shm_unlink("/" + name)


def test_a_segment_from_another_namespace_inode_is_not_judged_here():
    name = f"jb_{_dead_pid()}_1_{PIDNS + 1}_{os.urandom(16).hex()}"
    _fake_segment(name)
    try:
        assert {i.name: i.state for i in list_segments()}[name] == "other PID namespace"
        assert name not in reclaim_dead_segments() and _shm_exists(name)
    finally:
        _posixshmem.shm_unlink("/" + name)


# -- forged handles and sizes -------------------------------------------------------------

_INTS = st.one_of(st.integers(-2**70, 2**70), st.integers(-3, 40), st.booleans(), st.none(), st.floats(),
                  st.text(max_size=3))
_DTYPES = st.one_of(st.sampled_from(["<f8", ">f8", "V0", "S0", "<U3", "O", "f2", "[('a', '<f8')]", "[" * 50,
                                     "[('a', '<f8', (1099511627776,))]", "<M8[s]", "garbage", ""]), st.text(max_size=8))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.one_of(st.lists(_INTS, max_size=4).map(tuple), _INTS), strides=st.one_of(st.lists(_INTS, max_size=4)
       .map(tuple), _INTS), dtype=_DTYPES, offset=_INTS, owner=_INTS,
       name=st.sampled_from(["real", "jb_1_2_3_" + "0" * 32, "x\0y", "/etc/passwd", "../../etc", ""]),
       kind=st.sampled_from(["shm", "file", "cuda", 3]))
def test_forged_handles_give_tensor_errors(shape, strides, dtype, offset, owner, name, kind):
    with SharedTensor.zeros(16) as t:
        forged = TensorHandle(t.name if name == "real" else name, shape, dtype, strides, offset, owner, kind)
        try:
            attached = SharedTensor.attach(forged, read_only=True)
        except errors.TensorError:
            return
        np.asarray(attached).copy()  # whatever attached must be readable without a crash
        attached.close()


def test_attaching_a_fifo_file_handle_does_not_hang(tmp_path):
    fifo = tmp_path / "fifo.npy"
    os.mkfifo(fifo)
    handle = TensorHandle(str(fifo), (1,), "<f8", (8,), 0, 0, "file")
    with pytest.raises(errors.TensorError, match="not a regular file"):
        SharedTensor.attach(handle, read_only=True)


@pytest.mark.parametrize("shape,dtype", [((2**32, 2**32), "i1"), ((2**63,), "f8"), ((2**62, 4), "f8"),
                                         ((True, 3), "f8"), ((1,) * 65, "f8")])
def test_impossible_sizes_give_tensor_errors(shape, dtype):
    with pytest.raises(errors.TensorError):
        SharedTensor.empty(shape, dtype)


# -- arrays compiled code cannot take -----------------------------------------------------


@jb.jit
def _total(x):
    return x.sum()


@jb.kernel
def _copy(i, x, out):
    out[i] = x[i]


_BAD_ARRAYS = {
    "big-endian": (np.arange(4.0).astype(">f8"), "byte order"),
    "float16": (np.arange(4.0).astype("f2"), "float16"),
    "masked": (np.ma.masked_array(np.arange(4.0), mask=[0, 1, 0, 0]), "masked"),
}


@pytest.mark.parametrize("case", sorted(_BAD_ARRAYS))
def test_arrays_compiled_code_cannot_take_give_argument_errors(case):
    array, words = _BAD_ARRAYS[case]
    with pytest.raises(errors.ArgumentError, match=words) as info:
        _total(array)
    assert info.value.where[0] == __file__ and info.value.fix
    with pytest.raises(errors.ArgumentError, match=words):
        _copy[4](array, np.zeros(4))


@pytest.mark.parametrize("dtype,words", [(">f8", "byte order"), ("f2", "float16")])
def test_shared_tensors_of_such_dtypes_give_jitbridge_errors_in_numba_too(dtype, words):
    with SharedTensor.from_array(np.arange(4.0).astype(dtype)) as t:
        with pytest.raises(errors.JitBridgeError, match=words) as info:
            _total(t)
        assert info.value.where[0] == __file__
        with pytest.raises(errors.JitBridgeError, match=words):
            numba.njit(lambda x: x.sum())(t)


# -- bounds checking in parallel launches ---------------------------------------------------


@pytest.mark.parametrize("ndim", [1, 2])
def test_a_bounds_checked_parallel_launch_raises_index_error(ndim):
    if ndim == 1:
        @jb.kernel(boundscheck=True, cache=False)
        def shifted(i, x, out):
            out[i] = x[i + 1]
        dims, x = 100_000, np.ones(100_000)
    else:
        @jb.kernel(boundscheck=True, cache=False)
        def shifted(i, j, x, out):
            out[i, j] = x[i, j + 1]
        dims, x = (400, 400), np.ones((400, 400))
    with jb.config.scope(serial_threshold=1):
        with pytest.raises(IndexError):
            shifted[dims](x, np.zeros_like(x))
