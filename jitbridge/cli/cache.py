"""``jitbridge cache ...``: look at, check, trim and move the compiled-kernel cache."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import config
from ..cache import audit, bundle
from ..cache.store import Corrupt, Untrusted, current_store
from .common import user_errors

app = typer.Typer(help="Inspect and manage the on-disk kernel cache.", no_args_is_help=True)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


@app.command("ls", short_help="List entries: key, size, last use, kernel, variant and arguments.")
def ls() -> None:
    """List entries: key, size, last use, then the function or kernel, its launch variant
    (serial, parallel, ...) and the argument types it was compiled for."""
    store = current_store()
    for info in store.entries():
        try:
            meta = store.load_meta(info)
            label = audit.Verdict(info, audit.OK, None, meta).label()
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


@app.command("prune", short_help="Remove leftovers, stale entries (--stale) and LRU entries beyond --max-size.")
def prune(
    max_size: Annotated[str, typer.Option(metavar="SIZE", help="Keep at most this much, e.g. 500M, 2G "
                                                               "(default: JITBRIDGE_CACHE_MAX_BYTES).")] = "",
    stale: Annotated[bool, typer.Option("--stale", help="Also remove stale entries (see `cache verify`).")] = False,
) -> None:
    """Remove temporary files of killed writers, stale entries with --stale, then least
    recently used entries until the cache fits in --max-size."""
    try:
        limit = config.parse_size(max_size) if max_size else config.settings.cache_max_bytes
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    store = current_store()
    orphans = store.remove_orphans()
    typer.echo(f"removed {len(orphans)} orphaned temporary file(s) ({_size(sum(o.size for o in orphans))})")
    if stale:
        gone = [v for v in audit.audit_all(store) if v.status == audit.STALE and store.remove(v.info.key)]
        typer.echo(f"removed {len(gone)} stale entries ({_size(sum(v.info.size for v in gone))})")
    removed = store.prune(limit)
    typer.echo(f"removed {len(removed)} entries ({_size(sum(e.size for e in removed))}); "
               f"{_size(store.total_bytes())} left")


@app.command("verify", short_help="Report each entry as ok, stale or corrupt, with the reason.")
def verify() -> None:
    """Check every entry (checksum, key, ownership, loadability) and report it as ok, stale
    (built for other versions or another CPU, or from code that has changed since: the
    reason says what) or corrupt. Exits 1 when an entry is corrupt; `cache prune --stale`
    removes the stale ones."""
    counts = {audit.OK: 0, audit.STALE: 0, audit.CORRUPT: 0}
    for verdict in audit.audit_all(current_store()):
        counts[verdict.status] += 1
        detail = verdict.label() if verdict.status == audit.OK else (
            f"{verdict.label()}: {verdict.reason}" if verdict.meta else verdict.reason)
        typer.echo(f"{verdict.status:<8} {verdict.info.key[:16]}  {detail}")
    typer.echo(f"{counts[audit.OK]} ok, {counts[audit.STALE]} stale, {counts[audit.CORRUPT]} corrupt")
    if counts[audit.CORRUPT]:
        raise typer.Exit(1)


@app.command("keygen")
def keygen(path: Annotated[Path, typer.Argument(metavar="KEYFILE", help="Key file to create (mode 0600; never "
                                                                        "overwritten).")]) -> None:
    """Create a random key for signing bundles; keep it secret, and give it to those who import."""
    with user_errors():
        bundle.new_key(path)
    typer.echo(f"wrote a new key to {path}")


SignKey = Annotated[Optional[Path], typer.Option("--sign", metavar="KEYFILE", dir_okay=False,
                                                 help="Sign the bundle with the key in this file.")]
VerifyKey = Annotated[Optional[Path], typer.Option("--verify", metavar="KEYFILE", dir_okay=False,
                                                   help="Require a signature by the key in this file.")]
TrustUnsigned = Annotated[bool, typer.Option("--trust-unsigned", help="Import without checking a signature.")]


@app.command("export", short_help="Write the entries this runtime would load into one bundle file.")
def export(
    path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle file to write.")],
    sign: SignKey = None,
    include_stale: Annotated[bool, typer.Option("--include-stale", help="Ship stale entries too.")] = False,
) -> None:
    """Write every entry this runtime would load into one bundle file; stale entries (see
    `cache verify`) stay out unless --include-stale."""
    store = current_store()
    verdicts = list(audit.audit_all(store))
    shipped = [v.info for v in verdicts if v.status == audit.OK or (include_stale and v.status == audit.STALE)]
    skipped = sum(v.status == audit.STALE for v in verdicts) if not include_stale else 0
    with user_errors():
        count = bundle.export(store, path, entries=shipped, key=bundle.read_key(sign) if sign else None)
    typer.echo(f"exported {count} entries to {path}" + (" (signed)" if sign else " (unsigned)")
               + (f"; left out {skipped} stale (--include-stale ships them)" if skipped else ""))


@app.command("import")
def import_(path: Annotated[Path, typer.Argument(metavar="BUNDLE", help="Bundle file to read.", exists=True,
                                                 dir_okay=False)],
            verify_key: VerifyKey = None, trust_unsigned: TrustUnsigned = False) -> None:
    """Add a signed bundle's entries (--verify KEYFILE, or --trust-unsigned); each entry is checked too."""
    with user_errors():
        key = bundle.read_key(verify_key) if verify_key else None
        imported, rejected = bundle.import_(current_store(), path, key=key, trust_unsigned=trust_unsigned)
    typer.echo(f"imported {imported} entries from {path}")
    for member, reason in rejected:
        typer.echo(f"rejected {member}: {reason}", err=True)
    if rejected:
        raise typer.Exit(1)
