"""Fit the rational function behind ``jitbridge.math.erf``'s float64 tail.

For x in [1.56, 6], erf(x) = 1 - e**(-x**2) h(x) with h(x) = erfc(x) e**(x**2), which falls
smoothly like 1/(x sqrt(pi)). h is fitted as P(x)/Q(x) (degrees 6 and 7, Q(0) = 1) in x itself:
every coefficient is positive, so Horner's rule never cancels on the interval. The fit is
linearized least squares on Chebyshev nodes in 50-digit arithmetic (mpmath), reweighted
toward the relative error (Sanathanan-Koerner) and then toward minimax (Lawson).

    pip install mpmath && python tools/fit_erf_tail.py   # prints the coefficients, highest first
"""
from __future__ import annotations

import mpmath as mp

mp.mp.dps = 50
LOWER, UPPER, NUM, DEN, NODES = 1.56, 6.0, 6, 7, 400


def h(x: mp.mpf) -> mp.mpf:
    return mp.erfc(x) * mp.exp(x * x)


def fit() -> tuple[list, list, float]:
    xs = [(LOWER + UPPER) / 2 + (UPPER - LOWER) / 2 * mp.cos(mp.pi * (k + mp.mpf(0.5)) / NODES)
          for k in range(NODES)]
    hs = [h(x) for x in xs]
    q_prev, lawson = [mp.mpf(1)] * NODES, [mp.mpf(1)] * NODES
    for step in range(12):
        rows, rhs = [], []
        for x, hv, qp, weight in zip(xs, hs, q_prev, lawson):
            w = mp.sqrt(weight) / (hv * qp)
            rows.append([w * x**j for j in range(NUM + 1)] + [-w * hv * x**j for j in range(1, DEN + 1)])
            rhs.append(w * hv)
        sol = mp.qr_solve(mp.matrix(rows), mp.matrix(rhs))[0]
        p = [sol[j] for j in range(NUM + 1)]
        q = [mp.mpf(1)] + [sol[NUM + j] for j in range(1, DEN + 1)]
        q_prev = [mp.polyval(q[::-1], x) for x in xs]
        errors = [abs(mp.polyval(p[::-1], x) / qv / hv - 1) for x, qv, hv in zip(xs, q_prev, hs)]
        if step >= 3:
            worst = max(errors)
            lawson = [w * (e / worst + mp.mpf("1e-3")) for w, e in zip(lawson, errors)]
            total = sum(lawson)
            lawson = [w * NODES / total for w in lawson]
    return p[::-1], q[::-1], float(max(errors))


if __name__ == "__main__":
    num, den, err = fit()
    print(f"max relative error of the fit: {err:.3g} ({err / 2**-53:.2f} ulp)")
    print("P =", [float(c) for c in num])
    print("Q =", [float(c) for c in den])
