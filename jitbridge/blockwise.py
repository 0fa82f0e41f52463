"""One block of data through a function or a kernel: the unit of work that ``jitbridge.dask``
runs per Dask block and ``jitbridge.stream`` runs per chunk.

A ``jb.jit`` function, a library kernel or any other callable is called with the blocks (and
the keyword arguments) as they are. A ``jb.kernel`` is element-wise over the block: it is
launched over the block's shape with the arguments given, then one output array of that shape,
which is the result (so ``relu(i, x, out)`` maps ``x`` to ``out``). A 1-D kernel over an N-D
block runs over its elements in order. The output's dtype is ``dtype=`` if given, else that of
the first array argument. Array blocks are passed C-contiguous and read-only, so a kernel
compiles (or loads) one specialization per dtype whatever the chunking and wherever the block
came from (Dask hands workers read-only arrays when it deserializes them, writable ones when it
slices or copies): blocks are Dask's, never to be written.

A ``BlockFunction`` pickles small (the kernel by its function, see ``Kernel.__reduce__``), so
Dask sends it to workers as it is.
"""
from __future__ import annotations

import contextlib
import dataclasses
import inspect
from typing import Any, Iterator

import numba
import numpy as np

from . import errors
from .frontend.kernel import Kernel


@dataclasses.dataclass(frozen=True)
class BlockFunction:
    """``fn`` applied to one block; ``threads`` caps the threads it may use (None: its own
    choice by size), ``kwargs`` go to callables (kernels take positional arguments only)."""

    fn: Any
    dtype: np.dtype | None = None
    threads: int | None = None
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise errors.ArgumentError("threads must be a positive int or None", values={"threads": repr(self.threads)},
                                       fix="threads=1 runs each block on one thread; None lets the kernel choose")
        if isinstance(self.fn, Kernel) and self.kwargs:
            raise errors.ArgumentError(
                f"kernel '{self.fn.jb_name}' takes positional arguments only",
                values={"keyword arguments": ", ".join(name for name, _ in self.kwargs)},
                fix="pass every argument positionally, in the kernel's parameter order")
        if not isinstance(self.fn, Kernel) and not callable(self.fn):
            raise errors.ArgumentError("expected a jb.jit function, a jb.kernel or a callable",
                                       values={"got": type(self.fn).__name__},
                                       fix="pass the function or kernel itself")

    @property
    def is_kernel(self) -> bool:
        return isinstance(self.fn, Kernel)

    def check_arity(self, nargs: int) -> None:
        """A kernel must take the ``nargs`` arguments given and one output after them."""
        if self.is_kernel and len(self.fn.arg_names) != nargs + 1:
            raise errors.ArgumentError(
                f"kernel '{self.fn.jb_name}' must take the {nargs} argument(s) given, then one output array",
                values={"parameters after the index": ", ".join(self.fn.arg_names), "arguments given": nargs},
                fix="give the kernel a last parameter `out` that it writes at the launch index "
                    "(e.g. out[i] = ...), and pass every other argument")

    def output_dtype(self, args: tuple[Any, ...]) -> np.dtype | None:
        """The result dtype when it is known without running anything: ``dtype=``, or for a
        kernel that of the first array argument."""
        if self.dtype is not None:
            return np.dtype(self.dtype)
        if self.is_kernel:
            for a in args:
                if hasattr(a, "dtype") and hasattr(a, "shape"):
                    return np.dtype(a.dtype)
        return None

    def __call__(self, *args: Any, out: np.ndarray | None = None) -> Any:
        """The result for one block; with ``out`` (see ``writes_into``) it is written there."""
        args = tuple(read_only(a) if _is_array(a) else a for a in args)
        if self.is_kernel:
            return self._launch(args, out)
        kwargs = dict(self.kwargs)
        if out is not None:
            kwargs["out"] = out
        if self.threads is not None and _takes(self.fn, "threads"):
            kwargs.setdefault("threads", self.threads)
            return self.fn(*args, **kwargs)
        with _numba_threads(self.threads):
            return self.fn(*args, **kwargs)

    def writes_into(self, out: np.ndarray, block: np.ndarray) -> bool:
        """Whether the result for ``block`` (the only argument) can be written straight into
        ``out``, saving a buffer and a copy: a kernel's output of ``out``'s dtype, or a
        library kernel that keeps a float block's shape and dtype and takes ``out=``."""
        if out.shape != block.shape:
            return False
        if self.is_kernel:
            return out.dtype == self.output_dtype((block,))
        library = (getattr(self.fn, "__module__", None) or "").startswith("jitbridge.kernels")
        return library and block.dtype.kind == "f" and out.dtype == block.dtype and _takes(self.fn, "out")

    def _launch(self, args: tuple[Any, ...], out: np.ndarray | None) -> np.ndarray:
        kernel: Kernel = self.fn
        self.check_arity(len(args))
        arrays = list(args)
        shapes = [a.shape for a in arrays if isinstance(a, np.ndarray)]
        if not shapes:
            raise errors.ArgumentError(f"kernel '{kernel.jb_name}' was given no array to map over",
                                       fix="pass at least one array (a Dask array, a chunk)")
        shape = np.broadcast_shapes(*shapes)
        if out is None:
            out = np.empty(shape, self.output_dtype(tuple(arrays)))
        if kernel.ndim == len(shape):
            kernel.launch(shape if len(shape) > 1 else shape[0], *arrays, out, threads=self.threads)
            return out
        if kernel.ndim == 1:
            flat = []
            for a in arrays:
                if isinstance(a, np.ndarray) and a.shape != shape:
                    raise errors.ArgumentError(
                        f"1-D kernel '{kernel.jb_name}' over {len(shape)}-D blocks needs arrays of one shape",
                        values={"shapes": ", ".join(str(s) for s in shapes)},
                        fix="broadcast the arrays to one shape first, or write the kernel with one index per axis")
                flat.append(a.reshape(-1) if isinstance(a, np.ndarray) else a)
            kernel.launch(out.size, *flat, out.reshape(-1), threads=self.threads)
            return out
        raise errors.ArgumentError(
            f"kernel '{kernel.jb_name}' has {kernel.ndim} index parameters but the blocks are {len(shape)}-D",
            values={"block shape": shape},
            fix="write the kernel with one index per axis of the data, or with one index (i) to run over every element")


def read_only(value: Any) -> np.ndarray:
    """A C-contiguous, read-only view of ``value`` (a copy only when it is strided)."""
    view = np.ascontiguousarray(value).view()
    view.flags.writeable = False
    return view


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or (hasattr(value, "__array_interface__") and hasattr(value, "shape"))


def _takes(fn: Any, parameter: str) -> bool:
    """Whether ``fn`` (a library kernel, say) has a parameter of this name."""
    try:
        return parameter in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@contextlib.contextmanager
def _numba_threads(threads: int | None) -> Iterator[None]:
    """numba's thread count for this call only (it is per calling thread)."""
    if threads is None:
        yield
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(previous)
