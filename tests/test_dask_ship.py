"""What ship_cache puts in its bundle (in this process, no cluster): the entries of the named
kernels and of everything they reach, a warning for a kernel with nothing built, and a clear
error for something that is not a function or kernel. The cluster side is in test_dask.py."""
from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

import jitbridge as jb
import jitbridge.kernels as K
from jitbridge import errors

ship = pytest.importorskip("jitbridge.dask.ship", reason="the dask extra is not installed")


@jb.kernel
def never_run(i, x, out):
    out[i] = x[i] + 7.0


@jb.kernel(signatures=["float64[::1], float64[::1]"])
def declared(i, x, out):
    out[i] = x[i] - 7.0


def _entries(data: bytes) -> int:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return sum(name.startswith("entries/") for name in zf.namelist())


def test_names_reach_the_kernels_behind_library_functions() -> None:
    assert "jitbridge.kernels.elementwise._gelu_tanh_k" in ship.names_of([K.gelu])  # held in a dict
    assert "jitbridge.kernels.softmax._rows" in ship.names_of([K.softmax])
    assert {"jitbridge.kernels.softmax._rows", "jitbridge.kernels.histogram._count"} <= ship.names_of([K])
    assert ship.names_of([never_run]) == {never_run.jb_name}
    with pytest.raises(errors.ArgumentError, match="takes jb.jit functions"):
        ship.names_of([42])


@jb.kernel
def shipped_here(i, x, out):
    out[i] = x[i] * 5.0


@jb.kernel
def left_here(i, x, out):
    out[i] = x[i] * 6.0


def test_bundle_holds_only_the_named_kernels(cache_dir) -> None:
    x = np.linspace(-1, 1, 64)
    out = np.empty_like(x)
    shipped_here[64](x, out)  # kernels no other test runs: built into this test's cache folder
    left_here[64](x, out)
    everything, total = ship.bundle_bytes()
    only, count = ship.bundle_bytes([shipped_here])
    assert (count, total) == (1, 2) and _entries(only) == 1 and _entries(everything) == 2
    with pytest.warns(errors.CacheWarning, match="nothing compiled to ship for .*never_run"):
        ship.bundle_bytes([never_run])
    _, built = ship.bundle_bytes([declared])  # declared signatures are compiled first
    assert built == 2  # its serial and parallel launchers


def test_plugin_is_named_by_its_bundle() -> None:
    a, b = ship.CachePlugin(b"one"), ship.CachePlugin(b"two")
    assert a.name != b.name and a.name == ship.CachePlugin(b"one").name
    assert ship.CachePlugin(b"one", "/tmp/x").name != a.name
