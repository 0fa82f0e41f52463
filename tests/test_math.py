"""jitbridge.math: within 2 ulp of an extended-precision reference, NumPy's special values,
and loops that call the functions compile to packed AVX instructions."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

import jitbridge.math as jm
from jitbridge import jit

NAMES = ("exp", "log", "tanh", "erf", "sigmoid")
DTYPES = (np.float64, np.float32)
LD = np.longdouble
ULP_LIMIT = 2.0


def reference(name: str, x: np.ndarray) -> np.ndarray:
    """The exact value to ~1e-19 relative: long double (x87, 64-bit mantissa) or glibc."""
    xl = x.astype(LD)
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(xl)
        if name == "log":
            return np.log(xl)
        if name == "tanh":
            return np.tanh(xl)
        if name == "sigmoid":
            return 1 / (1 + np.exp(-xl))
        return np.array([math.erf(v) for v in x.astype(np.float64)], dtype=LD)


def ulp_error(got: np.ndarray, ref: np.ndarray, dtype: type) -> np.ndarray:
    """|got - ref| in units of the last place of ref rounded to dtype; agreeing
    infinities and NaNs count as exact."""
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
        ulp = np.spacing(np.abs(rounded)).astype(LD)
        ulp = np.where(ulp == 0, LD(np.finfo(dtype).smallest_subnormal), ulp)
        err = np.abs(got.astype(LD) - ref) / ulp
        same_inf = np.isinf(got) & (got == rounded)
        both_nan = np.isnan(got) & np.isnan(ref)
        return np.where(same_inf | both_nan, 0, err)


def samples(name: str, dtype: type, n: int, rng: np.random.Generator) -> np.ndarray:
    """Random bit patterns (every binade of the finite domain) plus dense interesting ranges."""
    uint = np.uint64 if dtype == np.float64 else np.uint32
    bits = rng.integers(0, np.iinfo(uint).max, n, dtype=uint, endpoint=True).view(dtype)
    span = {"exp": 750, "log": 10, "tanh": 25, "erf": 7, "sigmoid": 750}[name]
    if dtype == np.float32:
        span = min(span, 110)
    lo = 0 if name == "log" else -span
    parts = [bits[np.isfinite(bits)], rng.uniform(lo, span, n), rng.uniform(-1, 1, n)]
    return np.concatenate([p.astype(dtype) for p in parts])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_within_two_ulp_over_the_finite_domain(name: str, dtype: type) -> None:
    rng = np.random.default_rng(20240605)
    x = samples(name, dtype, 60_000 if name == "erf" else 300_000, rng)
    got = getattr(jm, name)(x)
    assert got.dtype == dtype
    err = ulp_error(got, reference(name, x), dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_LIMIT, f"{name}({x[worst]!r}) = {got[worst]!r}: {err[worst]:.2f} ulp"


def edge_cases(dtype: type) -> np.ndarray:
    info = np.finfo(dtype)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, 0.55, 1e-30]
    limits = [info.smallest_subnormal, info.tiny, info.tiny * (1 - info.eps), info.max]
    if dtype == np.float64:
        thresholds = [709.782712893384, 709.7827128933841, 709.79, -708.3964185322641,
                      -708.4, -745.1332191019411, -745.1332191019412, -746.0, 19.06, 5.92, 6.5]
    else:
        thresholds = [88.72283, 88.72284, 88.8, -87.33654, -87.4, -103.972076, -103.97208,
                      -104.5, 9.01, 3.92, 4.5]
    values = np.array(specials + limits + thresholds, dtype=dtype)
    with np.errstate(over="ignore"):
        ladder = np.nextafter(values[:, None], [-np.inf, np.inf]).astype(dtype).ravel()
    both = np.concatenate([values, ladder])
    return np.concatenate([both, -both])


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_edge_cases_match_numpy(name: str, dtype: type) -> None:
    x = edge_cases(dtype)
    got = getattr(jm, name)(x)
    ref = reference(name, x)
    err = ulp_error(got, ref, dtype)
    assert np.all(err <= ULP_LIMIT), list(zip(x[err > ULP_LIMIT], got[err > ULP_LIMIT]))
    with np.errstate(over="ignore"):
        rounded = ref.astype(dtype)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(rounded))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(rounded))
    zeros = rounded == 0
    np.testing.assert_array_equal(np.signbit(got[zeros]), np.signbit(rounded[zeros]))
    if name in ("exp", "log", "tanh"):  # NumPy's own ufuncs agree on every special value
        with np.errstate(all="ignore"):
            expected = getattr(np, name)(x)
        special = ~np.isfinite(expected) | (expected == 0)
        np.testing.assert_array_equal(got[special], expected[special])


def test_python_calls_keep_shape_dtype_and_scalars() -> None:
    assert isinstance(jm.exp(1.0), np.float64)
    assert jm.exp(np.float32(1.0)).dtype == np.float32
    assert jm.log(np.array([[1, 2], [3, 4]])).shape == (2, 2)
    assert jm.tanh(np.array([], dtype=np.float32)).dtype == np.float32
    assert jm.erf(np.arange(3, dtype=np.int32)).dtype == np.float64


def test_generic_inside_jitted_code_types_by_argument() -> None:
    @jit
    def both(a, b, k):
        return jm.exp(a), jm.exp(b), jm.sigmoid(k)

    r32, r64, rint = both(np.float32(1.0), 1.0, 2)
    assert isinstance(r32, float) and abs(r32 - math.e) < 1e-6
    assert r64 == pytest.approx(math.e, rel=1e-15)
    assert rint == pytest.approx(1 / (1 + math.exp(-2)), rel=1e-15)


PACKED_FMA = {np.float64: r"vf\w*(add|sub)\w*pd\s+%[yz]mm", np.float32: r"vf\w*(add|sub)\w*ps\s+%[yz]mm"}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
@pytest.mark.parametrize("name", NAMES)
def test_loops_calling_them_vectorize(name: str, dtype: type) -> None:
    """A plain loop (default error model, no fastmath) compiles to packed FMAs: the function
    is inlined and LLVM vectorized it, rather than leaving a scalar call per element."""
    fn = getattr(jm, name)

    @jit
    def loop(x, out):
        for i in range(x.size):
            out[i] = fn(x[i])

    x = np.linspace(0.5, 2.0, 64).astype(dtype)
    out = np.empty_like(x)
    loop(x, out)
    np.testing.assert_allclose(out, fn(x), rtol=0)
    asm = loop.inspect_asm(loop.signatures[0])
    assert re.search(PACKED_FMA[dtype], asm), f"no packed FMA in {name} loop"
