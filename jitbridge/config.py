"""Every ``JITBRIDGE_*`` setting, typed, read from the environment in one place.

Code elsewhere reads ``config.settings.<name>`` at the moment it needs a value, so a
``scope()`` in a test (or a program) changes behaviour without re-importing anything.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Iterator

TARGETS = ("cpu", "cuda", "auto")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _flag(raw: str) -> bool:
    return raw.strip().lower() in ("1", "true", "yes", "on")


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("jitbridge", appauthor=False))


@dataclasses.dataclass
class Settings:
    """The effective configuration; field docs name the environment variable."""

    cache_dir: Path  # JITBRIDGE_CACHE_DIR (default: the platform's user cache dir)
    target: str = "cpu"  # JITBRIDGE_TARGET: cpu | cuda | auto
    disable_cache: bool = False  # JITBRIDGE_DISABLE_CACHE=1
    deterministic: bool = False  # JITBRIDGE_DETERMINISTIC=1
    boundscheck: bool = False  # JITBRIDGE_BOUNDSCHECK=1
    num_threads: int | None = None  # JITBRIDGE_NUM_THREADS (default: numba's)
    log_level: str = "WARNING"  # JITBRIDGE_LOG_LEVEL
    record: Path | None = None  # JITBRIDGE_RECORD=FILE: write compiled specializations there
    cache_max_bytes: int = 2 << 30  # JITBRIDGE_CACHE_MAX_BYTES: LRU bound kept by prune
    serial_threshold: int = 32768  # JITBRIDGE_SERIAL_THRESHOLD: launches below run on one thread

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"JITBRIDGE_TARGET must be one of {TARGETS}, got {self.target!r}")
        self.log_level = self.log_level.upper()
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"JITBRIDGE_LOG_LEVEL must be one of {LOG_LEVELS}, got {self.log_level!r}")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"JITBRIDGE_NUM_THREADS must be >= 1, got {self.num_threads}")


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``); the only place env is read."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get("JITBRIDGE_" + name)
        return value if value not in (None, "") else None

    threads = get("NUM_THREADS")
    record = get("RECORD")
    cache_dir = get("CACHE_DIR")
    return Settings(
        cache_dir=Path(cache_dir).expanduser() if cache_dir else _default_cache_dir(),
        target=(get("TARGET") or "cpu").lower(),
        disable_cache=_flag(get("DISABLE_CACHE") or "0"),
        deterministic=_flag(get("DETERMINISTIC") or "0"),
        boundscheck=_flag(get("BOUNDSCHECK") or "0"),
        num_threads=int(threads) if threads else None,
        log_level=get("LOG_LEVEL") or "WARNING",
        record=Path(record) if record else None,
        cache_max_bytes=int(get("CACHE_MAX_BYTES") or 2 << 30),
        serial_threshold=int(get("SERIAL_THRESHOLD") or 32768),
    )


settings: Settings = from_env()


@contextlib.contextmanager
def scope(**overrides: object) -> Iterator[Settings]:
    """Temporarily override settings (``with scope(disable_cache=True): ...``), then restore."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise TypeError(f"unknown jitbridge setting(s): {sorted(unknown)}")
    saved = dataclasses.asdict(settings)
    try:
        for name, value in overrides.items():
            setattr(settings, name, Path(value) if name == "cache_dir" else value)
        settings.__post_init__()
        yield settings
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)


def reload() -> Settings:
    """Re-read the environment into the live settings object (for long-lived processes)."""
    fresh = from_env()
    for field in dataclasses.fields(Settings):
        setattr(settings, field.name, getattr(fresh, field.name))
    return settings
