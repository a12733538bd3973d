"""The block drift statistics equal the one-feature definitions in mlprobe.stats.drift."""

from __future__ import annotations

import numpy as np
import pytest

import mlprobe
from mlprobe._drift_block import block_statistics, reference_block
from mlprobe._window import DatasetWindow
from mlprobe.stats import drift as D

RNG = np.random.default_rng(11)
REFERENCE = {
    "normal": RNG.normal(0, 1, 20_000),
    "lognormal": RNG.lognormal(0, 1.5, 20_000),
    "discrete": RNG.integers(0, 7, 20_000).astype(float),
    "constant": np.full(20_000, 3.0),
    "two_values": RNG.choice([0.0, 1.0], 20_000, p=[0.9, 0.1]),
}
PROFILE = mlprobe.ReferenceProfile.from_data(REFERENCE)


def _one_feature(ref, win, eps: float, base: float) -> dict[str, float]:
    """The statistics as the one-feature functions compute them (the definitions)."""
    rc, cc = ref.counts, win.bins.counts
    groups = ref.decile_groups()
    n_groups = int(groups.max()) + 1
    rd = np.bincount(groups, weights=rc, minlength=n_groups)
    cd = np.bincount(groups, weights=cc, minlength=n_groups)
    rd, cd = rd / rd.sum(), cd / cd.sum()
    ks, bound = D.ks_from_counts(rc, cc)
    w = D.wasserstein_from_counts(
        ref.edges, rc, cc, min(ref.min, win.moments.min), max(ref.max, win.moments.max),
        ref_outer_means=ref.outer_means, cur_outer_means=win.bins.outer_means(),
        interpolation="step" if ref.discrete else "linear")
    return {"psi": D.psi(rd, cd, eps), "js": D.jensen_shannon(rd, cd, base), "ks": ks,
            "ks_bound": bound, "wasserstein": w}


@pytest.mark.parametrize("shift", [0.0, 0.3, 5.0, -50.0])
@pytest.mark.parametrize("scale", [1.0, 3.0])
def test_block_equals_one_feature_definitions(shift: float, scale: float) -> None:
    """Features with different bin counts, discrete and constant ones, values far outside the
    reference range: every statistic of every row equals the one-feature function."""
    window = DatasetWindow(PROFILE)
    window.update({name: values[:5000] * scale + shift for name, values in REFERENCE.items()})
    refs = [PROFILE.features[n] for n in REFERENCE]
    assert len({r.counts.size for r in refs}) > 2  # padding is really exercised
    wins = [window.features[n] for n in REFERENCE]
    eps = np.array([1e-4, 1e-3, 1e-4, 1e-5, 1e-4])
    base = np.array([2.0, np.e, 2.0, 10.0, 2.0])
    block = block_statistics(reference_block(refs), wins, eps, base)
    for i, (ref, win) in enumerate(zip(refs, wins)):
        expected = _one_feature(ref, win, float(eps[i]), float(base[i]))
        for stat, value in expected.items():
            assert block[stat][i] == pytest.approx(value, rel=1e-9, abs=1e-12), (ref.name, stat)


def test_dataset_evaluation_uses_the_same_numbers_as_one_feature() -> None:
    """evaluate_dataset (block) and evaluate_feature (one row) report identical statistics."""
    from mlprobe._drift_eval import evaluate_dataset, evaluate_feature

    window = DatasetWindow(PROFILE)
    window.update({name: values[:3000] + 0.5 for name, values in REFERENCE.items()})
    report = evaluate_dataset(PROFILE, window, mlprobe.DriftSpec(min_count=100))
    for name, ref in PROFILE.features.items():
        alone = evaluate_feature(ref, window.features[name], mlprobe.DriftSpec(min_count=100),
                                 n_features=len(REFERENCE))
        together = report.features[name].statistics
        assert together.keys() == alone.statistics.keys()
        for stat, value in alone.statistics.items():  # None where a statistic is undefined
            if value is None:
                assert together[stat] is None, (name, stat)
            else:
                assert together[stat] == pytest.approx(value, rel=1e-12), (name, stat)
        assert report.features[name].status == alone.status
