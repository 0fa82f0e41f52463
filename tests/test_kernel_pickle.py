"""Kernels pickle (Dask and multiprocessing send them to other processes): by name when their
module defines them, else as their function and decorator arguments. Unpickled in this
process a kernel is itself; in another process it is made again and loads its compiled code
from the cache instead of compiling."""
from __future__ import annotations

import base64
import pickle

import numpy as np
import pytest

import jitbridge as jb
from _subprocess import run_json


@jb.kernel(fastmath=True, serial_below=7)
def affine(i, x, out):
    out[i] = 2.0 * x[i] + 1.0


def test_unpickling_in_the_same_process_gives_the_same_kernel() -> None:
    assert pickle.loads(pickle.dumps(affine)) is affine
    assert len(pickle.dumps(affine)) < 200, "a kernel its module defines travels by name"


LOAD = """
import base64, json, pickle, sys
import numpy as np
import jitbridge as jb
kernel = pickle.loads(base64.b64decode(sys.argv[1]))
again = pickle.loads(base64.b64decode(sys.argv[1]))
x = np.arange(10.0); out = np.empty_like(x)
kernel[10](x, out)
print(json.dumps({"same": again is kernel, "out": out.tolist(), "stats": jb.stats(),
                  "options": kernel._options, "name": kernel.jb_name}))
"""


def test_a_kernel_defined_anywhere_loads_in_another_process(tmp_path, cache_dir) -> None:
    cloudpickle = pytest.importorskip("cloudpickle", reason="cloudpickle (with the dask extra) sends functions by value")
    scope: dict = {}
    exec("import jitbridge as jb\n@jb.kernel(fastmath=True)\ndef local_k(i, x, out):\n    out[i] = x[i] * 3.0\n",
         scope)
    kernel = scope["local_k"]  # not importable elsewhere: cloudpickle sends its function by value
    x = np.arange(10.0)
    out = np.empty_like(x)
    kernel[10](x, out)
    assert pickle.loads(cloudpickle.dumps(kernel)) is kernel
    data = base64.b64encode(cloudpickle.dumps(kernel)).decode()
    result = run_json(LOAD.replace("sys.argv[1]", repr(data)))
    assert result["same"] and result["out"] == (x * 3.0).tolist()
    assert result["options"] == {"fastmath": True}
    (stats,) = result["stats"].values()
    assert stats["compiles"] == 0 and stats["cache_hits"] == 1
