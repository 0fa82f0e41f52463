"""``jb.profile()``: where a program's kernel time goes, per kernel and specialization.

A profile is a set of telemetry hooks (compile, cache hit, cache miss, launch) that fill a
table while it is active; the launch hook is what swaps the timed launch path in, so outside
a profile launches run exactly as without one. ``JITBRIDGE_PROFILE=1`` profiles a whole
process from its first compile and prints the report to stderr at exit.

    with jb.profile() as p:
        run()
    print(p)              # text table
    p.to_json()           # the same, for a file or a dashboard
    p                     # in a notebook: an HTML table
"""
from __future__ import annotations

import atexit
import dataclasses
import html
import json
import sys
import threading
import time
from typing import Any

from . import config, telemetry

MAX_SHAPES = 8  # distinct shape sets kept per specialization; more are counted, not listed


@dataclasses.dataclass
class Row:
    """One kernel (or ``jb.jit`` function) and specialization: its argument types."""

    name: str
    signature: str
    calls: int = 0
    total_seconds: float = 0.0
    first_seconds: float = 0.0
    nbytes: int = 0
    compiles: int = 0
    compile_seconds: float = 0.0
    cache_hits: int = 0
    cache_misses: int = 0
    miss_reasons: dict[str, int] = dataclasses.field(default_factory=dict)
    shapes: list[list[list[int]]] = dataclasses.field(default_factory=list)
    more_shapes: int = 0
    dtypes: list[str] = dataclasses.field(default_factory=list)
    variants: list[str] = dataclasses.field(default_factory=list)

    @property
    def mean_seconds(self) -> float:
        """Mean time of a call, the first left out when there are others: a first call carries
        one-time costs (compiling or loading, reading the kernel, starting threads)."""
        if self.calls > 1:
            return (self.total_seconds - self.first_seconds) / (self.calls - 1)
        return self.total_seconds

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "mean_seconds": self.mean_seconds}

    def add(self, event: telemetry.Event) -> None:
        if event.kind == "launch":
            if not self.calls:
                self.first_seconds = event.seconds
            self.calls += 1
            self.total_seconds += event.seconds
            self.nbytes += event.nbytes
            shapes = [list(s) for s in event.shapes]
            if shapes not in self.shapes:
                if len(self.shapes) < MAX_SHAPES:
                    self.shapes.append(shapes)
                else:
                    self.more_shapes += 1
            self.dtypes.extend(d for d in dict.fromkeys(event.dtypes) if d not in self.dtypes)
            return
        if event.variant and event.variant not in self.variants:
            self.variants.append(event.variant)
        if event.kind == "compile":
            self.compiles += 1
            self.compile_seconds += event.seconds
        elif event.kind == "cache_hit":
            self.cache_hits += 1
        else:
            self.cache_misses += 1
            self.miss_reasons[event.reason or "?"] = self.miss_reasons.get(event.reason or "?", 0) + 1


class Profile:
    """A profile report; live while its ``with`` block runs, final after."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Row] = {}
        self._lock = threading.Lock()
        self._handles: list[telemetry.Handle] = []
        self._started: float | None = None
        self.wall_seconds = 0.0

    def __enter__(self) -> "Profile":
        if self._handles:
            raise RuntimeError("this profile is already running")
        self._started = time.perf_counter()
        self._handles = [telemetry.on(kind, self._record) for kind in telemetry.EVENTS]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._started is not None:
            self.wall_seconds += time.perf_counter() - self._started
            self._started = None

    def _record(self, event: telemetry.Event) -> None:
        with self._lock:
            row = self._rows.get((event.name, event.signature))
            if row is None:
                row = self._rows[(event.name, event.signature)] = Row(event.name, event.signature)
            row.add(event)

    @property
    def rows(self) -> list[Row]:
        """Every row, the kernel with the most launch time first, and its heaviest
        specialization first within it."""
        with self._lock:
            rows = [dataclasses.replace(r, miss_reasons=dict(r.miss_reasons), shapes=list(r.shapes),
                                        dtypes=list(r.dtypes), variants=list(r.variants)) for r in self._rows.values()]
        per_kernel: dict[str, float] = {}
        for row in rows:
            per_kernel[row.name] = per_kernel.get(row.name, 0.0) + row.total_seconds
        return sorted(rows, key=lambda r: (-per_kernel[r.name], r.name, -r.total_seconds, r.signature))

    def to_dict(self) -> dict[str, Any]:
        kernels: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            kernels.setdefault(row.name, []).append(row.as_dict())
        return {"wall_seconds": self._wall(), "kernels": [
            {"name": name, "calls": sum(r["calls"] for r in specs),
             "total_seconds": sum(r["total_seconds"] for r in specs), "specializations": specs}
            for name, specs in kernels.items()]}

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _wall(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return self.wall_seconds + running

    def _table(self) -> list[list[str]]:
        return [[row.name, row.signature, str(row.calls), _seconds(row.total_seconds), _seconds(row.first_seconds),
                 _seconds(row.mean_seconds), _bytes(row.nbytes), str(row.compiles), _seconds(row.compile_seconds),
                 str(row.cache_hits), str(row.cache_misses)] for row in self.rows]

    def __str__(self) -> str:
        rows = self.rows
        launches = sum(r.total_seconds for r in rows)
        head = (f"jitbridge profile: {len({r.name for r in rows})} kernel(s), {sum(r.calls for r in rows)} call(s) "
                f"taking {_seconds(launches)} of {_seconds(self._wall())}, {sum(r.compiles for r in rows)} compile(s), "
                f"{sum(r.cache_hits for r in rows)} cache hit(s), {sum(r.cache_misses for r in rows)} miss(es)")
        if not rows:
            return head + "\n  (nothing compiled, loaded or launched)"
        table = [list(_HEADERS)]
        for row, cells in zip(rows, self._table()):
            table.append(["" if len(table) > 1 and row.name == rows[len(table) - 2].name else cells[0], *cells[1:]])
        widths = [max(len(line[c]) for line in table) for c in range(len(_HEADERS))]
        lines = [head]
        for position, line in enumerate(table):
            lines.append("  " + "  ".join(cell.ljust(widths[c]) if c < 2 else cell.rjust(widths[c])
                                          for c, cell in enumerate(line)).rstrip())
            if position:
                lines += ["      " + text for text in _details(rows[position - 1])]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = self.rows
        cells = "".join(
            "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in line)
            + f"<td>{html.escape('; '.join(_details(row)))}</td></tr>"
            for line, row in zip(self._table(), rows))
        header = "".join(f"<th>{html.escape(h)}</th>" for h in (*_HEADERS, "shapes, dtypes, misses"))
        caption = html.escape(str(self).splitlines()[0])
        return f"<table><caption>{caption}</caption><thead><tr>{header}</tr></thead><tbody>{cells}</tbody></table>"

    def __repr__(self) -> str:
        return f"<jitbridge profile: {len(self._rows)} row(s){' (running)' if self._handles else ''}>"


_HEADERS = ("kernel", "specialization", "calls", "total", "first", "mean", "bytes", "compiles", "compiling", "hits",
            "misses")


def _details(row: Row) -> list[str]:
    out = []
    if row.shapes:
        shown = "; ".join(", ".join(str(tuple(s)) for s in shapes) for shapes in row.shapes)
        out.append(f"shapes: {shown}" + (f" (+{row.more_shapes} more)" if row.more_shapes else "")
                   + (f"  dtypes: {', '.join(row.dtypes)}" if row.dtypes else ""))
    if row.variants:
        out.append("variants: " + ", ".join(row.variants))
    out += [f"miss: {why}" + (f" (x{n})" if n > 1 else "") for why, n in row.miss_reasons.items()]
    return out


def _seconds(s: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns" if s else "0"


def _bytes(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def profile() -> Profile:
    """Profile the kernels and ``jb.jit`` functions a block runs: ``with jb.profile() as p: ...``,
    then ``print(p)``, ``p.to_json()`` or ``p`` in a notebook. Per kernel and specialization it
    records calls, total and mean time, shapes and dtypes seen, bytes of the array arguments,
    compiles, and cache hits and misses with the reason for each miss. Outside a profile,
    launches carry no timing code at all."""
    return Profile()


_process_profile: Profile | None = None


def from_settings() -> None:
    """With JITBRIDGE_PROFILE=1, profile the whole process (from the first compile, which
    calls this) and print the report to stderr at exit."""
    global _process_profile
    if _process_profile is None and config.settings.profile:
        _process_profile = Profile().__enter__()
        atexit.register(_print_at_exit, _process_profile)


def _print_at_exit(report: Profile) -> None:
    report.__exit__(None, None, None)
    print(report, file=sys.stderr)
