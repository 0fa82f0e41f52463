"""``jitbridge info``: what this machine and install give jitbridge to work with."""
from __future__ import annotations

import platform
from typing import Any

import typer


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

    from .. import __version__, config, hugepages
    from ..hardware import hardware_info

    threads, layer = _threading()
    machine = hardware_info()
    cpu, cuda = machine["cpu"], machine["cuda"]
    memory = f"{cpu['memory_bytes'] / 2**30:.1f} GiB" if cpu["memory_bytes"] else "unknown"
    found = {
        "jitbridge": __version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "cpu": f"{cpu['model']} (llvm: {cpu['llvm_name']}), {cpu['cores']} cores, {memory}",
        "simd": f"{cpu['simd']} ({' '.join(cpu['simd_features'])})",
        "threads": threads,
        "threading layer": layer,
        "cuda": "usable" if cuda["usable"] else f"not usable: {cuda['reason']}",
    }
    if cuda["usable"]:
        found["cuda driver"] = f"{cuda['driver_version']}, runtime {cuda['runtime_version']}"
        for device in cuda["devices"]:
            found[f"gpu {device['id']}"] = (f"{device['name']}, {device['memory_bytes'] / 2**30:.1f} GiB, "
                                            f"compute capability {device['compute_capability'][0]}."
                                            f"{device['compute_capability'][1]}, {device['sm_count']} SMs")
    found["cache dir"] = str(config.settings.cache_dir)
    found["huge pages"] = hugepages.describe()
    return found


def info() -> None:
    """Print versions, the CPU (SIMD level, cores, memory), threads, CUDA (driver, runtime and
    each GPU, or why it is not usable), the cache folder and whether huge pages are in use."""
    for name, value in gather().items():
        typer.echo(f"{name + ':':<17}{value}")
