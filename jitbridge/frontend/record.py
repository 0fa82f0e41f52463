"""``JITBRIDGE_RECORD=FILE``: append every specialization a program compiles or loads.

``jitbridge compile --manifest FILE`` replays the file to prebuild a cache. Argument types
are stored pickled (numba types pickle; their printed form does not parse back).
"""
from __future__ import annotations

import base64
import json
import os
import pickle
from pathlib import Path
from typing import Any, Iterator

from .. import config


def record(owner: Any, variant: str | None, argtypes: tuple[Any, ...]) -> None:
    """Append one specialization, if it is one a later ``jitbridge compile`` can rebuild: it
    must be disk-cached and reachable by import (not from ``__main__`` or ``exec``)."""
    path = config.settings.record
    if path is None or owner.__module__ in (None, "__main__") or "<locals>" in owner.__qualname__:
        return
    line = json.dumps({
        "module": owner.__module__,
        "qualname": owner.__qualname__,
        "variant": variant,
        "args": base64.b64encode(pickle.dumps(tuple(argtypes))).decode(),
        "display": str(tuple(argtypes)),
    })
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as f:
        f.write(line + "\n")


def read(path: Path) -> Iterator[dict[str, Any]]:
    """The manifest's entries, de-duplicated, with ``args`` unpickled to numba types.

    Unpickling runs code: read only manifests your own programs wrote."""
    seen = set()
    for line in Path(path).read_text().splitlines():
        if not line.strip() or line in seen:
            continue
        seen.add(line)
        item = json.loads(line)
        item["args"] = pickle.loads(base64.b64decode(item["args"]))
        yield item
