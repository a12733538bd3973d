"""Evidently-compatible functions against an independent re-computation of Evidently's recipe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlprobe.stats import evidently_jensenshannon, evidently_psi, evidently_wasserstein_norm


def _recipe(ref: pd.Series, cur: pd.Series, numeric: bool, fill: bool) -> tuple:
    # STATS.md 1.1 / 1.4 written out with pandas, as Evidently's get_binned_data does it.
    if numeric and ref.nunique() > 20:
        bins = np.histogram_bin_edges(pd.concat([ref, cur]).values, bins="sturges")
        r = np.histogram(ref, bins)[0] / len(ref)
        c = np.histogram(cur, bins)[0] / len(cur)
    else:
        keys = list(set(ref.dropna().unique()) | set(cur.dropna().unique()))
        rd = {**dict.fromkeys(keys, 0), **dict(ref.value_counts())}
        cd = {**dict.fromkeys(keys, 0), **dict(cur.value_counts())}
        r = np.array([rd[k] for k in keys]) / len(ref)
        c = np.array([cd[k] for k in keys]) / len(cur)
    if fill:
        for p in (r, c):
            m = min(p[p != 0])
            np.place(p, p == 0, m / 10**6 if m <= 0.0001 else 0.0001)
    return r, c


@pytest.mark.parametrize("shift", [0.0, 0.2, 0.5])
def test_numeric_sturges_psi_js_wasserstein(shift: float) -> None:
    """PSI, JS (base e) and normed Wasserstein equal the Evidently recipe to 1e-9."""
    g = np.random.default_rng(11)
    ref, cur = g.normal(0, 1.25, 100_000), g.normal(shift * 1.25, 1.25, 10_000)
    r, c = _recipe(pd.Series(ref), pd.Series(cur), True, True)
    assert evidently_psi(ref, cur) == pytest.approx(float(np.sum((c - r) * np.log(c / r))),
                                                    rel=1e-9, abs=1e-12)
    r, c = _recipe(pd.Series(ref), pd.Series(cur), True, False)
    assert evidently_jensenshannon(ref, cur) == pytest.approx(jensenshannon(r, c), rel=1e-9,
                                                              abs=1e-12)
    w = stats.wasserstein_distance(ref, cur) / max(np.std(ref), 0.001)
    assert evidently_wasserstein_norm(ref, cur) == pytest.approx(w, rel=1e-9)
    if shift == 0.5:
        assert evidently_wasserstein_norm(ref, cur) == pytest.approx(0.5, abs=0.03)


def test_categorical_and_few_unique_with_zero_fill() -> None:
    """Per-value bins with a level missing on one side use Evidently's zero replacement."""
    g = np.random.default_rng(12)
    ref = g.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2]).astype(object)
    cur = g.choice(["a", "b", "d"], 800, p=[0.4, 0.4, 0.2]).astype(object)
    r, c = _recipe(pd.Series(ref), pd.Series(cur), False, True)
    assert evidently_psi(ref, cur, numeric=False) == pytest.approx(
        float(np.sum((c - r) * np.log(c / r))), rel=1e-9)
    r, c = _recipe(pd.Series(ref), pd.Series(cur), False, False)
    assert evidently_jensenshannon(ref, cur, numeric=False) == pytest.approx(
        jensenshannon(r, c), rel=1e-9)
    ints = g.poisson(3, 4000).astype(float)
    ints2 = g.poisson(3.4, 900).astype(float)
    r, c = _recipe(pd.Series(ints), pd.Series(ints2), True, True)
    assert evidently_psi(ints, ints2) == pytest.approx(float(np.sum((c - r) * np.log(c / r))),
                                                       rel=1e-9)
