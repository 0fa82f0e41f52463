"""Targets: the CPU and the CUDA backend behind one small interface, each loaded the first time
it is asked for (``import jitbridge`` never imports ``numba.cuda``).

A backend says whether it can run here (``unavailable_reason``) and turns an immutable
``KernelSpec`` into a target kernel (``prepare``) that compiles for argument types and launches
over a domain. The frontend resolves the backend once per kernel and target.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from .spec import KernelSpec

NAMES = ("cpu", "cuda")
_MODULES = {"cpu": "jitbridge.targets.cpu_launch", "cuda": "jitbridge.targets.cuda"}


class Backend(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when the target can run here, else why not."""

    def prepare(self, spec: KernelSpec, compiler: Any) -> Any:
        """The target kernel for ``spec``: it compiles for argument types and launches."""


def get(name: str) -> Backend:
    """The backend called ``name`` ("cpu" or "cuda")."""
    return importlib.import_module(_MODULES[name]).BACKEND
