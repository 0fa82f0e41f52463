"""Settings are read from JITBRIDGE_* variables in one place and restorable in tests."""
from pathlib import Path

import pytest

from jitbridge import config


def test_from_env_parses_every_setting():
    s = config.from_env({
        "JITBRIDGE_CACHE_DIR": "/tmp/x", "JITBRIDGE_TARGET": "CUDA", "JITBRIDGE_DISABLE_CACHE": "1",
        "JITBRIDGE_DETERMINISTIC": "true", "JITBRIDGE_BOUNDSCHECK": "yes", "JITBRIDGE_NUM_THREADS": "2",
        "JITBRIDGE_LOG_LEVEL": "debug", "JITBRIDGE_RECORD": "/tmp/m.jsonl",
    })
    assert s.cache_dir == Path("/tmp/x") and s.target == "cuda" and s.disable_cache and s.deterministic
    assert s.boundscheck and s.num_threads == 2 and s.log_level == "DEBUG" and s.record == Path("/tmp/m.jsonl")


def test_defaults():
    s = config.from_env({})
    assert s.target == "auto" and not s.disable_cache and not s.deterministic and s.num_threads is None
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
    assert config.settings.target == "auto"


def test_no_other_module_reads_the_environment():
    root = Path(config.__file__).parent
    offenders = [p for p in root.rglob("*.py") if p.name != "config.py" and "os.environ" in p.read_text()]
    assert offenders == []


def test_num_threads_setting_reaches_numba_at_the_first_compile_not_at_import():
    from _subprocess import run_json

    code = """
import json, numba
import numba.np.ufunc.parallel as pool
import jitbridge as jb
started_at_import = pool._is_initialized

@jb.jit(parallel=True)
def threads(x):
    for i in numba.prange(x.size):
        x[i] = numba.get_num_threads()
    return x[0]

import numpy as np
print(json.dumps({"import": started_at_import, "inside": threads(np.zeros(4)), "after": numba.get_num_threads()}))
"""
    out = run_json(code, env={"JITBRIDGE_NUM_THREADS": "1"})
    assert out["import"] is False, "import jitbridge started numba's thread pool"
    assert out["inside"] == 1 and out["after"] == 1


@pytest.mark.parametrize("env,fragment", [
    ({"JITBRIDGE_DISABLE_CACHE": "maybe"}, "JITBRIDGE_DISABLE_CACHE"),
    ({"JITBRIDGE_CACHE_MAX_BYTES": "lots"}, "JITBRIDGE_CACHE_MAX_BYTES"),
    ({"JITBRIDGE_SERIAL_THRESHOLD": "1e3x"}, "JITBRIDGE_SERIAL_THRESHOLD"),
])
def test_bad_values_are_jitbridge_errors_naming_the_variable(env, fragment):
    from jitbridge.errors import ArgumentError

    with pytest.raises(ArgumentError, match=fragment):
        config.from_env(env)


@pytest.mark.parametrize("text,expected", [("1024", 1024), ("2G", 2 << 30), ("500M", 500 << 20),
                                           ("1.5KiB", 1536), ("3gb", 3 << 30)])
def test_sizes(text, expected):
    assert config.parse_size(text) == expected
    assert config.from_env({"JITBRIDGE_CACHE_MAX_BYTES": text}).cache_max_bytes == expected


def test_scope_applies_thread_count_and_log_level():
    import logging

    import numba

    import jitbridge as jb

    jb.jit(lambda: 0)()  # the thread setting applies from the first compile on
    before = numba.get_num_threads()
    with config.scope(num_threads=1, log_level="DEBUG"):
        assert numba.get_num_threads() == 1
        assert logging.getLogger("jitbridge").level == logging.DEBUG
    assert numba.get_num_threads() == before
    assert logging.getLogger("jitbridge").level == logging.getLevelName(config.settings.log_level)
