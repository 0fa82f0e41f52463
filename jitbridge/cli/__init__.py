"""The ``jitbridge`` command: one typer app per command group, joined here at import, so the
imported ``app`` is the whole command (``CliRunner().invoke(app, [...])`` works as the shell
does). Group modules import only typer and the cache at their top; commands import the
frontend, inspection and lock code when they run."""
from __future__ import annotations

import typer

from . import cache, compile as compile_cmd, explain, info, lock, tensor

# Plain help (rich_markup_mode=None): click rewraps docstrings to the terminal and shows no
# type column, where typer's rich help kept docstring line breaks and printed "<bool>".
app = typer.Typer(help="jitbridge: cached CPU-SIMD and CUDA kernels from plain Python.", no_args_is_help=True,
                  add_completion=False, rich_markup_mode=None)
app.command("info", short_help="Versions, CPU and SIMD, threads, CUDA, cache folder, huge pages.")(info.info)
app.command("compile", short_help="Prebuild a project's kernels into the cache, in parallel.")(
    compile_cmd.compile_paths)
app.command("explain", short_help="Where a function or kernel is defined, what is cached, whether it uses SIMD.")(
    explain.explain_command)
app.command("lock", short_help="Write a lock file: the code, versions and CPU kernels are built from.")(
    lock.lock_command)
app.command("verify", short_help="Check the code, versions and CPU against a lock file.")(lock.verify_command)
app.add_typer(cache.app, name="cache")
app.add_typer(tensor.app, name="tensor")


def main() -> None:
    app()
