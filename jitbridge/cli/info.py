"""``jitbridge info``: what this machine and install give jitbridge to work with."""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import typer


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _simd_features() -> list[str]:
    from llvmlite import binding as llvm

    wanted = ("sse", "avx", "fma", "neon", "sve", "asimd")
    features = llvm.get_host_cpu_features()
    return sorted(name for name, on in features.items() if on and name.startswith(wanted))


def _threading() -> tuple[int, str]:
    """Thread count and threading layer; the layer is only known once a parallel kernel ran."""
    import numba
    import numpy as np

    from ..frontend.jit import jit

    @jit(parallel=True)
    def touch(x):
        for i in numba.prange(x.shape[0]):
            x[i] = i

    touch(np.empty(4))
    return numba.get_num_threads(), numba.threading_layer()


def gather() -> dict[str, Any]:
    import llvmlite
    import numba
    import numpy
    from llvmlite import binding as llvm

    from .. import __version__, config, hugepages
    from ..targets import cuda

    threads, layer = _threading()
    reason = cuda.unavailable_reason()
    return {
        "jitbridge": __version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "cpu": f"{_cpu_model()} (llvm: {llvm.get_host_cpu_name()})",
        "simd": " ".join(_simd_features()),
        "threads": threads,
        "threading layer": layer,
        "cuda": "usable" if reason is None else f"not usable: {reason}",
        "cache dir": str(config.settings.cache_dir),
        "huge pages": hugepages.describe(),
    }


def info() -> None:
    """Print versions, CPU and SIMD features, threads, CUDA availability, the cache folder and
    whether compiled code's large arrays get huge pages."""
    for name, value in gather().items():
        typer.echo(f"{name + ':':<17}{value}")
