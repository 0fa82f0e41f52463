"""Settings are read from JITBRIDGE_* variables in one place and restorable in tests."""
from pathlib import Path

import pytest

from jitbridge import config


def test_from_env_parses_every_setting():
    s = config.from_env({
        "JITBRIDGE_CACHE_DIR": "/tmp/x", "JITBRIDGE_TARGET": "AUTO", "JITBRIDGE_DISABLE_CACHE": "1",
        "JITBRIDGE_DETERMINISTIC": "true", "JITBRIDGE_BOUNDSCHECK": "yes", "JITBRIDGE_NUM_THREADS": "2",
        "JITBRIDGE_LOG_LEVEL": "debug", "JITBRIDGE_RECORD": "/tmp/m.jsonl",
    })
    assert s.cache_dir == Path("/tmp/x") and s.target == "auto" and s.disable_cache and s.deterministic
    assert s.boundscheck and s.num_threads == 2 and s.log_level == "DEBUG" and s.record == Path("/tmp/m.jsonl")


def test_defaults():
    s = config.from_env({})
    assert s.target == "cpu" and not s.disable_cache and not s.deterministic and s.num_threads is None
    assert "jitbridge" in str(s.cache_dir)


@pytest.mark.parametrize("env", [{"JITBRIDGE_TARGET": "tpu"}, {"JITBRIDGE_NUM_THREADS": "0"},
                                 {"JITBRIDGE_LOG_LEVEL": "loud"}])
def test_bad_values_are_rejected(env):
    with pytest.raises(ValueError, match="JITBRIDGE_"):
        config.from_env(env)


def test_scope_overrides_and_restores():
    before = config.settings.deterministic
    with config.scope(deterministic=not before, cache_dir="/tmp/elsewhere") as s:
        assert s.deterministic is (not before) and config.settings.cache_dir == Path("/tmp/elsewhere")
    assert config.settings.deterministic is before


def test_scope_rejects_unknown_names_and_bad_values():
    with pytest.raises(TypeError):
        with config.scope(no_such_setting=1):
            pass
    with pytest.raises(ValueError):
        with config.scope(target="gpu"):
            pass
    assert config.settings.target == "cpu"


def test_no_other_module_reads_the_environment():
    root = Path(config.__file__).parent
    offenders = [p for p in root.rglob("*.py") if p.name != "config.py" and "os.environ" in p.read_text()]
    assert offenders == []


def test_num_threads_setting_reaches_numba():
    from _subprocess import run_json

    out = run_json("import json, numba, jitbridge; print(json.dumps({'n': numba.get_num_threads()}))",
                   env={"JITBRIDGE_NUM_THREADS": "1"})
    assert out["n"] == 1
