"""``jitbridge explain MODULE:NAME``: the report of ``jitbridge.explain`` from the shell."""
from __future__ import annotations

import functools
from typing import Annotated, Any, Optional

import typer

from .. import errors


def explain_command(
    target: Annotated[str, typer.Argument(help="MODULE:NAME, MODULE a dotted module or a .py file.")],
    signature: Annotated[Optional[str], typer.Option(
        help='Also compile these argument types, numba syntax: "float64[::1], float64".')] = None,
) -> None:
    """Where a jitted function or kernel is defined, what its cache key depends on, which
    specializations are cached, and whether their loops use SIMD (and if not, why)."""
    from ..inspection import explain
    from ..frontend import prebuild

    module_name, _, name = target.rpartition(":")
    if not module_name or not name:
        raise typer.BadParameter(f"expected MODULE:NAME, got {target!r}")
    try:
        module = prebuild.import_target(module_name)[0]
        obj = _resolve(module, name)
        typer.echo(explain(obj, signature))
    except errors.JitBridgeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _resolve(module: Any, name: str) -> Any:
    try:
        return functools.reduce(getattr, name.split("."), module)
    except AttributeError:
        raise errors.ArgumentError(f"{module.__name__} has no {name!r}", values={"module": module.__file__},
                                   fix="name a @jb.jit function or @jb.kernel defined in that module") from None
