"""Special functions the drift tests need, so that runtime code does not depend on scipy.

* :func:`gammaincc`: the regularized upper incomplete gamma ``Q(a, x)`` by the series for
  ``P`` when ``x < a + 1`` and by Lentz's continued fraction otherwise (Numerical Recipes
  6.2); relative accuracy ~1e-14 where ``Q`` is not below ~1e-300.
* :func:`chi2_sf`: ``Q(dof / 2, x / 2)``.
* :func:`kolmogorov_sf`: the limiting two-sided Kolmogorov distribution's survival function.
"""

from __future__ import annotations

import math

__all__ = ["chi2_sf", "gammaincc", "kolmogorov_sf"]

_EPS = 1e-16
_TINY = 1e-300
_MAX_ITER = 10_000


def _log_prefactor(a: float, x: float) -> float:
    # log(x^a e^-x / Γ(a)), kept in logs so large a and x do not overflow.
    return a * math.log(x) - x - math.lgamma(a)


def _gammainc_series(a: float, x: float) -> float:
    """Regularized lower incomplete gamma P(a, x) by its power series (x < a + 1)."""
    term = 1.0 / a
    total = term
    ap = a
    for _ in range(_MAX_ITER):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    return total * math.exp(_log_prefactor(a, x))


def _gammaincc_cf(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) by the continued fraction (x >= a + 1)."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    return math.exp(_log_prefactor(a, x)) * h


def gammaincc(a: float, x: float) -> float:
    """Return the regularized upper incomplete gamma function ``Q(a, x)``.

    Args:
        a: Shape, > 0.
        x: Argument, >= 0.

    Raises:
        ValueError: If ``a <= 0`` or ``x < 0``.
    """
    if a <= 0 or x < 0 or math.isnan(x):
        raise ValueError("gammaincc needs a > 0 and x >= 0")
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    if x < a + 1.0:
        return max(0.0, 1.0 - _gammainc_series(a, x))
    return _gammaincc_cf(a, x)


def chi2_sf(x: float, dof: float) -> float:
    """Survival function of the chi-square distribution, ``P(X > x)``.

    Args:
        x: Statistic (>= 0; negative values give 1).
        dof: Degrees of freedom (> 0).
    """
    if x <= 0:
        return 1.0
    return gammaincc(dof / 2.0, x / 2.0)


def kolmogorov_sf(x: float) -> float:
    """Return ``P(K > x)`` for the Kolmogorov distribution ``K = lim sqrt(n) D_n``.

    Uses ``2 Σ (-1)^(k-1) exp(-2 k² x²)`` for ``x >= 1`` (a few terms suffice) and the
    Jacobi-theta form ``1 - sqrt(2π)/x Σ exp(-(2k-1)² π² / (8 x²))`` below, where the first
    series converges slowly.
    """
    if x <= 0:
        return 1.0
    if x < 1.0:
        s = 0.0
        for k in range(1, 20):
            term = math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * x * x))
            s += term
            if term < 1e-17 * s:
                break
        return min(1.0, max(0.0, 1.0 - math.sqrt(2.0 * math.pi) / x * s))
    s = 0.0
    for k in range(1, 101):
        term = math.exp(-2.0 * k * k * x * x)
        s += term if k % 2 else -term
        if term < 1e-300 or term < 1e-17 * abs(s):
            break
    return min(1.0, max(0.0, 2.0 * s))
