"""What every kernel does before and after the compiled code runs: validate arguments, view
the input as rows, pick serial or multi-threaded code, and hand results back NumPy's way.

Kept in one place so each kernel module is only its loops, and so every bad argument raises
the same ``ArgumentError`` naming the argument.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from typing import Any, Iterator, Sequence

import numba
import numpy as np

from jitbridge import config, errors

_F64 = np.dtype(np.float64)
FLOATS = (np.dtype(np.float32), _F64)
INTS = (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8))
NUMERIC = FLOATS + INTS
# for membership tests on the short-call paths (a hash, not a series of ==)
NUMERIC_SET, FLOAT_SET = frozenset(NUMERIC), frozenset(FLOATS)

# Fixed block size of deterministic mode: partial results are combined per block, in block
# order, so the answer is the same bits for any thread count. 64 Ki elements keeps per-block
# bookkeeping under 0.1% of the work and still gives each of 2 threads dozens of blocks.
DETERMINISTIC_BLOCK = 1 << 16
# Blocks handed to threads in fast mode are rounded to this: whole L1 chunks of the kernels
# that work chunk by chunk (_loops.CHUNK), so vector loops stay aligned too.
BLOCK_ALIGN = 512

# Serial up to, multi-threaded above: the element count (float64, powers of two) from which
# 2 threads beat 1 here (``python benchmarks/bench_kernels.py crossover``; docs/kernels.md).
CROSSOVER = {
    "sum_sq": 1 << 18, "dot": 1 << 17, "variance": 1 << 18, "argmax": 1 << 17,
    "softmax": 1 << 15, "logsumexp": 1 << 15, "layernorm": 1 << 16, "normalize": 1 << 17,
    "gelu": 1 << 14, "gelu_erf": 1 << 12, "clip": 1 << 17, "scale": 1 << 16, "saxpy": 1 << 19,
    "relu": 1 << 16, "cumsum": 1 << 17, "rolling_sum": 1 << 13, "histogram": 1 << 12,
}

# Element-wise outputs are written with streaming (non-temporal) stores once the arrays a
# call touches pass this size, about the last-level cache here: below it ordinary stores
# win (2x at 8 MiB, the output stays in cache), above it streaming wins 1.35-1.6x
# (``benchmarks/bench_kernels.py stream``; docs/kernels.md).
STREAM_BYTES = 32 << 20

SERIAL = {"error_model": "numpy", "nogil": True, "cache": True}
PARALLEL = {"error_model": "numpy", "nogil": True, "parallel": True, "cache": True}
# The library's kernels: one launch index (a row, a block, a task), and disjoint writes through
# helper calls, so no race to warn about.
KERNEL = {"disjoint": True, "ndim": 1}
# Sums may be reordered (vectorized, several accumulators); never in code that inlines
# jitbridge.math, whose error-free steps need IEEE order.
REDUCE = {"fastmath": {"reassoc", "contract"}}


def require_array(x: Any, name: str, dtypes: Sequence[np.dtype], min_ndim: int = 1) -> np.ndarray:
    """``x`` as an ndarray of one of ``dtypes`` (NumPy scalars and lists are accepted)."""
    arr = x if type(x) is np.ndarray else np.asarray(x)
    if arr.dtype not in dtypes:
        raise errors.ArgumentError(
            f"{name} has dtype {arr.dtype}, which this kernel does not support",
            values={name: f"array of {arr.dtype}, shape {arr.shape}",
                    "supported": ", ".join(str(d) for d in dtypes)},
            fix=f"convert first, e.g. {name}.astype(np.float64)",
        )
    if arr.ndim < min_ndim:
        raise errors.ArgumentError(
            f"{name} must have at least {min_ndim} dimension(s)",
            values={name: f"shape {arr.shape}"},
            fix=f"pass an array, e.g. np.atleast_1d({name})",
        )
    return arr


def check_axis(axis: int, arr: np.ndarray) -> None:
    """Kernels run along the last axis; anything else is an explicit error, not a silent copy."""
    if axis not in (-1, arr.ndim - 1):
        raise errors.ArgumentError(
            "kernels run along the last axis only",
            values={"axis": axis, "ndim": arr.ndim},
            fix="move the axis last first: np.moveaxis(x, axis, -1)",
        )


def check_same_shape(name: str, arr: np.ndarray, ref: np.ndarray, ref_name: str = "x") -> None:
    if arr.shape != ref.shape or arr.dtype != ref.dtype:
        raise errors.ArgumentError(
            f"{name} must match {ref_name} in shape and dtype",
            values={name: f"{arr.dtype}{list(arr.shape)}", ref_name: f"{ref.dtype}{list(ref.shape)}"},
            fix=f"pass {name} with shape {ref.shape} and dtype {ref.dtype}",
        )


def rows(arr: np.ndarray) -> np.ndarray:
    """C-contiguous (rows, n) view (a copy only for strided input), so every kernel compiles
    once per dtype instead of once per layout."""
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    if arr.ndim == 2:
        return arr
    return arr.reshape(math.prod(arr.shape[:-1]), arr.shape[-1] if arr.ndim else 1)


def flat(arr: np.ndarray) -> np.ndarray:
    """C-contiguous 1-D view of all elements (a copy only for strided input)."""
    if arr.ndim == 1 and arr.flags.c_contiguous:
        return arr
    return rows(arr).reshape(-1)


def scalar_as(value: Any, dtype: np.dtype, name: str) -> Any:
    """A scalar argument in ``dtype``: floats round to it, integers must fit exactly."""
    if type(value) is float and dtype is _F64:
        return value  # a Python float is a float64 to compiled code, and cheaper to pass
    if dtype.kind == "f" and type(value) in (float, int):
        return dtype.type(value)
    arr = np.asarray(value)
    if arr.ndim == 0 and arr.dtype.kind in "biuf":
        if dtype.kind == "f":
            return dtype.type(arr)
        exact = arr.dtype.kind != "f" or float(arr).is_integer()
        if exact and np.iinfo(dtype).min <= int(arr) <= np.iinfo(dtype).max:
            return dtype.type(int(arr))
    raise errors.ArgumentError(
        f"{name} cannot be represented in {dtype}",
        values={name: repr(value), "dtype": str(dtype)},
        fix=f"pass a real scalar {name} that fits {dtype}, or convert x to a wider dtype",
    )


def small_1d(arr: np.ndarray, kernel: str, threads: int | None) -> bool:
    """Whether a call is a short 1-D one that runs serially whatever the settings: such calls
    skip the general bookkeeping (row views, plans), which costs more than their arithmetic."""
    return threads is None and arr.ndim == 1 and arr.size <= CROSSOVER[kernel]


def writable_as_is(out: Any, arr: np.ndarray, n: int) -> bool:
    """For a short 1-D call: ``out`` is None (a fresh array will do) or :func:`separate_out`,
    answered without it in the common case: an ``out`` of arr's size and dtype where both own
    their memory (so they cannot partly overlap), which costs less than comparing shapes."""
    if out is None:
        return True
    if (type(out) is np.ndarray and out.dtype is arr.dtype and out.ndim == 1 and len(out) == n
            and out.base is None and arr.base is None):
        return True
    return separate_out(out, arr)


def separate_out(out: Any, arr: np.ndarray) -> bool:
    """``out`` can be written while ``arr`` is read, element by element: same shape and dtype,
    and either ``arr`` itself or memory that ``arr`` does not touch."""
    if type(out) is not np.ndarray or out.shape != arr.shape or out.dtype != arr.dtype:
        return False
    # Two arrays that each own their memory cannot overlap; only views need the bounds check.
    return out is arr or (out.base is None and arr.base is None) or not np.may_share_memory(out, arr)


def prepare_out(out: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype,
                inputs: Sequence[np.ndarray] = (), same_index_ok: bool = False
                ) -> tuple[np.ndarray, np.ndarray | None]:
    """(buffer the kernel writes, user array to copy into afterwards or None).

    The kernel writes straight into ``out`` when it is C-contiguous and shares no memory with
    an input it still has to read, or, for kernels that read element i before writing element
    i (``same_index_ok``), when ``out`` is that input itself (in place); otherwise into a fresh
    buffer that is copied over.
    """
    if out is None:
        return np.empty(shape, dtype), None
    if not isinstance(out, np.ndarray) or out.shape != shape or out.dtype != dtype:
        got = f"{out.dtype}{list(out.shape)}" if isinstance(out, np.ndarray) else type(out).__name__
        raise errors.ArgumentError(
            "out has the wrong shape or dtype",
            values={"out": got, "expected": f"{dtype}{list(shape)}"},
            fix=f"allocate out = np.empty({shape}, dtype=np.{dtype})",
        )
    if not out.flags.c_contiguous:
        return np.empty(shape, dtype), out
    for a in inputs:
        if not _independent(out, a, same_index_ok):
            return np.empty(shape, dtype), out
    return out, None


def _independent(out: np.ndarray, arr: np.ndarray, same_index_ok: bool) -> bool:
    if not np.may_share_memory(out, arr):
        return True
    same = (out.__array_interface__["data"][0] == arr.__array_interface__["data"][0]
            and out.strides == arr.strides and out.itemsize == arr.itemsize)
    return same_index_ok and same


def finish(buffer: np.ndarray, user_out: np.ndarray | None) -> np.ndarray:
    if user_out is None:
        return buffer
    user_out[...] = buffer
    return user_out


@dataclasses.dataclass(frozen=True)
class Plan:
    """How one call runs: which compiled variant, how many threads, fixed blocks or not.
    The few distinct plans are made once and shared (``plan`` runs on every call)."""

    parallel: bool
    threads: int
    deterministic: bool

    def block(self, n: int) -> int:
        """Elements per partial result: fixed when deterministic, one share per thread else."""
        if self.deterministic:
            return DETERMINISTIC_BLOCK
        share = -(-n // max(self.threads, 1))
        return max(BLOCK_ALIGN, -(-share // BLOCK_ALIGN) * BLOCK_ALIGN)

    @property
    def launch_threads(self) -> int:
        """``threads=`` for a kernel launch that runs this plan."""
        return self.threads if self.parallel else 1

    def threads_set(self) -> contextlib.AbstractContextManager:
        """numba's thread count for this call only (it is per calling thread)."""
        return _threads_set(self.threads) if self.parallel else _SERIAL


_SERIAL = contextlib.nullcontext()


@contextlib.contextmanager
def _threads_set(threads: int) -> Iterator[None]:
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


_PLANS: dict[tuple[bool, int, bool], Plan] = {}


def plan(kernel: str, size: int, threads: int | None, deterministic: bool | None) -> Plan:
    """Serial below the kernel's crossover, threaded above; ``threads=`` overrides.

    In deterministic mode the variant depends on the size alone (never on ``threads``), so the
    same input always runs the same code and combines the same blocks in the same order.
    """
    if threads is not None and (not isinstance(threads, (int, np.integer)) or threads < 1):
        raise errors.ArgumentError(
            "threads must be a positive integer or None",
            values={"threads": repr(threads)},
            fix="pass threads=None to choose by size, or threads=1 for serial",
        )
    det = config.settings.deterministic if deterministic is None else bool(deterministic)
    available = numba.config.NUMBA_NUM_THREADS
    default = min(config.settings.num_threads or available, available)
    count = default if threads is None else min(int(threads), available)
    big = size > CROSSOVER[kernel]
    if det:
        parallel = big
    elif threads is None:
        parallel = big and count > 1
    else:
        parallel = count > 1
    key = (parallel, count, det)
    found = _PLANS.get(key)
    if found is None:
        found = _PLANS[key] = Plan(parallel=parallel, threads=count, deterministic=det)
    return found


def streams(*arrays: np.ndarray) -> bool:
    """Whether a pass over these arrays (each counted once) should use streaming stores."""
    total = 0
    for a in arrays:
        total += a.nbytes
    if total < STREAM_BYTES:
        return False
    return sum({id(a): a.nbytes for a in arrays}.values()) >= STREAM_BYTES


def nblocks(n: int, block: int) -> int:
    return max(1, -(-n // block))
