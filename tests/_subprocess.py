"""Run Python snippets in fresh interpreters and read back what they print as JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


def run_json(code: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120) -> dict:
    """Run ``code`` in a new interpreter; its last stdout line must be JSON."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    out["stderr"] = result.stderr
    return out


def start(code: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def total(stats: dict, field: str) -> float:
    return sum(entry[field] for entry in stats.values())
