"""``jb.hardware_info()``: the machine jitbridge compiles for, in one dictionary: the CPU (model,
SIMD level, cores, memory) and CUDA (driver and runtime versions, each device's name, memory,
compute capability and SM count, or why CUDA is not usable)."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

# Widest SIMD level first: (LLVM feature, name people use).
_SIMD_LEVELS = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse4.2", "SSE4.2"),
                ("sve", "SVE"), ("neon", "NEON"), ("asimd", "NEON"))
_SIMD_PREFIXES = ("sse", "avx", "fma", "neon", "sve", "asimd")


def hardware_info() -> dict[str, Any]:
    """{"cpu": {...}, "cuda": {...}}; importing numba.cuda for the CUDA part takes ~0.3 s."""
    return {"cpu": cpu_info(), "cuda": cuda_info()}


def cpu_info() -> dict[str, Any]:
    from llvmlite import binding as llvm

    features = {name for name, on in llvm.get_host_cpu_features().items() if on}
    level = next((shown for feature, shown in _SIMD_LEVELS if feature in features), "none")
    return {
        "model": _cpu_model(),
        "llvm_name": llvm.get_host_cpu_name(),
        "simd": level,
        "simd_features": sorted(f for f in features if f.startswith(_SIMD_PREFIXES)),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
    }


def cuda_info() -> dict[str, Any]:
    from .targets import cuda as cuda_target

    reason = cuda_target.unavailable_reason()
    found: dict[str, Any] = {"usable": reason is None, "reason": reason, "driver_version": None,
                             "runtime_version": None, "devices": []}
    if reason is not None:
        return found
    from numba import cuda

    try:
        found["driver_version"] = _version(cuda.cudadrv.driver.driver.get_version())
        found["runtime_version"] = _version(cuda.runtime.get_version())
    except Exception as exc:  # the simulator, or a driver that does not say
        found["reason"] = f"versions unavailable: {exc}"
    for device in cuda.list_devices():
        with device:
            current = cuda.get_current_device()
            free_total = cuda.current_context().get_memory_info()
            found["devices"].append({
                "id": device.id,
                "name": current.name.decode() if isinstance(current.name, bytes) else str(current.name),
                "memory_bytes": int(free_total[1]),
                "compute_capability": tuple(current.compute_capability),
                "sm_count": int(getattr(current, "MULTIPROCESSOR_COUNT", 0)),
            })
    return found


def _version(value: Any) -> str:
    return ".".join(str(part) for part in value) if isinstance(value, tuple) else str(value)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
