"""``@jb.kernel``: an index-space kernel. ``k[n](...)`` runs the body for every index of the
launch domain; leading parameters (``i``, ``j``, ``k``) receive the indices.

A launch is one call into compiled code that checks the arguments against the domain and runs
the loops (``targets/cpu.py``); Python handles only what that call hands back: a launch big
enough for threads, arguments that overlap, an array too short for the domain.
"""
from __future__ import annotations

import functools
import inspect
import math
from typing import Any, Callable, Sequence

import numba
import numpy as np
from numba.core import sigutils, types

from .. import config, errors, telemetry
from ..targets import cpu
from ..targets.spec import KernelSpec
from . import args as argmod
from . import deps, pickling

INDEX_NAMES = ("i", "j", "k")
INTP_MAX = int(np.iinfo(np.intp).max)

# numba options a kernel takes, passed to the compiled body.
_PASSED = ("fastmath", "error_model", "boundscheck", "inline", "debug")
# numba options that have no meaning for a kernel, and what to do instead.
_REFUSED = {
    "parallel": "launches are parallel already; choose the thread count per launch with launch(..., threads=N)",
    "nopython": "kernels always compile in nopython mode; drop the option",
    "forceobj": "kernels always compile in nopython mode; drop the option",
    "looplift": "kernels always compile in nopython mode; drop the option",
    "nogil": "launches always release the GIL; drop the option",
    "target": "choose the target per launch: k.launch(dims, ..., target='cuda')",
    "signature": "declare argument types with signatures=[...]",
}


class Kernel:
    """One kernel source; compiled per (target, launch variant, argument types) on demand."""

    jb_kind = "kernel"

    def __init__(self, py_func: Callable[..., Any], *, ndim: int | None = None, cache: bool = True,
                 signatures: Sequence[str] | None = None, serial_below: int | None = None,
                 disjoint: Sequence[str] | bool = (), locals: dict[str, Any] | None = None,
                 vector_math: bool | None = None, options: dict[str, Any] | None = None) -> None:
        functools.update_wrapper(self, py_func)
        self.vector_math = config.settings.vector_math if vector_math is None else bool(vector_math)
        self._init = {"ndim": ndim, "cache": cache, "signatures": signatures, "serial_below": serial_below,
                      "disjoint": disjoint, "locals": locals, "vector_math": self.vector_math, "options": options}
        self.py_func = py_func
        self.jb_name = deps.qualified_name(py_func)
        params = list(inspect.signature(py_func).parameters.values())
        self.ndim = ndim if ndim is not None else _count_index_params(params)
        if not 1 <= self.ndim <= 3 or self.ndim > len(params):
            raise errors.ArgumentError(
                f"kernel '{self.jb_name}' needs 1 to 3 leading index parameters, found {self.ndim}",
                where=_defined_at(py_func), values={"parameters": [p.name for p in params]},
                fix="name the leading index parameters i (, j (, k)), or pass @jb.kernel(ndim=N)",
            )
        self.arg_names = tuple(p.name for p in params[self.ndim:])
        self._nargs = len(self.arg_names)
        self._declared, self._index_symbols = _shape_declarations(params, self.ndim, py_func)
        options = _checked_options(options or {}, py_func)
        if options.get("boundscheck") is None and config.settings.boundscheck:
            options["boundscheck"] = True
        self._options = {k: v for k, v in options.items() if v is not None}
        self.spec = KernelSpec(py_func, self.jb_name, self.ndim, self.arg_names,
                               tuple(sorted(self._options.items(), key=lambda kv: kv[0])),
                               tuple(sorted((locals or {}).items())), self.vector_math)
        # Launches of ``_limit`` indices or more run in parallel (None: JITBRIDGE_SERIAL_THRESHOLD).
        # A bounds-checked launch runs on one thread, so an IndexError is raised at its index.
        forced = numba.config.BOUNDSCHECK  # NUMBA_BOUNDSCHECK overrides every option when set
        self._checked = bool(self._options.get("boundscheck") if forced is None else forced)
        serial_below = _checked_count(serial_below, "serial_below", py_func)
        self._limit = INTP_MAX if self._checked else serial_below
        self._disjoint = _checked_disjoint(disjoint, self.arg_names, py_func)
        self._cache = cache
        self._counters = telemetry.entry(self.jb_name)
        self._bound: dict[Any, Callable[..., None]] = {}
        self._cpu: CpuLaunchers | None = None
        self._entry: Any = None
        self.declared_signatures = tuple(signatures or ())
        self._uuid = pickling.register(self)

    def __reduce__(self) -> tuple[Any, ...]:
        """By name when its module defines it, else by function and decorator arguments
        (``pickling``): Dask and multiprocessing send kernels to other processes."""
        return pickling.reduce(self)

    def __repr__(self) -> str:
        return f"<jitbridge kernel {self.jb_name} ndim={self.ndim}>"

    @property
    def cpu(self) -> CpuLaunchers:
        """The kernel's CPU launchers (reads the body and warns about races on first use)."""
        if self._cpu is None:
            from .launchers import CpuLaunchers

            self._cpu = CpuLaunchers(self.spec, self, self._cache, self._disjoint)
            reusable = [(types.intp,) * self.ndim + self.parse_signature(text) + (types.intp,)
                        for text in self.declared_signatures]
            for variant in cpu.VARIANTS:
                self._cpu.launcher(self._cpu.plan(variant)).jb_reusable.update(reusable)
        return self._cpu

    def __getitem__(self, dims: Any) -> Callable[..., None]:
        """``k[n]``: the launch over ``n``, made once per domain and kept (a few dozen at most)."""
        try:
            return self._bound[dims]
        except (KeyError, TypeError):
            bound = functools.partial(self.launch, dims)
            if len(self._bound) < 64 and isinstance(dims, (int, tuple)):
                self._bound[dims] = bound
            return bound

    def launch(self, dims: Any, *args: Any, target: str | None = None, threads: int | None = None) -> None:
        """Run the kernel over ``dims`` (an int, or a tuple of 1-3 ints) with ``args``;
        ``threads=N`` runs it on N threads (1: serially), whatever its size."""
        if type(dims) is int and self.ndim == 1 and 0 <= dims <= INTP_MAX:
            shape: tuple[int, ...] = (dims,)
        else:
            shape = self._check_dims(dims)
        if len(args) != self._nargs:
            self._wrong_count(args)
        if self._declared:
            argmod.check_shapes(self._declared, shape, self._index_symbols, args)
        settings = config.settings
        if target is None and self._entry is not None and settings.target == "cpu" and (threads is None or threads == 1):
            if threads is None:
                limit = settings.serial_threshold if self._limit is None else self._limit
            else:
                limit = INTP_MAX
            try:
                code = self._entry(*shape, *args, limit)
            except argmod.NeedsConversion:
                self._call(self._entry, shape, args, limit)
            except IndexError as exc:
                raise self._bounds_error(exc) from None
            else:
                if code:
                    self._after(code, shape, args)
        else:
            self._launch_general(shape, args, target, threads)
        self._counters["calls"] += 1

    def _launch_general(self, shape: tuple[int, ...], args: tuple[Any, ...], target: str | None,
                        threads: int | None) -> None:
        target = target or config.settings.target
        if target != "cpu" and _use_cuda(target):
            from ..targets import cuda

            cuda.launch(self, shape, [argmod.as_array_or_scalar(a, n) for a, n in zip(args, self.arg_names)])
            return
        if threads is not None:
            if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
                raise errors.LaunchError(f"threads must be a positive int, got {threads!r}",
                                         where=errors.user_location(), values={"threads": repr(threads)},
                                         fix="pass threads=N with N >= 1, or leave it out to choose by size")
            previous = numba.get_num_threads()
            numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
            try:
                self._run(shape, args, INTP_MAX if threads == 1 or self._checked else 0)
            finally:
                numba.set_num_threads(previous)
            return
        self._run(shape, args, config.settings.serial_threshold if self._limit is None else self._limit)

    def _run(self, shape: tuple[int, ...], args: tuple[Any, ...], limit: int) -> None:
        """A launch off the fast path. The serial launcher becomes the fast path's entry on the
        first launch small enough for it; until then large launches go straight to the parallel
        one, so a kernel only ever launched large compiles one launcher."""
        launchers = self.cpu
        if self._entry is None and math.prod(shape) >= limit:
            self._call(launchers.launcher(launchers.plan("parallel")), shape, args, numba.get_num_threads())
            return
        if self._entry is None:
            self._entry = launchers.launcher(launchers.plan("serial"))
        self._call(self._entry, shape, args, limit)

    def _call(self, launcher: Any, shape: tuple[int, ...], args: tuple[Any, ...], extra: int) -> None:
        """Call a launcher; arguments numba cannot pass as they are go again as ndarray views."""
        try:
            try:
                code = launcher(*shape, *args, extra)
            except argmod.NeedsConversion:
                args = tuple(argmod.as_array_or_scalar(a, n) for a, n in zip(args, self.arg_names))
                code = launcher(*shape, *args, extra)
        except argmod.NeedsConversion:
            raise errors.ArgumentError(
                f"an argument of kernel '{self.jb_name}' cannot be passed to compiled code",
                where=errors.user_location(),
                values={n: type(a).__name__ for a, n in zip(args, self.arg_names)},
                fix="pass NumPy arrays (or array-likes such as SharedTensor, memoryview), numbers or tuples of them",
            ) from None
        except IndexError as exc:
            raise self._bounds_error(exc) from None
        if code:
            self._after(code, shape, args)

    def _bounds_error(self, exc: IndexError) -> Exception:
        """The BoundsError naming array, index and line for a body's bounds check, else ``exc``."""
        from ..targets.cpu_lowering import bounds_error

        return bounds_error(exc, self.jb_name) or exc

    def _after(self, code: int, shape: tuple[int, ...], args: tuple[Any, ...]) -> None:
        """What a launcher handed back: run in parallel, run around overlapping arguments, or
        report an array too short for the domain."""
        launchers = self.cpu
        if code == cpu.WANTS_PARALLEL:
            code = launchers.launcher(launchers.plan("parallel"))(*shape, *args, numba.get_num_threads())
        if code == cpu.ALIASED:
            code = self._launch_aliased(shape, args)
        if code > 0:
            arg, axis, dim = launchers.extents[code - 1]
            self._too_short(arg, axis, dim, shape, args)

    def _launch_aliased(self, shape: tuple[int, ...], args: tuple[Any, ...]) -> int:
        """Identical arrays passed twice (``k[n](x, x)``) share one name in the compiled loop;
        arrays that partly overlap run serially, in index order, with no ``noalias`` promise."""
        launchers = self.cpu
        pattern = _identity_pattern(args)
        partial = any(np.may_share_memory(args[w], args[o]) and pattern[w] != pattern[o]
                      for w, o in launchers.overlap_checks
                      if isinstance(args[w], np.ndarray) and isinstance(args[o], np.ndarray))
        if partial:
            return launchers.launcher(launchers.plan("overlap"))(*shape, *args, INTP_MAX)
        limit = config.settings.serial_threshold if self._limit is None else self._limit
        if math.prod(shape) < limit:
            return launchers.launcher(launchers.plan("serial", pattern))(*shape, *args, limit)
        return launchers.launcher(launchers.plan("parallel", pattern))(*shape, *args, numba.get_num_threads())

    def _too_short(self, arg: int, axis: int, dim: int, shape: tuple[int, ...], args: tuple[Any, ...]) -> None:
        name, index = self.arg_names[arg], self._index_names()[dim]
        extent = np.shape(args[arg])
        raise errors.LaunchError(
            f"kernel '{self.jb_name}' indexes '{name}' with launch index {index} on axis {axis}, "
            f"but '{name}' is shorter than the domain there",
            where=errors.user_location(),
            values={name: f"shape {extent}", "domain": f"{tuple(shape)}"},
            fix=f"launch over at most {extent[axis] if axis < len(extent) else 0} indices in dimension {dim}, "
                f"or pass a larger '{name}'",
        )

    def _wrong_count(self, args: tuple[Any, ...]) -> None:
        raise errors.LaunchError(
            f"kernel '{self.jb_name}' takes {self._nargs} argument(s) after its "
            f"{self.ndim} index parameter(s), got {len(args)}",
            where=errors.user_location(),
            values={"parameters": ", ".join(self.arg_names)},
            fix="pass one value per non-index parameter",
        )

    def _check_dims(self, dims: Any) -> tuple[int, ...]:
        dims_t = dims if isinstance(dims, tuple) else (dims,)
        bad = [d for d in dims_t if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0]
        if bad or not dims_t:
            raise errors.LaunchError(
                f"launch dimensions of kernel '{self.jb_name}' must be non-negative ints",
                where=errors.user_location(), values={"dims": repr(dims)},
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
        shape = tuple(int(d) for d in dims_t)
        if math.prod(shape) > INTP_MAX:
            raise errors.LaunchError(
                f"the launch domain of kernel '{self.jb_name}' has more indices than fit in a machine integer",
                where=errors.user_location(), values={"dims": repr(dims), "limit": INTP_MAX},
                fix="launch over fewer indices (split the work into several launches)",
            )
        return shape

    def _index_names(self) -> list[str]:
        return list(inspect.signature(self.py_func).parameters)[: self.ndim]

    def compile(self, argtypes: Any, parallel: bool | None = None, *, variant: str | None = None) -> None:
        """Compile ahead of time for ``argtypes`` (a numba type tuple or a string like
        ``"float64, float64[:]"``): the serial and the parallel launch variant, or the one that
        ``parallel`` (or a ``variant`` name) picks."""
        if isinstance(argtypes, str):
            argtypes = self.parse_signature(argtypes)
        sig = (types.intp,) * self.ndim + tuple(argtypes) + (types.intp,)
        if variant is None:
            variants = cpu.VARIANTS if parallel is None else ("parallel" if parallel else "serial",)
        else:
            variants = (variant,)
        for name in variants:
            launcher = self.cpu.launcher(self._plan_named(name))
            try:
                launcher.compile(sig)
                launcher.jb_reusable.add(sig)
            except Exception as exc:
                translated = launcher.translate(exc, argtypes)
                if translated is exc:
                    raise
                raise translated from exc

    def _plan_named(self, variant: str) -> cpu.Plan:
        mode, _, pattern = variant.partition("@")
        return self.cpu.plan(mode, tuple(int(p) for p in pattern.split(",")) if pattern else None)

    def parse_signature(self, text: str) -> tuple[Any, ...]:
        """``"float64, float64[:]"`` -> numba types of the non-index arguments."""
        try:
            argtypes = tuple(sigutils.normalize_signature(f"({text},)")[0])
        except Exception as exc:
            raise errors.ArgumentError(f"cannot read the signature {text!r} of kernel '{self.jb_name}': {exc}",
                                       values={"signature": text},
                                       fix='write argument types the numba way, e.g. "float64, float64[:]"') from exc
        if len(argtypes) != self._nargs:
            raise errors.ArgumentError(
                f"signature {text!r} of kernel '{self.jb_name}' has {len(argtypes)} type(s), "
                f"the kernel takes {self._nargs} argument(s)",
                values={"parameters": ", ".join(self.arg_names)}, fix="give one type per non-index parameter")
        return argtypes

    @property
    def signatures(self) -> list[tuple[Any, ...]]:
        """The argument types compiled so far (without the launch dimensions), one per specialization."""
        found: list[tuple[Any, ...]] = []
        for launcher in (self._cpu.launchers.values() if self._cpu else ()):
            for sig in launcher.signatures:
                shown = tuple(sig[self.ndim:self.ndim + self._nargs])
                if shown not in found:
                    found.append(shown)
        return found

    def inspect_asm(self, parallel: bool = False) -> dict[Any, str]:
        return self.cpu.launcher(self.cpu.plan("parallel" if parallel else "serial")).inspect_asm()

    def inspect_llvm(self, parallel: bool = False) -> dict[Any, str]:
        return self.cpu.launcher(self.cpu.plan("parallel" if parallel else "serial")).inspect_llvm()


def _identity_pattern(args: tuple[Any, ...]) -> tuple[int, ...]:
    """For each argument, the first argument that is the very same array view."""
    pattern = []
    for k, a in enumerate(args):
        same = k
        if isinstance(a, np.ndarray):
            for j in range(k):
                b = args[j]
                if (isinstance(b, np.ndarray) and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
                        and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype):
                    same = pattern[j]
                    break
        pattern.append(same)
    return tuple(pattern)


def _use_cuda(target: str) -> bool:
    """Whether a launch with ``target`` goes to CUDA ("auto": only when a GPU is usable)."""
    from ..targets import cuda

    if target in ("cuda", "auto"):
        return target == "cuda" or cuda.is_available()
    raise errors.LaunchError(f"unknown target {target!r}", where=errors.user_location(),
                             fix="use target='cpu', 'cuda' or 'auto'")


def _defined_at(fn: Callable[..., Any]) -> tuple[str, int]:
    return fn.__code__.co_filename, fn.__code__.co_firstlineno


def _checked_options(options: dict[str, Any], fn: Callable[..., Any]) -> dict[str, Any]:
    for name in options:
        if name in _PASSED:
            continue
        fix = _REFUSED.get(name, f"a kernel takes {', '.join(_PASSED)}, ndim, cache, signatures, serial_below, "
                                 "disjoint, locals and vector_math")
        raise errors.ArgumentError(f"@jb.kernel does not take the option {name!r}", where=_defined_at(fn),
                                   values={name: repr(options[name])}, fix=fix)
    model = options.get("error_model", "numpy")
    if model not in ("numpy", "python"):
        raise errors.ArgumentError(f"error_model must be 'numpy' or 'python', got {model!r}", where=_defined_at(fn),
                                   fix="error_model='numpy' (the default: x / 0 gives inf or nan) or 'python' "
                                       "(raises ZeroDivisionError)")
    return dict(options)


def _checked_count(value: int | None, name: str, fn: Callable[..., Any]) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise errors.ArgumentError(f"{name} must be a non-negative int", where=_defined_at(fn),
                                   values={name: repr(value)}, fix=f"pass {name}=N (launches below N indices run serially)")
    return int(value)


def _checked_disjoint(disjoint: Sequence[str] | bool, arg_names: tuple[str, ...], fn: Callable[..., Any]) -> frozenset[str]:
    if disjoint is True:
        return frozenset(arg_names)
    names = frozenset([disjoint] if isinstance(disjoint, str) else disjoint or ())
    unknown = sorted(names - set(arg_names))
    if unknown:
        raise errors.ArgumentError(f"disjoint names {unknown}, which are not parameters of the kernel",
                                   where=_defined_at(fn), values={"parameters": ", ".join(arg_names)},
                                   fix="list the array parameters whose writes never collide, or disjoint=True")
    return names


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
            raise errors.ArgumentError(str(exc), where=_defined_at(fn), values={param.name: param.annotation},
                                       fix='annotate arrays with their dimension names, e.g. x: "n"') from None
        if position < ndim:
            index_symbols.append((position, symbols[0]))
        else:
            declared.append((position - ndim, param.name, symbols))
    return tuple(declared), tuple(index_symbols)


def kernel(fn: Callable[..., Any] | None = None, *, ndim: int | None = None, cache: bool = True,
           signatures: Sequence[str] | None = None, serial_below: int | None = None,
           disjoint: Sequence[str] | bool = (), locals: dict[str, Any] | None = None,
           vector_math: bool | None = None, **options: Any) -> Any:
    """Decorate an index-space kernel: ``@jb.kernel`` or ``@jb.kernel(fastmath=True, ...)``.

    numba's ``fastmath``, ``error_model`` (default ``"numpy"``: ``x / 0`` is inf or nan, as on a
    GPU), ``boundscheck``, ``inline``, ``debug`` and ``locals`` apply to the body.
    ``serial_below=N`` runs launches of fewer than N indices on one thread (default
    ``JITBRIDGE_SERIAL_THRESHOLD``); ``disjoint=["out"]`` (or ``True``) silences the race
    warning for writes you know never collide; ``vector_math=False`` keeps ``math.*``/``np.*``
    calls as numba's libm calls."""
    def decorate(f: Callable[..., Any]) -> Kernel:
        return Kernel(f, ndim=ndim, cache=cache, signatures=signatures, serial_below=serial_below,
                      disjoint=disjoint, locals=locals, vector_math=vector_math, options=options)

    return decorate(fn) if fn is not None else decorate
