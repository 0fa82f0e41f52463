"""Hypothesis strategies shared by the kernel tests: arrays of every supported dtype, sizes
0..10^5, 1-D, 2-D and strided, optionally salted with NaN and infinities.

Values come from a NumPy generator seeded by hypothesis (drawing 10^5 elements one by one
would dominate the test time); hypothesis still chooses and shrinks dtype, shape, layout,
seed and the special values.
"""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

FLOATS = (np.float64, np.float32)
INTS = (np.int32, np.int64, np.uint8)
NUMERIC = FLOATS + INTS
MAX_N = 100_000
LAYOUTS = ("1d", "2d", "strided1d", "strided2d")


def values(rng: np.random.Generator, dtype: type, size: int, scale: float) -> np.ndarray:
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(size) * scale).astype(dtype)
    if dtype == np.uint8:
        return rng.integers(0, 256, size).astype(dtype)
    bound = 1000 if dtype == np.int32 else 10**6
    return rng.integers(-bound, bound, size).astype(dtype)


@st.composite
def arrays(draw: st.DrawFn, dtypes: tuple = NUMERIC, layouts: tuple = LAYOUTS, min_n: int = 0,
           scales: tuple = (1.0, 1e3), specials: bool = False) -> np.ndarray:
    """An array whose last axis has >= min_n elements (and <= MAX_N elements in all)."""
    dtype = draw(st.sampled_from(dtypes))
    layout = draw(st.sampled_from(layouts))
    n = draw(st.one_of(st.integers(min_n, 70), st.integers(min_n, MAX_N)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(scales))
    if layout in ("1d", "strided1d"):
        step = 2 if layout == "strided1d" else 1
        x = values(rng, dtype, n * step, scale)[::step]
    else:
        rows = draw(st.integers(0 if min_n == 0 else 1, 9))
        cols = max(min_n, n // max(rows, 1))
        step = 2 if layout == "strided2d" else 1
        x = values(rng, dtype, rows * cols * step, scale).reshape(rows, cols * step)[:, ::step]
    if specials and x.dtype.kind == "f" and x.size:
        for value in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf]), max_size=3)):
            x[np.unravel_index(rng.integers(x.size), x.shape)] = value
    return x


threads = st.sampled_from([None, 1, 2])
modes = st.booleans()


def acc_dtype(dtype: np.dtype) -> type:
    """The 64-bit accumulator the kernels (and NumPy's sum) use."""
    if dtype.kind == "f":
        return np.float64
    return np.uint64 if dtype.kind == "u" else np.int64
