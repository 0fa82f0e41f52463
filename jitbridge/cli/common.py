"""What every ``jitbridge`` command shares: how a user error ends a command, and where the
user's code is imported from."""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

import typer

from .. import errors


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A JitBridgeError inside becomes its message on stderr and exit status 2 (a usage or
    input problem the message explains), never a traceback."""
    try:
        yield
    except errors.JitBridgeError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def project_importable() -> None:
    """Put the current folder first on ``sys.path``, as ``python -m`` does, so that
    ``jitbridge explain pkg.mod:fn`` run from a project folder finds ``pkg``."""
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
