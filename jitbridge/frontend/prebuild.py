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


def import_target(target: str) -> list[ModuleType]:
    """Import a .py file, a package folder (and all its submodules), or a dotted module name."""
    path = Path(target)
    if path.suffix == ".py" and path.is_file():
        sys.path.insert(0, str(path.resolve().parent))
        return [importlib.import_module(path.stem)]
    if path.is_dir() and (path / "__init__.py").is_file():
        sys.path.insert(0, str(path.resolve().parent))
        package = importlib.import_module(path.name)
        return [package, *_submodules(package)]
    if path.exists():
        raise errors.ArgumentError(f"{target} is neither a .py file nor a package folder",
                                   values={"path": target}, fix="name a module file, a package folder or a dotted module")
    try:
        module = importlib.import_module(target)
    except ImportError as exc:
        raise errors.ArgumentError(f"cannot import {target!r}: {exc}", values={"path": target},
                                   fix="check the path, or run from the folder that holds the package") from exc
    return [module, *(_submodules(module) if hasattr(module, "__path__") else [])]


def _submodules(package: ModuleType) -> list[ModuleType]:
    return [importlib.import_module(info.name)
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def declared_items(modules: list[ModuleType]) -> Iterator[Item]:
    """Kernels with declared signatures, both launch variants each."""
    for module in modules:
        for name, obj in vars(module).items():
            if isinstance(obj, Kernel) and obj.__module__ == module.__name__:
                for sig in obj.declared_signatures:
                    argtypes = (types.intp,) * obj.ndim + obj.parse_signature(sig)
                    for variant in ("serial", "parallel"):
                        yield (module.__name__, obj.__qualname__, variant, argtypes)


def hook_items(modules: list[ModuleType]) -> Iterator[Callable[[], Any]]:
    """Work a module asks for itself: ``__jitbridge_prebuild__()`` returns zero-argument,
    picklable callables (for a library whose kernels are made by factories, say)."""
    for module in modules:
        hook = getattr(module, "__jitbridge_prebuild__", None)
        if callable(hook):
            yield from hook()


def manifest_items(path: Path) -> Iterator[Item]:
    for entry in record.read(path):
        yield (entry["module"], entry["qualname"], entry["variant"], tuple(entry["args"]))


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
    if isinstance(obj, Kernel):
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
