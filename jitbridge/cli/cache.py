"""``jitbridge cache ...``: look at, check, trim and move the compiled-kernel cache."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import config, errors
from ..cache import bundle
from ..cache.key import versions
from ..cache.numba_cache import current_store
from ..cache.store import Corrupt

app = typer.Typer(help="Inspect and manage the on-disk kernel cache.", no_args_is_help=True)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _machine() -> list[Any]:
    from numba.core.registry import cpu_target

    return list(cpu_target.target_context.codegen().magic_tuple())


@app.command("ls")
def ls() -> None:
    """List entries: key, size, last use, kernel and signature."""
    store = current_store()
    for info in store.entries():
        try:
            meta = store.load_meta(info)
            label = f"{meta.get('name')} {meta.get('signature')}"
        except Corrupt as exc:
            label = f"<corrupt: {exc}>"
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.mtime))
        typer.echo(f"{info.key[:16]}  {_size(info.size):>10}  {stamp}  {label}")


@app.command("info")
def info() -> None:
    """Where the cache is, how many entries it holds and how large it is."""
    store = current_store()
    entries = list(store.entries())
    typer.echo(f"dir:      {store.root}")
    typer.echo(f"entries:  {len(entries)}")
    typer.echo(f"size:     {_size(sum(e.size for e in entries))} (bound {_size(config.settings.cache_max_bytes)})")
    typer.echo(f"disabled: {config.settings.disable_cache}")


@app.command("clear")
def clear() -> None:
    """Remove every entry."""
    typer.echo(f"removed {current_store().clear()} entries")


@app.command("prune")
def prune(max_size: Annotated[str, typer.Option(help="Keep at most this much, e.g. 500M, 2G.")] = "") -> None:
    """Remove least recently used entries until the cache fits in --max-size."""
    try:
        limit = config.parse_size(max_size) if max_size else config.settings.cache_max_bytes
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    removed = current_store().prune(limit)
    typer.echo(f"removed {len(removed)} entries ({_size(sum(e.size for e in removed))}); "
               f"{_size(current_store().total_bytes())} left")


@app.command("verify")
def verify() -> None:
    """Check every entry's checksum; say which are corrupt and which are stale for this machine."""
    store = current_store()
    here = {"versions": dict(versions()), "machine": _machine()}
    ok = stale = corrupt = 0
    for entry in store.entries():
        try:
            meta = store.load_meta(entry)
        except Corrupt as exc:
            corrupt += 1
            typer.echo(f"corrupt  {entry.key[:16]}  {exc}")
            continue
        differs = [what for what in ("versions", "machine") if meta.get(what) != here[what]]
        if differs:
            stale += 1
            built = {"versions": f"versions {meta.get('versions')}",
                     "machine": f"CPU {(meta.get('machine') or ['?', '?'])[1]}"}
            typer.echo(f"stale    {entry.key[:16]}  {meta.get('name')}: built for "
                       + " and ".join(built[what] for what in differs))
        else:
            ok += 1
    typer.echo(f"{ok} ok, {stale} stale, {corrupt} corrupt")
    if corrupt:
        raise typer.Exit(1)


@app.command("export")
def export(path: Annotated[Path, typer.Argument(help="Bundle file to write.")]) -> None:
    """Write every entry into one bundle file."""
    typer.echo(f"exported {bundle.export(current_store(), path)} entries to {path}")


@app.command("import")
def import_(path: Annotated[Path, typer.Argument(help="Bundle file to read.", exists=True, dir_okay=False)]) -> None:
    """Add a bundle's entries to this cache (each entry's checksum is verified)."""
    try:
        imported, rejected = bundle.import_(current_store(), path)
    except errors.CacheError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    typer.echo(f"imported {imported} entries from {path}")
    for member in rejected:
        typer.echo(f"rejected {member}: not a valid entry", err=True)
    if rejected:
        raise typer.Exit(1)
