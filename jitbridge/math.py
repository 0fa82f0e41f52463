"""Vectorizable ``exp``, ``log``, ``tanh``, ``erf`` and ``sigmoid`` for float32 and float64.

Why this module exists: inside compiled loops numba lowers ``np.exp``/``math.exp`` to a libm
call per element, which LLVM cannot vectorize, and llvmlite's LLVM has no SVML to swap in.
Here every function is branch-free arithmetic (range reduction, a polynomial, exponent bits
built with integer shifts and a ``view``, IR-level selects instead of ``if``), so a loop that
calls them compiles to packed AVX-512 instructions.

Accuracy is within 2 ulp (measured: about 1 ulp) over the whole domain, including
subnormals, signed zeros, infinities, NaN and the overflow/underflow thresholds; the tests
compare against an extended-precision reference on millions of points.

Each algorithm is written once, as a factory over a :class:`_Format` (the float and integer
types, the exponent layout and the fitted coefficients), so the float32 variants run in
float32 lanes (twice as many per register) rather than promoting to float64. The public
names are generic: inside jitted code ``exp(x)`` picks the variant for ``x``'s type at
compile time (integers compute in float64); called from Python they map over arrays.

The functions are compiled with numba's own ``njit``, not ``jb.jit``: this module sits
below the targets (``targets/vector_variants.py`` builds the SIMD versions from it), so it
may not import the frontend; its code has no libm call for vector math to rewrite anyway.

Polynomial coefficients are Chebyshev interpolants (near-minimax) computed in 60-digit
arithmetic with mpmath and rounded to the target type.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, types
from numba.extending import intrinsic, overload

__all__ = ["exp", "log", "tanh", "erf", "sigmoid"]


@dataclasses.dataclass(frozen=True)
class _Format:
    """Everything that differs between the float32 and float64 versions of an algorithm."""

    float: type
    int: type
    mantissa_bits: int
    bias: int
    exp_range: tuple[float, float]  # clamp for exp: below underflows to 0, above overflows
    ln2_hi: float  # few significant bits, so n * ln2_hi is exact
    ln2_lo: float
    exp_poly: tuple[float, ...]  # (e^r - 1 - r) / r^2 on |r| <= ln2/2
    log_poly: tuple[float, ...]  # (2 atanh(s)/s - 2) / s^2 in z = s^2 <= 0.0295
    tanh_poly: tuple[float, ...]  # (tanh(x)/x - 1) / x^2 in z = x^2 <= 0.55^2
    erf_poly: tuple[float, ...]  # erf(x)/x - 1 in z = x^2, |x| <= erf_segments[0][0]
    erf_segments: tuple[tuple[float, float, tuple[float, ...]], ...]  # (lower, center, poly)
    erf_top: float  # erf rounds to 1 beyond it
    # (lower, P, Q): from lower up, h(x) = P(x) / Q(x) replaces the remaining segments
    erf_tail: tuple[float, tuple[float, ...], tuple[float, ...]] | None = None
    # (e^r - 1 - r - r^2/2) / r^3 on |r| <= ln2/2, from a fit of (e^r - 1 - r) / r^2 whose
    # constant came out 1/2: expm1 needs more than exp_poly's 2 ulp there, which it would pass
    # on scaled by up to 2**n r^2 / expm1(x) ~ 0.5
    expm1_poly: tuple[float, ...] = ()


_F64 = _Format(
    float=np.float64, int=np.int64, mantissa_bits=52, bias=1023, exp_range=(-746.0, 710.0),
    ln2_hi=0.6931471803691238, ln2_lo=1.9082149292705877e-10,
    exp_poly=(
        2.5100375832561234e-08, 2.7620075879983367e-07, 2.7557268480310024e-06, 2.4801521322368692e-05,
        0.00019841269863040545, 0.0013888888917196719, 0.008333333333330065, 0.041666666666624164,
        0.16666666666666669, 0.5000000000000001,
    ),
    log_poly=(
        0.14616449685043406, 0.15331721600556042, 0.18182889125261723, 0.2222221113479508,
        0.28571428625975487, 0.39999999999899505, 0.666666666666667,
    ),
    tanh_poly=(
        -2.060276537636634e-05, 8.511313685577672e-05, -0.0002346347410887237, 0.0005889360520074057,
        -0.001455661830100716, 0.003592110378689024, -0.008863234397814355, 0.021869488493666944,
        -0.053968253967434016, 0.13333333333332714, -0.3333333333333333,
    ),
    erf_poly=(
        5.957176147748911e-11, -1.1372848856791674e-09, 1.4659775274047436e-08, -1.6350312701054695e-07,
        1.6461000484121368e-06, -1.4925595266831182e-05, 0.0001205533111164271, -0.000854832698083379,
        0.0052239776248180145, -0.026866170645076792, 0.11283791670954879, -0.3761263890318375,
        0.1283791670955126,
    ),
    erf_segments=(
        (1.0, 1.28, (
            4.90613791602026e-06, -1.5883742243818095e-05, 4.8628096996287754e-05,
            -0.0001475345646520248, 0.00043208564730330093, -0.0012171410851459046,
            0.003286278938418983, -0.008466424771534115, 0.020695860608172623, -0.0476567636063472,
            0.10239237863174677, -0.20254739005757466, 0.36165303790544406,
        )),
    ),
    erf_top=6.0,
    expm1_poly=(
        2.0914686968086876e-09, 2.5105217004720745e-08, 2.75572736431103e-07, 2.7557255400206422e-06,
        2.4801587325547743e-05, 0.00019841269874820627, 0.0013888888888883748, 0.008333333333326136,
        0.04166666666666667, 0.1666666666666667,
    ),
    # erfc(x) e**(x**2) on [1.56, 6], 6/7 rational (fit error 0.1 ulp; tools/fit_erf_tail.py).
    # Its evaluation error (~6 ulp of h) is scaled by erfc <= 0.027 here: <= 0.2 ulp of erf.
    erf_tail=(1.56, (
        0.005101445973597887, 0.050285783922969056, 0.25061847664284415, 0.7632584474590919,
        1.4810812984841948, 1.7417753397481852, 1.0000014317135795,
    ), (
        0.009042077350960423, 0.08912924355003589, 0.44873039040270307, 1.3974106547631646,
        2.8426644673772943, 3.7196706010697396, 2.870166173322398, 1.0,
    )),
)

_F32 = _Format(
    float=np.float32, int=np.int32, mantissa_bits=23, bias=127, exp_range=(-104.0, 89.0),
    ln2_hi=0.6931381225585938, ln2_lo=9.058001523953862e-06,
    exp_poly=(0.0013926175888627768, 0.008363173343241215, 0.041666556149721146, 0.16666577756404877, 0.5),
    log_poly=(0.2333046793937683, 0.2855082154273987, 0.4000012278556824, 0.6666666865348816),
    tanh_poly=(
        -0.00661022774875164, 0.021309388801455498, -0.05390942841768265, 0.13333113491535187,
        -0.3333333134651184,
    ),
    erf_poly=(
        8.88804133865051e-05, -0.0008254810236394405, 0.0052100978791713715, -0.02686276100575924,
        0.11283751577138901, -0.37612637877464294, 0.12837916612625122,
    ),
    erf_segments=(
        (0.844, 1.0005, (
            0.00700557604432106, -0.016759980469942093, 0.03753011301159859, -0.07915040850639343,
            0.1542527824640274, -0.2730576992034912, 0.42744702100753784,
        )),
        (1.157, 1.544, (
            0.0017463307594880462, -0.004831207916140556, 0.012294135987758636, -0.030661139637231827,
            0.07195534557104111, -0.15710864961147308, 0.3145306706428528,
        )),
        (1.931, 2.73, (
            0.00014713281416334212, -0.0005408283905126154, 0.001765037071891129, -0.006060043349862099,
            0.02011910453438759, -0.06403626501560211, 0.19493480026721954,
        )),
        (3.529, 3.7645, (
            2.4089835278573446e-05, -0.00010897590982494876, 0.0004802791227120906,
            -0.00207918300293386, 0.008787700906395912, -0.03620009869337082, 0.14506296813488007,
        )),
    ),
    erf_top=4.0,
)


@intrinsic
def _fma(typingctx, a, b, c):
    """``a * b + c`` with one rounding (``llvm.fma``), whatever the caller's fastmath flags."""
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(a)
        fnty = llvm_ir.FunctionType(ty, [ty, ty, ty])
        return builder.call(builder.module.declare_intrinsic("llvm.fma", [ty], fnty), args)

    return a(a, b, c), codegen


@intrinsic
def _div(typingctx, a, b):
    """IEEE division with no zero check, so callers under numba's 'python' error model
    still vectorize (that model guards every ``/`` with a branch that raises)."""
    if not (isinstance(a, types.Float) and a == b):
        return None

    def codegen(context, builder, signature, args):
        return builder.fdiv(*args)

    return a(a, b), codegen


@intrinsic
def _select(typingctx, cond, a, b):
    """``a if cond else b`` as one LLVM ``select``: no branch for the vectorizer to undo, and no
    control flow for numba's IR inliner (which mishandles phis when it inlines twice)."""
    if not isinstance(cond, types.Boolean) or a != b:
        return None

    def codegen(context, builder, signature, args):
        return builder.select(*args)

    return a(cond, a, b), codegen


@njit(inline="always")
def _two_sum(a, b):
    """(a + b rounded, its exact rounding error), for any magnitudes (Knuth's TwoSum)."""
    s = a + b
    v = s - a
    return s, (a - (s - v)) + (b - v)


def _consts(fmt: _Format, values: tuple[float, ...]) -> tuple:
    """Constants typed as ``fmt.float`` so arithmetic with them never promotes float32."""
    return tuple(fmt.float(v) for v in values)


@njit
def _horner(x, coeffs):
    """Evaluate a polynomial (highest degree first). Left to LLVM to inline and unroll:
    numba's IR inliner mishandles this loop when one caller inlines it twice."""
    p = coeffs[0]
    for c in coeffs[1:]:
        p = _fma(p, x, c)
    return p


def _make_exp(fmt: _Format) -> Callable:
    """``exp_parts(x) -> (hi, lo)``: e**x as an unevaluated sum, so callers that divide by
    ``1 + e**x`` (tanh, sigmoid) can keep the rounding error of ``hi`` and stay within 2 ulp."""
    f, i = fmt.float, fmt.int
    lo_x, hi_x = _consts(fmt, fmt.exp_range)
    log2e, ln2_hi, ln2_lo = _consts(fmt, (1.4426950408889634, -fmt.ln2_hi, -fmt.ln2_lo))
    one = f(1.0)
    shifter = f(1.5 * 2.0 ** fmt.mantissa_bits)  # adding it rounds to an integer in the low bits
    shifter_bits = i(np.array(shifter).view(i))
    poly = _consts(fmt, fmt.exp_poly)
    mbits, bias, ione = i(fmt.mantissa_bits), i(fmt.bias), i(1)

    @njit(inline="always")
    def exp_parts(x):
        x = _select(x > hi_x, hi_x, x)  # NaN passes both clamps unchanged
        x = _select(x < lo_x, lo_x, x)
        t = _fma(x, log2e, shifter)
        n = f(t).view(i) - shifter_bits  # the rounded integer, read from the bits: no fptosi
        nf = t - shifter
        r = _fma(nf, ln2_lo, _fma(nf, ln2_hi, x))  # x - n ln2, Cody-Waite
        s = _fma(r * r, _horner(r, poly), r)  # e**r - 1
        p = one + s
        p_lo = (one - p) + s  # the exact rounding error of one + s
        # 2**n as two normal factors, so results down in the subnormals round only once
        n1 = n >> ione
        s1 = i((n1 + bias) << mbits).view(f)
        s2 = i((n - n1 + bias) << mbits).view(f)
        return p * s1 * s2, p_lo * s1 * s2

    return exp_parts


def _make_expm1(fmt: _Format) -> Callable:
    """e**x - 1 without the cancellation of ``exp(x) - 1``: the reduced argument is kept as
    ``r + r_lo``, and the result is summed from exact parts, largest last:
    (2**n - 1) + 2**n r + 2**n r**2/2 + 2**n (the rest)."""
    f, i = fmt.float, fmt.int
    ln2_hi, ln2_lo, log2e = _consts(fmt, (-fmt.ln2_hi, -fmt.ln2_lo, 1.4426950408889634))
    # below lo_x e**x is under half an ulp of 1, so the result rounds to -1; above hi_x inf
    lo_x, hi_x = _consts(fmt, (-(fmt.mantissa_bits + 10) * 0.6931471805599453, fmt.exp_range[1]))
    one, half, tiny = _consts(fmt, (1.0, 0.5, 2.0 ** -(fmt.mantissa_bits + 2)))  # expm1(x) rounds to x below tiny
    shifter = f(1.5 * 2.0 ** fmt.mantissa_bits)
    shifter_bits = i(np.array(shifter).view(i))
    poly = _consts(fmt, fmt.expm1_poly)
    mbits, bias, ione, exact_n = i(fmt.mantissa_bits), i(fmt.bias), i(1), i(fmt.mantissa_bits + 1)

    @njit(inline="always")
    def expm1_(x):
        xc = _select(x > hi_x, hi_x, x)  # NaN passes both clamps unchanged
        xc = _select(xc < lo_x, lo_x, xc)
        t = _fma(xc, log2e, shifter)
        n = f(t).view(i) - shifter_bits
        nf = t - shifter
        a = _fma(nf, ln2_hi, xc)  # exact
        r = _fma(nf, ln2_lo, a)
        r_lo = _fma(nf, ln2_lo, a - r)  # what rounding r lost
        rr = r * r
        square = half * rr  # e**(r + r_lo) - 1 - r = square + rest
        rest = _fma(rr * r, _horner(r, poly), _fma(half, _fma(r, r, -rr), _fma(r, r_lo, r_lo)))
        # |n| <= mantissa bits + 1: 2**n - 1 is exact
        p = i((n + bias) << mbits).view(f)
        a_hi, a_lo = _two_sum(p, -one)
        h, e = _two_sum(a_hi, p * r)
        h, e2 = _two_sum(h, p * square)
        near = h + ((e + e2) + _fma(p, rest, a_lo))
        # larger n: the -1 is below the last bit but one; 2**n (1 + r + q - 2**-n), scaled in
        # two steps like exp so that it overflows only where e**x does
        u = one + r
        inv = i((bias - _select(n > bias - ione, bias - ione, n)) << mbits).view(f)  # 2**-n
        w = u + (((one - u) + r) + (square + (rest - inv)))
        n1 = n >> ione
        far = w * i((n1 + bias) << mbits).view(f) * i((n - n1 + bias) << mbits).view(f)
        res = _select(n > exact_n, far, near)
        return _select(abs(x) < tiny, x, res)  # keeps -0

    return expm1_


def _make_log(fmt: _Format) -> Callable:
    f, i = fmt.float, fmt.int
    ln2_hi, ln2_lo = _consts(fmt, (fmt.ln2_hi, fmt.ln2_lo))
    zero, half, one, two = _consts(fmt, (0.0, 0.5, 1.0, 2.0))
    inf, nan, tiny = _consts(fmt, (np.inf, np.nan, np.finfo(fmt.float).tiny))
    scale = f(2.0 ** (fmt.mantissa_bits + 2))  # lifts subnormals into the normal range
    scale_k, izero, mbits = i(fmt.mantissa_bits + 2), i(0), i(fmt.mantissa_bits)
    sqrt_half_bits = i(np.array(f(np.sqrt(0.5))).view(i))
    poly = _consts(fmt, fmt.log_poly)

    @njit(inline="always")
    def log_(x):
        sub = x < tiny
        bits = f(_select(sub, x * scale, x)).view(i)
        k = (bits - sqrt_half_bits) >> mbits  # x = 2**k * m with m in [sqrt(1/2), sqrt(2))
        m = i(bits - (k << mbits)).view(f)
        k = k - _select(sub, scale_k, izero)
        fr = m - one
        hfsq = half * fr * fr
        s = _div(fr, two + fr)  # log(1 + fr) = 2 atanh(s)
        z = s * s
        dk = f(k)
        r = _fma(s, _fma(z, _horner(z, poly), hfsq), dk * ln2_lo) - hfsq + fr
        r = _fma(dk, ln2_hi, r)
        r = _select(x == inf, inf, r)
        r = _select(x == zero, -inf, r)
        r = _select(x < zero, nan, r)
        return _select(x != x, x, r)

    return log_


def _make_tanh(fmt: _Format, exp_parts: Callable) -> Callable:
    one, two, small, big = _consts(fmt, (1.0, 2.0, 0.55, 20.0))
    poly = _consts(fmt, fmt.tanh_poly)

    @njit(inline="always")
    def tanh_(x):
        ax = abs(x)
        z = x * x
        near_zero = _fma(ax * z, _horner(z, poly), ax)
        axc = _select(ax > big, big, ax)  # tanh rounds to 1 beyond; keeps e**2x finite
        e, e_lo = exp_parts(axc + axc)
        d = e + one
        d_lo = (e - d) + one + e_lo
        inv = _div(one, d)
        q = two * inv  # 2 / (1 + e**2|x|), then one correction step for the roundings
        q = _fma(_fma(-q, d, two) - q * d_lo, inv, q)
        return np.copysign(_select(ax < small, near_zero, one - q), x)

    return tanh_


def _make_erf(fmt: _Format, exp_parts: Callable) -> Callable:
    one, top = _consts(fmt, (1.0, fmt.erf_top))
    poly0 = _consts(fmt, fmt.erf_poly)
    (b1, c1, p1) = fmt.erf_segments[0]
    b1, c1, p1 = fmt.float(b1), fmt.float(c1), _consts(fmt, p1)
    tail = _make_erf_tail(fmt)

    @njit(inline="always")
    def erf_(x):
        ax = abs(x)
        ax = _select(ax > top, top, ax)  # erf rounds to 1 beyond top; NaN passes
        z = ax * ax
        e = -exp_parts(-z)[0]
        # every piece is computed and the right one selected: no branches, all lanes busy;
        # beyond b1, erf = 1 - e**-x**2 * h(x) with h smooth
        r = _fma(ax, _horner(z, poly0), ax)
        r = _select(ax < b1, r, _fma(e, _horner(ax - c1, p1), one))
        return np.copysign(tail(ax, e, r), x)

    return erf_


def _make_erf_tail(fmt: _Format) -> Callable:
    """``tail(ax, e, r)``: erf beyond the first segment, from ``e = -e**-x**2`` and the result
    ``r`` so far. float64 uses one rational function (one division instead of three more
    polynomials: gelu runs 1.7x faster); float32 is fast enough with its segments."""
    one = fmt.float(1.0)
    if fmt.erf_tail is not None:
        lower, num, den = fmt.float(fmt.erf_tail[0]), _consts(fmt, fmt.erf_tail[1]), _consts(fmt, fmt.erf_tail[2])

        @njit(inline="always")
        def rational(ax, e, r):
            return _select(ax < lower, r, _fma(e, _div(_horner(ax, num), _horner(ax, den)), one))

        return rational
    (b2, c2, p2), (b3, c3, p3), (b4, c4, p4) = fmt.erf_segments[1:]
    b2, b3, b4, c2, c3, c4 = _consts(fmt, (b2, b3, b4, c2, c3, c4))
    p2, p3, p4 = (_consts(fmt, p) for p in (p2, p3, p4))

    @njit(inline="always")
    def segments(ax, e, r):
        r = _select(ax < b2, r, _fma(e, _horner(ax - c2, p2), one))
        r = _select(ax < b3, r, _fma(e, _horner(ax - c3, p3), one))
        return _select(ax < b4, r, _fma(e, _horner(ax - c4, p4), one))

    return segments


def _make_sigmoid(fmt: _Format, exp_parts: Callable) -> Callable:
    one, zero = _consts(fmt, (1.0, 0.0))

    @njit(inline="always")
    def sigmoid_(x):
        e, e_lo = exp_parts(-abs(x))  # never overflows; for x < 0 e/(1+e) keeps subnormals
        d = one + e
        d_lo = (one - d) + e + e_lo
        pos = x >= zero
        num = _select(pos, one, e)
        num_lo = _select(pos, zero, e_lo)
        inv = _div(one, d)
        q = num * inv  # then one correction step for the roundings of e, d and the quotient
        return _fma(_fma(-q, d, num) + num_lo - q * d_lo, inv, q)

    return sigmoid_


def _variants(fmt: _Format) -> dict[str, Callable]:
    exp_parts = _make_exp(fmt)

    @njit(inline="always")
    def exp_(x):
        return exp_parts(x)[0]

    out = {
        "exp": exp_,
        "log": _make_log(fmt),
        "tanh": _make_tanh(fmt, exp_parts),
        "erf": _make_erf(fmt, exp_parts),
        "sigmoid": _make_sigmoid(fmt, exp_parts),
    }
    if fmt is _F64:  # libmvec's float32 expm1 is within 2 ulp; its float64 one is not
        out["expm1"] = _make_expm1(fmt)
    return out


_IMPLS: dict[str, dict[int, Callable]] = {}
for _bits, _fmt in ((64, _F64), (32, _F32)):
    for _name, _fn in _variants(_fmt).items():
        _IMPLS.setdefault(_name, {})[_bits] = _fn


def implementation(name: str, bits: int) -> tuple[Callable, float]:
    """(the jitted scalar implementation of ``name`` for float``bits``, the bound on |x| up to
    which it is valid): the automatic vector math (``jitbridge.targets.vector_variants``) builds
    its SIMD versions from the same implementation, and gives lanes beyond the bound (and
    non-finite ones) to libm. The bound is inf but for sin, cos and tan (``math_trig``)."""
    from . import math_trig  # built on this module's primitives, so imported after it

    if name in _IMPLS:
        return _IMPLS[name][bits], np.inf
    return math_trig.IMPLS[name][bits], math_trig.VALID_BELOW.get(name, np.inf)


def _make_map(fn: Callable) -> Callable:
    @njit
    def apply(x, out):
        for j in range(x.size):
            out[j] = fn(x[j])

    return apply


def _generic(name: str, doc: str) -> Callable:
    """The public function: typed dispatch inside jitted code, an array map from Python.

    Inside jitted code the body is inlined at numba-IR level: LLVM's inliner would refuse
    bodies this big and leave a scalar call in the loop. Inlined code takes the caller's
    fastmath flags: keep ``nnan``/``ninf``/``reassoc`` (and ``fastmath=True``) off in loops
    that call these functions, or NaN, inf and the error-free steps are no longer exact.
    """
    impls = _IMPLS[name]
    # Python calls map with the typed variants directly; holding them here also lets the
    # cache's dependency walk reach the implementations from the public name.
    maps = (_make_map(impls[64]), _make_map(impls[32]))

    def fn(x: Any) -> Any:
        arr = np.asarray(x)
        single = arr.dtype == np.float32
        flat = np.ascontiguousarray(arr, dtype=np.float32 if single else np.float64).ravel()
        out = np.empty_like(flat)
        if flat.size:
            maps[1 if single else 0](flat, out)
        out = out.reshape(arr.shape)
        return out[()] if arr.ndim == 0 else out

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc

    @overload(fn, inline="always")
    def _typed(x):
        if isinstance(x, types.Float) and x.bitwidth in impls:
            impl = impls[x.bitwidth]
            return lambda x: impl(x)
        if isinstance(x, (types.Integer, types.Boolean, types.Float)):
            impl64 = impls[64]
            return lambda x: impl64(np.float64(x))
        return None

    return fn


exp = _generic("exp", "e**x; within 2 ulp; overflows to inf above ~709.78 (float32: ~88.72).")
log = _generic("log", "Natural logarithm; -inf at 0, NaN below 0, subnormals exact to 2 ulp.")
tanh = _generic("tanh", "Hyperbolic tangent; odd, keeps -0, saturates to +-1.")
erf = _generic("erf", "Error function; odd, keeps -0, saturates to +-1.")
sigmoid = _generic("sigmoid", "1 / (1 + e**-x), computed without overflow for either sign.")
