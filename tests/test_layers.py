"""The layers of jitbridge/: no module imports one above its own layer.

From the bottom up (a module may import its own layer and the layers below):

0. ``_version``, ``errors``: nothing of ours.
1. ``config``: every setting; raises ``errors``.
2. ``telemetry``, ``profiling``: counters, hooks and the profile report built on them;
   ``hugepages``: the allocator setting; ``atomic``, ``math``, ``math_trig``: code that runs inside kernels,
   written on numba alone; ``tensor``: shared memory. None of these knows a kernel exists.
3. ``cache`` and ``targets``, side by side: neither imports the other. The cache stores
   compiled code by content (its key spelling and the fingerprint type included); a target
   turns a kernel specification into launch code.
4. ``frontend``: decorators, dispatchers, kernels: joins the cache and the targets.
5. ``inspection``, ``simd_report``, ``lock``, ``hardware``: tools that look at what the
   frontend built, or at the machine it runs on; ``blockwise``, ``stream``: running what the
   frontend built over blocks and chunks.
6. ``cli``, the package's ``__init__`` (public face) and ``__main__``.
7. ``kernels`` (the library, written against the public face like any user's code) and
   ``dask``, which runs the library's kernels on a cluster.

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a lazy import
is still a dependency, just a later one.
"""
from __future__ import annotations

import ast
from pathlib import Path

import jitbridge

ROOT = Path(jitbridge.__file__).parent

LAYERS: list[tuple[str, ...]] = [
    ("jitbridge._version", "jitbridge.errors"),
    ("jitbridge.config",),
    ("jitbridge.telemetry", "jitbridge.profiling", "jitbridge.hugepages", "jitbridge.atomic", "jitbridge.math",
     "jitbridge.math_trig", "jitbridge.tensor"),
    ("jitbridge.cache", "jitbridge.targets"),
    ("jitbridge.frontend",),
    ("jitbridge.inspection", "jitbridge.simd_report", "jitbridge.lock", "jitbridge.hardware",
     "jitbridge.blockwise", "jitbridge.stream"),
    ("jitbridge.cli", "jitbridge", "jitbridge.__main__"),
    ("jitbridge.kernels", "jitbridge.dask"),
]
# Groups on one layer that must not import each other.
SIBLINGS = {("jitbridge.cache", "jitbridge.targets"), ("jitbridge.targets", "jitbridge.cache")}


def _module_name(path: Path) -> str:
    parts = ["jitbridge", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (ROOT / relative).with_suffix(".py").is_file() or (ROOT / relative / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """The jitbridge modules ``path`` imports (``from pkg import mod`` names ``pkg.mod``)."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                found.add(candidate if _is_module(candidate) else module)
    return {name for name in found if name == "jitbridge" or name.startswith("jitbridge.")}


def _place(module: str) -> tuple[int, str]:
    """(layer, group) of a module: the longest group prefix that names it."""
    best = None
    for level, groups in enumerate(LAYERS):
        for group in groups:
            inside = module == group or (group != "jitbridge" and module.startswith(group + "."))
            if inside and (best is None or len(group) > len(best[1])):
                best = (level, group)
    assert best is not None, f"{module} is on no layer: add it to LAYERS in {__file__}"
    return best


def back_edges(edges: set[tuple[str, str]]) -> list[str]:
    """Each import that goes up a layer, or across sibling groups, in words."""
    found = []
    for importer, imported in sorted(edges):
        (low, low_group), (high, high_group) = _place(importer), _place(imported)
        if high > low:
            found.append(f"{importer} (layer {low}) imports {imported} (layer {high})")
        elif (low_group, high_group) in SIBLINGS:
            found.append(f"{importer} imports {imported}: {low_group} and {high_group} must not import each other")
    return found


def _edges() -> set[tuple[str, str]]:
    return {(_module_name(path), imported) for path in ROOT.rglob("*.py") for imported in _imports(path)
            if imported != _module_name(path)}


def test_no_module_imports_a_layer_above_its_own() -> None:
    assert back_edges(_edges()) == []


def test_the_walk_sees_lazy_and_relative_imports_and_would_catch_a_back_edge() -> None:
    edges = _edges()
    assert ("jitbridge.frontend.dispatcher", "jitbridge.cache.numba_cache") in edges
    assert ("jitbridge.frontend.kernel", "jitbridge.targets.cuda") in edges, "an import inside a function"
    assert ("jitbridge.cache.store", "jitbridge.config") in edges, "from .. import config"
    assert back_edges({("jitbridge.cache.numba_cache", "jitbridge.frontend.deps")}) == [
        "jitbridge.cache.numba_cache (layer 3) imports jitbridge.frontend.deps (layer 4)"]
    assert back_edges({("jitbridge.math", "jitbridge")}) == ["jitbridge.math (layer 2) imports jitbridge (layer 6)"]
    assert back_edges({("jitbridge.targets.cpu", "jitbridge.cache.key")})


def test_every_module_has_a_layer() -> None:
    for path in ROOT.rglob("*.py"):
        _place(_module_name(path))
