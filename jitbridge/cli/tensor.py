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
    """Remove your segments whose owning process is provably dead (killed before it could clean up)."""
    removed = reclaim_dead_segments()
    for name in removed:
        typer.echo(f"removed {name}")
    typer.echo(f"{len(removed)} segment(s) reclaimed")


@app.command("ls")
def ls() -> None:
    """List jitbridge segments: owner process, state (alive, dead: `gc` removes it, or unknown) and size."""
    segments = list_segments()
    for info in segments:
        typer.echo(f"{info.name}  pid={info.owner_pid} ({info.state})  {info.nbytes} bytes")
    dead = sum(info.state == "dead" for info in segments)
    typer.echo(f"{len(segments)} segment(s), {dead} dead" + (" (`jitbridge tensor gc` removes them)" if dead else ""))


if __name__ == "__main__":
    app()
