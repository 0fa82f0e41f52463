"""The dispatchers a kernel's target code is built from: jitbridge's caching dispatcher, made
for the backends (which never import the frontend) through ``KernelCompiler``."""
from __future__ import annotations

from typing import Any, Callable

from numba.core import types

from ..cache.ptx import PtxCache
from ..targets import cpu_lowering, cuda
from . import deps
from .args import NeedsConversion, OnDevice
from .dispatcher import Dispatcher


class LaunchDispatcher(Dispatcher):
    """A launcher: typing an argument numba cannot pass as it is asks the caller to convert it,
    and an array in GPU memory sends the launch elsewhere."""

    jb_timed = False  # a profile times the kernel's launch, not this call inside it

    def typeof_pyval(self, val: Any) -> Any:
        if cuda.on_device(val):
            raise OnDevice
        found = super().typeof_pyval(val)
        if found is types.pyobject or isinstance(found, (types.List, types.Set, types.DictType)) or (
                isinstance(found, types.Buffer) and not isinstance(found, types.Array)):
            raise NeedsConversion
        return found


class KernelCompiler:
    """``targets.cpu_launch.Compiler`` for one kernel: its body, loops and (cached) launchers."""

    def __init__(self, owner: Any, cache: bool) -> None:
        self.owner = owner
        self.spec = owner.spec
        self.cache = cache

    def body(self, py_func: Callable[..., Any], options: dict[str, Any]) -> Dispatcher:
        return Dispatcher(py_func, locals=dict(self.spec.locals), targetoptions=options,
                          pipeline_class=cpu_lowering.BodyCompiler, jb_name=self.spec.name, jb_owner=self.owner,
                          jb_counted=False, vector_math=self.spec.vector_math)

    def loop(self, fn: Callable[..., Any], options: dict[str, Any]) -> Dispatcher:
        return Dispatcher(fn, targetoptions=options, jb_name=self.spec.name, jb_owner=self.owner, jb_counted=False,
                          vector_math=self.spec.vector_math)

    def ptx_cache(self, key_text: str) -> PtxCache | None:
        """Where the CUDA target keeps this kernel's PTX (None when the kernel is not cached);
        ``key_text``: the generated launch code, part of the fingerprint."""
        if not self.cache:
            return None
        py_func = self.spec.py_func
        options = {**dict(self.spec.options), "locals": dict(self.spec.locals), "vector_math": self.spec.vector_math}
        return PtxCache(self.spec.name, lambda: deps.fingerprint(py_func, extra=key_text), options,
                        py_func.__globals__)

    def launcher(self, fn: Callable[..., Any], options: dict[str, Any], variant: str, key_text: str) -> Dispatcher:
        py_func = self.spec.py_func
        return LaunchDispatcher(fn, targetoptions=options, jb_cache=self.cache, jb_name=self.spec.name,
                                jb_owner=self.owner, jb_variant=variant,
                                jb_fingerprint=lambda: deps.fingerprint(py_func, extra=key_text),
                                vector_math=self.spec.vector_math)
