"""Benchmarks share one cache folder per run and print the ratios they were written for."""
import os
import statistics
import subprocess
import sys
import tempfile

os.environ.setdefault("JITBRIDGE_CACHE_DIR", tempfile.mkdtemp(prefix="jitbridge-bench-cache-"))

import pytest  # noqa: E402

RESULTS: dict[str, float] = {}


@pytest.fixture
def record_median():
    """Run ``benchmark`` and keep its median (seconds) under ``name`` for ratio reports."""
    def run(benchmark, name, fn, *args):
        benchmark(fn, *args)
        RESULTS[name] = benchmark.stats.stats.median
        return RESULTS[name]
    return run


def fresh_process_seconds(code: str, repeat: int = 7, env: dict | None = None) -> list[float]:
    """Seconds printed by ``code`` run in ``repeat`` fresh interpreters."""
    out = []
    for _ in range(repeat):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                env={**os.environ, **(env or {})}, check=True)
        out.append(float(result.stdout.strip().splitlines()[-1]))
    return out


def median(values):
    return statistics.median(values)


def pytest_terminal_summary(terminalreporter):
    if RESULTS:
        terminalreporter.section("jitbridge ratios")
        for name, value in RESULTS.items():
            terminalreporter.write_line(f"{name}: {value:.6g}")
