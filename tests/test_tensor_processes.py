"""SharedTensor across real processes: attach, write, exit, die, and get reclaimed."""
from __future__ import annotations

import _posixshmem
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numba
import numpy as np
from typer.testing import CliRunner

from jitbridge.cli.tensor import app
from jitbridge.tensor import SharedTensor, list_segments, reclaim_dead_segments

SHM = "/dev/shm"


def shm_exists(name: str) -> bool:
    return os.path.exists(os.path.join(SHM, name))


def run_python(code: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; ``sys.argv[1:]`` are ``args``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, check=check, timeout=120
    )


def encode(handle) -> str:
    return pickle.dumps(handle).hex()


ATTACH = """
import pickle, sys
import numpy as np
from jitbridge.tensor import SharedTensor
handle = pickle.loads(bytes.fromhex(sys.argv[1]))
"""


def child_adds_one(handle) -> None:
    """Runs in a spawned process: attach, write, exit without closing anything."""
    tensor = SharedTensor.attach(handle)
    np.asarray(tensor)[:] += 1


def test_spawned_child_writes_and_the_segment_survives_its_exit():
    with SharedTensor.from_array(np.arange(1000.0)) as t:
        context = multiprocessing.get_context("spawn")
        child = context.Process(target=child_adds_one, args=(t.handle,))
        child.start()
        child.join(120)
        assert child.exitcode == 0
        assert np.asarray(t).sum() == np.arange(1000.0).sum() + 1000
        assert shm_exists(t.name)
        assert SharedTensor.attach(t.handle).shape == (1000,)  # still attachable


def test_child_writes_through_a_view_handle():
    with SharedTensor.zeros((4, 5)) as t:
        run_python(ATTACH + "np.asarray(SharedTensor.attach(handle))[...] = 3\n", encode(t[1:3, ::2].handle))
        expected = np.zeros((4, 5))
        expected[1:3, ::2] = 3
        np.testing.assert_array_equal(np.asarray(t), expected)
        assert shm_exists(t.name)


@numba.njit
def fill_squares(out):
    for i in range(out.shape[0]):
        out[i] = i * i


def test_jitted_write_in_parent_is_read_by_child():
    with SharedTensor.empty(10_000, "int64") as t:
        fill_squares(t)
        result = run_python(ATTACH + "print(int(np.asarray(SharedTensor.attach(handle, read_only=True)).sum()))\n",
                            encode(t.handle))
        assert int(result.stdout) == sum(i * i for i in range(10_000))


def test_read_only_attach_in_child_cannot_write():
    with SharedTensor.zeros(3) as t:
        code = ATTACH + textwrap.dedent("""
            ro = SharedTensor.attach(handle, read_only=True)
            try:
                np.asarray(ro)[0] = 1
            except ValueError:
                print("refused")
        """)
        assert run_python(code, encode(t.handle)).stdout.strip() == "refused"
        assert not np.asarray(t).any()


def test_owner_normal_exit_removes_its_segments():
    result = run_python("""
        from jitbridge.tensor import SharedTensor
        kept = SharedTensor.empty(10)
        print(kept.name)
    """)
    assert not shm_exists(result.stdout.strip())


def test_forked_child_exit_does_not_remove_the_parents_segment():
    result = run_python("""
        import os, sys
        from jitbridge.tensor import SharedTensor
        t = SharedTensor.empty(10)
        pid = os.fork()
        if pid == 0:
            sys.exit(0)  # normal exit: runs the inherited finalizers, which must not unlink
        os.waitpid(pid, 0)
        print(os.path.exists("/dev/shm/" + t.name))
    """)
    assert result.stdout.strip() == "True"


# -- killed owners and reclaiming ----------------------------------------------------------


def start_owner_and_kill_it(count: int = 2) -> list[str]:
    """A child creates ``count`` segments, then is SIGKILLed: it leaks them."""
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from jitbridge.tensor import SharedTensor
            tensors = [SharedTensor.zeros(100) for _ in range({count})]
            print(" ".join(t.name for t in tensors), flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    names = owner.stdout.readline().split()
    owner.send_signal(signal.SIGKILL)
    owner.wait(30)
    owner.stdout.close()
    assert names and all(shm_exists(n) for n in names)
    return names


def test_gc_command_reclaims_a_killed_owners_segments():
    with SharedTensor.zeros(3) as mine:
        names = start_owner_and_kill_it()
        listed = {info.name: info for info in list_segments()}
        assert not listed[names[0]].owner_alive and listed[mine.name].owner_alive
        result = CliRunner().invoke(app, ["gc"])
        assert result.exit_code == 0, result.output
        for name in names:
            assert f"removed {name}" in result.output
            assert not shm_exists(name)
        assert shm_exists(mine.name)  # a live owner's segment is left alone


def test_reclaim_dead_segments_function_and_module_cli():
    names = start_owner_and_kill_it()
    assert set(names) <= set(reclaim_dead_segments())
    assert not any(shm_exists(n) for n in names)
    more = start_owner_and_kill_it(1)
    subprocess.run([sys.executable, "-m", "jitbridge.cli.tensor", "gc"], check=True, capture_output=True, timeout=120)
    assert not shm_exists(more[0])


def test_attached_processes_keep_their_memory_after_reclaim():
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import pickle, time
            import numpy as np
            from jitbridge.tensor import SharedTensor
            t = SharedTensor.from_array(np.arange(50.0))
            print(pickle.dumps(t.handle).hex(), flush=True)
            time.sleep(120)
        """)],
        stdout=subprocess.PIPE,
        text=True,
    )
    handle = pickle.loads(bytes.fromhex(owner.stdout.readline()))
    attached = SharedTensor.attach(handle)
    owner.kill()
    owner.wait(30)
    owner.stdout.close()
    assert handle.name in reclaim_dead_segments()
    assert np.asarray(attached).sum() == np.arange(50.0).sum()


def fake_segment(name: str) -> None:
    fd = _posixshmem.shm_open("/" + name, os.O_CREAT | os.O_EXCL | os.O_RDWR, mode=0o600)
    os.ftruncate(fd, 8)
    os.close(fd)


PIDNS = os.stat("/proc/self/ns/pid").st_ino


def test_reused_pid_and_dead_pid_are_reclaimed_foreign_names_are_not():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = os.urandom(16).hex()
    reused = f"jb_{os.getpid()}_1_{PIDNS}_{token}"  # our pid, but a start time that is not ours
    gone = f"jb_{dead.pid}_1_{PIDNS}_{token}"
    foreign = f"jbx_{dead.pid}_1_{PIDNS}_{token}"
    for name in (reused, gone, foreign):
        fake_segment(name)
    try:
        removed = reclaim_dead_segments()
        assert reused in removed and gone in removed and foreign not in removed
        assert shm_exists(foreign)
    finally:
        for name in (reused, gone, foreign):
            if shm_exists(name):
                _posixshmem.shm_unlink("/" + name)


def test_reclaim_is_cheap_when_nothing_is_dead():
    reclaim_dead_segments()
    tensors = [SharedTensor.empty(1) for _ in range(10)]
    runs = []
    for _ in range(50):
        start = time.perf_counter()
        reclaim_dead_segments()
        runs.append(time.perf_counter() - start)
    for t in tensors:
        t.close()
    assert sorted(runs)[len(runs) // 2] < 1e-3


def test_import_leaves_dead_segments_the_next_tensor_or_gc_reclaims_them():
    names = start_owner_and_kill_it()
    subprocess.run([sys.executable, "-c", "import jitbridge, jitbridge.tensor"], check=True, capture_output=True,
                   timeout=120)
    assert all(shm_exists(n) for n in names), "import jitbridge does no work, reclaiming included"
    listed = subprocess.run([sys.executable, "-m", "jitbridge", "tensor", "ls"], capture_output=True, text=True,
                            timeout=120)
    assert all(f"{n}  pid=" in listed.stdout and "(dead)" in listed.stdout for n in names), listed.stdout
    run_python("from jitbridge.tensor import SharedTensor; SharedTensor.empty(1).close()")
    assert not any(shm_exists(n) for n in names), "the next process that creates a tensor reclaims"
    more = start_owner_and_kill_it(1)
    result = subprocess.run([sys.executable, "-m", "jitbridge", "tensor", "gc"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and not shm_exists(more[0])
