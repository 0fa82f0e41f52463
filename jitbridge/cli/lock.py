"""``jitbridge lock`` and ``jitbridge verify``: pin the code, versions and CPU a project's
kernels are built from, and check a later run against that."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import project_importable, user_errors

LOCK_FILE = Path("jitbridge.lock")


def lock_command(
    targets: Annotated[list[str], typer.Argument(
        metavar="TARGET", help="Module files, package folders or dotted module names; MODULE:NAME locks "
                                  "one function or kernel.")],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="FILE", help="Where to write the lock.")] = LOCK_FILE,
) -> None:
    """Write a lock file: the content hash of every jitted function and kernel in TARGETS,
    with the Python, jitbridge, numba, llvmlite and NumPy versions and the CPU."""
    from .. import lock

    project_importable()
    with user_errors():
        written = lock.write(targets, output)
    typer.echo(f"locked {len(written['kernels'])} function(s) and kernel(s) from {len(written['modules'])} "
               f"module(s) into {output}")


def verify_command(
    lock_file: Annotated[Path, typer.Option("--lock", metavar="FILE", help="The lock file to check against.")] = LOCK_FILE,
) -> None:
    """Check that the locked modules' kernels, the versions and the CPU are as locked; list
    every difference and exit 1 if there is any."""
    from .. import lock

    project_importable()
    with user_errors():
        locked = lock.read(lock_file)
        found = lock.differences(locked)
    have, total = lock.cached_fraction(locked)
    for line in found:
        typer.echo(line)
    if found:
        typer.echo(f"{len(found)} difference(s) from {lock_file}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{total} function(s) and kernel(s), versions and CPU match {lock_file}; "
               f"{have} of {total} have cache entries for this code")
