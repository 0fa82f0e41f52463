"""The cases that once made a kernel slower than the same body in a numba ``prange`` loop,
each checked in the assembly of both launch variants (serial and parallel)."""
import math
import re

import numpy as np
import pytest

import jitbridge as jb

PACKED_DOUBLE = re.compile(r"^\s*v(?:mul|add|sub|div|fn?m(?:add|sub)\d*)pd\s[^\n]*%[yz]mm", re.M)
GATHER_SCATTER = re.compile(r"^\s*v(?:gather|scatter)\w*", re.M)
VARIANTS = [False, True]


def asm_of(kernel, signature, parallel):
    kernel.compile(signature, parallel=parallel)
    return "\n".join(kernel.inspect_asm(parallel=parallel).values())


def calls_to(asm, name):
    """Calls into a function whose mangled name holds ``name`` (the body, not inlined)."""
    return [line for line in asm.splitlines() if re.search(r"\bcall", line) and name in line]


@jb.kernel
def ratio(i, x, y, out):
    out[i] = x[i] / y[i]


@jb.kernel
def blur(i, j, img, w, out):
    acc = 0.0
    for a in range(5):
        for b in range(5):
            acc += w[a, b] * img[i + a, j + b]
    out[i, j] = acc


@jb.jit
def cnd(d):
    k = 1.0 / (1.0 + 0.2316419 * math.fabs(d))
    poly = k * (0.31938153 + k * (-0.356563782 + k * (1.781477937 + k * (-1.821255978 + k * 1.330274429))))
    value = 0.3989422804014327 * math.exp(-0.5 * d * d) * poly
    return 1.0 - value if d > 0 else value


@jb.kernel
def black_scholes(i, call, put, S, X, T, R, V):
    s, x, t = S[i], X[i], T[i]
    sqrt_t = math.sqrt(t)
    d1 = (math.log(s / x) + (R + 0.5 * V * V) * t) / (V * sqrt_t)
    d2 = d1 - V * sqrt_t
    exp_rt = math.exp(-R * t)
    call[i] = s * cnd(d1) - x * exp_rt * cnd(d2)
    put[i] = x * exp_rt * (1.0 - cnd(d2)) - s * (1.0 - cnd(d1))


@pytest.mark.parametrize("parallel", VARIANTS)
def test_division_vectorizes_under_the_numpy_error_model(parallel):
    asm = asm_of(ratio, "float64[::1], float64[::1], float64[::1]", parallel)
    assert re.search(r"^\s*vdivpd\s[^\n]*%[yz]mm", asm, re.M), "no packed division"


@pytest.mark.parametrize("parallel", VARIANTS)
def test_blur_with_weights_in_an_array_vectorizes_without_gathers(parallel):
    asm = asm_of(blur, "float64[:, ::1], float64[:, ::1], float64[:, ::1]", parallel)
    assert len(PACKED_DOUBLE.findall(asm)) >= 25, "the 25 multiply-adds should be packed"
    assert not GATHER_SCATTER.findall(asm), "launch indices are non-negative: no wraparound, no gathers"
    assert not calls_to(asm, "4blur"), "the body must be inlined into the loop"
    img, w = np.random.default_rng(0).random((20, 24)), np.random.default_rng(1).random((5, 5))
    out = np.empty((16, 20))
    blur.launch(out.shape, img, w, out, threads=2 if parallel else 1)
    expected = sum(w[a, b] * img[a:a + 16, b:b + 20] for a in range(5) for b in range(5))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


@pytest.mark.parametrize("parallel", VARIANTS)
def test_black_scholes_body_and_helper_are_inlined_and_vectorized(parallel):
    sig = "float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], float64, float64"
    asm = asm_of(black_scholes, sig, parallel)
    assert not calls_to(asm, "13black_scholes") and not calls_to(asm, "3cnd"), "body and helper inlined"
    assert PACKED_DOUBLE.search(asm), "with vector math the whole body runs in SIMD lanes"


@jb.kernel
def guarded_blur(i, j, img, w, out):
    if i >= 2 and j >= 2 and i < img.shape[0] - 2 and j < img.shape[1] - 2:
        acc = 0.0
        for a in range(5):
            for b in range(5):
                acc += w[a, b] * img[i + a - 2, j + b - 2]
        out[i, j] = acc


def test_arrays_are_not_refcounted_per_element():
    """A body borrows its arrays: the loop function takes one reference to each of its three
    arrays on entry. A body that counted its own (numba's default) leaves an incref and decrefs
    per index once it has branches, which numba's pruning pass no longer pairs."""
    guarded_blur.compile("float64[:, ::1], float64[:, ::1], float64[:, ::1]", parallel=False)
    (loop,) = guarded_blur.cpu._loops.values()
    ll = loop.inspect_llvm(loop.signatures[0])
    start = ll.index("define")  # the loop function itself comes first, before its wrappers
    definition = ll[start:ll.index("\n}\n", start)]
    assert len(re.findall(r"call void @NRT_incref", definition)) <= 3, definition[:2000]
