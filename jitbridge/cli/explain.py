"""``jitbridge explain MODULE:NAME``: the report of ``jitbridge.explain`` from the shell."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import project_importable, user_errors


def explain_command(
    target: Annotated[str, typer.Argument(
        metavar="MODULE:NAME", help="MODULE a dotted module (run from the project folder) or a .py file, "
                                    "e.g. pkg.ops:double or pkg/ops.py:double.")],
    signature: Annotated[Optional[str], typer.Option(
        metavar="TYPES", help='Also compile these argument types, numba syntax: "float64[::1], float64".')] = None,
) -> None:
    """Where a jitted function or kernel is defined, what its cache key depends on, which
    specializations are cached, and whether their loops use SIMD (and if not, why)."""
    from ..frontend import prebuild
    from ..inspection import explain

    project_importable()
    with user_errors():
        typer.echo(explain(prebuild.find(target), signature))
