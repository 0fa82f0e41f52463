"""`jitbridge tensor ...`: inspect and reclaim the shared-memory segments of SharedTensors."""
from __future__ import annotations

import typer

from jitbridge.tensor import list_segments, reclaim_dead_segments

app = typer.Typer(help="Shared-memory tensors: list and reclaim /dev/shm segments.", no_args_is_help=True)


@app.callback()
def _tensor() -> None:
    """Shared-memory tensors: list and reclaim /dev/shm segments."""


@app.command()
def gc() -> None:
    """Remove segments whose owning process is dead (killed before it could clean up)."""
    removed = reclaim_dead_segments()
    for name in removed:
        typer.echo(f"removed {name}")
    typer.echo(f"{len(removed)} segment(s) reclaimed")


@app.command("ls")
def ls() -> None:
    """List jitbridge segments with their owner process and size."""
    segments = list_segments()
    for info in segments:
        state = "alive" if info.owner_alive else "dead"
        typer.echo(f"{info.name}  pid={info.owner_pid} ({state})  {info.nbytes} bytes")
    typer.echo(f"{len(segments)} segment(s)")


if __name__ == "__main__":
    app()
