"""A progress bar for a stream, on stderr: rich's (installed with jitbridge's CLI), else
tqdm's, shown when asked for (``progress=True``) or, by default, when stderr is a terminal."""
from __future__ import annotations

import contextlib
import importlib.util
import sys
from typing import Callable, Iterator

from .. import errors


def wanted(progress: bool | None) -> bool:
    if progress is None:
        return bool(getattr(sys.stderr, "isatty", lambda: False)())
    return bool(progress)


@contextlib.contextmanager
def bar(progress: bool | None, total: int | None, description: str) -> Iterator[Callable[[], None]]:
    """Yields ``advance()``, called once per chunk done (a no-op when no bar is shown)."""
    if not wanted(progress):
        yield lambda: None
        return
    if importlib.util.find_spec("rich") is not None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*columns, console=Console(stderr=True)) as shown:
            task = shown.add_task(description, total=total)
            yield lambda: shown.advance(task)
        return
    if importlib.util.find_spec("tqdm") is not None:
        from tqdm import tqdm

        with tqdm(total=total, desc=description, unit="chunk", file=sys.stderr) as shown:
            yield lambda: shown.update(1)
        return
    if progress:
        raise errors.ArgumentError("progress=True needs rich or tqdm, and neither is installed",
                                   where=errors.user_location(), fix="pip install rich (or tqdm), or pass progress=False")
    yield lambda: None
