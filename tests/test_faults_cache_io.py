"""The cache under I/O faults: a full disk, a read-only cache, a FIFO or a directory where an
entry, a name record or a lock should be, killed writers' temporary files, planted links.
Every one must end in a correct result, at most a CacheWarning, never an exception or a hang."""
import contextlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

import jitbridge as jb
from jitbridge import cli, config
from jitbridge.cache import bundle
from jitbridge.cache import store as store_module
from jitbridge.cache.store import current_store
from jitbridge.cache.store import Store, unpack

from _faults import FailingOS, cache_warnings, can_mount, fresh_pair, other_function, remount_read_only, tmpfs
from _subprocess import run_json

HOW = ["injected", pytest.param("tmpfs", marks=pytest.mark.skipif(not can_mount(),
                                                                   reason="a real tmpfs needs root and mount"))]


def _use(pair, x=np.arange(4.0)):
    f, k = pair
    out = np.zeros_like(x)
    k[x.shape[0]](x, out)
    return f(1.0), out


def _check(results, x=np.arange(4.0)):
    value, out = results
    assert value == 1.5
    np.testing.assert_array_equal(out, 2 * x)


def _io_warnings(found, folder):
    """Warnings about the folder itself (not about one bad entry)."""
    return [w for w in found if str(folder) in str(w.message) and "corrupt" not in str(w.message)]


@pytest.fixture
def broken(tmp_path, monkeypatch, request):
    """``broken(mode)`` -> (folder, breaks): a cache folder that ``breaks()`` makes full or
    read-only, really (a tmpfs of 8 KiB, or remounted read-only) or by injected OSErrors."""
    with contextlib.ExitStack() as stack:
        def make(mode):
            if request.param == "injected":
                return tmp_path / "cache", lambda: monkeypatch.setattr(store_module, "os", FailingOS(mode))
            folder = stack.enter_context(tmpfs(tmp_path / "mnt", "8k" if mode == "full" else "16m"))
            return folder, (lambda: remount_read_only(folder)) if mode == "readonly" else (lambda: None)

        yield make
        monkeypatch.undo()


@pytest.mark.parametrize("broken", HOW, indirect=True)
def test_full_disk_compiles_in_memory_with_one_warning(broken):
    folder, breaks = broken("full")
    breaks()
    with config.scope(cache_dir=folder), cache_warnings() as found:
        jb.reset_stats()
        _check(_use(fresh_pair("full_disk")))
        other, k = other_function()
        assert other(2.0) == 6.0 + k
        _check(_use(fresh_pair("full_disk_again")))
    assert len(_io_warnings(found, folder)) == 1, [str(w.message) for w in found]
    assert jb.stats()["full_disk.plus_half"]["compiles"] == 1
    assert not [p for p in folder.rglob("*.jbc") if p.stat().st_size]
    assert not list(folder.rglob("*.tmp.*")), "failed writes leave no temporary files"


@pytest.mark.parametrize("broken", HOW, indirect=True)
def test_read_only_cache_hits_what_it_has_and_compiles_misses(broken):
    folder, breaks = broken("readonly")
    with config.scope(cache_dir=folder):
        _check(_use(fresh_pair("ro_warm")))
        corrupt, _ = other_function()
        corrupt(1.0)
        corrupt_path = next(p for p in folder.rglob("*.jbc")
                            if unpack(p.read_bytes())[0]["name"].endswith(corrupt.py_func.__name__))
        corrupt_path.write_bytes(corrupt_path.read_bytes()[:-7])
        breaks()
        jb.reset_stats()
        with cache_warnings() as found:
            _check(_use(fresh_pair("ro_hit")))
            other, k = other_function()
            assert other(1.0) == 3.0 + k  # a miss: no lock, no write possible
            reloaded = jb.jit(cache=True)(corrupt.py_func)
            assert reloaded(1.0) == corrupt.py_func(1.0)
    stats = jb.stats()
    assert stats["ro_hit.plus_half"]["cache_hits"] == 1 and stats["ro_hit.twice"]["cache_hits"] == 1
    assert len(_io_warnings(found, folder)) == 1, [str(w.message) for w in found]
    assert any("corrupt" in str(w.message) for w in found)
    assert corrupt_path.exists(), "nothing can be removed from a read-only cache"


# -- a FIFO or a directory where a file should be (in fresh processes: a hang must not hang us)

RUN = """
import json, warnings, numpy as np, jitbridge as jb
from jitbridge import errors
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import faultmod
    out = np.zeros(4)
    faultmod.twice[4](np.arange(4.0), out)
    value = faultmod.plus_half(1.0)
print(json.dumps({"value": value, "out": out.tolist(), "stats": jb.stats(),
                  "warnings": [str(w.message) for w in caught if issubclass(w.category, errors.CacheWarning)]}))
"""
MODULE = """
import jitbridge as jb

@jb.jit(cache=True)
def plus_half(x):
    return x + 0.5

@jb.kernel
def twice(i, x, out):
    out[i] = 2.0 * x[i]
"""


def _project(tmp_path):
    (tmp_path / "faultmod.py").write_text(MODULE)
    return tmp_path


def _run(project):
    result = run_json(RUN, cwd=project, timeout=120)
    assert result["value"] == 1.5 and result["out"] == [0.0, 2.0, 4.0, 6.0]
    return result


def _entry_of(cache_dir, name):
    for path in cache_dir.rglob("*.jbc"):
        if unpack(path.read_bytes())[0]["name"] == name:
            return path
    raise AssertionError(f"no entry for {name}")


@pytest.mark.parametrize("kind", ["fifo", "empty directory", "directory with a file", "dangling symlink"])
def test_wrong_file_type_at_an_entry_path(tmp_path, cache_dir, kind):
    project = _project(tmp_path)
    _run(project)
    path = _entry_of(cache_dir, "faultmod.plus_half")
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dangling symlink":
        path.symlink_to(tmp_path / "nowhere")
    else:
        path.mkdir()
        if kind == "directory with a file":
            (path / "x").write_text("x")
    result = _run(project)
    assert len(result["warnings"]) == 1, result["warnings"]
    assert result["stats"]["faultmod.plus_half"]["compiles"] == 1
    if kind != "directory with a file":
        assert path.is_file() and not path.is_symlink(), "the intruder is replaced by a good entry"
        assert _run(project)["stats"]["faultmod.plus_half"]["cache_hits"] == 1
    runner = CliRunner()
    for command in (["ls"], ["info"], ["verify"], ["prune"]):
        done = runner.invoke(cli.app, ["cache", *command])
        assert done.exception is None or isinstance(done.exception, SystemExit), (command, done.exception)


def test_fifo_name_record_and_directory_lock_neither_hang_nor_raise(tmp_path, cache_dir):
    project = _project(tmp_path)
    _run(project)
    for record in cache_dir.rglob("*.json"):
        record.unlink()
        os.mkfifo(record)
    for entry in cache_dir.rglob("*.jbc"):
        lock = cache_dir / "v1" / "locks" / entry.stem[:2] / f"{entry.stem}.lock"
        lock.parent.mkdir(parents=True, exist_ok=True)
        lock.unlink(missing_ok=True)
        lock.mkdir()
        entry.unlink()
    result = _run(project)
    assert len(result["warnings"]) == 1, result["warnings"]
    assert "lock" in result["warnings"][0]


def test_cli_commands_survive_a_broken_cache(tmp_path, cache_dir):
    _run(_project(tmp_path))
    sub = next((cache_dir / "v1" / "entries").iterdir())
    os.mkfifo(cache_dir / "v1" / "entries" / "zz")  # a FIFO where a subfolder should be
    os.mkfifo(sub / (sub.name + "0" * 62 + ".jbc"))
    for command in (["ls"], ["info"], ["verify"], ["prune"], ["export", str(tmp_path / "b.zip")]):
        done = subprocess.run([sys.executable, "-m", "jitbridge", "cache", *command], capture_output=True, text=True,
                              timeout=120)
        assert "Traceback" not in done.stderr, (command, done.stderr)
    verified = subprocess.run([sys.executable, "-m", "jitbridge", "cache", "verify"], capture_output=True, text=True,
                              timeout=120)
    assert verified.returncode == 1 and "not a regular file" in verified.stdout


# -- leftovers and links ------------------------------------------------------------------


def test_orphan_temp_files_are_counted_by_info_and_removed_by_prune(tmp_path, cache_dir):
    _run(_project(tmp_path))
    entry = _entry_of(cache_dir, "faultmod.plus_half")
    old = entry.with_name(entry.name + ".tmp.4242.deadbeef")
    fresh = entry.with_name(entry.name + ".tmp.4243.cafecafe")
    old.write_bytes(b"x" * 5000)
    fresh.write_bytes(b"y" * 10)
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    runner = CliRunner()
    info = runner.invoke(cli.app, ["cache", "info"]).output
    assert "orphans:  1 temporary file(s)" in info, info
    assert "entries:  2" in info
    pruned = runner.invoke(cli.app, ["cache", "prune"]).output
    assert "removed 1 orphaned temporary file(s)" in pruned, pruned
    assert not old.exists() and fresh.exists(), "a live writer's file (younger than a minute) is left alone"
    assert entry.exists()


def test_export_never_follows_a_link_at_its_temporary_or_final_path(tmp_path, cache_dir):
    _run(_project(tmp_path))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    target = tmp_path / "out.zip"
    (tmp_path / "out.zip.tmp").symlink_to(victim)
    assert bundle.export(current_store(), target) == 2
    assert victim.read_text() == "precious"
    target.unlink()
    target.symlink_to(victim)
    assert bundle.export(current_store(), target) == 2
    assert victim.read_text() == "precious" and not target.is_symlink()


def test_temp_files_are_created_exclusively_and_never_followed(tmp_path, monkeypatch):
    """A link planted at the temporary name a writer is about to use is not written through."""
    store = Store(tmp_path / "c")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    monkeypatch.setattr(store_module.uuid, "uuid4", lambda: type("U", (), {"hex": "0" * 32})())
    key = "ab" * 32
    planted = store.path(key).with_name(f"{key}.jbc.tmp.{os.getpid()}.00000000")
    planted.parent.mkdir(parents=True)
    planted.parent.chmod(0o700)
    for folder in planted.parents:
        if folder == tmp_path:
            break
        folder.chmod(0o700)
    planted.symlink_to(victim)
    with cache_warnings() as found:
        assert store.write(key, {"name": "k"}, b"payload") is None
    assert victim.read_text() == "precious" and len(found) == 1


def test_the_cache_warning_names_the_folder_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "os", FailingOS("full"))
    with config.scope(cache_dir=tmp_path / "c"), cache_warnings() as found:
        _check(_use(fresh_pair("named")))
    text = str(found[0].message)
    assert "No space left on device" in text and "fix:" in text and str(tmp_path / "c") in text
    assert found[0].filename == __file__, "the warning points at the user's line"


def test_name_records_of_a_full_cache_are_not_half_written(tmp_path, monkeypatch):
    with config.scope(cache_dir=tmp_path / "c"):
        _check(_use(fresh_pair("records")))
        monkeypatch.setattr(store_module, "os", FailingOS("full"))
        with cache_warnings():
            _check(_use(fresh_pair("records_again")))
    monkeypatch.undo()
    for record in (tmp_path / "c").rglob("*.json"):
        json.loads(record.read_text())
