"""A verdict on each entry of a store: ok, corrupt or stale, with the reason.

``jitbridge cache verify`` prints the verdicts, ``cache prune --stale`` removes the stale
entries and ``cache export`` leaves them out of bundles. Corrupt covers everything this
runtime refuses to load: a damaged or misfiled file, one that is not ours or not private,
one whose pickle names something outside the allow-list. Stale is an intact entry it will
not load again (``records.stale_reason``): built for other versions or another CPU, or from
code that a newer build has replaced.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from . import key as keys
from . import ptx, records, unpickle
from .store import Corrupt, EntryInfo, Store, Untrusted

OK, CORRUPT, STALE = "ok", "corrupt", "stale"


@dataclass(frozen=True)
class Verdict:
    info: EntryInfo
    status: str  # OK, CORRUPT or STALE
    reason: str | None
    meta: dict[str, Any]

    def label(self) -> str:
        """``name [variant] (argument types)`` as far as the entry's metadata tells."""
        meta = self.meta
        if not meta:
            return "?"
        variant = f" [{meta['variant']}]" if meta.get("variant") else ""
        if meta.get("cc"):  # a CUDA entry: which GPU generation and toolkit it was built for
            variant = f" [cuda sm_{''.join(map(str, meta['cc']))}, nvvm {meta.get('toolkit')}]"
        return f"{meta.get('name')}{variant} {meta.get('arguments') or meta.get('signature')}"


def here() -> dict[str, Any]:
    """This runtime's versions and CPU, as entries record theirs."""
    return {"versions": dict(keys.versions()), "machine": list(keys.machine())}


def audit(store: Store, info: EntryInfo, runtime: dict[str, Any]) -> Verdict:
    """The verdict on one entry (reads it whole; changes nothing)."""
    try:
        meta, payload = store.load(info.path, info.key)
        ptx.check(meta, payload)
    except Corrupt as exc:
        return Verdict(info, CORRUPT, str(exc), {})
    except Untrusted as exc:
        return Verdict(info, CORRUPT, f"refused: {exc}", {})
    except unpickle.Refused as exc:
        return Verdict(info, CORRUPT, f"refused: loading it would need {exc}", {})
    except OSError as exc:
        return Verdict(info, CORRUPT, f"refused: unreadable: {exc.strerror}", {})
    why = records.stale_reason(meta, store, runtime)
    return Verdict(info, STALE if why else OK, why, meta)


def audit_all(store: Store) -> Iterator[Verdict]:
    runtime = here()
    for info in store.entries():
        yield audit(store, info, runtime)
