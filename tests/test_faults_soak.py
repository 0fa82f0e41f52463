"""A concurrency soak: 8 processes at once on a cold cache, 3 rounds, one cached function and
one kernel. Every result is right and each key is compiled exactly once per round."""
import json
import os
import subprocess
import sys
import textwrap

PROCESSES = 8
ROUNDS = 3

MODULE = """
import jitbridge as jb

@jb.jit(cache=True)
def poly(x):
    return 3.0 * x * x - 2.0 * x + 1.0

@jb.kernel
def axpb(i, a, x, b, out):
    out[i] = a * x[i] + b
"""
WORKER = """
import json, sys, numpy as np, jitbridge as jb
import soakmod
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()  # the go signal: every worker has imported everything by now
x = np.arange(64.0)
out = np.empty(64)
soakmod.axpb[64](2.0, x, 0.5, out)
print(json.dumps({"poly": [soakmod.poly(v) for v in (0.0, 1.5, -2.0)], "axpb_ok": bool((out == 2.0 * x + 0.5).all()),
                  "stats": jb.stats()}))
"""


def _round(project, cache):
    env = {**os.environ, "JITBRIDGE_CACHE_DIR": str(cache)}
    workers = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(WORKER)], cwd=project, env=env, text=True,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for _ in range(PROCESSES)]
    ready = [proc.stdout.readline().strip() for proc in workers]
    assert ready == ["ready"] * PROCESSES, [proc.stderr.read() for proc in workers if proc.poll() is not None]
    for proc in workers:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in workers:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    return results


def test_eight_processes_three_rounds_on_a_cold_cache(tmp_path):
    (tmp_path / "soakmod.py").write_text(MODULE)
    for round_ in range(ROUNDS):
        results = _round(tmp_path, tmp_path / f"cache-{round_}")
        for result in results:
            assert result["poly"] == [1.0, 4.75, 17.0] and result["axpb_ok"]
        for name in ("soakmod.poly", "soakmod.axpb"):
            compiles = sum(r["stats"].get(name, {}).get("compiles", 0) for r in results)
            hits = sum(r["stats"].get(name, {}).get("cache_hits", 0) for r in results)
            assert (compiles, hits) == (1, PROCESSES - 1), (round_, name, compiles, hits)
