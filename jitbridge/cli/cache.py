"""``jitbridge cache ...``: look at, check, trim and move the compiled-kernel cache."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import config, errors
from ..cache import bundle, unpickle
from ..cache.key import versions
from ..cache.numba_cache import current_store
from ..cache.store import Corrupt, Untrusted

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


def _fail(exc: errors.JitBridgeError) -> typer.Exit:
    typer.echo(str(exc), err=True)
    return typer.Exit(2)


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
        except Untrusted as exc:
            label = f"<refused: {exc}>"
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(info.mtime))
        typer.echo(f"{info.key[:16]}  {_size(info.size):>10}  {stamp}  {label}")


@app.command("info")
def info() -> None:
    """Where the cache is, its entries, its size, and temporary files left by killed writers."""
    store = current_store()
    entries = list(store.entries())
    orphans = store.orphans()
    typer.echo(f"dir:      {store.root}")
    typer.echo(f"entries:  {len(entries)}")
    typer.echo(f"size:     {_size(sum(e.size for e in entries))} (bound {_size(config.settings.cache_max_bytes)})")
    typer.echo(f"orphans:  {len(orphans)} temporary file(s) of killed writers, {_size(sum(o.size for o in orphans))}"
               + (" (`jitbridge cache prune` removes them)" if orphans else ""))
    typer.echo(f"disabled: {config.settings.disable_cache}")


@app.command("clear")
def clear() -> None:
    """Remove every entry."""
    typer.echo(f"removed {current_store().clear()} entries")


@app.command("prune")
def prune(max_size: Annotated[str, typer.Option(help="Keep at most this much, e.g. 500M, 2G.")] = "") -> None:
    """Remove temporary files of killed writers, then LRU entries until the cache fits in --max-size."""
    try:
        limit = config.parse_size(max_size) if max_size else config.settings.cache_max_bytes
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    store = current_store()
    orphans = store.remove_orphans()
    removed = store.prune(limit)
    typer.echo(f"removed {len(orphans)} orphaned temporary file(s) ({_size(sum(o.size for o in orphans))})")
    typer.echo(f"removed {len(removed)} entries ({_size(sum(e.size for e in removed))}); "
               f"{_size(store.total_bytes())} left")


@app.command("verify")
def verify() -> None:
    """Check every entry (checksum, key, ownership, loadability); list corrupt, refused and stale ones."""
    store = current_store()
    here = {"versions": dict(versions()), "machine": _machine()}
    ok = stale = bad = 0
    for entry in store.entries():
        try:
            meta, payload = store.load(entry.path, entry.key)
            unpickle.check(payload)
        except (Corrupt, Untrusted, unpickle.Refused) as exc:
            bad += 1
            kind = "corrupt " if isinstance(exc, Corrupt) else "refused "
            typer.echo(f"{kind} {entry.key[:16]}  {exc}")
            continue
        except OSError as exc:
            bad += 1
            typer.echo(f"refused  {entry.key[:16]}  unreadable: {exc.strerror}")
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
    typer.echo(f"{ok} ok, {stale} stale, {bad} corrupt or refused")
    if bad:
        raise typer.Exit(1)


@app.command("keygen")
def keygen(path: Annotated[Path, typer.Argument(help="Key file to create (mode 0600; never overwritten).")]) -> None:
    """Create a random key for signing bundles; keep it secret, and give it to those who import."""
    try:
        bundle.new_key(path)
    except errors.CacheError as exc:
        raise _fail(exc) from None
    typer.echo(f"wrote a new key to {path}")


SignKey = Annotated[Path | None, typer.Option("--sign", dir_okay=False,
                                              help="Sign the bundle with the key in this file.")]
VerifyKey = Annotated[Path | None, typer.Option("--verify", dir_okay=False,
                                                help="Require a signature by the key in this file.")]
TrustUnsigned = Annotated[bool, typer.Option("--trust-unsigned", help="Import without checking a signature.")]


@app.command("export")
def export(path: Annotated[Path, typer.Argument(help="Bundle file to write.")], sign: SignKey = None) -> None:
    """Write every entry this runtime would load into one bundle file."""
    try:
        count = bundle.export(current_store(), path, key=bundle.read_key(sign) if sign else None)
    except errors.CacheError as exc:
        raise _fail(exc) from None
    typer.echo(f"exported {count} entries to {path}" + (" (signed)" if sign else " (unsigned)"))


@app.command("import")
def import_(path: Annotated[Path, typer.Argument(help="Bundle file to read.", exists=True, dir_okay=False)],
            verify_key: VerifyKey = None, trust_unsigned: TrustUnsigned = False) -> None:
    """Add a signed bundle's entries (--verify KEYFILE, or --trust-unsigned); each entry is checked too."""
    try:
        key = bundle.read_key(verify_key) if verify_key else None
        imported, rejected = bundle.import_(current_store(), path, key=key, trust_unsigned=trust_unsigned)
    except errors.CacheError as exc:
        raise _fail(exc) from None
    typer.echo(f"imported {imported} entries from {path}")
    for member, reason in rejected:
        typer.echo(f"rejected {member}: {reason}", err=True)
    if rejected:
        raise typer.Exit(1)
