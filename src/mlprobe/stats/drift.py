"""Drift statistics between a reference and a current distribution.

Pure functions over proportions, counts, or (for the ``*_exact`` variants) raw float arrays.
Definitions follow ``docs/stats.md``; each result is a plain float (or a small tuple) so the
caller can publish the definition next to the number. Nothing here raises on empty input:
an empty side gives a neutral value (0 distance, p-value 1) and callers decide whether there
is enough data (see ``DriftSpec.min_count``).

The Evidently-compatible values (``evidently_psi`` and friends, in :mod:`mlprobe.stats`) are
built on these functions; the block versions of the binned ones, for many features at once,
are in ``mlprobe/stats/_drift_block.py`` and are tested equal to these.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ._special import chi2_sf, kolmogorov_sf

__all__ = [
    "ChiSquareResult",
    "chi_square",
    "jensen_shannon",
    "ks_exact",
    "ks_from_counts",
    "ks_pvalue",
    "linf_distance",
    "normed",
    "psi",
    "wasserstein_exact",
    "wasserstein_from_counts",
]

PSI_EPS = 1e-4
"""Floor on proportions in PSI (``docs/stats.md``: textbook and Evidently both use 1e-4)."""

WASSERSTEIN_STD_FLOOR = 0.001
"""Floor on the reference std when normalising Wasserstein (Evidently's value)."""


def _props(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    total = a.sum()
    return a / total if total > 0 else np.zeros_like(a)


def psi(ref_props: np.ndarray, cur_props: np.ndarray, eps: float = PSI_EPS) -> float:
    """Population stability index ``Σ (c - r) · ln(c / r)``.

    Proportions are floored at ``eps`` (not renormalised), the textbook credit-risk recipe;
    so a bin empty on one side contributes about ``share · ln(share / eps)`` instead of
    infinity. The value is symmetric in its two arguments and zero for identical inputs.

    Args:
        ref_props: Reference proportions per bin (or counts: they are not renormalised, so
            pass proportions).
        cur_props: Current proportions over the same bins.
        eps: Floor applied to both sides.

    Returns:
        PSI in nats (natural log).
    """
    r = np.maximum(np.asarray(ref_props, dtype=np.float64), eps)
    c = np.maximum(np.asarray(cur_props, dtype=np.float64), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def linf_distance(ref_props: np.ndarray, cur_props: np.ndarray) -> float:
    """Largest absolute difference of shares, ``max_i |c_i - r_i|`` (NannyML's L-infinity)."""
    r = np.asarray(ref_props, dtype=np.float64)
    c = np.asarray(cur_props, dtype=np.float64)
    return float(np.max(np.abs(c - r))) if r.size else 0.0


def ks_from_counts(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic from counts on shared bins, and its error bound.

    ``D_b = max_i |R_i - C_i|`` over the cumulative shares at the bin edges. With left-closed
    bins ``[e_{i-1}, e_i)`` these are the ECDFs' left limits at the edges, so ``D_b`` never
    exceeds the true statistic ``D = sup_x |F_R(x) - F_C(x)|``. Conversely, for ``x`` inside
    bin ``i`` both ECDFs are non-decreasing, so ``F_R(x) ∈ [R_{i-1}, R_i]`` and
    ``F_C(x) ∈ [C_{i-1}, C_i]``; hence ``F_R(x) - F_C(x) <= R_i - C_i + c_i <= D_b + c_i``
    and ``>= R_{i-1} - C_{i-1} - r_i >= -(D_b + r_i)``. Therefore::

        D_b <= D <= D_b + max_i max(r_i, c_i)

    The returned ``bound`` is that largest in-bin share; with 100 reference-quantile bins it
    is about 0.01 while the current window matches the reference. (For discrete features
    with one bin per value, ``D_b`` is exact and the bound is conservative.)

    Args:
        ref_counts: Reference counts (or proportions) per bin.
        cur_counts: Current counts per bin.

    Returns:
        ``(D_b, bound)``; ``(0.0, 0.0)`` if either side is empty.
    """
    r = _props(ref_counts)
    c = _props(cur_counts)
    if not r.any() or not c.any():
        return 0.0, 0.0
    d = float(np.max(np.abs(np.cumsum(r) - np.cumsum(c))))
    bound = float(max(r.max(), c.max()))
    return d, bound


def _sorted_finite(values: np.ndarray) -> np.ndarray:
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    return v[np.isfinite(v)]


def ks_exact(ref_values: np.ndarray, cur_values: np.ndarray) -> float:
    """Exact two-sample KS statistic on raw values (ties handled like ``scipy.stats.ks_2samp``).

    Both ECDFs are evaluated at every pooled point with ``searchsorted(side="right")``.
    Non-finite values are dropped. Returns 0.0 if either side is empty.
    """
    r, c = _sorted_finite(ref_values), _sorted_finite(cur_values)
    if r.size == 0 or c.size == 0:
        return 0.0
    pooled = np.concatenate([r, c])
    fr = np.searchsorted(r, pooled, side="right") / r.size
    fc = np.searchsorted(c, pooled, side="right") / c.size
    return float(np.max(np.abs(fr - fc)))


def ks_pvalue(d: float, n_ref: int, n_cur: int) -> float:
    """Asymptotic two-sided KS p-value.

    scipy's large-sample branch is ``kstwo.sf(D, en)`` with ``en = round(n_r n_c / (n_r +
    n_c))``; we use Kolmogorov's limiting distribution at ``D · (√en + 0.12 + 0.11/√en)``
    (Stephens' small-sample correction). Tested against scipy: within 0.006 absolute when
    ``en >= 500`` (0.015 when ``en >= 80``) and within 5% relative wherever p >= 1e-6.

    Returns:
        p-value in [0, 1]; 1.0 when either sample is empty.
    """
    if n_ref <= 0 or n_cur <= 0:
        return 1.0
    en = round(n_ref * n_cur / (n_ref + n_cur))
    if en <= 0:
        return 1.0
    sq = math.sqrt(en)
    return kolmogorov_sf(d * (sq + 0.12 + 0.11 / sq))


class ChiSquareResult(NamedTuple):
    """Goodness-of-fit chi-square: statistic, p-value and degrees of freedom."""

    statistic: float
    p_value: float
    dof: int


def chi_square(
    ref_counts: np.ndarray, cur_counts: np.ndarray, eps: float = PSI_EPS
) -> ChiSquareResult:
    """Goodness of fit of current counts against reference proportions (Evidently's test).

    Bins empty on both sides are dropped; ``K`` bins remain and ``dof = K - 1``. Expected
    counts are ``E_i = n_C · r_i``. A level with zero reference share (unseen, or the
    ``__other__`` bucket when the reference had no rare levels) would make ``E_i = 0`` and
    the statistic infinite, as in Evidently and whylogs; instead reference shares are floored
    at ``eps`` (the PSI epsilon) and renormalised to sum to 1, so an unseen level contributes
    a large but finite amount. With no zero reference shares the result equals
    ``scipy.stats.chisquare(cur, n_C · r)`` exactly.

    Returns:
        ``ChiSquareResult(statistic, p_value, dof)``; ``(0.0, 1.0, 0)`` with fewer than two
        bins or an empty side.
    """
    ref = np.asarray(ref_counts, dtype=np.float64).ravel()
    cur = np.asarray(cur_counts, dtype=np.float64).ravel()
    keep = (ref > 0) | (cur > 0)
    ref, cur = ref[keep], cur[keep]
    n_cur = cur.sum()
    if ref.size < 2 or ref.sum() <= 0 or n_cur <= 0:
        return ChiSquareResult(0.0, 1.0, 0)
    r = np.maximum(ref / ref.sum(), eps)
    r /= r.sum()
    expected = n_cur * r
    stat = float(np.sum((cur - expected) ** 2 / expected))
    dof = int(ref.size - 1)
    return ChiSquareResult(stat, chi2_sf(stat, dof), dof)


def jensen_shannon(p: np.ndarray, q: np.ndarray, base: float = 2.0) -> float:
    """Jensen-Shannon *distance* ``sqrt(JSD)`` between two distributions.

    Inputs are normalised to sum to 1 (so counts work); no epsilon is needed because the
    mixture is positive wherever either side is. Equals
    ``scipy.spatial.distance.jensenshannon(p, q, base)``. Base 2 gives a range [0, 1];
    base e (Evidently) gives [0, sqrt(ln 2)].

    Returns:
        The distance; 0.0 if either side is empty.
    """
    a = _props(p)
    b = _props(q)
    if not a.any() or not b.any():
        return 0.0
    m = 0.5 * (a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        ka = np.where(a > 0, a * np.log(a / m), 0.0).sum()
        kb = np.where(b > 0, b * np.log(b / m), 0.0).sum()
    js = 0.5 * (ka + kb) / math.log(base)
    return math.sqrt(max(float(js), 0.0))


def wasserstein_exact(ref_values: np.ndarray, cur_values: np.ndarray) -> float:
    """Exact W1 ``∫ |F_R - F_C| dx`` on raw values (same as ``scipy.stats.wasserstein_distance``).

    Non-finite values are dropped; 0.0 if either side is empty.
    """
    r, c = _sorted_finite(ref_values), _sorted_finite(cur_values)
    if r.size == 0 or c.size == 0:
        return 0.0
    pooled = np.sort(np.concatenate([r, c]))
    deltas = np.diff(pooled)
    fr = np.searchsorted(r, pooled[:-1], side="right") / r.size
    fc = np.searchsorted(c, pooled[:-1], side="right") / c.size
    return float(np.sum(np.abs(fr - fc) * deltas))


def wasserstein_from_counts(
    edges: np.ndarray,
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    lo: float,
    hi: float,
    *,
    ref_outer_means: tuple[float, float] | None = None,
    cur_outer_means: tuple[float, float] | None = None,
    interpolation: str = "linear",
) -> float:
    """Approximate W1 ``∫ |F_R - F_C| dx`` from counts on shared bins with open outer bins.

    Interior bins ``[e_{i-1}, e_i)``:

    * ``"linear"`` spreads each bin's mass uniformly, so both CDFs are piecewise linear and
      ``|F_R - F_C|`` is integrated exactly per bin (continuous features);
    * ``"step"`` puts each bin's mass at its left edge (exact for discrete features whose
      bins hold one value each, see ``reference_edges``).

    Open outer bins: when the mean of each side's values in them is known (``outer_means``
    of :class:`BinnedCounts`), the upper tail contributes
    ``|c_k (μ_C - e) - r_k (μ_R - e)|`` because ``∫_e^∞ S(x) dx = mass · (tail mean - e)``
    for a survival function ``S``; this is exact whenever one tail dominates the other (the
    usual case for shifts and scale changes) and a lower bound otherwise. The lower tail is
    symmetric. Without tail means, the outer bins are closed at ``lo`` / ``hi`` (the smallest
    and largest value observed on either side) and treated like interior bins, which
    overstates heavy tails.

    Args:
        edges: Interior edges shared by both counts.
        ref_counts: Reference counts per bin.
        cur_counts: Current counts per bin.
        lo: Smallest value seen on either side.
        hi: Largest value seen on either side.
        ref_outer_means: Reference mean in the (lower, upper) open bins (NaN if empty).
        cur_outer_means: Current mean in the (lower, upper) open bins (NaN if empty).
        interpolation: ``"linear"`` or ``"step"``.

    Returns:
        The distance in the feature's units; 0.0 if either side is empty.
    """
    if interpolation not in ("linear", "step"):
        raise ValueError("interpolation must be 'linear' or 'step'")
    e = np.asarray(edges, dtype=np.float64)
    r = _props(ref_counts)
    c = _props(cur_counts)
    if not r.any() or not c.any() or e.size == 0:
        return 0.0
    lo = min(float(lo), float(e[0]))
    hi = max(float(hi), float(e[-1]))
    x = np.concatenate([[lo], e, [hi]])
    width = np.diff(x)
    diff = np.concatenate([[0.0], np.cumsum(r - c)])  # F_R - F_C at each point of x
    diff[-1] = 0.0
    left, right = diff[:-1], diff[1:]
    if interpolation == "step":
        # On [x_i, x_{i+1}) the CDFs already include bin i's mass (it sits at x_i).
        area = np.abs(right) * width
    else:
        same = left * right >= 0
        abs_sum = np.abs(left) + np.abs(right)
        with np.errstate(divide="ignore", invalid="ignore"):
            crossing = np.where(abs_sum > 0, (left**2 + right**2) / (2.0 * abs_sum), 0.0)
        area = np.where(same, 0.5 * abs_sum, crossing) * width
    if ref_outer_means is not None and cur_outer_means is not None:
        rl, rh = (0.0 if not math.isfinite(m) else m for m in ref_outer_means)
        cl, ch = (0.0 if not math.isfinite(m) else m for m in cur_outer_means)
        e0, ek = float(e[0]), float(e[-1])
        area[0] = abs(r[0] * (e0 - rl) - c[0] * (e0 - cl)) if r[0] or c[0] else 0.0
        area[-1] = abs(c[-1] * (ch - ek) - r[-1] * (rh - ek)) if r[-1] or c[-1] else 0.0
    return float(np.sum(area))


def normed(distance: float, ref_std: float, floor: float = WASSERSTEIN_STD_FLOOR) -> float:
    """Divide a distance by ``max(ref_std, floor)`` (Evidently's Wasserstein normalisation).

    Use the reference *population* std (ddof=0), as Evidently does.
    """
    s = ref_std if math.isfinite(ref_std) else 0.0
    return float(distance) / max(s, floor)
