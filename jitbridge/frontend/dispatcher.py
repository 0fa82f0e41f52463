"""numba's CPU dispatcher, with jitbridge's content cache, counters and error messages.

Calls go through numba's C dispatch path untouched (so call overhead is numba's); jitbridge
only steps in when a signature is missing: it takes the cross-process lock for that key,
loads or compiles, counts what happened, and rewrites typing failures.
"""
from __future__ import annotations

import functools
import logging
from typing import Any, Callable

import numpy as np
from numba.core import compiler, sigutils, types
from numba.core import errors as nb_errors
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import CPUDispatcher
from numba.core.typeconv import Conversion
from numba.np import numpy_support

from .. import config, errors, hugepages, telemetry
from ..cache.key import arguments_text, code_options
from ..cache.numba_cache import ContentCache, NullCache, uncachable, warn_uncachable
from ..targets.vector_math import target as vector_math_target
from . import deps, diagnostics, instrument, record, startup

log = logging.getLogger("jitbridge")

_FLOAT16 = getattr(types, "float16", None)


class Dispatcher(CPUDispatcher):
    """What ``@jb.jit`` returns: a numba dispatcher (callable from jitted code) plus caching."""

    jb_kind = "function"

    def __init__(self, py_func, locals=None, targetoptions=None, pipeline_class=compiler.Compiler,
                 *, jb_cache: bool = False, jb_name: str | None = None, jb_owner: Any = None,
                 jb_variant: str | None = None, jb_fingerprint: Callable[[], Any] | None = None,
                 jb_counted: bool = True, vector_math: bool | None = None) -> None:
        startup.first_definition()
        self.jb_vector_math = config.settings.vector_math if vector_math is None else bool(vector_math)
        # numba reads the target (typing and target context) from here while it initialises
        self.targetdescr = vector_math_target(self.jb_vector_math)
        super().__init__(py_func, locals=locals, targetoptions=targetoptions, pipeline_class=pipeline_class)
        self.jb_name = jb_name or deps.qualified_name(py_func)
        self.jb_owner = jb_owner
        self.jb_variant = jb_variant
        self.jb_object_mode = bool(self.targetoptions.get("forceobj"))
        self.jb_cache = jb_cache and not self.jb_object_mode
        self.jb_counted = jb_counted  # False for a kernel's body: its compile is part of a launcher's
        self.jb_reusable: set[tuple[Any, ...]] = set()
        # a launcher's signature is (launch indices..., kernel arguments..., thread limit)
        shown = slice(jb_owner.ndim, jb_owner.ndim + len(jb_owner.arg_names)) if jb_variant else slice(None)
        if self.jb_object_mode:
            log.info("%s compiles in numba's object mode (forceobj=True): run by numba, not cached by jitbridge",
                     self.jb_name)
            self._cache = _ObjectModeCache() if jb_cache else NullCache()
        elif jb_cache:
            self._cache = ContentCache(self.jb_name, jb_fingerprint or (lambda: deps.fingerprint(py_func)), "cpu",
                                       {**code_options(self.targetoptions, self.locals, self._compiler.pipeline_class),
                                        "vector_math": self.jb_vector_math},
                                       variant=jb_variant, globals_=py_func.__globals__, shown=shown)
        else:
            self._cache = NullCache()
        self._jb_shown = shown

    @property
    def disk_cache(self) -> ContentCache | NullCache:
        """This function's cache: a ``ContentCache`` (``cache=True``, kernels) or a ``NullCache``."""
        return self._cache

    def jb_arguments(self, args: Any) -> str:
        """The argument types a user passed, as numba prints them (a launcher's index and
        thread-limit parameters left out)."""
        return arguments_text(args, self._jb_shown)

    def _reduce_states(self) -> dict[str, Any]:
        states = super()._reduce_states()
        states.update(jb_cache=self.jb_cache, jb_name=self.jb_name, vector_math=self.jb_vector_math)
        return states

    @classmethod
    def _rebuild(cls, uuid, py_func, locals, targetoptions, can_compile, sigs, jb_cache=False, jb_name=None,
                 vector_math=None):
        try:
            return cls._memo[uuid]
        except KeyError:
            pass
        self = cls(py_func, locals, targetoptions, jb_cache=jb_cache, jb_name=jb_name, vector_math=vector_math)
        self._set_uuid(uuid)
        for sig in sigs:
            self.compile(sig)
        self._can_compile = can_compile
        return self

    def compile(self, sig: Any) -> Any:
        args, _ = sigutils.normalize_signature(sig)
        existing = self.overloads.get(tuple(args))
        if existing is not None:
            return existing.entry_point
        with global_compiler_lock:
            startup.first_compile()
            hugepages.ensure()
            with self._cache.lock(sig, self.targetctx.codegen()):
                entry_point = super().compile(sig)
            if self.jb_cache:
                record.record(self.jb_owner or self, self.jb_variant, tuple(args))
            return entry_point

    def _library(self, signature: Any) -> Any:
        """The overload's code library; for code loaded from the cache, a fresh uncached build,
        because numba cannot show IR or assembly of code it did not compile in this process."""
        library = self.overloads[signature].library
        if not getattr(library, "_disable_inspection", False):
            return library
        twin = Dispatcher(self.py_func, self.locals, self.targetoptions, jb_name=f"{self.jb_name} (inspection)",
                          jb_owner=self.jb_owner, jb_variant=self.jb_variant, vector_math=self.jb_vector_math)
        twin.compile(signature)
        return twin.overloads[signature].library

    def inspect_asm(self, signature: Any = None) -> Any:
        if signature is not None:
            return self._library(signature).get_asm_str()
        return {sig: self.inspect_asm(sig) for sig in self.signatures}

    def inspect_llvm(self, signature: Any = None) -> Any:
        if signature is not None:
            return self._library(signature).get_llvm_str()
        return {sig: self.inspect_llvm(sig) for sig in self.signatures}

    def typeof_pyval(self, val: Any) -> Any:
        """numba's typeof, minus its ``np.ma`` check for plain ndarrays: that first touch of
        ``numpy.ma`` imports it, ~50 ms of every warm start. Object mode takes any value."""
        if self.jb_object_mode:
            return super().typeof_pyval(val)
        try:
            if type(val) is np.ndarray and val.dtype.kind in "biufc":
                found = types.Array(numpy_support.from_dtype(val.dtype), val.ndim, numpy_support.map_layout(val),
                                    readonly=not val.flags.writeable)
            else:
                found = super().typeof_pyval(val)
        except errors.JitBridgeError:
            raise
        except Exception as exc:
            if isinstance(val, np.ndarray):
                raise errors.array_not_compilable(val) from exc
            raise
        unusable = found is types.pyobject and isinstance(val, np.ndarray)
        if unusable or _FLOAT16 in (found, getattr(found, "dtype", None)):  # numba types float16, cannot lower it
            raise errors.array_not_compilable(val)
        return found

    def _search_new_conversions(self, *args: Any, **kws: Any) -> bool:
        """numba asks this when no compiled signature fits and compiling is off (eager
        signatures). A SharedTensor where a declared signature says array gets a twin of that
        signature typed for tensors, so eager functions take tensors as they take arrays; plain
        arrays are never converted to a tensor twin (that would make calls ambiguous). The
        conversions between declared signatures are numba's own search."""
        from ..tensor.numba_ext import SharedTensorType

        argtypes = [self.typeof_pyval(a) for a in args]
        found = False
        tensors = any(isinstance(a, SharedTensorType) for a in argtypes)
        for sig in list(self.nopython_signatures) if tensors else ():
            if len(sig.args) != len(argtypes):
                continue
            if any(isinstance(d, SharedTensorType) and not isinstance(a, SharedTensorType)
                   for a, d in zip(argtypes, sig.args)):
                continue
            twin = tuple(_tensor_twin(actual, declared) for actual, declared in zip(argtypes, sig.args))
            if twin != tuple(sig.args) and all(self.typingctx.can_convert(a, d) is not None
                                               for a, d in zip(argtypes, twin)):
                self._can_compile = True
                try:
                    self.compile(sig.return_type(*twin))
                finally:
                    self._can_compile = False
                found = found or twin == tuple(argtypes)
        return super()._search_new_conversions(*args, **kws) or found

    def _compile_for_args(self, *args: Any, **kws: Any) -> Any:
        if self.jb_reusable:
            reused = self._reuse([self.typeof_pyval(a) for a in args])
            if reused is not None:
                return reused
        try:
            return super()._compile_for_args(*args, **kws)
        except nb_errors.TypingError as exc:
            owner = self.jb_owner
            shown = args[owner.ndim:owner.ndim + len(owner.arg_names)] if self.jb_variant else args
            raise self.translate(exc, [_typeof_or_unknown(self, a) for a in shown]) from exc

    def _reuse(self, argtypes: list[Any]) -> Any:
        """An ahead-of-time signature (declared or prebuilt) these arguments convert to safely,
        so a prebuilt any-layout kernel serves contiguous arrays instead of compiling again. It
        is loaded (from the cache) on first use, then entered in numba's C dispatch table under
        these argument types, so later calls with them never come back here."""
        best, best_cost = None, None
        for sig in self.jb_reusable:
            if len(sig) != len(argtypes):
                continue
            conversions = [self.typingctx.can_convert(a, f) for a, f in zip(argtypes, sig)]
            if all(c is not None and c <= Conversion.safe for c in conversions):
                cost = sum(int(c) for c in conversions)
                if best_cost is None or cost < best_cost:
                    best, best_cost = sig, cost
        if best is None:
            return None
        entry_point = self.compile(best)
        self._insert([a._code for a in argtypes], entry_point, False)
        return entry_point

    def _explain_matching_error(self, *args: Any, **kws: Any) -> None:
        """numba's callback when compiling is off (eager signatures) and nothing matches:
        numba's TypeError, in numba's words, with the user's line and the signatures there are."""
        argtypes = ", ".join(str(self.typeof_pyval(a)) for a in args)
        raise errors.ArgumentError(
            f"No matching definition for argument type(s) {argtypes}",
            where=errors.user_location(),
            values={"function": self.jb_name, "compiled": "; ".join(_spelled(cres.signature) for cres in self.overloads.values())},
            fix="pass arguments of a declared type, or add a signature (or drop them to compile on demand)",
        )

    def translate(self, exc: Exception, argtypes: Any) -> Exception:
        """The user-facing error for numba's ``exc`` (already-translated errors pass through)."""
        if isinstance(exc, errors.KernelTypingError) or not isinstance(exc, nb_errors.TypingError):
            return exc
        owner = self.jb_owner or self
        py_func = getattr(owner, "py_func", owner)
        # jb.jit is numba's drop-in, so its message also says all numba's would; a kernel's
        # message stays short, with numba's report (full of generated launch code) on __cause__
        return diagnostics.typing_error(owner.jb_kind, deps.qualified_name(py_func), exc, argtypes, py_func,
                                        numba_report=owner.jb_kind == "function")


class _ObjectModeCache(NullCache):
    """``cache=True`` on an object-mode function: each compile says, as numba's own warning,
    that it was not cached (numba caches object mode unless loops were lifted; jitbridge never)."""

    def save_overload(self, sig: Any, cres: Any) -> None:
        warn_uncachable(cres, uncachable(cres) or "as it runs in object mode (jitbridge caches nopython code only)")


def _spelled(sig: Any) -> str:
    """``(array(float64, 1d, A)) -> float64``: numba's type names (a Signature's own str is reprs)."""
    return "(" + ", ".join(str(a) for a in sig.args) + f") -> {sig.return_type}"


telemetry.instrumentation(functools.partial(instrument.watch_calls, Dispatcher))


def _tensor_twin(actual: Any, declared: Any) -> Any:
    """``declared`` as a tensor type when a tensor is passed where an array was declared."""
    from ..tensor.numba_ext import SharedTensorType

    if isinstance(actual, SharedTensorType) and isinstance(declared, types.Array) \
            and not isinstance(declared, SharedTensorType):
        return SharedTensorType(declared.dtype, declared.ndim, declared.layout, not declared.mutable, declared.aligned)
    return declared


def _typeof_or_unknown(dispatcher: Dispatcher, value: Any) -> Any:
    try:
        return dispatcher.typeof_pyval(value)
    except Exception:
        return "?"
