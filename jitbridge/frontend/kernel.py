"""``@jb.kernel``: an index-space kernel. ``k[n](...)`` runs the body for every index of the
launch domain; leading parameters (``i``, ``j``, ``k``) receive the indices."""
from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Sequence

import numpy as np
from numba.core import sigutils, types

from .. import config, errors, telemetry
from ..targets import cpu
from . import args as argmod
from . import deps
from .dispatcher import Dispatcher

INDEX_NAMES = ("i", "j", "k")
_ndarray = np.ndarray


class Kernel:
    """One kernel source; compiled per (target, launch variant, argument types) on demand."""

    jb_kind = "kernel"

    def __init__(self, py_func: Callable[..., Any], ndim: int | None = None, cache: bool = True,
                 fastmath: Any = False, boundscheck: bool | None = None,
                 signatures: Sequence[str] | None = None, vector_math: bool | None = None) -> None:
        functools.update_wrapper(self, py_func)
        self.vector_math = config.settings.vector_math if vector_math is None else bool(vector_math)
        self.py_func = py_func
        self.jb_name = deps.qualified_name(py_func)
        params = list(inspect.signature(py_func).parameters.values())
        self.ndim = ndim if ndim is not None else _count_index_params(params)
        if not 1 <= self.ndim <= 3 or self.ndim > len(params):
            raise errors.ArgumentError(
                f"kernel '{self.jb_name}' needs 1 to 3 leading index parameters, found {self.ndim}",
                where=(py_func.__code__.co_filename, py_func.__code__.co_firstlineno),
                values={"parameters": [p.name for p in params]},
                fix="name the leading index parameters i (, j (, k)), or pass @jb.kernel(ndim=N)",
            )
        self.arg_names = tuple(p.name for p in params[self.ndim:])
        self._declared, self._index_symbols = _shape_declarations(params, self.ndim, py_func)
        if boundscheck is None:
            boundscheck = config.settings.boundscheck or None
        self._options = {"nopython": True, "fastmath": fastmath}
        if boundscheck is not None:
            self._options["boundscheck"] = boundscheck
        self._cache = cache
        self._body = Dispatcher(py_func, targetoptions=dict(self._options), jb_name=self.jb_name, jb_owner=self,
                                jb_counted=False, vector_math=self.vector_math)
        self._launchers: dict[str, Dispatcher] = {}
        self.declared_signatures = tuple(signatures or ())

    def __repr__(self) -> str:
        return f"<jitbridge kernel {self.jb_name} ndim={self.ndim}>"

    def _launcher(self, variant: str) -> Dispatcher:
        found = self._launchers.get(variant)
        if found is None:
            nargs = len(self.arg_names)
            fn = cpu.launcher_function(self._body, self.ndim, nargs, variant, self.py_func.__module__,
                                       self.py_func.__qualname__)
            launch_text = cpu.launcher_source(self.ndim, nargs, variant) + repr(self._body.targetoptions)
            found = self._launchers[variant] = Dispatcher(
                fn, targetoptions={**self._options, "parallel": variant != "serial"}, jb_cache=self._cache,
                jb_name=self.jb_name, jb_owner=self, jb_variant=variant,
                jb_fingerprint=lambda: deps.fingerprint(self.py_func, extra=launch_text),
                vector_math=self.vector_math)
            found.jb_reusable.update((types.intp,) * self.ndim + self.parse_signature(text)
                                     for text in self.declared_signatures)
        return found

    def __getitem__(self, dims: Any) -> Callable[..., None]:
        return functools.partial(self.launch, dims)

    def launch(self, dims: Any, *args: Any, target: str | None = None) -> None:
        """Run the kernel over ``dims`` (an int, or a tuple of 1-3 ints) with ``args``."""
        dims = self._check_dims(dims)
        if len(args) != len(self.arg_names):
            raise errors.LaunchError(
                f"kernel '{self.jb_name}' takes {len(self.arg_names)} argument(s) after its "
                f"{self.ndim} index parameter(s), got {len(args)}",
                where=errors.user_location(),
                values={"parameters": ", ".join(self.arg_names)},
                fix="pass one value per non-index parameter",
            )
        args = [a if type(a) is _ndarray else argmod.as_array_or_scalar(a, n)
                for a, n in zip(args, self.arg_names)]
        if self._declared:
            argmod.check_shapes(self._declared, dims, self._index_symbols, args)
        target = target or config.settings.target
        if target != "cpu" and _use_cuda(target):
            from ..targets import cuda

            cuda.launch(self, dims, args)
        else:
            total = math.prod(dims)
            if total:
                self._launcher(cpu.choose_variant(dims, total))(*dims, *args)
        telemetry.count(self.jb_name, "calls")

    def _check_dims(self, dims: Any) -> tuple[int, ...]:
        if type(dims) is int and dims >= 0 and self.ndim == 1:
            return (dims,)
        dims_t = dims if isinstance(dims, tuple) else (dims,)
        bad = [d for d in dims_t if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0]
        if bad or not dims_t:
            raise errors.LaunchError(
                f"launch dimensions of kernel '{self.jb_name}' must be non-negative ints",
                where=errors.user_location(),
                values={"dims": repr(dims)},
                fix="launch as k[n](...) or k[(n, m)](...) with sizes >= 0",
            )
        if len(dims_t) != self.ndim:
            raise errors.LaunchError(
                f"kernel '{self.jb_name}' has {self.ndim} index parameter(s) but was launched over "
                f"a {len(dims_t)}-D domain",
                where=errors.user_location(),
                values={"dims": repr(dims), "index parameters": ", ".join(self._index_names())},
                fix=f"launch with {self.ndim} dimension(s)",
            )
        return tuple(int(d) for d in dims_t)

    def _index_names(self) -> list[str]:
        return list(inspect.signature(self.py_func).parameters)[: self.ndim]

    def compile(self, argtypes: Any, parallel: bool | None = None, *, variant: str | None = None) -> None:
        """Compile ahead of time for ``argtypes`` (a numba type tuple or a string like
        ``"float64, float64[:]"``): the serial and the parallel launch variant, or the one that
        ``parallel`` (or a ``variant`` name from ``targets.cpu.VARIANTS``) picks."""
        if isinstance(argtypes, str):
            argtypes = self.parse_signature(argtypes)
        sig = (types.intp,) * self.ndim + tuple(argtypes)
        if variant is None:
            variants = ("serial", "parallel") if parallel is None else ("parallel" if parallel else "serial",)
        else:
            variants = (variant,)
        for name in variants:
            launcher = self._launcher(name)
            try:
                launcher.compile(sig)
                launcher.jb_reusable.add(sig)
            except Exception as exc:
                translated = launcher.translate(exc, argtypes)
                if translated is exc:
                    raise
                raise translated from exc

    def parse_signature(self, text: str) -> tuple[Any, ...]:
        """``"float64, float64[:]"`` -> numba types of the non-index arguments."""
        try:
            argtypes = tuple(sigutils.normalize_signature(f"({text},)")[0])
        except Exception as exc:
            raise errors.ArgumentError(f"cannot read the signature {text!r} of kernel '{self.jb_name}': {exc}",
                                       values={"signature": text},
                                       fix='write argument types the numba way, e.g. "float64, float64[:]"') from exc
        if len(argtypes) != len(self.arg_names):
            raise errors.ArgumentError(
                f"signature {text!r} of kernel '{self.jb_name}' has {len(argtypes)} type(s), "
                f"the kernel takes {len(self.arg_names)} argument(s)",
                values={"parameters": ", ".join(self.arg_names)}, fix="give one type per non-index parameter")
        return argtypes

    @property
    def signatures(self) -> list[tuple[Any, ...]]:
        """The argument types compiled so far (without the launch dimensions), one per specialization."""
        found = []
        for launcher in self._launchers.values():
            for sig in launcher.signatures:
                if tuple(sig[self.ndim:]) not in found:
                    found.append(tuple(sig[self.ndim:]))
        return found

    def inspect_asm(self, parallel: bool = False) -> dict[Any, str]:
        return self._launcher("parallel" if parallel else "serial").inspect_asm()

    def inspect_llvm(self, parallel: bool = False) -> dict[Any, str]:
        return self._launcher("parallel" if parallel else "serial").inspect_llvm()


def _use_cuda(target: str) -> bool:
    """Whether a launch with ``target`` goes to CUDA ("auto": only when a GPU is usable)."""
    from ..targets import cuda

    if target in ("cuda", "auto"):
        return target == "cuda" or cuda.is_available()
    raise errors.LaunchError(f"unknown target {target!r}", where=errors.user_location(),
                             fix="use target='cpu', 'cuda' or 'auto'")


def _count_index_params(params: Sequence[inspect.Parameter]) -> int:
    count = 0
    for param, name in zip(params, INDEX_NAMES):
        if param.name != name:
            break
        count += 1
    return count


def _shape_declarations(params: Sequence[inspect.Parameter], ndim: int, fn: Callable[..., Any]):
    """String annotations (``x: "n"``) declare which dimensions must agree at launch."""
    declared, index_symbols = [], []
    for position, param in enumerate(params):
        if not isinstance(param.annotation, str):
            continue
        try:
            symbols = argmod.parse_shape_annotation(param.annotation)
        except ValueError as exc:
            raise errors.ArgumentError(str(exc), where=(fn.__code__.co_filename, fn.__code__.co_firstlineno),
                                       values={param.name: param.annotation},
                                       fix='annotate arrays with their dimension names, e.g. x: "n"') from None
        if position < ndim:
            index_symbols.append((position, symbols[0]))
        else:
            declared.append((position - ndim, param.name, symbols))
    return tuple(declared), tuple(index_symbols)


def kernel(fn: Callable[..., Any] | None = None, *, ndim: int | None = None, cache: bool = True,
           fastmath: Any = False, boundscheck: bool | None = None,
           signatures: Sequence[str] | None = None, vector_math: bool | None = None) -> Any:
    """Decorate an index-space kernel; ``@jb.kernel`` or ``@jb.kernel(ndim=2, fastmath=True)``.
    ``vector_math=False`` keeps ``math.*``/``np.*`` calls as numba's libm calls."""
    def decorate(f: Callable[..., Any]) -> Kernel:
        return Kernel(f, ndim=ndim, cache=cache, fastmath=fastmath, boundscheck=boundscheck, signatures=signatures,
                      vector_math=vector_math)

    return decorate(fn) if fn is not None else decorate
