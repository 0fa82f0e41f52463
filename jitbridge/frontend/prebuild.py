"""Find what a project compiles and compile it ahead of time (``jitbridge compile``).

Work items are plain tuples (module, qualname, variant, argtypes) so they can be sent to
worker processes; each worker imports the module itself and compiles into the shared cache,
where the per-key lock keeps two workers from building the same entry.
"""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

from numba.core import types

from .. import config, errors
from . import record
from .dispatcher import Dispatcher
from .kernel import Kernel

Item = tuple[str, str, str | None, tuple[Any, ...]]


def split_target(target: str) -> tuple[str, str | None]:
    """``MODULE[:NAME]`` -> (MODULE, NAME or None); MODULE is a dotted name, a .py file or a
    package folder, NAME a (dotted) attribute path in it."""
    head, sep, name = target.rpartition(":")
    if sep and head and all(part.isidentifier() for part in name.split(".")):
        return head, name
    return target, None


def import_target(target: str) -> list[ModuleType]:
    """Import a .py file, a package folder (and all its submodules), or a dotted module name.

    A file or folder inside a package is imported under its dotted name (``pkg/ops.py`` as
    ``pkg.ops``, with the folder above ``pkg`` on ``sys.path``), so its relative imports work
    and it is the same module the project itself imports. Anything the import raises becomes
    an ArgumentError naming the line that raised it."""
    path = Path(target)
    if (path.suffix == ".py" and path.is_file()) or (path.is_dir() and (path / "__init__.py").is_file()):
        root, name = _module_name(path.resolve())
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
        module = _import(name, target)
        return [module, *(_submodules(module, target) if path.is_dir() else [])]
    if path.exists():
        raise errors.ArgumentError(f"{target} is neither a .py file nor a package folder",
                                   values={"path": target}, fix="name a module file, a package folder or a dotted module")
    module = _import(target, target)
    return [module, *(_submodules(module, target) if hasattr(module, "__path__") else [])]


def _module_name(path: Path) -> tuple[Path, str]:
    """(folder to put on sys.path, dotted module name) of a .py file or package folder."""
    parts = [path.stem if path.suffix == ".py" else path.name]
    folder = path.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.insert(0, folder.name)
        folder = folder.parent
    if parts[-1] == "__init__":
        parts.pop()
    return folder, ".".join(parts)


def _import(name: str, target: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except errors.JitBridgeError:
        raise
    except Exception as exc:  # the user's module ran and raised: ImportError, SyntaxError, anything
        raise errors.ArgumentError(f"cannot import {target!r}: {type(exc).__name__}: {exc}",
                                   where=_raised_at(exc), values={"module": name},
                                   fix="check the path, or run from the folder that holds the package "
                                       "(the current folder is on the import path)") from exc


def _raised_at(exc: BaseException) -> tuple[str, int] | None:
    """The line that raised ``exc``: a syntax error's own line, else the innermost frame
    outside Python's import machinery."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return exc.filename, exc.lineno
    found = None
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.startswith("<frozen") and filename != __file__:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def find(target: str) -> Any:
    """The object ``MODULE:NAME`` names (a jitted function or kernel, normally)."""
    module_name, name = split_target(target)
    if name is None:
        raise errors.ArgumentError(f"expected MODULE:NAME, got {target!r}", values={"target": target},
                                   fix="name the module (dotted, or a .py file) and the object: pkg.mod:fn or "
                                       "pkg/mod.py:fn")
    module = import_target(module_name)[0]
    obj: Any = module
    for part in name.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise errors.ArgumentError(f"{module.__name__} has no {name!r}", values={"module": module.__file__},
                                       fix="name a @jb.jit function or @jb.kernel defined in that module") from None
    return obj


def _submodules(package: ModuleType, target: str) -> list[ModuleType]:
    return [_import(info.name, target) for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


CPU_VARIANTS = ("serial", "parallel")


def cuda_variant(cc: str) -> str:
    """The item variant that builds a kernel's PTX for compute capability ``cc`` ("90")."""
    return f"cuda:{cc}"


def compute_capability(text: str) -> tuple[int, int]:
    """"90" -> (9, 0), "120" -> (12, 0): the spelling of --cc and of a cuda item variant."""
    return int(text[:-1]), int(text[-1])


def declared_items(modules: list[ModuleType], variants: tuple[str, ...] = CPU_VARIANTS) -> Iterator[Item]:
    """Kernels with declared signatures, in each of ``variants`` (CPU launch variants and
    ``cuda_variant``s)."""
    for module in modules:
        for name, obj in vars(module).items():
            if isinstance(obj, Kernel) and obj.__module__ == module.__name__:
                for sig in obj.declared_signatures:
                    argtypes = (types.intp,) * obj.ndim + obj.parse_signature(sig)
                    for variant in variants:
                        yield (module.__name__, obj.__qualname__, variant, argtypes)


def hook_items(modules: list[ModuleType]) -> Iterator[Callable[[], Any]]:
    """Work a module asks for itself: ``__jitbridge_prebuild__()`` returns zero-argument,
    picklable callables (for a library whose kernels are made by factories, say)."""
    for module in modules:
        hook = getattr(module, "__jitbridge_prebuild__", None)
        if callable(hook):
            yield from hook()


def manifest_items(path: Path, variants: tuple[str, ...] = CPU_VARIANTS) -> Iterator[Item]:
    """The recorded specializations: functions as recorded, kernels (recorded with a launch
    variant) in each of ``variants``."""
    for entry in record.read(path):
        if entry["variant"] is None:
            if set(variants) & set(CPU_VARIANTS):
                yield (entry["module"], entry["qualname"], None, tuple(entry["args"]))
            continue
        for variant in variants:
            yield (entry["module"], entry["qualname"], variant, tuple(entry["args"]))


def _resolve(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def compile_item(item: Item | Callable[[], Any]) -> str:
    """Compile one item into the cache; returns a one-line description."""
    if callable(item):
        item()
        return repr(item)
    module, qualname, variant, argtypes = item
    obj = _resolve(module, qualname)
    if isinstance(obj, Kernel) and variant and variant.startswith("cuda:"):
        cc = compute_capability(variant.partition(":")[2])
        obj.compile_ptx(argtypes[obj.ndim:obj.ndim + len(obj.arg_names)], cc)
    elif isinstance(obj, Kernel):
        obj.compile(argtypes[obj.ndim:obj.ndim + len(obj.arg_names)], variant=variant or "parallel")
    elif isinstance(obj, Dispatcher):
        if obj._can_compile:
            obj.compile(argtypes)
    else:
        raise errors.ArgumentError(f"{module}.{qualname} is not a jitbridge function or kernel",
                                   values={"found": type(obj).__name__},
                                   fix="record the manifest again with the current code")
    return f"{module}.{qualname}{'[' + variant + ']' if variant else ''}"


def worker_init(cache_dir: str, paths: list[str]) -> None:
    """Set up a worker process: same cache folder, same import paths as the parent."""
    config.settings.cache_dir = Path(cache_dir)
    for entry in reversed(paths):
        if entry not in sys.path:
            sys.path.insert(0, entry)
