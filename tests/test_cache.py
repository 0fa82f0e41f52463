"""The content cache in one process: keys, corruption, security, eviction, CLI commands."""
import os
import pickle
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import jitbridge as jb
from jitbridge import cli, errors
from jitbridge.cache import bundle
from jitbridge.cache.store import current_store
from jitbridge.cache.store import Store
from jitbridge.frontend.deps import fingerprint


def _define(source: str, name: str, filename: str = "<mem>", namespace=None):
    namespace = {"jb": jb, "np": np} if namespace is None else namespace
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


def test_fingerprint_ignores_file_and_line_but_not_code():
    src = "def f(x):\n    return x + 1\n"
    a = _define(src, "f", "/one/place.py")
    b = _define("\n\n\n" + src, "f", "/another/place.py")
    c = _define(src.replace("+ 1", "+ 2"), "f")
    assert fingerprint(a).digest == fingerprint(b).digest
    assert fingerprint(a).digest != fingerprint(c).digest


def test_fingerprint_follows_callees_and_globals():
    ns = {"jb": jb, "np": np, "K": 3}
    callee = _define("@jb.jit\ndef g(x):\n    return x * K\n", "g", namespace=ns)
    caller = _define("@jb.jit\ndef f(x):\n    return g(x) + 1\n", "f", namespace=ns)
    before = fingerprint(caller)
    assert "g" in {name.rsplit(".", 1)[-1] for name in before.deps}
    ns["K"] = 4
    assert fingerprint(caller).digest != before.digest, "a changed global of a callee changes the key"
    ns["K"] = 3
    _define("@jb.jit\ndef g(x):\n    return x * K * 1\n", "g", namespace=ns)
    assert fingerprint(caller).digest != before.digest, "a changed callee changes the key"
    assert callee is not ns["g"]


def test_fingerprint_of_closures_includes_cell_values():
    def make(v):
        def f(x):
            return x + v
        return f
    assert fingerprint(make(1)).digest == fingerprint(make(1)).digest
    assert fingerprint(make(1)).digest != fingerprint(make(2)).digest


def _cached_kernel():
    @jb.kernel
    def plus_one(i, x, out):
        out[i] = x[i] + 1.0
    return plus_one


def _run(k):
    out = np.zeros(8)
    k[8](np.arange(8.0), out)
    return out


def _only_entry(cache_dir):
    entries = list(cache_dir.rglob("*.jbc"))
    assert len(entries) == 1, entries
    return entries[0]


@pytest.mark.parametrize("damage", ["truncate", "random", "flip", "empty"])
def test_corrupt_entries_warn_and_rebuild(cache_dir, damage):
    expected = np.arange(8.0) + 1
    np.testing.assert_array_equal(_run(_cached_kernel()), expected)
    path = _only_entry(cache_dir)
    blob = path.read_bytes()
    damaged = {
        "truncate": blob[: len(blob) // 2],
        "random": os.urandom(len(blob)),
        "flip": blob[:-10] + bytes(b ^ 0xFF for b in blob[-10:]),
        "empty": b"",
    }[damage]
    path.write_bytes(damaged)
    jb.reset_stats()
    with pytest.warns(errors.CacheWarning, match="corrupt"):
        np.testing.assert_array_equal(_run(_cached_kernel()), expected)
    stats = next(iter(jb.stats().values()))
    assert stats["compiles"] == 1 and stats["cache_hits"] == 0
    assert path.read_bytes() != damaged, "the bad entry is replaced by a good one"


def test_corrupt_name_record_is_ignored(cache_dir):
    _run(_cached_kernel())
    for record in cache_dir.rglob("*.json"):
        record.write_bytes(os.urandom(64))
    for entry in cache_dir.rglob("*.jbc"):
        entry.unlink()
    np.testing.assert_array_equal(_run(_cached_kernel()), np.arange(8.0) + 1)


def test_world_writable_cache_is_refused(cache_dir):
    _run(_cached_kernel())
    os.chmod(cache_dir, 0o777)
    jb.reset_stats()
    with pytest.warns(errors.CacheWarning, match="writable by other users"):
        np.testing.assert_array_equal(_run(_cached_kernel()), np.arange(8.0) + 1)
    stats = next(iter(jb.stats().values()))
    assert stats["cache_hits"] == 0 and stats["compiles"] == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_entry_owned_by_another_user_is_refused(cache_dir):
    _run(_cached_kernel())
    os.chown(_only_entry(cache_dir), 65534, -1)
    jb.reset_stats()
    with pytest.warns(errors.CacheWarning, match="owned by uid 65534"):
        _run(_cached_kernel())
    assert next(iter(jb.stats().values()))["cache_hits"] == 0


def test_new_directories_are_private(cache_dir):
    _run(_cached_kernel())
    for folder in [cache_dir, *[p for p in cache_dir.rglob("*") if p.is_dir()]]:
        assert folder.stat().st_mode & 0o077 == 0, folder
    assert _only_entry(cache_dir).stat().st_mode & 0o077 == 0


def test_disable_cache_writes_nothing(cache_dir):
    with jb.config.scope(disable_cache=True):
        _run(_cached_kernel())
    assert not list(cache_dir.rglob("*.jbc"))


def test_recompile_reasons(cache_dir):
    ns = {"jb": jb}
    src = "@jb.jit(cache=True)\ndef reasons(x):\n    return x + 1\n"
    _define(src, "reasons", namespace=ns)(1)
    jb.reset_stats()
    _define(src, "reasons", namespace=dict(ns))(1.5)
    _define(src.replace("+ 1", "+ 2"), "reasons", namespace=dict(ns))(1)
    reasons = next(v for k, v in jb.stats().items() if k.endswith("reasons"))["recompile_reasons"]
    assert any(r.startswith("new signature") for r in reasons), reasons
    assert "source changed" in reasons


def test_prune_removes_least_recently_used(tmp_path):
    store = Store(tmp_path / "c")
    keys = [f"{i:064x}" for i in range(5)]
    for age, key in enumerate(keys):
        path = store.write(key, {"name": key}, b"x" * 1000)
        os.utime(path, (1000 + age, 1000 + age))
    store.read(keys[0])  # a hit makes the oldest the newest
    size = store.path(keys[0]).stat().st_size
    removed = {info.key for info in store.prune(max_bytes=3 * size)}
    assert removed == {keys[1], keys[2]}
    assert store.read(keys[0]) is not None


def test_bundle_rejects_tampered_members(tmp_path):
    import pickle
    import zipfile

    source = Store(tmp_path / "a")
    payload = pickle.dumps(("payload", 1.5))
    source.write("a" * 64, {"name": "k"}, payload)
    path = tmp_path / "b.jbb"
    assert bundle.export(source, path) == 1
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("entries/" + "b" * 64 + ".jbc", b"JBC\x01garbage")
        zf.writestr("../escape.jbc", b"x")
    target = Store(tmp_path / "t")
    imported, rejected = bundle.import_(target, path, trust_unsigned=True)
    assert imported == 1 and len(rejected) == 2
    assert target.read("a" * 64)[1] == payload


def test_cache_cli_ls_info_verify_prune(cache_dir):
    runner = CliRunner()
    _run(_cached_kernel())
    store = current_store()
    store.write("f" * 64, {"name": "old.kernel", "versions": {"numba": "0.1"}, "machine": ["x", "y", "z"]},
                pickle.dumps(None))
    listing = runner.invoke(cli.app, ["cache", "ls"])
    assert listing.exit_code == 0 and "plus_one" in listing.output and "old.kernel" in listing.output
    assert "entries:  2" in runner.invoke(cli.app, ["cache", "info"]).output
    verified = runner.invoke(cli.app, ["cache", "verify"])
    assert verified.exit_code == 0 and "1 ok, 1 stale, 0 corrupt" in verified.output
    _only = [p for p in cache_dir.rglob("*.jbc") if not p.name.startswith("f")][0]
    _only.write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = runner.invoke(cli.app, ["cache", "verify"])
    assert bad.exit_code == 1 and "1 corrupt" in bad.output
    pruned = runner.invoke(cli.app, ["cache", "prune", "--max-size", "0"])
    assert pruned.exit_code == 0 and "removed 2 entries" in pruned.output
    assert runner.invoke(cli.app, ["cache", "prune", "--max-size", "lots"]).exit_code != 0


def test_entry_from_other_versions_is_removed_and_rebuilt(cache_dir):
    from jitbridge.cache.store import pack, unpack

    _run(_cached_kernel())
    path = _only_entry(cache_dir)
    meta, payload = unpack(path.read_bytes())
    meta["versions"]["numba"] = "0.0.1"
    path.write_bytes(pack(meta, payload))
    with pytest.warns(errors.CacheWarning, match="other versions"):
        np.testing.assert_array_equal(_run(_cached_kernel()), np.arange(8.0) + 1)
    assert unpack(path.read_bytes())[0]["versions"]["numba"] != "0.0.1"


def test_fastmath_flag_sets_give_the_same_key_in_every_process(tmp_path):
    from _subprocess import run_json

    code = """
import json
from jitbridge.cache.key import entry_key
print(json.dumps({"k": entry_key("fp", "sig", "cpu", {"fastmath": {"nnan", "ninf", "contract", "reassoc"}}, ("m",))}))
"""
    keys = {run_json(code, env={"PYTHONHASHSEED": str(seed)})["k"] for seed in (1, 2, 3)}
    assert len(keys) == 1


def test_code_hashing_strings_loads_in_a_fresh_process(cache_dir, tmp_path):
    """Hashing a str (and so any dict with str keys) reads numba's copy of the hash secret
    through a symbol numba registers only when its hashing module is imported: a warm start
    must register it before it runs such code, or the call reads address 0 and crashes."""
    from _subprocess import run_json

    (tmp_path / "hashed.py").write_text(
        "import jitbridge as jb\n\n"
        "@jb.jit(cache=True)\ndef keyed():\n    return {'a': 1, 'b': 2}['b'] + hash('abcd') * 0\n\n"
        "@jb.jit(cache=True)\ndef hashed():\n    return hash('abcd')\n")
    code = """
    import json, jitbridge as jb, hashed
    print(json.dumps({"keyed": hashed.keyed(), "hashed": hashed.hashed() == hash("abcd"),
                      "hits": sum(s["cache_hits"] for s in jb.stats().values())}))
    """
    cold = run_json(code, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    warm = run_json(code, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    assert cold["keyed"] == warm["keyed"] == 2 and cold["hashed"] and warm["hashed"]
    assert cold["hits"] == 0 and warm["hits"] == 2, "the second process loads both from the cache"
