"""The ``jitbridge`` command: one typer app per command group, joined here."""
from __future__ import annotations

import typer

from . import info

app = typer.Typer(help="jitbridge: cached CPU-SIMD and CUDA kernels from plain Python.", no_args_is_help=True,
                  add_completion=False)
app.command("info")(info.info)


def _join_groups() -> None:
    """Command groups live in their own modules; importing them here keeps start-up small."""
    from . import cache, compile as compile_cmd, explain, lock, tensor

    app.add_typer(cache.app, name="cache")
    app.add_typer(tensor.app, name="tensor")
    app.command("compile")(compile_cmd.compile_paths)
    app.command("explain")(explain.explain_command)
    app.command("lock")(lock.lock_command)
    app.command("verify")(lock.verify_command)


def main() -> None:
    _join_groups()
    app()
