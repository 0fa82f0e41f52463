"""Issue 3 target: a fresh process's first call of a parallel=True function with a warm
jitbridge cache is no slower than numba.njit(cache=True) warm, and >= 10x faster than a cold
compile. Each sample is a new interpreter; the time is that of the first call only."""
import shutil
import tempfile
from pathlib import Path

import pytest

from conftest import RESULTS, fresh_process_seconds, median

MODULE = '''
import numba
import numpy as np
import jitbridge as jb

def body(x, out):
    for i in numba.prange(x.shape[0]):
        out[i] = np.sqrt(x[i]) * 2.0 + 1.0
    return out.sum()

nb_f = numba.njit(parallel=True, cache=True)(body)
jb_f = jb.jit(parallel=True, cache=True)(body)
'''

FIRST_CALL = '''
import sys, time
sys.path.insert(0, {folder!r})
import numpy as np
import warmmod
x, out = np.ones(1000), np.empty(1000)
t = time.perf_counter()
warmmod.{fn}(x, out)
print(time.perf_counter() - t)
'''


@pytest.mark.benchmark(group="warm-start")
def test_first_call_warm_vs_cold(benchmark):
    folder = Path(tempfile.mkdtemp(prefix="jb-warm-"))
    (folder / "warmmod.py").write_text(MODULE)
    cache = folder / "jbcache"
    env = {"JITBRIDGE_CACHE_DIR": str(cache)}

    def measure():
        cold = []
        for _ in range(3):
            shutil.rmtree(cache, ignore_errors=True)
            cold += fresh_process_seconds(FIRST_CALL.format(folder=str(folder), fn="jb_f"), repeat=1, env=env)
        fresh_process_seconds(FIRST_CALL.format(folder=str(folder), fn="nb_f"), repeat=1, env=env)
        jb_warm, nb_warm = [], []
        for _ in range(7):  # interleaved
            jb_warm += fresh_process_seconds(FIRST_CALL.format(folder=str(folder), fn="jb_f"), repeat=1, env=env)
            nb_warm += fresh_process_seconds(FIRST_CALL.format(folder=str(folder), fn="nb_f"), repeat=1, env=env)
        RESULTS["cold compile, first call (s)"] = median(cold)
        RESULTS["jitbridge warm first call (s)"] = median(jb_warm)
        RESULTS["numba cache=True warm first call (s)"] = median(nb_warm)

    benchmark.pedantic(measure, rounds=1, iterations=1)
    RESULTS["jitbridge warm / numba warm (target <= 1.0)"] = (
        RESULTS["jitbridge warm first call (s)"] / RESULTS["numba cache=True warm first call (s)"])
    RESULTS["cold / jitbridge warm (target >= 10)"] = (
        RESULTS["cold compile, first call (s)"] / RESULTS["jitbridge warm first call (s)"])
    shutil.rmtree(folder, ignore_errors=True)
