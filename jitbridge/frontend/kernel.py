"""``@jb.kernel``: an index-space kernel. ``k[n](...)`` runs the body for every index of the
launch domain; leading parameters (``i``, ``j``, ``k``) receive the indices.

A CPU launch is one call into compiled code that checks the arguments against the domain and
runs the loops (``targets/cpu.py``); Python handles only what that call hands back: a launch
big enough for threads, arguments that overlap, an array too short for the domain. Other
launches (``target=``, ``threads=``, device arrays) take the general path, which resolves the
target's backend once per kernel (``targets.get``).
"""
from __future__ import annotations

import functools
import inspect
import weakref
from typing import Any, Callable, Sequence

import numba
import numpy as np
from numba.core import sigutils, types

from .. import atomic, config, errors, targets, telemetry
from ..targets import cpu
from ..targets import cuda as cuda_target
from ..targets.spec import KernelSpec
from . import analysis, deps, instrument, startup
from . import args as argmod
from . import kernel_options as checks
from . import pickling

INTP_MAX = int(np.iinfo(np.intp).max)
_ONE_THREAD = {"threads": 1}
_MISSING = object()

# ``k[n]`` for a 1-D domain: the kernel's own parameters spelled out (a ``*args`` call costs
# ~0.14 µs more, 15% of a short launch), defaulting to a marker so that a wrong count still
# reaches ``launch`` and its LaunchError. Built once per parameter count.
_FAST_SOURCE = """
def make(kernel, n, launch, counters):
    def fast({params}*rest, **options):
        entry, settings = kernel._entry, config.settings
        if entry is None or rest or {last} is MISSING or settings.target == "cuda":
            return launch(n, *[a for a in ({args}) if a is not MISSING], *rest, **options)
        if options:
            if options != ONE_THREAD:
                return launch(n, {args}**options)
            limit = INTP_MAX
        else:
            limit = kernel._limit
            if limit is None:
                limit = settings.serial_threshold
        try:
            code = entry(n, {args}limit)
        except (NeedsConversion, TypeError):  # raised while typing or unboxing, before anything ran
            return launch(n, {args}**options)
        except IndexError as exc:
            raise kernel._bounds_error(exc) from None
        if code:
            kernel._targets["cpu"].after(code, (n,), ({args}), limit)
        counters["calls"] += 1
    return fast
"""


@functools.lru_cache(maxsize=None)
def _fast_factory(nargs: int) -> Callable[..., Callable[..., None]]:
    names = [f"a{k}" for k in range(nargs)]
    text = _FAST_SOURCE.format(params="".join(f"{a}=MISSING, " for a in names),
                               last=names[-1] if names else "None",
                               args="".join(f"{a}, " for a in names))
    namespace = {"config": config, "MISSING": _MISSING, "ONE_THREAD": _ONE_THREAD, "INTP_MAX": INTP_MAX,
                 "NeedsConversion": argmod.NeedsConversion}
    exec(compile(text, f"<jitbridge k[n] launch, {nargs} argument(s)>", "exec"), namespace)
    return namespace["make"]


class Kernel:
    """One kernel source; compiled per (target, launch variant, argument types) on demand."""

    jb_kind = "kernel"

    def __init__(self, py_func: Callable[..., Any], *, ndim: int | None = None, cache: bool = True,
                 signatures: Sequence[str] | None = None, serial_below: int | None = None,
                 disjoint: Sequence[str] | bool = (), locals: dict[str, Any] | None = None,
                 vector_math: bool | None = None, options: dict[str, Any] | None = None) -> None:
        startup.first_definition()
        functools.update_wrapper(self, py_func)
        self.vector_math = config.settings.vector_math if vector_math is None else bool(vector_math)
        self._init = {"ndim": ndim, "cache": cache, "signatures": signatures, "serial_below": serial_below,
                      "disjoint": disjoint, "locals": locals, "vector_math": self.vector_math, "options": options}
        self.py_func = py_func
        self.jb_name = deps.qualified_name(py_func)
        params = list(inspect.signature(py_func).parameters.values())
        self.ndim = ndim if ndim is not None else checks.count_index_params(params)
        if not 1 <= self.ndim <= 3 or self.ndim > len(params):
            raise errors.ArgumentError(
                f"kernel '{self.jb_name}' needs 1 to 3 leading index parameters, found {self.ndim}",
                where=checks.defined_at(py_func), values={"parameters": [p.name for p in params]},
                fix="name the leading index parameters i (, j (, k)), or pass @jb.kernel(ndim=N)",
            )
        self.arg_names = tuple(p.name for p in params[self.ndim:])
        self._nargs = len(self.arg_names)
        self._declared, self._index_symbols = checks.shape_declarations(params, self.ndim, py_func)
        options = checks.checked_options(options or {}, py_func)
        if options.get("boundscheck") is None and config.settings.boundscheck:
            options["boundscheck"] = True
        self._options = {k: v for k, v in options.items() if v is not None}
        self._locals = tuple(sorted((locals or {}).items()))
        # Launches of ``_limit`` indices or more run in parallel (None: JITBRIDGE_SERIAL_THRESHOLD).
        # A body that can raise (bounds checks, error_model="python", a raise statement) runs
        # on one thread: numba loses an exception raised on a worker thread.
        forced = numba.config.BOUNDSCHECK  # NUMBA_BOUNDSCHECK overrides every option when set
        self._checked = bool(self._options.get("boundscheck") if forced is None else forced) \
            or self._options.get("error_model") == "python"
        serial_below = checks.checked_count(serial_below, "serial_below", py_func)
        self._limit = INTP_MAX if self._checked else serial_below
        self._disjoint = checks.checked_disjoint(disjoint, self.arg_names, py_func)
        self._cache = cache
        self._counters = telemetry.entry(self.jb_name)
        self._bound: dict[Any, Callable[..., None]] = {}
        self._spec: KernelSpec | None = None
        self._targets: dict[str, Any] = {}
        self._entry: Any = None
        self.declared_signatures = tuple(signatures or ())
        _LIVE.add(self)
        self._uuid = pickling.register(self)

    def __reduce__(self) -> tuple[Any, ...]:
        """By name when its module defines it, else by function and decorator arguments
        (``pickling``): Dask and multiprocessing send kernels to other processes."""
        return pickling.reduce(self)

    def __repr__(self) -> str:
        return f"<jitbridge kernel {self.jb_name} ndim={self.ndim}>"

    @property
    def spec(self) -> KernelSpec:
        """What targets know of this kernel; built on first use, when the body is read (and
        its races reported)."""
        if self._spec is None:
            facts = analysis.analyze(self.py_func, self.ndim, atomic.OPS)
            analysis.warn_races(self.jb_name, self.py_func, self.ndim, self.arg_names, facts, self._disjoint)
            self._spec = KernelSpec(self.py_func, self.jb_name, self.ndim, self.arg_names,
                                    tuple(sorted(self._options.items())), self._locals, self.vector_math, facts)
            if facts.raises:  # an exception must reach the caller: one thread
                self._limit = INTP_MAX
        return self._spec

    def target(self, name: str) -> Any:
        """This kernel on target ``name`` ("cpu" or "cuda"), prepared once."""
        found = self._targets.get(name)
        if found is None:
            from .launchers import KernelCompiler

            found = self._targets[name] = targets.get(name).prepare(self.spec, KernelCompiler(self, self._cache))
            if name == "cpu":
                reusable = [(types.intp,) * self.ndim + self.parse_signature(text) + (types.intp,)
                            for text in self.declared_signatures]
                for variant in cpu.VARIANTS:
                    found.launcher(found.plan(variant)).jb_reusable.update(reusable)
        return found

    @property
    def cpu(self) -> Any:
        return self.target("cpu")

    def __getitem__(self, dims: Any) -> Callable[..., None]:
        """``k[n]``: the launch over ``n``, made once per domain and kept (a few dozen at most)."""
        try:
            return self._bound[dims]
        except (KeyError, TypeError):
            bound = self._bind(dims)
            if isinstance(dims, (int, tuple)):
                if len(self._bound) >= 64:  # many domains: start again rather than grow
                    self._bound.clear()
                self._bound[dims] = bound
            return bound

    def _bind(self, dims: Any) -> Callable[..., None]:
        """The launch over ``dims``. A 1-D domain without declared shapes gets a closure that
        calls the compiled serial launcher straight away (what ``launch`` would do after its
        checks, which hold for that domain once and for all); anything else, and every launch
        while a profile times them (``Kernel.launch`` is then a timed copy), goes through
        ``launch``. ``launch_fn``: the launch it stands for."""
        launch = self.launch
        plain = type(self).__dict__.get("_jb_plain_launch", type(self).launch)
        if (type(dims) is not int or self.ndim != 1 or not 0 <= dims <= INTP_MAX or self._declared
                or type(self).launch is not plain):
            bound: Any = functools.partial(launch, dims)
        else:
            bound = _fast_factory(self._nargs)(self, dims, launch, self._counters)
        bound.launch_fn = launch
        return bound

    def launch(self, dims: Any, *args: Any, target: str | None = None, threads: int | None = None,
               threads_per_block: int | None = None) -> None:
        """Run the kernel over ``dims`` (an int, or a tuple of 1-3 ints) with ``args``.

        ``target``: "cpu", "cuda" or "auto" (CUDA when an argument lives on the GPU); default
        ``JITBRIDGE_TARGET``. ``threads=N`` runs a CPU launch on N threads (1: serially) whatever
        its size; ``threads_per_block`` sets a CUDA launch's block size."""
        if type(dims) is int and self.ndim == 1 and 0 <= dims <= INTP_MAX:
            shape: tuple[int, ...] = (dims,)
        else:
            shape = self._check_dims(dims)
        if len(args) != self._nargs:
            self._wrong_count(args)
        if self._declared:
            argmod.check_shapes(self._declared, shape, self._index_symbols, args)
        settings = config.settings
        entry = self._entry
        if target is None and entry is not None and settings.target != "cuda" and (threads is None or threads == 1):
            if threads is None:
                limit = settings.serial_threshold if self._limit is None else self._limit
            else:
                limit = INTP_MAX
            try:
                code = entry(*shape, *args, limit)
            except (argmod.NeedsConversion, TypeError):  # raised while typing or unboxing, before anything ran
                self._launch_cpu(shape, args, limit, settings.target)
            except IndexError as exc:
                raise self._bounds_error(exc) from None
            else:
                if code:
                    self._targets["cpu"].after(code, shape, args, limit)
        else:
            self._launch_general(shape, args, target, threads, threads_per_block)
        self._counters["calls"] += 1

    def _launch_general(self, shape: tuple[int, ...], args: tuple[Any, ...], target: str | None,
                        threads: int | None, threads_per_block: int | None) -> None:
        target = target or config.settings.target
        _ = self.spec  # read the body first: it can make every launch serial (see ``_limit``)
        if target not in ("cpu", "cuda", "auto"):
            raise errors.LaunchError(f"unknown target {target!r}", where=errors.user_location(),
                                     fix="use target='cpu', 'cuda' or 'auto'")
        if cuda_target.choose(target, args) == "cuda":
            self._launch_cuda(shape, args, threads_per_block)
            return
        if threads is None:
            self._launch_cpu(shape, args, config.settings.serial_threshold if self._limit is None else self._limit,
                             target)
            return
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise errors.LaunchError(f"threads must be a positive int, got {threads!r}",
                                     where=errors.user_location(), values={"threads": repr(threads)},
                                     fix="pass threads=N with N >= 1, or leave it out to choose by size")
        previous = numba.get_num_threads()
        numba.set_num_threads(min(int(threads), numba.config.NUMBA_NUM_THREADS))
        try:
            self._launch_cpu(shape, args, INTP_MAX if threads == 1 or self._limit == INTP_MAX else 0, target)
        finally:
            numba.set_num_threads(previous)

    def _launch_cpu(self, shape: tuple[int, ...], args: tuple[Any, ...], limit: int, target: str) -> None:
        """A CPU launch off the fast path. Arguments numba cannot pass as they are go again as
        ndarray views; device arrays send an "auto" launch to CUDA. The serial launcher becomes
        the fast path's entry on the first launch small enough for it."""
        kernel = self.cpu
        if any(cuda_target.on_device(a) for a in args):
            if target == "cpu":
                raise errors.LaunchError(
                    f"kernel '{self.jb_name}' was launched on the CPU with an array in GPU memory",
                    where=errors.user_location(),
                    values={n: type(a).__name__ for a, n in zip(args, self.arg_names)},
                    fix="launch with target='cuda' or 'auto', or copy the array to the host first")
            self._launch_cuda(shape, args, None)
            return
        try:
            try:
                kernel.launch(shape, args, limit)
            except argmod.NeedsConversion:
                args = tuple(argmod.as_array_or_scalar(a, n) for a, n in zip(args, self.arg_names))
                kernel.launch(shape, args, limit)
        except argmod.NeedsConversion:
            raise errors.ArgumentError(
                f"an argument of kernel '{self.jb_name}' cannot be passed to compiled code",
                where=errors.user_location(),
                values={n: type(a).__name__ for a, n in zip(args, self.arg_names)},
                fix="pass NumPy arrays (or array-likes such as SharedTensor, memoryview), numbers or tuples of them",
            ) from None
        except IndexError as exc:
            raise self._bounds_error(exc) from None
        if self._entry is None and np.prod(shape) < limit:
            self._entry = kernel.launcher(kernel.plan("serial"))

    def _bounds_error(self, exc: IndexError) -> Exception:
        """The BoundsError naming array, index and line for a body's bounds check, else ``exc``."""
        from ..targets.cpu_lowering import bounds_error

        return bounds_error(exc, self.jb_name) or exc

    def _launch_cuda(self, shape: tuple[int, ...], args: tuple[Any, ...], threads_per_block: int | None) -> None:
        cuda_target.require()
        self.target("cuda").launch(shape, args, threads_per_block)

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
                values={"dims": repr(dims), "index parameters": ", ".join(self.py_func.__code__.co_varnames[:self.ndim])},
                fix=f"launch with {self.ndim} dimension(s)",
            )
        shape = tuple(int(d) for d in dims_t)
        if int(np.prod(shape, dtype=object)) > INTP_MAX:
            raise errors.LaunchError(
                f"the launch domain of kernel '{self.jb_name}' has more indices than fit in a machine integer",
                where=errors.user_location(), values={"dims": repr(dims), "limit": INTP_MAX},
                fix="launch over fewer indices (split the work into several launches)",
            )
        return shape

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
            launcher = self.cpu.launcher(self.cpu.plan_named(name))
            try:
                launcher.compile(sig)
                launcher.jb_reusable.add(sig)
            except Exception as exc:
                translated = launcher.translate(exc, argtypes)
                if translated is exc:
                    raise
                raise translated from exc

    def compile_ptx(self, argtypes: Any, cc: tuple[int, int] = (9, 0)) -> str:
        """PTX for the CUDA target, for ``argtypes`` (as in :meth:`compile`) and compute
        capability ``cc``; needs numba-cuda (``jitbridge[cuda]``) but no GPU or driver."""
        if isinstance(argtypes, str):
            argtypes = self.parse_signature(argtypes)
        try:
            import numba.cuda  # noqa: F401
        except Exception as exc:
            raise errors.TargetUnavailableError("numba.cuda cannot be imported", values={"reason": str(exc)},
                                                fix="pip install 'jitbridge[cuda]'") from exc
        return self.target("cuda").compile_ptx(tuple(argtypes), tuple(cc))

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
        launchers = self._targets["cpu"].launchers.values() if "cpu" in self._targets else ()
        for launcher in launchers:
            for sig in launcher.signatures:
                shown = tuple(sig[self.ndim:self.ndim + self._nargs])
                if shown not in found:
                    found.append(shown)
        return found

    def inspect_asm(self, parallel: bool = False) -> dict[Any, str]:
        return self.cpu.launcher(self.cpu.plan("parallel" if parallel else "serial")).inspect_asm()

    def inspect_llvm(self, parallel: bool = False) -> dict[Any, str]:
        return self.cpu.launcher(self.cpu.plan("parallel" if parallel else "serial")).inspect_llvm()


# Kernels alive now: a profile swaps in a timed launch and makes each forget its bound k[n].
_LIVE: "weakref.WeakSet[Kernel]" = weakref.WeakSet()
telemetry.instrumentation(functools.partial(instrument.watch_launches, Kernel, _LIVE))


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
