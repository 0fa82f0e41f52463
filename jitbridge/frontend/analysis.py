"""What a kernel body does with its arguments, read from numba's untyped IR before compiling.

A launch uses these facts three ways. Arrays indexed directly by the launch indices (``x[i]``,
``y[i, j]``, ``z[j]``) outside a guard on that index get their extents checked against the
domain, so no launch reads or writes past an array's end. Arrays the body may write get an
overlap check at launch, which lets the launch loop be compiled ``noalias``. Writes at an index
that does not hold every launch index are races (``RaceWarning``), and arrays touched only
through ``jb.atomic`` with the old value unused can be given one private copy per thread.
"""
from __future__ import annotations

import dataclasses
import operator
import types as pytypes
import warnings
from typing import Any, Callable, Mapping

from numba.core import ir
from numba.core.analysis import compute_cfg_from_blocks
from numba.core.compiler import run_frontend

from .. import errors

# Calls that only read their array arguments; any other call may write them.
_READERS = {len, range, min, max, abs, float, int, bool, isinstance}
# Attributes of an array that are part of its description, not its data.
_DESCRIPTIVE = {"shape", "size", "ndim", "dtype", "strides", "itemsize", "nbytes"}
# compare op -> whether the guarded branch is the true one when the index is on the left.
_UPPER_GUARDS = {operator.lt: True, operator.le: True, operator.gt: False, operator.ge: False}


@dataclasses.dataclass(frozen=True)
class Extent:
    """Array argument ``arg`` is indexed on ``axis`` by launch index ``dim`` (first at ``line``)."""

    arg: int
    axis: int
    dim: int
    line: int


@dataclasses.dataclass(frozen=True)
class Race:
    """A write to argument ``arg`` at an index that lacks some launch index."""

    arg: int
    filename: str
    line: int
    missing: tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class BodyFacts:
    extents: tuple[Extent, ...] = ()
    written: frozenset[int] = frozenset()
    races: tuple[Race, ...] = ()
    atomic_ops: tuple[tuple[int, frozenset[str]], ...] = ()  # args used only through jb.atomic
    atomic_results_used: frozenset[int] = frozenset()
    raises: bool = False  # the body has a raise statement

    def privatizable(self) -> tuple[tuple[int, str], ...]:
        """(arg, merge op) for arrays a parallel launch may count into per-thread copies: touched
        only by atomic add/sub, or only min, or only max, with the old value never used."""
        found = []
        for arg, ops in self.atomic_ops:
            if arg in self.atomic_results_used:
                continue
            if ops <= {"add", "sub"}:
                found.append((arg, "add"))
            elif ops in ({"min"}, {"max"}):
                found.append((arg, next(iter(ops))))
        return tuple(found)

    def atomic_only(self) -> tuple[int, ...]:
        return tuple(arg for arg, _ in self.atomic_ops)


@dataclasses.dataclass(frozen=True)
class _Origin:
    """Where a variable comes from: a launch index, or (a view of) an array argument."""

    dim: int | None = None
    arg: int | None = None
    covered: frozenset[int] = frozenset()
    derived: bool = False


class _Reader:
    def __init__(self, py_func: Callable[..., Any], ndim: int, atomic_ops: Mapping[Any, str]) -> None:
        self.ir = run_frontend(py_func)
        self.ndim = ndim
        self.atomic_ops = atomic_ops
        self.defs = self.ir._definitions
        self._origins: dict[str, _Origin | None] = {}
        cfg = compute_cfg_from_blocks(self.ir.blocks)
        self.dominators = cfg.dominators()
        self.guards = self._guards(cfg)

    def single_def(self, name: str) -> Any:
        found = self.defs.get(name, [])
        return found[0] if len(found) == 1 else None

    def origin(self, var: Any) -> _Origin | None:
        if not isinstance(var, ir.Var):
            return None
        if var.name not in self._origins:
            self._origins[var.name] = None  # cycles resolve to "unknown"
            self._origins[var.name] = self._find_origin(self.single_def(var.name))
        return self._origins[var.name]

    def _find_origin(self, value: Any) -> _Origin | None:
        if isinstance(value, ir.Arg):
            if value.index < self.ndim:
                return _Origin(dim=value.index)
            return _Origin(arg=value.index - self.ndim)
        if isinstance(value, ir.Var):
            return self.origin(value)
        if isinstance(value, ir.Expr) and value.op in ("getitem", "static_getitem"):
            base = self.origin(value.value)
            if base is not None and base.arg is not None:
                dims = {d for d in self.components(value) if d is not None}
                return _Origin(arg=base.arg, covered=base.covered | dims, derived=True)
        return None

    def components(self, node: Any) -> list[int | None]:
        """Launch dimension per index position of a getitem/setitem node (None: other)."""
        if getattr(node, "op", None) == "static_getitem" or isinstance(node, ir.StaticSetItem):
            const = node.index
            return [None] * (len(const) if isinstance(const, tuple) else 1)
        index = node.index
        origin = self.origin(index)
        if origin is not None and origin.dim is not None:
            return [origin.dim]
        built = self.single_def(index.name) if isinstance(index, ir.Var) else None
        if isinstance(built, ir.Expr) and built.op == "build_tuple":
            return [self._dim_of(item) for item in built.items]
        return [None]

    def _dim_of(self, var: Any) -> int | None:
        origin = self.origin(var)
        return origin.dim if origin is not None else None

    def resolve(self, var: Any) -> Any:
        """The Python object a variable names (globals, closure cells, module attributes)."""
        value = self.single_def(var.name) if isinstance(var, ir.Var) else None
        if isinstance(value, (ir.Global, ir.FreeVar)):
            return value.value
        if isinstance(value, ir.Expr) and value.op == "getattr":
            base = self.resolve(value.value)
            if isinstance(base, pytypes.ModuleType) or getattr(base, "__jitbridge_namespace__", False):
                return getattr(base, value.attr, None)
        return None

    def _guards(self, cfg: Any) -> dict[int, list[int]]:
        """launch dim -> blocks entered only when that index passed an upper-bound test."""
        found: dict[int, list[int]] = {}
        for label, block in self.ir.blocks.items():
            branch = block.terminator
            if not isinstance(branch, ir.Branch):
                continue
            test = self._comparison(branch.cond)
            if test is None:
                continue
            dim, true_side = test
            target = branch.truebr if true_side else branch.falsebr
            if [p for p, _ in cfg.predecessors(target)] == [label]:
                found.setdefault(dim, []).append(target)
        return found

    def _comparison(self, cond: ir.Var) -> tuple[int, bool] | None:
        value = self.single_def(cond.name)
        if isinstance(value, ir.Expr) and value.op == "call" and self.resolve(value.func) is bool and value.args:
            value = self.single_def(value.args[0].name)
        if not (isinstance(value, ir.Expr) and value.op == "binop" and value.fn in _UPPER_GUARDS):
            return None
        left, right = self._dim_of(value.lhs), self._dim_of(value.rhs)
        if left is not None:
            return left, _UPPER_GUARDS[value.fn]
        if right is not None:
            return right, not _UPPER_GUARDS[value.fn]
        return None

    def guarded(self, label: int, dim: int) -> bool:
        return any(g in self.dominators[label] for g in self.guards.get(dim, ()))


def analyze(py_func: Callable[..., Any], ndim: int, atomic_ops: Mapping[Any, str]) -> BodyFacts:
    """The facts of ``py_func``'s body; ``atomic_ops`` maps each atomic function to its op name."""
    reader = _Reader(py_func, ndim, atomic_ops)
    extents: dict[tuple[int, int, int], Extent] = {}
    written: set[int] = set()
    races: list[Race] = []
    atomic: dict[int, set[str]] = {}
    not_only_atomic: set[int] = set()
    results: dict[str, int] = {}
    used: set[str] = set()

    def direct_access(node: Any, base: _Origin, label: int, line: int) -> None:
        if base.derived:
            return
        for axis, dim in enumerate(reader.components(node)):
            if dim is not None and not reader.guarded(label, dim):
                extents.setdefault((base.arg, axis, dim), Extent(base.arg, axis, dim, line))

    raises = False
    for label, block in reader.ir.blocks.items():
        for stmt in block.body:
            line = stmt.loc.line
            raises = raises or isinstance(stmt, (ir.Raise, ir.StaticRaise, ir.DynamicRaise))
            handled: set[str] = set()  # uses that leave an array free to be privatized
            if isinstance(stmt, (ir.SetItem, ir.StaticSetItem)):
                base = reader.origin(stmt.target)
                if base is not None and base.arg is not None:
                    written.add(base.arg)
                    direct_access(stmt, base, label, line)
                    covered = base.covered | {d for d in reader.components(stmt) if d is not None}
                    missing = tuple(d for d in range(ndim) if d not in covered)
                    if missing:
                        races.append(Race(base.arg, stmt.loc.filename, line, missing))
            elif isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Expr):
                expr = stmt.value
                if expr.op in ("getitem", "static_getitem"):
                    base = reader.origin(expr.value)
                    if base is not None and base.arg is not None:
                        direct_access(expr, base, label, line)
                elif expr.op == "getattr" and expr.attr in _DESCRIPTIVE:
                    handled.add(expr.value.name)
                elif expr.op == "call":
                    callee = reader.resolve(expr.func)
                    op = reader.atomic_ops.get(callee) if callee is not None else None
                    target = reader.origin(expr.args[0]) if op and expr.args else None
                    if target is not None and target.arg is not None and not target.derived:
                        atomic.setdefault(target.arg, set()).add(op)
                        written.add(target.arg)
                        handled.add(expr.args[0].name)
                        results[stmt.target.name] = target.arg
                    elif _is_reader(callee):
                        handled.update(v.name for v in expr.args)
                    else:
                        writes = _callee_writes(callee, atomic_ops) if not expr.kws and not expr.vararg else None
                        for position, var in enumerate(expr.args):
                            base = reader.origin(var)
                            if base is not None and base.arg is not None and (writes is None or position in writes):
                                written.add(base.arg)
                elif expr.op == "inplace_binop":
                    base = reader.origin(expr.lhs)
                    if base is not None and base.arg is not None:
                        written.add(base.arg)
            for var in stmt.list_vars():
                used.add(var.name)
                base = reader.origin(var)
                if var.name not in handled and base is not None and base.arg is not None and not base.derived \
                        and not (isinstance(stmt, ir.Assign) and isinstance(stmt.value, ir.Arg)):
                    not_only_atomic.add(base.arg)
    results_used = frozenset(arg for name, arg in results.items() if _used_elsewhere(reader, name))
    return BodyFacts(
        extents=tuple(extents.values()),
        written=frozenset(written),
        races=tuple(races),
        atomic_ops=tuple(sorted((arg, frozenset(ops)) for arg, ops in atomic.items() if arg not in not_only_atomic)),
        atomic_results_used=results_used,
        raises=raises,
    )


def warn_races(name: str, py_func: Callable[..., Any], ndim: int, arg_names: tuple[str, ...],
               facts: BodyFacts, disjoint: frozenset[str]) -> None:
    """One RaceWarning per racy write, at the user's line, unless declared disjoint."""
    index_names = list(py_func.__code__.co_varnames[:ndim])
    for race in facts.races:
        array = arg_names[race.arg]
        if array in disjoint:
            continue
        missing = ", ".join(index_names[d] for d in race.missing)
        message = errors.format_message(
            f"kernel '{name}' writes '{array}' at an index that does not hold the launch "
            f"index {missing}: launch indices that differ only in {missing} may write the same element at once",
            where=(race.filename, race.line),
            fix=f"use jb.atomic (e.g. jb.atomic.add({array}, idx, value)) for shared updates, or declare the "
                f"writes disjoint with @jb.kernel(disjoint=[{array!r}]) if they never collide")
        warnings.warn_explicit(message, errors.RaceWarning, race.filename, race.line)


def _is_reader(callee: Any) -> bool:
    try:
        return callee in _READERS
    except TypeError:  # unhashable
        return False


_WRITES: dict[Any, frozenset[int] | None] = {}


def _callee_writes(callee: Any, atomic_ops: Mapping[Any, str]) -> frozenset[int] | None:
    """Parameter positions a jitted callee may write (read from its own IR, recursively), or
    None when that cannot be known (intrinsics, overloads, NumPy functions): the caller then
    counts every array it passes as written."""
    py_func = getattr(callee, "py_func", None)
    if not isinstance(py_func, pytypes.FunctionType) or not hasattr(callee, "overloads"):
        return None
    if py_func not in _WRITES:
        _WRITES[py_func] = None  # a recursive call counts as "may write anything"
        try:
            _WRITES[py_func] = analyze(py_func, 0, atomic_ops).written
        except Exception:  # numba cannot read it (generated or exotic code): stay conservative
            _WRITES[py_func] = None
    return _WRITES[py_func]


def _used_elsewhere(reader: _Reader, name: str) -> bool:
    for block in reader.ir.blocks.values():
        for stmt in block.body:
            if isinstance(stmt, ir.Assign) and stmt.target.name == name:
                continue
            if any(v.name == name for v in stmt.list_vars()):
                return True
    return False

