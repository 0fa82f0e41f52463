"""Vectorizable float64 ``sin``, ``cos`` and ``tan``, and float32 ``tan`` and ``atan2``, for
vector math's SIMD lanes.

Why they exist: glibc's SIMD versions of these miss vector math's 2-ulp bound (sin 2.9, cos
3.3, tan 3.0 ulp; float32 atan2 2.5 ulp at 512 bits), so without them a loop calling
``math.sin`` stays a scalar libm call per element. Like ``jitbridge.math`` they are
straight-line arithmetic with selects, so the one-vector lane loop that
``targets.vector_variants`` wraps around them vectorizes; they are about 0.5 ulp from the
correctly rounded result. They are not public ``jitbridge.math`` functions because sin, cos and
tan are valid only for |x| <= ``REDUCTION_BOUND``: the SIMD wrapper recomputes lanes beyond it
(and inf, NaN) with libm, a fix-up that a scalar function would need as a branch per element,
which would stop the caller's loop from vectorizing.

Argument reduction (sin, cos, tan): x = n pi/2 + r with |r| <= ~pi/4, r kept as a double-double
``hi + lo``. With pi/2 = P1 + P2 + P3 (consecutive 53-bit pieces), x - n P1 is exact (an FMA
whose exact result fits a double), n P2 is split exactly with an FMA, and n P3 goes into the low
word; the neglected part of pi/2 and the low word's roundings stay below n 2**-159. No double
lies closer than 2**-61 to a multiple of pi/2 (the worst, 6381956970095103 * 2**797, is 2**-60.9
away: Muller, *Elementary Functions*, ch. 11), so for n < 2**28 the reduced argument has a
relative error under 2**-70, far below the last bit. Beyond 2**28 glibc's own scalar sin takes
its slow Payne-Hanek path too, so patching those rare lanes with libm costs little.

sin r and cos r use fdlibm's minimax polynomials (``k_sin.c``, ``k_cos.c``, error below
2**-58 on [-pi/4, pi/4]) and carry their rounding error, so tan = sin/cos is one division
corrected by its residual. float32 tan and atan2 compute in float64 and round once at the end.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
from numba import njit

from .math import _div, _fma, _horner, _select, _two_sum

REDUCTION_BOUND = 2.0 ** 28
_P1, _P2, _P3 = 1.5707963267948966, 6.123233995736766e-17, -1.4973849048591698e-33  # pi/2, mpmath
_TWO_OVER_PI = 0.6366197723675814
_SHIFTER = 1.5 * 2.0 ** 52  # adding it rounds to an integer in the low bits
_SHIFTER_BITS = np.int64(np.array(_SHIFTER).view(np.int64))
# fdlibm: S6..S2 and S1 of sin, C6..C1 of cos (k_sin.c, k_cos.c)
_SIN_POLY = (1.58969099521155010221e-10, -2.50507602534068634195e-08, 2.75573137070700676789e-06,
             -1.98412698298579493134e-04, 8.33333333332248946124e-03)
_S1 = -1.66666666666666324348e-01
_COS_POLY = (-1.13596475577881948265e-11, 2.08757232129817482790e-09, -2.75573143513906633035e-07,
             2.48015872894767294178e-05, -1.38888888888741095749e-03, 4.16666666666666019037e-02)
# (atan(t)/t - 1) / t**2 in z = t**2 <= tan(pi/8)**2, Chebyshev (mpmath.chebyfit, 40 digits):
# relative error of atan under 2**-38, far below float32's last bit
_ATAN_POLY = (-0.04043224825887161, 0.07135325122330678, -0.09028983500350463, 0.11107495135714474,
              -0.14285612511387016, 0.1999999891728858, -0.3333333333144073)
_TAN_PI_8 = 0.41421356237309503
_PI, _PI_2, _PI_4 = np.pi, np.pi / 2, np.pi / 4


@njit(inline="always")
def _reduce(x):
    """(n mod 4, hi, lo) with x = n pi/2 + hi + lo, |lo| <= ulp(hi)/2; valid for |x| <= 2**28."""
    t = _fma(x, _TWO_OVER_PI, _SHIFTER)
    quadrant = (np.float64(t).view(np.int64) - _SHIFTER_BITS) & 3
    n = t - _SHIFTER
    r1 = _fma(-n, _P1, x)  # exact
    p = n * _P2
    p_lo = _fma(n, _P2, -p)  # exact
    hi, e = _two_sum(r1, -p)
    lo = (e - p_lo) - n * _P3
    r = hi + lo
    return quadrant, r, (hi - r) + lo


@njit(inline="always")
def _sin_cos(hi, lo):
    """sin and cos of hi + lo (|hi| <= ~pi/4), each as (rounded value, its rounding error)."""
    z = hi * hi
    s_tail = _fma(z * hi, _fma(z, _horner(z, _SIN_POLY), _S1), lo - z * (0.5 * lo))
    s = hi + s_tail
    half_z = 0.5 * z
    w = 1.0 - half_z
    # (1 - w) - z/2 and the rounding of z are exact corrections of w = 1 - z/2
    c_tail = (((1.0 - w) - half_z) - 0.5 * _fma(hi, hi, -z)) + (z * z * _horner(z, _COS_POLY) - hi * lo)
    c = w + c_tail
    return s, (hi - s) + s_tail, c, (w - c) + c_tail


@njit(inline="always")
def _sin_of_quadrant(quadrant, s, c):
    """sin(quadrant pi/2 + r) from s = sin r and c = cos r."""
    v = _select((quadrant & 1) == 1, c, s)
    return _select((quadrant & 2) == 2, -v, v)


@njit(inline="always")
def sin64(x):
    quadrant, hi, lo = _reduce(x)
    s, _, c, _ = _sin_cos(hi, lo)
    return _select(x == 0.0, x, _sin_of_quadrant(quadrant, s, c))  # keeps -0


@njit(inline="always")
def cos64(x):
    quadrant, hi, lo = _reduce(x)
    s, _, c, _ = _sin_cos(hi, lo)
    return _sin_of_quadrant(quadrant + 1, s, c)


@njit(inline="always")
def tan64(x):
    quadrant, hi, lo = _reduce(x)
    s, s_lo, c, c_lo = _sin_cos(hi, lo)
    odd = (quadrant & 1) == 1  # tan = -cos/sin there
    num, num_lo = _select(odd, c, s), _select(odd, c_lo, s_lo)
    den, den_lo = _select(odd, s, c), _select(odd, s_lo, c_lo)
    inv = _div(1.0, den)
    t = num * inv
    t = _fma(_fma(-t, den, num) + (num_lo - t * den_lo), inv, t)  # one correction step
    return _select(x == 0.0, x, _select(odd, -t, t))


@njit(inline="always")
def tan32(x):
    return np.float32(tan64(np.float64(x)))


@njit(inline="always")
def atan2_32(y, x):
    """atan2 of float32 arguments, in float64: |t| <= 1 from the smaller over the larger
    magnitude, reduced to |t| <= tan(pi/8) around pi/4, then moved to the right octant."""
    yd, xd = np.float64(y), np.float64(x)
    ay, ax = abs(yd), abs(xd)
    steep = ay > ax
    num, den = _select(steep, ax, ay), _select(steep, ay, ax)
    t = _select(num == den, 1.0, _div(num, den))  # both infinite: 1
    t = _select(num == 0.0, 0.0, t)  # both zero: 0
    far = t > _TAN_PI_8
    u = _select(far, _div(t - 1.0, t + 1.0), t)
    z = u * u
    a = _fma(u * z, _horner(z, _ATAN_POLY), u)
    a = _select(far, a + _PI_4, a)
    a = _select(steep, _PI_2 - a, a)
    a = _select(xd.view(np.int64) < 0, _PI - a, a)  # x < 0, -0 and -inf included
    a = np.copysign(a, yd)
    a = _select(xd != xd, xd, a)
    return np.float32(_select(yd != yd, yd, a))


IMPLS: dict[str, dict[int, Callable]] = {
    "sin": {64: sin64}, "cos": {64: cos64}, "tan": {64: tan64, 32: tan32}, "atan2": {32: atan2_32},
}
VALID_BELOW = {"sin": REDUCTION_BOUND, "cos": REDUCTION_BOUND, "tan": REDUCTION_BOUND}
