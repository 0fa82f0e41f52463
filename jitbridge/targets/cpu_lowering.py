"""How a kernel body is compiled for the CPU so that the launch loop around it runs at the
speed of a hand-written ``prange`` loop.

Three things numba does for a function called in a loop cost a kernel its speed, each found by
reading the launch loop's LLVM IR:

- A function increments the reference count of every array argument on entry and decrements it
  on every exit. After LLVM sinks those decrements into one block the refcount pruning pass no
  longer pairs them, so each element pays two atomic calls and LLVM cannot vectorize or hoist
  anything across them. A body borrows its arguments instead (``BorrowingLower``): the launch
  loop holds them for the whole launch, and a body returns nothing, so nothing can outlive it.
- A large body is not inlined by LLVM's cost model; the body is compiled ``forceinline``.
- The loop function's array arguments are declared ``noalias`` (``noalias_flags``), which
  holds because every launch checks, in compiled code, that no written array overlaps another.

With ``JITBRIDGE_BOUNDSCHECK`` (or ``boundscheck=True``) an out-of-bounds index in a body raises
an IndexError carrying the array's name, the axis, the index, the extent and the line, which
``bounds_error`` turns into a ``BoundsError``.
"""
from __future__ import annotations

import threading
from typing import Any

from numba.core import cgutils, compiler, ir, lowering, typed_passes, types
from numba.core.compiler_machinery import PassManager, register_pass

from .. import errors

# Marker first argument of the IndexError a body's bounds check raises.
BOUNDS_MARKER = "jitbridge-bounds"

_current = threading.local()  # (array name, loc) of the body instruction being lowered


class BorrowingLower(lowering.Lower):
    """numba's lowering, minus the reference counting of a body's own array arguments."""

    def pre_lower(self) -> None:
        super().pre_lower()
        self._borrowed: set[str] = set()
        self._quiet = False
        # A returned argument would need its own reference; kernel bodies return None.
        self._may_borrow = self.fndesc.restype == types.none

    def lower_inst(self, inst: ir.Stmt) -> None:
        _current.site = (_array_name(inst), self.loc)
        try:
            super().lower_inst(inst)
        finally:
            _current.site = None

    def lower_assign(self, ty: Any, inst: ir.Assign) -> Any:
        if (self._may_borrow and isinstance(inst.value, ir.Arg)
                and len(self.func_ir._definitions.get(inst.target.name, ())) == 1):
            self._borrowed.add(inst.target.name)
            return self._without_refcounts(super().lower_assign, ty, inst)
        return super().lower_assign(ty, inst)

    def delvar(self, name: str) -> None:
        if name in self._borrowed:
            self._without_refcounts(super().delvar, name)
        else:
            super().delvar(name)

    def _without_refcounts(self, fn: Any, *args: Any) -> Any:
        self._quiet = True
        try:
            return fn(*args)
        finally:
            self._quiet = False

    def incref(self, typ: Any, val: Any) -> None:
        if not self._quiet:
            super().incref(typ, val)

    def decref(self, typ: Any, val: Any) -> None:
        if not self._quiet:
            super().decref(typ, val)


def _array_name(inst: ir.Stmt) -> str | None:
    if isinstance(inst, (ir.SetItem, ir.StaticSetItem)):
        return inst.target.name
    if isinstance(inst, ir.Assign) and isinstance(inst.value, ir.Expr) and inst.value.op in ("getitem", "static_getitem"):
        return inst.value.value.name
    return None


@register_pass(mutates_CFG=True, analysis_only=False)
class BorrowingLowering(typed_passes.NativeLowering):
    """numba's native lowering pass with ``BorrowingLower``."""

    _name = "jitbridge_borrowing_lowering"

    @property
    def lowering_class(self) -> type:
        return BorrowingLower


class BodyCompiler(compiler.CompilerBase):
    """numba's nopython pipeline, lowering with ``BorrowingLower``."""

    def define_pipelines(self) -> list[PassManager]:
        builder = compiler.DefaultPassBuilder
        pm = PassManager("jitbridge_kernel_body")
        for part in (builder.define_untyped_pipeline(self.state), builder.define_typed_pipeline(self.state),
                     builder.define_nopython_lowering_pipeline(self.state)):
            pm.passes.extend((BorrowingLowering if cls is typed_passes.NativeLowering else cls, text)
                             for cls, text in part.passes)
        pm.finalize()
        return [pm]


def noalias_flags(dispatcher: Any) -> None:
    """Compile ``dispatcher`` with numba's ``noalias`` flag: its pointer arguments are
    declared not to overlap (the launch checks that they do not before calling it)."""
    customize = dispatcher._compiler._customize_flags

    def with_noalias(flags: Any) -> Any:
        flags = customize(flags)
        flags.noalias = True
        return flags

    dispatcher._compiler._customize_flags = with_noalias


_numba_boundscheck = cgutils.do_boundscheck


def _boundscheck(context: Any, builder: Any, ind: Any, dimlen: Any, axis: Any = None) -> None:
    """numba's bounds check; inside a kernel body the IndexError also carries the array, the
    axis, the index and extent at run time, and the line."""
    site = getattr(_current, "site", None)
    if site is None or not context.enable_boundscheck:
        return _numba_boundscheck(context, builder, ind, dimlen, axis)
    name, loc = site
    where = f"{loc.filename}:{loc.line}"
    axis_text = str(axis) if isinstance(axis, int) else "?"
    bad = builder.or_(builder.icmp_signed(">=", ind, dimlen), builder.icmp_signed("<", ind, ind.type(0)))
    with cgutils.if_unlikely(builder, bad):
        context.call_conv.return_dynamic_user_exc(
            builder, IndexError, (BOUNDS_MARKER, name or "?", axis_text, ind, dimlen, where),
            (None, None, None, types.intp, types.intp, None))


cgutils.do_boundscheck = _boundscheck


def bounds_error(exc: IndexError, kernel: str) -> errors.BoundsError | None:
    """The BoundsError for an IndexError raised by a body's bounds check, else None."""
    args = exc.args
    if len(args) != 6 or args[0] != BOUNDS_MARKER:
        return None
    _, name, axis, index, extent, where = args
    filename, _, line = where.rpartition(":")
    return errors.BoundsError(
        f"index {index} is out of bounds for axis {axis} of '{name}' (size {extent}) in kernel '{kernel}'",
        where=(filename, int(line)) if line.isdigit() else None,
        values={"array": name, "axis": axis, "index": index, "size": extent},
        fix="keep the index below the array's extent on that axis, or launch over a smaller domain",
    )
