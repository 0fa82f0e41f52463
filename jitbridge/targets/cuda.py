"""The CUDA target: one kernel source launched on an NVIDIA GPU through numba-cuda.

The body becomes an inlined device function (``cuda_device``); a generated ``launch`` kernel
walks the domain with a grid-stride loop over its flattened indices, so any domain runs on a
grid sized for the device (a few blocks per SM) rather than one thread per index. Arguments
that expose ``__cuda_array_interface__`` (numba device arrays, CuPy, PyTorch CUDA tensors,
device SharedTensors) are used in place; host NumPy arrays are copied to the device, and those
the body may write are copied back after the launch.

``numba.cuda`` is imported here only, and only when a CUDA launch or compile is asked for.
"""
from __future__ import annotations

import functools
import logging
import sys
from typing import Any

import numpy as np

from .. import errors
from . import source
from .source import Source
from .spec import KernelSpec

log = logging.getLogger("jitbridge")

THREADS_PER_BLOCK = 256
BLOCKS_PER_SM = 32


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when a CUDA GPU is usable, else why not (kept: probing costs ~0.3 s)."""
    try:
        from numba import cuda
    except Exception as exc:
        return f"numba.cuda cannot be imported ({exc}); install jitbridge[cuda]"
    try:
        if cuda.is_available():
            return None
        cuda.detect()
    except Exception as exc:
        return f"the CUDA driver failed: {' '.join(str(exc).split()).rstrip(': ')}"
    return "no CUDA GPU or driver is present on this machine"


def is_available() -> bool:
    return unavailable_reason() is None


def require() -> None:
    reason = unavailable_reason()
    if reason is not None:
        raise errors.TargetUnavailableError(
            "the CUDA target is not usable here",
            where=errors.user_location(),
            values={"reason": reason},
            fix="launch with target='cpu' (or 'auto' to fall back), or run on a machine with an NVIDIA GPU",
        )


@functools.lru_cache(maxsize=1)
def _fell_back() -> None:
    """One log line per process when target='auto' runs on the CPU for want of a GPU."""
    log.info("target='auto': running kernels on the CPU (%s)", unavailable_reason())


def on_device(value: Any) -> bool:
    """Whether ``value`` lives in GPU memory (and is not a host array that also offers it). The
    CUDA simulator's arrays count too; ``numba.cuda`` is asked only when it is loaded already."""
    if isinstance(value, np.ndarray):
        return False
    if hasattr(value, "__cuda_array_interface__"):
        return True
    loaded = sys.modules.get("numba.cuda")
    return loaded is not None and bool(loaded.devicearray.is_cuda_ndarray(value))


def choose(target: str, args: tuple[Any, ...]) -> str:
    """``"cuda"`` or ``"cpu"`` for a launch asked to run on ``target`` ("cpu", "cuda", "auto")."""
    if target == "auto":
        if any(on_device(a) for a in args) and is_available():
            return "cuda"
        if not is_available():
            _fell_back()
        return "cpu"
    return target


def launcher_source(ndim: int, nargs: int) -> str:
    """``launch(n0[, n1[, n2]], args...)``: a grid-stride loop over the flattened domain, the
    last dimension fastest (so neighbouring threads touch neighbouring elements)."""
    dims, indices = source.dims(ndim), source.indices(ndim)
    src = Source()
    with src.define("launch", dims + source.args(range(nargs))):
        src.line(f"total = {' * '.join(dims)}")
        with src.block("for flat in range(cuda.grid(1), total, cuda.gridsize(1)):"):
            rest = "flat"
            for d in range(ndim - 1, 0, -1):
                src.line(f"{indices[d]} = {rest} % n{d}")
                src.line(f"rest{d} = {rest} // n{d}")
                rest = f"rest{d}"
            src.line(f"{indices[0]} = {rest}")
            src.line(src.call("body", indices + source.args(range(nargs))))
    return src.text


class CudaBackend:
    name = "cuda"

    def unavailable_reason(self) -> str | None:
        return unavailable_reason()

    def prepare(self, spec: KernelSpec, compiler: Any) -> "CudaKernel":
        return CudaKernel(spec, compiler)


BACKEND = CudaBackend()


class CudaKernel:
    """A kernel's CUDA side: the launch function, compiled by numba-cuda per argument types."""

    def __init__(self, spec: KernelSpec, compiler: Any) -> None:
        from numba import cuda

        self.spec = spec
        self.written = spec.facts.written
        self._cuda = cuda
        namespace: dict[str, Any] = {"cuda": cuda, "body": _device_code().body(spec.py_func),
                                     "__name__": spec.py_func.__module__}
        text = launcher_source(spec.ndim, spec.nargs)
        exec(compile(text, f"<jitbridge {spec.name} <cuda launch>>", "exec"), namespace)
        self.py_launch = namespace["launch"]
        self.py_launch.__qualname__ = f"{spec.py_func.__qualname__}.<cuda launch>"
        self.source = text
        self._ptx = compiler.ptx_cache(text)  # PTX entries of the content cache, or None
        self._kernel: Any = None

    def compile_ptx(self, argtypes: tuple[Any, ...], cc: tuple[int, int]) -> str:
        """PTX for ``argtypes`` (the non-index arguments) and compute capability ``cc``; needs
        no GPU or driver."""
        from numba.core import types

        sig = (types.int64,) * self.spec.ndim + tuple(argtypes)
        signature = "(" + ", ".join(str(t) for t in argtypes) + ")"
        toolkit = _nvvm_version()
        found = self._ptx.load(signature, cc, toolkit) if self._ptx else None
        if found is not None:
            return found
        ptx, _ = self._cuda.compile_ptx(self.py_launch, sig, cc=cc, fastmath=bool(self.spec.option("fastmath")))
        if self._ptx:
            self._ptx.save(signature, cc, toolkit, ptx)
        return ptx

    def launch(self, dims: tuple[int, ...], args: tuple[Any, ...], threads_per_block: int | None) -> None:
        if not int(np.prod(dims)):
            return
        for extent in self.spec.facts.extents:  # the CPU launcher checks these in compiled code
            shape = tuple(getattr(args[extent.arg], "shape", ()))
            if len(shape) > extent.axis and shape[extent.axis] < dims[extent.dim]:
                raise errors.array_too_short(self.spec.name, self.spec.arg_names[extent.arg],
                                             self.spec.py_func.__code__.co_varnames[extent.dim], extent.axis, shape,
                                             dims, extent.dim)
        cuda = self._cuda
        if self._kernel is None:
            self._kernel = cuda.jit(fastmath=bool(self.spec.option("fastmath")))(self.py_launch)
        staged, copy_back = [], []
        for position, value in enumerate(args):
            if isinstance(value, np.ndarray):
                device = cuda.to_device(value)
                staged.append(device)
                if position in self.written:
                    copy_back.append((device, value))
            else:
                staged.append(value)
        block = threads_per_block or THREADS_PER_BLOCK
        grid = max(1, min(-(-int(np.prod(dims)) // block), _max_blocks(cuda)))
        self._kernel[grid, block](*dims, *staged)
        for device, host in copy_back:
            device.copy_to_host(host)



def _max_blocks(cuda: Any) -> int:
    """Enough blocks to fill every SM several times over."""
    try:
        return cuda.get_current_device().MULTIPROCESSOR_COUNT * BLOCKS_PER_SM
    except Exception:  # the simulator has no SM count
        return 1024


@functools.lru_cache(maxsize=1)
def _nvvm_version() -> str:
    """The NVVM (CUDA toolkit) version that turns the kernel into PTX: part of a CUDA entry's key."""
    from numba.cuda.cudadrv import nvvm

    return ".".join(map(str, nvvm.NVVM().get_version()))


@functools.lru_cache(maxsize=1)
def _device_code() -> Any:
    from .cuda_device import DeviceCode

    return DeviceCode()
