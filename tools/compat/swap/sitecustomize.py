"""``make compat``: numba's ``jit``/``njit`` become ``jitbridge.jit`` in test code only.

This folder goes on ``PYTHONPATH`` for the jitbridge half of a compat run, so it applies to
every Python process the tests start too. Once numba is imported, its ``jit`` and ``njit``
attributes are replaced by a module ``__getattr__`` that answers by who asks: numba's own
library code (and jitbridge's) gets numba's decorators, everything else (numba's tests, their
usecase modules, code the tests write to temporary folders and ``exec``) gets ``jitbridge.jit``.
Asking at attribute-access time covers ``from numba import njit``, ``numba.njit`` and
``nb.njit`` alike, whenever the test module does it.
"""
from __future__ import annotations

import importlib.abc
import importlib.util
import os
import sys

_SWAPPED = ("jit", "njit")


def _library_dirs(numba_module) -> tuple[tuple[str, ...], str]:
    numba_dir = os.path.dirname(numba_module.__file__) + os.sep
    spec = importlib.util.find_spec("jitbridge")
    jitbridge_dir = os.path.dirname(spec.origin) + os.sep if spec and spec.origin else "\0"
    return (numba_dir, jitbridge_dir), os.path.join(numba_dir, "tests") + os.sep


def _install(numba_module) -> None:
    real = {name: numba_module.__dict__.pop(name) for name in _SWAPPED}
    libraries, tests_dir = _library_dirs(numba_module)

    def __getattr__(name: str):
        if name not in real:
            raise AttributeError(f"module 'numba' has no attribute {name!r}")
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith("<frozen"):
            frame = frame.f_back  # importlib's own frames during `from numba import jit`
        filename = frame.f_code.co_filename if frame is not None else ""
        if filename.startswith(libraries) and not filename.startswith(tests_dir):
            return real[name]
        import jitbridge

        return jitbridge.jit

    numba_module.__getattr__ = __getattr__


class _AfterNumbaImport(importlib.abc.MetaPathFinder):
    """Patches numba right after its ``__init__`` runs, so processes that never import numba
    pay nothing."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "numba":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("numba")
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _install(module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _AfterNumbaImport())
