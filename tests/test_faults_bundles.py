"""Bundles and entries as an attacker would craft them: a pickle that runs a command, a
numba object turned into a gadget, an unsigned or re-signed bundle, a zip bomb, entries the
runtime would refuse. Nothing may run, nothing may be imported that would not load."""
import os
import pickle
import resource
import struct
import subprocess
import sys
import zipfile

import pytest

from jitbridge.cache import bundle, unpickle
from jitbridge.cache import key as keys
from jitbridge.cache.store import Store, pack

from _subprocess import run_json

VICTIM = """
import jitbridge as jb

@jb.jit(cache=True)
def victim(x):
    return x + 1.0
"""
CALL_VICTIM = """
import json, warnings, victimmod
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    value = victimmod.victim(1.0)
print(json.dumps({"value": value, "warnings": [str(w.message) for w in caught]}))
"""


class _Command:
    """Unpickling this runs ``touch PATH``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def _string(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def gadget(path) -> bytes:
    """A pickle naming only allowed things that still writes a file: it builds a numba
    Integer type named "savez" and calls it, and numba casts through ``getattr(np, name)``."""
    return (b"\x80\x02ccopyreg\n_reconstructor\n(cnumba.core.types.scalars\nInteger\ncbuiltins\nobject\nNtR}"
            + _string("name") + _string("savez") + b"sb(" + _string(str(path)) + b"tR.")


def _victim_key(tmp_path):
    """The key `victimmod.victim(1.0)` will look up (taken from a real run)."""
    (tmp_path / "victimmod.py").write_text(VICTIM)
    run_json(CALL_VICTIM, cwd=tmp_path)
    entry = next((p for p in (tmp_path / "cache").rglob("*.jbc")))
    entry.unlink()
    return entry.stem


def _malicious_entry(key: str, payload: bytes) -> bytes:
    meta = {"name": "victimmod.victim", "signature": "(float64,)->float64", "versions": dict(keys.versions()),
            "key": key}
    return pack(meta, payload)


def _bundle(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "jitbridge", "cache", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("payload", ["command", "gadget"])
def test_payloads_are_live_when_unpickled_without_the_allow_list(tmp_path, payload):
    """The attacks below are real: plain pickle.loads of them writes the marker file."""
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Command(marker)) if payload == "command" else gadget(marker)
    subprocess.run([sys.executable, "-c", f"import pickle, numba; pickle.loads({data!r})"], capture_output=True,
                   timeout=120)
    assert (marker if payload == "command" else tmp_path / "pwned.npz").exists()


@pytest.mark.parametrize("payload", ["command", "gadget"])
def test_a_malicious_bundle_never_runs(tmp_path, cache_dir, payload):
    key = _victim_key(tmp_path)
    marker = tmp_path / "pwned"
    data = pickle.dumps(_Command(marker)) if payload == "command" else gadget(marker)
    evil = _bundle(tmp_path / "evil.zip", {f"entries/{key}.jbc": _malicious_entry(key, data)})

    unsigned = _cli("import", str(evil), cwd=tmp_path)
    assert unsigned.returncode == 2 and "signature was not checked" in unsigned.stderr
    forged = tmp_path / "attacker.key"
    bundle.new_key(forged)
    mine = tmp_path / "mine.key"
    bundle.new_key(mine)
    _bundle(evil, {f"entries/{key}.jbc": _malicious_entry(key, data), bundle.MANIFEST: b'{"entries": {}}',
                   bundle.SIGNATURE: b"00" * 32})
    wrong = _cli("import", str(evil), "--verify", str(mine), cwd=tmp_path)
    assert wrong.returncode == 2 and "signature does not match" in wrong.stderr

    evil = _bundle(tmp_path / "evil2.zip", {f"entries/{key}.jbc": _malicious_entry(key, data)})
    trusted = _cli("import", str(evil), "--trust-unsigned", cwd=tmp_path)
    assert trusted.returncode == 1 and "imported 0 entries" in trusted.stdout
    why = "posix.system" if payload == "command" else "a call to an object built while loading"
    assert f"allow-list ({why})" in trusted.stderr, trusted.stderr
    assert not list(cache_dir.rglob("*.jbc"))

    # planted straight into the cache folder, past every import check
    Store(cache_dir).write_blob(key, _malicious_entry(key, data))
    called = run_json(CALL_VICTIM, cwd=tmp_path)
    assert called["value"] == 2.0
    assert any("does not load" in w for w in called["warnings"]), called["warnings"]
    assert not marker.exists() and not (tmp_path / "pwned.npz").exists()


def test_the_gadget_is_refused_by_the_unpickler(tmp_path):
    marker = tmp_path / "g"
    with pytest.raises(unpickle.Refused, match="built while loading"):
        unpickle.load(gadget(marker), {})
    assert not (tmp_path / "g.npz").exists()


@pytest.mark.parametrize("module,name", [("os", "system"), ("subprocess", "Popen"), ("builtins", "eval"),
                                         ("numpy", "memmap"), ("numba.core.config", "os.system"),
                                         ("numba.cloudpickle.cloudpickle", "subimport"),
                                         ("antigravity", "geohash"), ("numba.core.serialize", "_numba_unpickle")])
def test_the_allow_list_refuses_code_and_imports(module, name):
    with pytest.raises(unpickle.Refused):
        unpickle.resolve(module, name)
    assert "antigravity" not in sys.modules, "an entry never makes us import a module"


def _signed_cli_roundtrip(tmp_path, cache_dir):
    (tmp_path / "victimmod.py").write_text(VICTIM)
    run_json(CALL_VICTIM, cwd=tmp_path)
    key_file = tmp_path / "ci.key"
    assert _cli("keygen", str(key_file), cwd=tmp_path).returncode == 0
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    assert _cli("keygen", str(key_file), cwd=tmp_path).returncode == 2, "never overwrites a key"
    signed = tmp_path / "kernels.zip"
    exported = _cli("export", str(signed), "--sign", str(key_file), cwd=tmp_path)
    assert exported.returncode == 0 and "exported 1 entries" in exported.stdout and "(signed)" in exported.stdout
    return key_file, signed


def test_signed_bundles_verify_and_tampering_is_caught(tmp_path, cache_dir):
    key_file, signed = _signed_cli_roundtrip(tmp_path, cache_dir)
    assert "removed" in _cli("clear", cwd=tmp_path).stdout
    verified = _cli("import", str(signed), "--verify", str(key_file), cwd=tmp_path)
    assert verified.returncode == 0 and "imported 1 entries" in verified.stdout
    assert run_json(CALL_VICTIM, cwd=tmp_path)["value"] == 2.0

    with zipfile.ZipFile(signed) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    entry = next(name for name in members if name.startswith("entries/"))
    members[entry] = members[entry][:-1] + bytes([members[entry][-1] ^ 1])
    tampered = _bundle(tmp_path / "tampered.zip", members)
    result = _cli("import", str(tampered), "--verify", str(key_file), cwd=tmp_path)
    assert result.returncode == 1 and "differ from the manifest" in result.stderr
    members[bundle.MANIFEST] = members[bundle.MANIFEST].replace(b'"entries": {', b'"entries": {"00": "x", ')
    result = _cli("import", str(_bundle(tmp_path / "t2.zip", members)), "--verify", str(key_file), cwd=tmp_path)
    assert result.returncode == 2 and "signature does not match" in result.stderr

    unsigned = tmp_path / "unsigned.zip"
    assert _cli("export", str(unsigned), cwd=tmp_path).returncode == 0
    result = _cli("import", str(unsigned), "--verify", str(key_file), cwd=tmp_path)
    assert result.returncode == 2 and "not signed" in result.stderr
    assert _cli("import", str(unsigned), "--trust-unsigned", cwd=tmp_path).returncode == 0
    short = tmp_path / "short.key"
    short.write_text("abc")
    assert "too few to be a key" in _cli("export", str(unsigned), "--sign", str(short), cwd=tmp_path).stderr


def test_a_zip_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = tmp_path / "bomb.zip"
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for member in ("a", "b"):
            with zf.open(f"entries/{member * 64}.jbc", "w", force_zip64=True) as f:
                for _ in range(1024):  # 1 GiB of zeros each, ~1 MiB compressed
                    f.write(chunk)
    assert bomb.stat().st_size < 4 << 20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    imported, rejected = bundle.import_(Store(tmp_path / "c"), bomb, trust_unsigned=True)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert imported == 0 and len(rejected) == 2 and all("larger than" in why for _, why in rejected)
    assert grown_kib < 200 * 1024, f"the import grew by {grown_kib} KiB"
    assert not list((tmp_path / "c").rglob("*.jbc"))


def test_member_inflating_past_its_declared_size_is_cut_at_the_cap(tmp_path, monkeypatch):
    monkeypatch.setattr(bundle, "MAX_MEMBER_BYTES", 1000)
    path = _bundle(tmp_path / "b.zip", {"entries/" + "c" * 64 + ".jbc": bytes(5000)})
    imported, rejected = bundle.import_(Store(tmp_path / "c"), path, trust_unsigned=True)
    assert imported == 0 and "larger than 1000 bytes" in rejected[0][1]


def test_export_skips_entries_the_runtime_would_refuse(tmp_path, cache_dir):
    key = _victim_key(tmp_path)
    run_json(CALL_VICTIM, cwd=tmp_path)
    store = Store(cache_dir)
    good = next(store.entries())
    store.write_blob(key[::-1], _malicious_entry(key[::-1], pickle.dumps(_Command(tmp_path / "x"))))
    writable = "e" * 64
    store.write(writable, {"name": "w"}, pickle.dumps(1))
    store.path(writable).chmod(0o666)
    path = tmp_path / "out.zip"
    assert bundle.export(store, path) == 1
    with zipfile.ZipFile(path) as zf:
        assert [n for n in zf.namelist() if n.startswith("entries/")] == [f"entries/{good.key}.jbc"]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give an entry to another user")
def test_export_skips_entries_of_other_users(tmp_path):
    store = Store(tmp_path / "c")
    store.write("d" * 64, {"name": "k"}, pickle.dumps(1))
    os.chown(store.path("d" * 64), 65534, -1)
    assert bundle.export(store, tmp_path / "out.zip") == 0


def test_ship_cache_imports_on_workers_without_a_key(tmp_path, cache_dir):
    """jitbridge.dask ships an unsigned bundle inside a WorkerPlugin (code the client already
    runs on the workers); each entry is still checked there."""
    ship = pytest.importorskip("jitbridge.dask.ship", reason="the dask extra is not installed")

    (tmp_path / "victimmod.py").write_text(VICTIM)
    run_json(CALL_VICTIM, cwd=tmp_path)
    data, count = ship.bundle_bytes()
    assert count == 1
    other = tmp_path / "worker-cache"
    os.environ["JITBRIDGE_CACHE_DIR"] = str(other)
    try:
        result = ship.install(data, None, "test")
    finally:
        os.environ["JITBRIDGE_CACHE_DIR"] = str(cache_dir)
        from jitbridge import config
        config.reload()
    assert result["imported"] == 1 and result["rejected"] == [] and result["cache_dir"] == str(other)
