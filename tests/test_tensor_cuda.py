"""Device tensors: a clear TargetUnavailableError without a GPU, and numba.cuda kept lazy."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from jitbridge.errors import TargetUnavailableError
from jitbridge.tensor import SharedTensor


def gpu_present() -> bool:
    from numba import cuda

    return cuda.is_available()


def test_importing_tensor_does_not_import_numba_cuda():
    code = "import sys, jitbridge.tensor; print('numba.cuda' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize(
    "make",
    [
        lambda: SharedTensor.empty((4,), "float32", device="cuda"),
        lambda: SharedTensor.zeros((4,), device="cuda"),
        lambda: SharedTensor.from_array(np.ones(4), device="cuda"),
    ],
    ids=["empty", "zeros", "from_array"],
)
def test_device_tensor_without_gpu_is_target_unavailable(make):
    if gpu_present():
        pytest.skip("a CUDA GPU is present on this machine")
    with pytest.raises(TargetUnavailableError, match="CUDA"):
        make()


def test_device_tensor_in_the_cuda_simulator():
    """numba's CPU simulator runs the allocation and kernel paths (it has no IPC or CAI)."""
    code = textwrap.dedent("""
        import numpy as np
        from numba import cuda
        from jitbridge.tensor import SharedTensor

        @cuda.jit
        def double(a):
            i = cuda.grid(1)
            if i < a.size:
                a[i] *= 2

        t = SharedTensor.from_array(np.arange(4.0), device="cuda")
        double[1, 4](t.device_array)
        z = SharedTensor.zeros((2, 3), "float32", device="cuda")
        print(t.copy_to_host().tolist(), z.copy_to_host().sum(), z.shape, z.dtype)
    """)
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[0.0, 2.0, 4.0, 6.0] 0.0 (2, 3) float32"
