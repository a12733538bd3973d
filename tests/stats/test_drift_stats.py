"""Drift statistics against scipy / independent recomputations, with stated tolerances."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlprobe.stats import (
    BinnedCounts,
    chi_square,
    jensen_shannon,
    ks_exact,
    ks_from_counts,
    ks_pvalue,
    linf_distance,
    normed,
    psi,
    reference_edges,
    wasserstein_exact,
    wasserstein_from_counts,
)
from mlprobe.stats._special import chi2_sf

rng = np.random.default_rng(7)
REF = rng.normal(0.0, 1.25, 100_000)


def _window(kind: str, n: int = 10_000) -> np.ndarray:
    g = np.random.default_rng(zlib.crc32(kind.encode()))
    return {
        "same": g.normal(0.0, 1.25, n),
        "shift02": g.normal(0.25, 1.25, n),
        "shift05": g.normal(0.625, 1.25, n),
        "wide": g.normal(0.0, 1.25 * 1.5, n),
        "skew": g.gamma(2.0, 1.0, n) - 2.0,
    }[kind]


props = st.lists(st.floats(0.0, 1.0), min_size=2, max_size=12).map(np.asarray)


@settings(max_examples=80, deadline=None)
@given(props, props)
def test_psi_symmetric_nonnegative_zero_on_identical(p: np.ndarray, q: np.ndarray) -> None:
    """PSI is zero on identical inputs, symmetric and never negative."""
    n = min(p.size, q.size)
    p, q = p[:n], q[:n]
    assert psi(p, p) == 0.0
    assert psi(p, q) == pytest.approx(psi(q, p), rel=1e-12, abs=1e-15)
    assert psi(p, q) >= 0.0


def test_psi_textbook_deciles() -> None:
    """PSI on fine bins grouped to deciles equals a direct reference-decile recomputation."""
    cur = _window("shift05")
    deciles = np.quantile(REF, np.arange(1, 10) / 10)
    r = np.histogram(REF, np.concatenate([[-np.inf], deciles, [np.inf]]))[0] / REF.size
    c = np.histogram(cur, np.concatenate([[-np.inf], deciles, [np.inf]]))[0] / cur.size
    r, c = np.maximum(r, 1e-4), np.maximum(c, 1e-4)
    expected = float(np.sum((c - r) * np.log(c / r)))
    h = BinnedCounts(deciles)
    h.update(cur)
    assert psi(np.full(10, 0.1), h.proportions()) == pytest.approx(expected, rel=0.02)
    hr = BinnedCounts(deciles)
    hr.update(REF)
    assert psi(hr.proportions(), h.proportions()) == pytest.approx(expected, rel=1e-12)
    assert 0.2 < expected < 0.3  # STATS.md: +0.5σ has decile PSI ≈ 0.25


def test_psi_eps_floor() -> None:
    """An empty bin on one side is floored at eps, not infinite."""
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(
        (0.5 - 0.5) * 0 + (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    )


@pytest.mark.parametrize("kind", ["same", "shift02", "shift05", "wide", "skew"])
def test_ks_binned_within_bound_and_exact_matches_scipy(kind: str) -> None:
    """KS on 100 reference-quantile bins is within its stated bound of scipy's exact D."""
    cur = _window(kind)
    exact = stats.ks_2samp(REF, cur).statistic
    assert ks_exact(REF, cur) == pytest.approx(exact, abs=1e-12)
    edges = reference_edges(REF, 100)
    hr, hc = BinnedCounts(edges), BinnedCounts(edges)
    hr.update(REF)
    hc.update(cur)
    d, bound = ks_from_counts(hr.counts, hc.counts)
    assert d <= exact + 1e-12
    assert exact <= d + bound + 1e-12
    assert bound <= max(hr.proportions().max(), hc.proportions().max())


def test_ks_exact_ties_like_scipy() -> None:
    """Heavily tied integer data give scipy's D."""
    g = np.random.default_rng(1)
    a, b = g.poisson(3, 5000).astype(float), g.poisson(3.3, 700).astype(float)
    assert ks_exact(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    edges = reference_edges(a)
    ha, hb = BinnedCounts(edges), BinnedCounts(edges)
    ha.update(a)
    hb.update(b)
    assert ks_from_counts(ha.counts, hb.counts)[0] == pytest.approx(ks_exact(a, b), abs=1e-12)


@pytest.mark.parametrize("n_ref,n_cur", [(100_000, 10_000), (10_000, 10_000), (1000, 1000), (200, 150)])
def test_ks_pvalue_close_to_scipy_asymptotic(n_ref: int, n_cur: int) -> None:
    """p-value within 0.006 (en >= 500; 0.015 below) absolute and 5% relative (p >= 1e-6) of kstwo."""
    en = round(n_ref * n_cur / (n_ref + n_cur))
    tol = 0.006 if en >= 500 else 0.015
    for d in np.linspace(0.001, 0.5, 400):
        ours, theirs = ks_pvalue(d, n_ref, n_cur), stats.kstwo.sf(d, en)
        assert abs(ours - theirs) <= tol
        if theirs >= 1e-6:
            assert abs(ours - theirs) <= 0.05 * theirs
    assert ks_pvalue(0.1, 0, 10) == 1.0


def test_ks_pvalue_matches_ks_2samp_large_reference() -> None:
    """With a 100k reference scipy's ks_2samp is asymptotic, and we agree within 5% relative."""
    cur = _window("same")
    res = stats.ks_2samp(REF, cur)
    assert ks_pvalue(res.statistic, REF.size, cur.size) == pytest.approx(res.pvalue, rel=0.05)


def test_chi2_sf_matches_scipy() -> None:
    """The chi-square survival function equals scipy.stats.chi2.sf to 1e-9 relative."""
    for dof in (1, 2, 3, 7, 49, 150, 1000):
        for x in (1e-6, 0.3, 1.0, 3.8, 10.0, 60.0, 300.0, 1500.0, 4000.0):
            assert chi2_sf(x, dof) == pytest.approx(stats.chi2.sf(x, dof), rel=1e-9, abs=1e-300)


def test_chi_square_matches_scipy_chisquare() -> None:
    """Goodness of fit equals scipy.stats.chisquare(cur, n_C * ref_share) to 1e-9 relative."""
    ref = np.array([30_000, 50_000, 15_000, 5_000])
    cur = np.array([3_800, 4_500, 1_300, 400])
    res = chi_square(ref, cur)
    sp = stats.chisquare(cur, cur.sum() * ref / ref.sum())
    assert res.statistic == pytest.approx(sp.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9)
    assert res.dof == 3


def test_chi_square_unseen_level_is_finite() -> None:
    """A level with zero reference share uses the eps floor, and empty-both levels are dropped."""
    ref = np.array([600, 400, 0, 0])
    cur = np.array([55, 40, 5, 0])
    res = chi_square(ref, cur)
    r = np.maximum(np.array([0.6, 0.4, 0.0]), 1e-4)
    r /= r.sum()
    sp = stats.chisquare(cur[:3], 100 * r)
    assert math.isfinite(res.statistic) and res.dof == 2
    assert res.statistic == pytest.approx(sp.statistic, rel=1e-9)
    assert res.p_value == pytest.approx(sp.pvalue, rel=1e-9, abs=1e-300)
    assert chi_square([5, 0], [0, 0]) == (0.0, 1.0, 0)


@settings(max_examples=80, deadline=None)
@given(props, props, st.sampled_from([2.0, math.e, 10.0]))
def test_jensen_shannon_matches_scipy(p: np.ndarray, q: np.ndarray, base: float) -> None:
    """JS distance equals scipy.spatial.distance.jensenshannon with the same base to 1e-12."""
    n = min(p.size, q.size)
    p, q = p[:n], q[:n]
    if p.sum() == 0 or q.sum() == 0:
        assert jensen_shannon(p, q, base) == 0.0
        return
    # Compare divergences (distance squared): the square root amplifies rounding near zero
    # (a divergence of 1e-12 +- 1e-16 has a distance error of ~5e-5 relative).
    ours, theirs = jensen_shannon(p, q, base), jensenshannon(p, q, base=base)
    assert ours**2 == pytest.approx(theirs**2, abs=1e-12)
    assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("kind", ["same", "shift02", "shift05", "wide", "skew"])
def test_wasserstein_exact_and_binned(kind: str) -> None:
    """Exact W1 equals scipy; the 100-bin approximation (tail means) is within 0.01 σ of it."""
    cur = _window(kind)
    w = stats.wasserstein_distance(REF, cur)
    assert wasserstein_exact(REF, cur) == pytest.approx(w, rel=1e-9)
    edges = reference_edges(REF, 100)
    hr, hc = BinnedCounts(edges), BinnedCounts(edges)
    hr.update(REF)
    hc.update(cur)
    lo, hi = min(REF.min(), cur.min()), max(REF.max(), cur.max())
    approx = wasserstein_from_counts(edges, hr.counts, hc.counts, lo, hi,
                                     ref_outer_means=hr.outer_means(),
                                     cur_outer_means=hc.outer_means())
    sd = float(np.std(REF))
    assert abs(normed(approx, sd) - normed(w, sd)) <= 0.01


def test_wasserstein_step_exact_on_discrete() -> None:
    """With one bin per value, step interpolation gives scipy's W1 exactly."""
    g = np.random.default_rng(2)
    a, b = g.poisson(3, 4000).astype(float), g.poisson(3.5, 900).astype(float)
    edges = reference_edges(a)
    ha, hb = BinnedCounts(edges), BinnedCounts(edges)
    ha.update(a)
    hb.update(b)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    got = wasserstein_from_counts(edges, ha.counts, hb.counts, lo, hi, interpolation="step")
    assert got == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_linf_and_normed() -> None:
    """L-infinity is the largest share difference; normed floors the std at 0.001."""
    assert linf_distance([0.3, 0.7], [0.38, 0.62]) == pytest.approx(0.08)
    assert normed(0.5, 0.0) == pytest.approx(500.0)
    assert normed(0.5, 2.0) == 0.25
