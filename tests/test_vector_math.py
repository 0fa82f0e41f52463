"""Vector math: loops over math.*/np.* transcendentals call SIMD versions within 2 ulp of the
correctly rounded result, the opt-out is numba's code bit for bit, and the cache keeps the two
apart.

Reference values: NumPy long double (x87, 64-bit mantissa: 11 bits beyond float64) for all but
erf/erfc, which come from glibc's ``erfl``/``erfcl``; mpmath at 50 digits checks that reference
on a subsample, so the bound is against the correctly rounded result, not another libm.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import re

import mpmath
import numba
import numpy as np
import pytest

import jitbridge as jb
from jitbridge import config
from jitbridge.inspection import CodeReport
from jitbridge import math_trig
from jitbridge.targets import vector_math

LD = np.longdouble
ULP_LIMIT = 2.0
# each function as numba code spells it (math.* and np.* reach the same lowering)
SOURCE = {"exp": "math.exp(a)", "exp2": "np.exp2(a)", "expm1": "math.expm1(a)", "log": "np.log(a)",
          "log2": "math.log2(a)", "log10": "math.log10(a)", "log1p": "np.log1p(a)", "sin": "math.sin(a)",
          "cos": "np.cos(a)", "tan": "math.tan(a)", "tanh": "np.tanh(a)", "sinh": "math.sinh(a)",
          "cosh": "np.cosh(a)", "erf": "math.erf(a)", "erfc": "math.erfc(a)", "atan": "np.arctan(a)",
          "atan2": "math.atan2(a, b)", "pow": "a ** b"}
DTYPES = (np.float64, np.float32)
BITS = {np.float64: 64, np.float32: 32}
UINT = {np.float64: np.uint64, np.float32: np.uint32}
SERVED = [(name, dtype) for name in SOURCE for dtype in DTYPES if vector_math.provider(name, BITS[dtype])]
KEPT = [(name, dtype) for name in SOURCE for dtype in DTYPES if not vector_math.provider(name, BITS[dtype])]
ID = lambda p: p.__name__ if isinstance(p, type) else str(p)  # noqa: E731


def loop(name: str, **options):
    namespace = {"math": math, "np": np}
    exec(f"def loop_{name}(x, y, out):\n    for i in range(x.size):\n        a = x[i]\n        b = y[i]\n"
         f"        out[i] = {SOURCE[name]}\n", namespace)
    return jb.jit(**options)(namespace[f"loop_{name}"])


def run(fn, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    with np.errstate(all="ignore"):
        fn(x, y, out)
    return out


_LIBM = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
for _name in ("erfl", "erfcl"):
    getattr(_LIBM, _name).restype = ctypes.c_longdouble
    getattr(_LIBM, _name).argtypes = [ctypes.c_longdouble]


def reference(name: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    xl, yl = x.astype(LD), y.astype(LD)
    with np.errstate(all="ignore"):
        if name in ("erf", "erfc"):
            fn = getattr(_LIBM, name + "l")
            return np.array([fn(v) for v in xl], dtype=LD)
        if name == "atan2":
            return np.arctan2(xl, yl)
        if name == "pow":
            return np.power(xl, yl)
        return getattr(np, {"atan": "arctan"}.get(name, name))(xl)


def mp_reference(name: str, a: float, b: float) -> mpmath.mpf:
    fn = {"exp2": lambda v: mpmath.power(2, v), "log2": lambda v: mpmath.log(v, 2),
          "log10": mpmath.log10, "atan2": lambda u, v: mpmath.atan2(u, v), "pow": mpmath.power,
          "log1p": mpmath.log1p, "expm1": mpmath.expm1}.get(name) or getattr(mpmath, name)
    return fn(mpmath.mpf(a), mpmath.mpf(b)) if name in ("atan2", "pow") else fn(mpmath.mpf(a))


def ulp_error(got: np.ndarray, ref: np.ndarray, dtype: type) -> np.ndarray:
    """|got - ref| in units of the last place of ref rounded to dtype; equal results
    (infinities, zeros) and NaN for NaN count as exact."""
    with np.errstate(all="ignore"):
        rounded = ref.astype(dtype)
        ulp = np.spacing(np.abs(rounded)).astype(LD)
        ulp = np.where(ulp == 0, LD(np.finfo(dtype).smallest_subnormal), ulp)
        err = np.abs(got.astype(LD) - ref) / ulp
        same = (got == rounded) | (np.isnan(got) & np.isnan(ref))
        return np.where(same, 0, err)


def per_binade(dtype: type, per: int, rng: np.random.Generator) -> np.ndarray:
    """``per`` random mantissas in every binade (subnormals included), both signs."""
    uint, mant, top = (np.uint64, 52, 2047) if dtype == np.float64 else (np.uint32, 23, 255)
    exponent = np.repeat(np.arange(top, dtype=uint), per)
    bits = (exponent << uint(mant)) | rng.integers(0, 1 << mant, exponent.size, dtype=uint)
    x = bits.view(dtype)
    return np.concatenate([x, -x])


def special_values(dtype: type) -> np.ndarray:
    """±0, ±inf, NaN, subnormals, and the overflow and underflow thresholds of the exp family."""
    info = np.finfo(dtype)
    values = [0.0, np.inf, np.nan, 1.0, 0.5, 2.0, info.smallest_subnormal, info.tiny * (1 - info.eps), info.tiny,
              info.max, 1e-300 if dtype == np.float64 else 1e-30]
    for limit in (np.log(info.max), np.log(info.tiny), np.log(info.smallest_subnormal), np.log2(info.max),
                  np.log2(info.smallest_subnormal), np.arccosh(info.max)):
        values.append(limit)
    base = np.array(values, dtype=dtype)
    with np.errstate(over="ignore"):
        ladder = np.nextafter(base[:, None], [-np.inf, np.inf]).astype(dtype).ravel()
    both = np.concatenate([base, ladder])
    return np.concatenate([both, -both])


def inputs(name: str, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """The dense sample, padded to whole vectors so that every value runs in SIMD lanes."""
    rng = np.random.default_rng(10)
    per = 24 if name in ("erf", "erfc") else 96 if dtype == np.float64 else 256
    x = np.concatenate([per_binade(dtype, per, rng), special_values(dtype)])
    if name == "pow":  # the hard part of pow: bases near 1 with large exponents, and moderate ranges
        n = x.size // 2
        x = np.concatenate([x, (1 + rng.uniform(-1e-3, 1e-3, n)).astype(dtype), rng.uniform(0, 4, n).astype(dtype)])
        y = np.concatenate([rng.permutation(x[:x.size - 2 * n]), rng.uniform(-1e4, 1e4, n).astype(dtype),
                            rng.uniform(-200, 200, n).astype(dtype)])
    elif name == "atan2":
        y = rng.permutation(x)
    else:
        y = x
    return whole_vectors(x), whole_vectors(y)


def whole_vectors(x: np.ndarray) -> np.ndarray:
    """``x`` padded with its own first elements to whole vectors, so every value runs in SIMD lanes."""
    return np.concatenate([x, x[:(-x.size) % 64]])


@pytest.mark.parametrize("dtype", DTYPES, ids=ID)
@pytest.mark.parametrize("name", SOURCE)
def test_each_loop_calls_its_simd_version_or_says_it_keeps_libm(name: str, dtype: type) -> None:
    """Packed registers feed a SIMD math call in the loop; functions without a SIMD version
    within 2 ulp keep one libm call per element, and explain says so."""
    fn = loop(name)
    x = np.linspace(0.25, 0.75, 64).astype(dtype)
    run(fn, x, x)
    asm = fn.inspect_asm(fn.signatures[0])
    report = CodeReport.from_asm(asm)
    libm_name = name + ("f" if dtype == np.float32 else "")
    if vector_math.provider(name, BITS[dtype]):
        assert libm_name in report.vector_math(), report.symbols
        assert re.search(r"v\w+p[sd]\s[^\n]*%[yz]mm", asm), "no packed instruction feeds the SIMD call"
        assert "vector math:" in "\n".join(report.lines())
    else:
        assert report.libm() == [(libm_name, name)]
        assert "no SIMD version within 2 ulp yet" in "\n".join(report.lines())


@pytest.mark.parametrize(("name", "dtype"), SERVED, ids=ID)
def test_within_two_ulp_of_correctly_rounded_over_every_binade(name: str, dtype: type) -> None:
    x, y = inputs(name, dtype)
    got = run(loop(name), x, y)
    ref = reference(name, x, y)
    err = ulp_error(got, ref, dtype)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_LIMIT, f"{name}({x[worst]!r}, {y[worst]!r}) = {got[worst]!r}: {err[worst]:.2f} ulp"


@pytest.mark.parametrize(("name", "dtype"), SERVED, ids=ID)
def test_special_values_are_libms(name: str, dtype: type) -> None:
    """±0, ±inf, NaN and results that are 0 or inf: the same as libm's (vector_math=False)."""
    x, y = inputs(name, dtype)
    specials = special_values(dtype)
    keep = np.isin(x, specials) | np.isnan(x)
    fast, libm = run(loop(name), x, y)[keep], run(loop(name, vector_math=False), x, y)[keep]
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(libm))
    np.testing.assert_array_equal(np.isinf(fast), np.isinf(libm))
    exact = ~np.isfinite(libm) | (libm == 0) | ~np.isfinite(x[keep])
    np.testing.assert_array_equal(fast[exact], libm[exact])
    np.testing.assert_array_equal(np.signbit(fast[exact & (libm == 0)]), np.signbit(libm[exact & (libm == 0)]))


@pytest.mark.parametrize("name", sorted({name for name, _ in SERVED}))
def test_the_long_double_reference_is_correctly_rounded_to_float64(name: str) -> None:
    """The reference rounded to float64 is mpmath's value at 50 digits correctly rounded (so the
    ulp bound above is against the true value), on a subsample of the test's inputs."""
    mpmath.mp.dps = 50
    x, y = inputs(name, np.float64)
    pick = np.random.default_rng(3).choice(x.size, 300, replace=False)
    with np.errstate(over="ignore"):
        ref = reference(name, x[pick], y[pick]).astype(np.float64)
    for a, b, r in zip(x[pick], y[pick], ref):
        if not np.isfinite(r) or r == 0:
            continue
        exact = mp_reference(name, float(a), float(b))
        # correctly rounded, up to the double rounding of long double -> double (2**-11 ulp)
        assert abs(mpmath.mpf(float(r)) - exact) <= 0.501 * np.spacing(abs(r)), (name, a, b)


REDUCED = [(name, dtype) for name in math_trig.VALID_BELOW for dtype in DTYPES
           if BITS[dtype] in math_trig.IMPLS[name] and vector_math.provider(name, BITS[dtype])]


def near_multiples_of_half_pi(dtype: type, below: float) -> np.ndarray:
    """Per binade from pi/4 up to ``below``, the numbers of ``dtype`` closest to a multiple of
    pi/2 (where reducing by pi/2 cancels the most), and their neighbours: x = m 2**(e - p) with
    m/k a convergent of pi/2 2**(p - e), scaled by the smallest factor that puts m in the binade."""
    mpmath.mp.prec = 300
    p = np.finfo(dtype).nmant
    found = []
    for e in range(int(math.log2(below))):
        alpha = mpmath.pi / 2 * mpmath.mpf(2) ** (p - e)
        candidates = []
        for m, k in _convergents(alpha, 1 << (p + 1)):
            c = -(-(1 << p) // m)  # the smallest multiple of m in [2**p, 2**(p+1))
            if c * m < 1 << (p + 1):
                candidates.append((abs(c * m - c * k * alpha), c * m))
        for _, m in sorted(candidates)[:3]:
            found.append(float(mpmath.ldexp(m, e - p)))
    x = np.array(found, dtype=dtype)
    return np.concatenate([x, np.nextafter(x, 0), np.nextafter(x, np.inf)])


def _convergents(alpha: mpmath.mpf, limit: int):
    """(p, q) of the continued fraction of alpha, while p < limit."""
    p0, q0, p1, q1 = 1, 0, int(mpmath.floor(alpha)), 1
    frac = alpha - p1
    while p1 < limit:
        if p1:
            yield p1, q1
        if frac == 0:
            return
        a = int(mpmath.floor(1 / frac))
        frac = 1 / frac - a
        p0, q0, p1, q1 = p1, q1, a * p1 + p0, a * q1 + q0


def mp_ulp_error(name: str, x: np.ndarray, got: np.ndarray) -> np.ndarray:
    """|got - f(x)| in ulp of f(x) rounded to got's type, f(x) from mpmath at 300 bits."""
    mpmath.mp.prec = 300
    out = []
    for a, g in zip(x, got):
        exact = mp_reference(name, float(a), 0.0)
        rounded = got.dtype.type(float(exact))
        out.append(float(abs(mpmath.mpf(float(g)) - exact) / mpmath.mpf(float(np.spacing(abs(rounded))))))
    return np.array(out)


@pytest.mark.parametrize(("name", "dtype"), REDUCED, ids=ID)
def test_arguments_closest_to_multiples_of_half_pi_stay_within_two_ulp(name: str, dtype: type) -> None:
    """Where x - n pi/2 cancels the most, for every binade the fast reduction serves."""
    x = near_multiples_of_half_pi(dtype, math_trig.REDUCTION_BOUND)
    x = whole_vectors(np.concatenate([x, -x]))
    got = run(loop(name), x, x)
    err = mp_ulp_error(name, x, got)
    worst = int(np.argmax(err))
    assert err[worst] <= ULP_LIMIT, f"{name}({x[worst]!r}) = {got[worst]!r}: {err[worst]:.2f} ulp"


@pytest.mark.parametrize(("name", "dtype"), REDUCED, ids=ID)
def test_lanes_beyond_the_reduction_bound_get_libms_bits(name: str, dtype: type) -> None:
    """|x| > REDUCTION_BOUND, inf and NaN lanes are libm's to the bit, alone in a vector or next to
    in-range lanes (which stay within 2 ulp): the SIMD version patches them after the fact."""
    bound = dtype(math_trig.REDUCTION_BOUND)
    info = np.finfo(dtype)
    beyond = np.array([np.nextafter(bound, np.inf), bound * 1.5, 1e9, 1e15, 3e37, info.max, np.inf, np.nan,
                       float(2 ** 60) * np.pi], dtype=dtype)
    if dtype == np.float64:
        beyond = np.concatenate([beyond, [1e22, 1e300, 2.0 ** 1023 * 1.5]])
    beyond = np.concatenate([beyond, -beyond])
    inside = np.array([bound, np.nextafter(bound, 0), 0.5, 1e5, -3.0, 7.0], dtype=dtype)
    rng = np.random.default_rng(4)
    lanes = np.concatenate([beyond, rng.choice(beyond, 64), rng.choice(inside, 64)])
    x = whole_vectors(np.concatenate([lanes, rng.permutation(lanes), np.repeat(beyond, 8)]))
    got, libm = run(loop(name), x, x), run(loop(name, vector_math=False), x, x)
    out = ~(np.abs(x) <= bound)
    np.testing.assert_array_equal(got[out].view(UINT[dtype]), libm[out].view(UINT[dtype]))
    err = mp_ulp_error(name, x[~out], got[~out])
    assert err.max() <= ULP_LIMIT


def _all_functions(x, y, out):
    for i in range(x.size):
        a = abs(x[i]) + 0.5
        b = y[i]
        out[i] = (math.exp(b) + np.exp2(b) + math.expm1(b) + np.log(a) + math.log2(a) + math.log10(a)
                  + np.log1p(a) + math.sin(b) + np.cos(b) + math.tan(b) + np.tanh(b) + math.sinh(b)
                  + np.cosh(b) + math.erf(b) + math.erfc(b) + np.arctan(b) + math.atan2(a, b) + a ** b)


@pytest.mark.parametrize("dtype", DTYPES, ids=ID)
def test_the_opt_outs_are_numbas_bits(dtype: type) -> None:
    """vector_math=False, JITBRIDGE_VECTOR_MATH=0 and @jb.kernel(vector_math=False) compile
    numba's own code: every function's result is numba's to the bit."""
    x = np.random.default_rng(1).uniform(-3, 3, 1000).astype(dtype)
    y = x[::-1].copy()
    numpy_errors = {"error_model": "numpy"}  # under 'python', 0.0 ** -1.0 raises and keeps the loop scalar
    expected = run(numba.njit(**numpy_errors)(_all_functions), x, y)
    served = loop("exp", **numpy_errors)
    assert not np.array_equal(run(served, x, y), np.exp(x))  # in this sample vector math changes bits
    with config.scope(vector_math=False):
        by_setting = jb.jit(**numpy_errors)(_all_functions)
    for fn in (jb.jit(vector_math=False, **numpy_errors)(_all_functions), by_setting):
        np.testing.assert_array_equal(run(fn, x, y).view(np.uint8), expected.view(np.uint8))
        assert not CodeReport.from_asm(fn.inspect_asm(fn.signatures[0])).vector_math()

    @jb.kernel(vector_math=False, cache=False)
    def kern(i, x, y, out):
        out[i] = math.exp(x[i]) + math.atan2(x[i], y[i])

    @numba.njit
    def plain(x, y, out):
        for i in range(x.size):
            out[i] = math.exp(x[i]) + math.atan2(x[i], y[i])

    got, want = np.empty_like(x), np.empty_like(x)
    kern[x.size](x, y, got)
    plain(x, y, want)
    np.testing.assert_array_equal(got.view(np.uint8), want.view(np.uint8))


def test_kernels_get_vector_math_by_default() -> None:
    @jb.kernel(cache=False)
    def kern(i, x, out):
        out[i] = math.exp(x[i])

    x = np.linspace(-1, 1, 256)
    out = np.empty_like(x)
    kern[x.size](x, out)
    np.testing.assert_allclose(out, np.exp(x), rtol=4e-16)
    assert "exp" in CodeReport.from_asm(next(iter(kern.inspect_asm().values()))).vector_math()


def _cached(x, out):
    for i in range(x.size):
        out[i] = math.sin(x[i]) + math.exp(x[i])


def test_cache_entries_with_and_without_vector_math_never_mix(cache_dir) -> None:
    x = np.random.default_rng(2).uniform(-700, 700, 4096)
    libm_bits = np.empty_like(x)
    numba.njit(_cached)(x, libm_bits)
    vector = jb.jit(cache=True)(_cached)
    plain = jb.jit(cache=True, vector_math=False)(_cached)
    first_vector, first_plain = np.empty_like(x), np.empty_like(x)
    vector(x, first_vector)
    plain(x, first_plain)
    assert not np.array_equal(first_vector, first_plain)
    # fresh dispatchers, in the opposite order, load each its own entry from disk
    for vm, expected in ((False, libm_bits), (True, first_vector)):
        before = jb.stats().get(vector.jb_name, {}).get("cache_hits", 0)
        again = jb.jit(cache=True, vector_math=vm)(_cached)
        out = np.empty_like(x)
        again(x, out)
        assert jb.stats()[vector.jb_name]["cache_hits"] == before + 1
        np.testing.assert_array_equal(out.view(np.uint64), expected.view(np.uint64))


def test_explain_says_what_vector_math_served_and_what_still_calls_libm() -> None:
    def mixed(x, out):
        for i in range(x.size):
            out[i] = math.exp(x[i]) + math.asin(x[i])

    def divides(x, y, out):
        for i in range(x.size):
            out[i] = math.exp(x[i] / y[i])  # the zero check of '/' keeps this loop scalar

    x = np.linspace(0.1, 1, 64)
    fn, slow, off = jb.jit(mixed), jb.jit(divides), jb.jit(vector_math=False)(mixed)
    fn(x, np.empty_like(x))
    slow(x, x, np.empty_like(x))
    off(x, np.empty_like(x))
    text = jb.explain(fn)
    assert "vector math: exp() by jitbridge.math" in text
    assert "calls libm asin() per element: no SIMD version within 2 ulp yet" in text
    assert "did not vectorize" in jb.explain(slow)
    assert "vector math: off" in jb.explain(off)
