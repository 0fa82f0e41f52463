"""Every ``JITBRIDGE_*`` setting, typed, read from the environment in one place.

Code elsewhere reads ``config.settings.<name>`` at the moment it needs a value, so a
``scope()`` in a test (or a program) changes behaviour without re-importing anything.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from pathlib import Path
from typing import Callable, Iterator

from .errors import ArgumentError

TARGETS = ("cpu", "cuda", "auto")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _bad(name: str, raw: object, expected: str) -> ArgumentError:
    return ArgumentError(f"JITBRIDGE_{name} must be {expected}, got {raw!r}", values={f"JITBRIDGE_{name}": raw},
                         fix=f"set JITBRIDGE_{name} to {expected}, or unset it for the default")


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise _bad(name, raw, "1/0, true/false, yes/no or on/off")


def _size(name: str, raw: str) -> int:
    try:
        return parse_size(raw)
    except ValueError:
        raise _bad(name, raw, "a size such as 500M or 2G") from None


def parse_size(text: str) -> int:
    """``"500M"``, ``"2G"``, ``"2GiB"``, ``"1024"`` -> bytes."""
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    number = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = number[-1] if number and number[-1] in units else ""
    try:
        return int(float(number[: len(number) - len(unit)]) * units[unit])
    except ValueError:
        raise ValueError(f"{text!r} is not a size; use e.g. 500M or 2G") from None


def _default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("jitbridge", appauthor=False))


@dataclasses.dataclass
class Settings:
    """The effective configuration; field docs name the environment variable."""

    cache_dir: Path  # JITBRIDGE_CACHE_DIR (default: the platform's user cache dir)
    target: str = "auto"  # JITBRIDGE_TARGET: cpu | cuda | auto (CUDA when an argument is in GPU memory)
    disable_cache: bool = False  # JITBRIDGE_DISABLE_CACHE=1
    deterministic: bool = False  # JITBRIDGE_DETERMINISTIC=1
    boundscheck: bool = False  # JITBRIDGE_BOUNDSCHECK=1
    num_threads: int | None = None  # JITBRIDGE_NUM_THREADS (default: numba's)
    log_level: str = "WARNING"  # JITBRIDGE_LOG_LEVEL
    record: Path | None = None  # JITBRIDGE_RECORD=FILE: write compiled specializations there
    cache_max_bytes: int = 2 << 30  # JITBRIDGE_CACHE_MAX_BYTES: LRU bound kept by prune
    serial_threshold: int = 32768  # JITBRIDGE_SERIAL_THRESHOLD: launches below run on one thread
    vector_math: bool = True  # JITBRIDGE_VECTOR_MATH=0: math.*/np.* calls stay plain libm (numba's bits)
    huge_pages: bool = True  # JITBRIDGE_HUGE_PAGES=0: compiled code's large arrays get no huge-page advice
    profile: bool = False  # JITBRIDGE_PROFILE=1: profile the whole process, print the report at exit

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise _bad("TARGET", self.target, " | ".join(TARGETS))
        self.log_level = self.log_level.upper()
        if self.log_level not in LOG_LEVELS:
            raise _bad("LOG_LEVEL", self.log_level, " | ".join(LOG_LEVELS))
        if self.num_threads is not None and self.num_threads < 1:
            raise _bad("NUM_THREADS", self.num_threads, "a whole number >= 1")


def from_env(environ: dict[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default ``os.environ``); the only place env is read."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        value = env.get("JITBRIDGE_" + name)
        return value if value not in (None, "") else None

    def integer(name: str, default: int | None) -> int | None:
        raw = get(name)
        try:
            return int(raw) if raw is not None else default
        except ValueError:
            raise _bad(name, raw, "a whole number") from None

    record = get("RECORD")
    cache_dir = get("CACHE_DIR")
    max_bytes = get("CACHE_MAX_BYTES")
    return Settings(
        cache_dir=Path(cache_dir).expanduser() if cache_dir else _default_cache_dir(),
        target=(get("TARGET") or "auto").lower(),
        disable_cache=_flag("DISABLE_CACHE", get("DISABLE_CACHE") or "0"),
        deterministic=_flag("DETERMINISTIC", get("DETERMINISTIC") or "0"),
        boundscheck=_flag("BOUNDSCHECK", get("BOUNDSCHECK") or "0"),
        num_threads=integer("NUM_THREADS", None),
        log_level=get("LOG_LEVEL") or "WARNING",
        record=Path(record) if record else None,
        cache_max_bytes=_size("CACHE_MAX_BYTES", max_bytes) if max_bytes else 2 << 30,
        serial_threshold=integer("SERIAL_THRESHOLD", 32768) or 0,
        vector_math=_flag("VECTOR_MATH", get("VECTOR_MATH") or "1"),
        huge_pages=_flag("HUGE_PAGES", get("HUGE_PAGES") or "1"),
        profile=_flag("PROFILE", get("PROFILE") or "0"),
    )


settings: Settings = from_env()

# Settings that must be pushed somewhere when they change (thread count, log level) register
# an applier here; ``scope()`` and ``reload()`` call them.
_appliers: list[Callable[[Settings], None]] = []


def on_change(apply: Callable[[Settings], None]) -> Callable[[Settings], None]:
    """Register ``apply``; it runs now and whenever settings change (registering it again
    does nothing)."""
    if apply not in _appliers:
        _appliers.append(apply)
        apply(settings)
    return apply


def _applied() -> None:
    for apply in _appliers:
        apply(settings)


@contextlib.contextmanager
def scope(**overrides: object) -> Iterator[Settings]:
    """Temporarily override settings (``with scope(disable_cache=True): ...``), then restore."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise ArgumentError(f"unknown jitbridge setting(s): {sorted(unknown)}",
                            fix=f"use the names of config.Settings: {[f.name for f in dataclasses.fields(Settings)]}")
    saved = dataclasses.asdict(settings)
    try:
        for name, value in overrides.items():
            setattr(settings, name, Path(value) if name == "cache_dir" else value)
        settings.__post_init__()
        _applied()
        yield settings
    finally:
        for name, value in saved.items():
            setattr(settings, name, value)
        _applied()


def reload() -> Settings:
    """Re-read the environment into the live settings object (for long-lived processes)."""
    fresh = from_env()
    for field in dataclasses.fields(Settings):
        setattr(settings, field.name, getattr(fresh, field.name))
    _applied()
    return settings
