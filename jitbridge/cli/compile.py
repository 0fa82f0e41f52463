"""``jitbridge compile PATH...``: prebuild every declared or recorded specialization."""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .. import config
from ..frontend import prebuild
from .common import project_importable, user_errors


_CORES = os.cpu_count() or 1


def compile_paths(
    paths: Annotated[Optional[list[str]], typer.Argument(
        metavar="PATH", help="Module files, package folders or dotted module names.")] = None,
    manifest: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Specializations recorded with "
                                                     "JITBRIDGE_RECORD=FILE.", exists=True, dir_okay=False)] = None,
    jobs: Annotated[int, typer.Option(metavar="N", help="Worker processes (default: CPU cores).", min=1)] = _CORES,
    target: Annotated[str, typer.Option(metavar="cpu|cuda|all", help="What to build for.")] = "cpu",
    cc: Annotated[Optional[list[str]], typer.Option(
        metavar="MAJORMINOR", help="CUDA compute capability to build PTX for, e.g. 90 (repeatable; default 90). "
        "Needs numba-cuda, not a GPU.")] = None,
) -> None:
    """Import PATHs, find kernels with declared signatures (and those in --manifest), and
    compile them all into the cache, in parallel: CPU code, CUDA PTX, or both."""
    if target not in ("cpu", "cuda", "all"):
        raise typer.BadParameter(f"--target must be cpu, cuda or all, not {target!r}")
    if not paths and manifest is None:
        raise typer.BadParameter("name at least one PATH, or a --manifest")
    variants = _variants(target, cc or ["90"])
    project_importable()
    with user_errors():
        modules = [m for path in paths or () for m in prebuild.import_target(path)]
    items: list = list(dict.fromkeys(prebuild.declared_items(modules, variants)))
    if target != "cuda":
        items.extend(prebuild.hook_items(modules))
    if manifest is not None:
        items.extend(i for i in prebuild.manifest_items(manifest, variants) if i not in items)
    typer.echo(f"{len(modules)} module(s), {len(items)} specialization(s) to build into {config.settings.cache_dir}")
    failures = _run(items, min(jobs, max(len(items), 1)))
    for item, message in failures:
        typer.echo(f"failed: {_label(item)}: {message}", err=True)
    if failures:
        raise typer.Exit(1)


def _variants(target: str, ccs: list[str]) -> tuple[str, ...]:
    """The item variants a --target (and --cc list) asks for."""
    found = prebuild.CPU_VARIANTS if target in ("cpu", "all") else ()
    if target in ("cuda", "all"):
        for text in ccs:
            if not (text.isdigit() and 2 <= len(text) <= 3):
                raise typer.BadParameter(f"--cc takes a compute capability as digits, e.g. 90 or 120, not {text!r}")
            found += (prebuild.cuda_variant(text),)
    return found


def _label(item: object) -> str:
    return f"{item[0]}.{item[1]}" if isinstance(item, tuple) else repr(item)


def _run(items: list, jobs: int) -> list[tuple[prebuild.Item, str]]:
    failures = []
    with typer.progressbar(length=len(items), label="compiling", file=sys.stderr) as bar:
        if jobs == 1:
            for item in items:
                try:
                    prebuild.compile_item(item)
                except Exception as exc:
                    failures.append((item, str(exc).splitlines()[0]))
                bar.update(1)
            return failures
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(jobs, mp_context=context, initializer=prebuild.worker_init,
                                    initargs=(str(config.settings.cache_dir), list(sys.path))) as pool:
            futures = {pool.submit(prebuild.compile_item, item): item for item in items}
            for future in cf.as_completed(futures):
                try:
                    future.result()
                except Exception as exc:
                    failures.append((futures[future], str(exc).splitlines()[0]))
                bar.update(1)
    return failures
