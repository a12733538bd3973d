"""The block drift statistics work on plain arrays, with nothing of mlprobe's core."""

from __future__ import annotations

import numpy as np
import pytest

from mlprobe.stats import BinnedCounts, reference_edges
from mlprobe.stats import drift as D
from mlprobe.stats._drift_block import NumericReferenceBlock, numeric_drift_block
from mlprobe.stats._histogram import coarse_groups


def _summary(edges: np.ndarray, values: np.ndarray) -> BinnedCounts:
    bins = BinnedCounts(edges)
    bins.update(values)
    return bins


@pytest.mark.parametrize("shift", [0.0, 0.4, -8.0])
def test_block_of_raw_arrays_equals_the_one_feature_functions(shift: float) -> None:
    """Two features of different widths (padding exercised), summarised by stats alone: each
    row's PSI and JS (on coarse groups), KS, KS bound and Wasserstein equal the functions of
    mlprobe.stats.drift to 1e-9."""
    rng = np.random.default_rng(5)
    refs = [rng.normal(0, 1, 8_000), rng.exponential(2.0, 8_000)]
    curs = [rng.normal(shift, 1.5, 3_000), rng.exponential(2.0, 3_000) + shift]
    edges = [reference_edges(refs[0], n_bins=100), reference_edges(refs[1], n_bins=30)]
    groups = [coarse_groups(e, e[9::10]) for e in edges]
    ref_bins = [_summary(e, r) for e, r in zip(edges, refs)]
    cur_bins = [_summary(e, c) for e, c in zip(edges, curs)]
    assert ref_bins[0].counts.size != ref_bins[1].counts.size
    block = NumericReferenceBlock(
        proportions=[b.proportions() for b in ref_bins], edges=edges, groups=groups,
        minimum=[r.min() for r in refs], maximum=[r.max() for r in refs],
        outer_means=[b.outer_means() for b in ref_bins], step=[False, False])
    eps, base = np.array([1e-4, 1e-3]), np.array([2.0, np.e])
    got = numeric_drift_block(
        block, [b.counts for b in cur_bins], minimum=[c.min() for c in curs],
        maximum=[c.max() for c in curs], outer_means=[b.outer_means() for b in cur_bins],
        eps=eps, js_base=base)
    for i in range(2):
        rg = np.bincount(groups[i], weights=ref_bins[i].counts)
        cg = np.bincount(groups[i], weights=cur_bins[i].counts, minlength=rg.size)
        rg, cg = rg / rg.sum(), cg / cg.sum()
        ks, bound = D.ks_from_counts(ref_bins[i].counts, cur_bins[i].counts)
        wasserstein = D.wasserstein_from_counts(
            edges[i], ref_bins[i].counts, cur_bins[i].counts,
            min(refs[i].min(), curs[i].min()), max(refs[i].max(), curs[i].max()),
            ref_outer_means=ref_bins[i].outer_means(), cur_outer_means=cur_bins[i].outer_means())
        expected = {"psi": D.psi(rg, cg, float(eps[i])),
                    "js": D.jensen_shannon(rg, cg, float(base[i])), "ks": ks,
                    "ks_bound": bound, "wasserstein": wasserstein}
        for stat, value in expected.items():
            assert got[stat][i] == pytest.approx(value, rel=1e-9, abs=1e-12), (i, stat)
