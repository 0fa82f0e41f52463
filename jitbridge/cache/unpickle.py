"""Reading compiled results back without letting a cache file run code on load.

numba serializes a compiled result with pickle, and a pickle can call any importable
function (``os.system``) while it loads. Entries are therefore read through an allow-list:
numba types, the few numba/NumPy/copyreg reconstructors a compiled result needs, NumPy dtypes
and scalars, harmless builtins, and of the user's code only enum and named-tuple classes and
exceptions of modules already imported (never an import of a module the entry names).
Anything else makes the entry unloadable, which the cache treats as corrupt.

This stops a crafted entry from running code while it is read. It cannot make a crafted
entry safe to *call*: an entry is machine code. That is what the folder permission checks
and signed bundles are for.
"""
from __future__ import annotations

import copyreg
import enum
import importlib
import io
import pickle
import pickletools
import sys
from typing import Any, NamedTuple

from numba.core import environment

# The packages whose modules an entry may name; modules of other packages must already be
# imported (they are then the user's own code), never imported because an entry says so.
TRUSTED_PACKAGES = ("numba", "numpy", "llvmlite", "jitbridge")

_FUNCTIONS = {
    ("copyreg", "_reconstructor"),
    ("_codecs", "encode"),  # bytes, in pickle protocols before 3
    ("numba.core.types.abstract", "_type_reconstructor"),
    ("numba.core.typed_passes", "_reload_parfors"),
    ("numba.core.environment", "_rebuild_env"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
}
_CLASSES = {
    ("numba.core.funcdesc", "PythonFunctionDescriptor"),
    ("numba.core.typing.templates", "Signature"),
}
_BUILTINS = {"object", "complex", "slice", "set", "frozenset", "range", "bytearray", "Ellipsis", "NotImplemented"}


class Refused(Exception):
    """The pickle names something outside the allow-list (the message says what)."""


def _module(module: str) -> Any:
    if module in sys.modules:
        return sys.modules[module]
    if module.split(".", 1)[0] in TRUSTED_PACKAGES:
        try:
            return importlib.import_module(module)
        except ImportError:
            return None
    return None


def _allowed_object(module: str, name: str, obj: Any) -> bool:
    from numba.core import types
    import numpy as np

    if (module, name) in _FUNCTIONS or (module, name) in _CLASSES:
        return True
    if module == "builtins":
        return name in _BUILTINS or (isinstance(obj, type) and issubclass(obj, BaseException))
    if not isinstance(obj, type):
        return False
    if issubclass(obj, (types.Type, BaseException, np.dtype, np.generic, enum.Enum)) or obj is np.ndarray:
        return True
    return issubclass(obj, tuple) and hasattr(obj, "_fields")  # a named tuple class


def resolve(module: str, name: str) -> Any:
    """The object ``module.name`` if an entry may use it; raises Refused otherwise."""
    if not isinstance(module, str) or not isinstance(name, str):
        raise Refused("a computed global name")
    found = _module(module)
    if found is None:
        raise Refused(f"{module}.{name} (module not imported here, and not numba/numpy/jitbridge)")
    obj = found
    for part in name.split("."):
        if isinstance(obj, type(sys)) and obj is not found:
            raise Refused(f"{module}.{name} (reaches another module)")
        obj = getattr(obj, part, None)
        if obj is None:
            raise Refused(f"{module}.{name} (no such name)")
    if not _allowed_object(module, name, obj):
        raise Refused(f"{module}.{name}")
    return obj


_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
_TUPLES = {"TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_TUPLE"}
_RECONSTRUCTORS = {("numba.core.types.abstract", "_type_reconstructor"): 1, ("copyreg", "_reconstructor"): 2}


class _Global(NamedTuple):
    module: Any
    name: Any


def _called(target: Any, args: Any = ()) -> None:
    """The rule Unpickler enforces at a call, checked on the opcodes: only a name the pickle
    looked up is called, and a reconstructor is handed looked-up classes."""
    if not isinstance(target, _Global):
        raise Refused("a call to an object built while loading")
    wanted = _RECONSTRUCTORS.get(tuple(target), 0)
    if wanted and not (isinstance(args, tuple) and len(args) >= wanted
                       and all(isinstance(a, _Global) for a in args[:wanted])):
        raise Refused(f"{target.module}.{target.name} of an object built while loading")


def _scan(payload: bytes) -> list[_Global]:
    """The names the pickle would look up, found without running any of it; raises Refused
    where it would call something it did not look up (what Unpickler refuses at load)."""
    mark = object()
    stack: list[Any] = []
    memo: dict[int, Any] = {}
    found: list[_Global] = []
    for op, arg, _ in pickletools.genops(payload):
        if op.name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            stack.append(memo.get(arg))
        elif op.name == "MARK":
            stack.append(mark)
        elif op.name in ("GLOBAL", "INST"):
            found.append(_Global(*arg.split(" ", 1)))
            if op.name == "INST":  # calls the class on the items since the mark
                del stack[len(stack) - stack[::-1].index(mark) - 1:]
            stack.append(found[-1] if op.name == "GLOBAL" else None)
        elif op.name == "STACK_GLOBAL":
            name, module = stack.pop(), stack.pop()
            found.append(_Global(module if isinstance(module, str) else None, name if isinstance(name, str) else None))
            stack.append(found[-1])
        else:
            before = op.stack_before
            if pickletools.markobject in before:
                at = len(stack) - stack[::-1].index(mark) - 1
                items, prior = stack[at + 1:], before.index(pickletools.markobject)
                del stack[at - prior:]
            else:
                items = stack[len(stack) - len(before):] if before else []
                del stack[len(stack) - len(items):]
            if op.name == "REDUCE":
                _called(items[0], items[1])
            elif op.name == "OBJ":
                _called(items[0], tuple(items[1:]))
            elif op.name in ("NEWOBJ", "NEWOBJ_EX"):
                _called(items[0])
            if op.name in _TUPLES:
                stack.append(tuple(items))
            else:
                stack.extend([arg] if op.name in _STRINGS else [None] * len(op.stack_after))
    return found


def check(payload: bytes) -> None:
    """Raise Refused if loading ``payload`` would look up anything outside the allow-list or
    call anything it did not look up. Names of modules that are not imported here pass:
    loading refuses those unless the user's program has imported them by then."""
    try:
        found = _scan(payload)
    except (ValueError, IndexError, KeyError, TypeError) as exc:
        raise Refused(f"not a readable pickle ({exc})") from None
    for module, name in found:
        if module is None or name is None:
            raise Refused("a computed global name")
        if _module(module) is not None:
            resolve(module, name)


class Unpickler(pickle._Unpickler):
    """The allow-list unpickler.

    Python's own (pure Python) unpickler, so that every call a pickle makes can be checked:
    besides looking names up through the allow-list, a call (REDUCE, NEWOBJ, OBJ, and the
    reconstructors numba and copyreg use) must call something the allow-list handed out, not
    an object built while loading (a numba type is callable and would call ``getattr(np,
    its name)``). It is as fast as the C unpickler here: an entry's time goes into rebuilding
    numba types, not into reading opcodes.

    numba rebuilds a function's Environment by importing its module by name; here only a
    module already imported is used, else the globals of the function being loaded (code
    from ``exec``, notebooks and other non-importable places)."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, blob: bytes, fallback_globals: dict[str, Any]) -> None:
        super().__init__(io.BytesIO(blob))
        self._fallback = fallback_globals
        self._special = {("numba.core.environment", "_rebuild_env"): self._rebuild_env,
                         ("numba.core.types.abstract", "_type_reconstructor"): self._type_reconstructor,
                         ("copyreg", "_reconstructor"): self._reconstructor}
        # Held, not just their ids: an id is unique only while its object lives.
        self._handed_out: dict[int, Any] = {}

    def find_class(self, module: str, name: str) -> Any:
        obj = self._special.get((module, name)) or resolve(module, name)
        self._handed_out[id(obj)] = obj
        return obj

    def _callable(self, obj: Any) -> Any:
        if id(obj) not in self._handed_out:
            raise Refused(f"a call to {type(obj).__name__} object built while loading")
        return obj

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        self.stack[-1] = self._callable(self.stack[-1])(*args)

    def _load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self._callable(self.stack.pop())
        self.append(cls.__new__(cls, *args))

    def _load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self._callable(self.stack.pop())
        self.append(cls.__new__(cls, *args, **kwargs))

    def _instantiate(self, klass: Any, args: tuple[Any, ...]) -> None:
        super()._instantiate(self._callable(klass), args)

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex

    def _type_reconstructor(self, reconstructor: Any, args: tuple[Any, ...], state: dict[str, Any]) -> Any:
        from numba.core.types import abstract

        return abstract._type_reconstructor(self._callable(reconstructor), args, state)

    def _reconstructor(self, cls: Any, base: Any, state: Any) -> Any:
        return copyreg._reconstructor(self._callable(cls), self._callable(base), state)

    def _rebuild_env(self, modname: str | None, consts: list[Any], env_name: str) -> Any:
        env = environment.lookup_environment(env_name)
        if env is not None:
            return env
        namespace = self._fallback
        if modname in sys.modules:
            namespace = sys.modules[modname].__dict__
        env = environment.Environment(namespace)
        env.consts[:] = consts
        env.env_name = env_name
        environment.Environment._memo[env_name] = env
        return env


def load(payload: bytes, fallback_globals: dict[str, Any]) -> Any:
    """Unpickle an entry's payload through the allow-list; raises Refused (or a pickle
    error, for a damaged payload) instead of running anything outside it."""
    return Unpickler(payload, fallback_globals).load()
