"""Drift evaluator: statuses, definitions, windows from dirty batches, merges, dataset verdict."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mlprobe._drift_eval import evaluate_dataset, evaluate_feature
from mlprobe._drift_spec import DriftSpec
from mlprobe._window import DatasetWindow, FeatureWindow
from mlprobe._profile import ReferenceProfile
from mlprobe.errors import ConfigurationError

G = np.random.default_rng(0)
REF = {"x": G.normal(0, 1, 100_000), "y": G.exponential(2.0, 100_000),
       "c": G.choice(["a", "b", "c", "d"], 100_000, p=[0.3, 0.3, 0.25, 0.15])}
PROFILE = ReferenceProfile.from_data(REF, predictions=G.random(100_000))


def _cur(shift: float = 0.0, share_a: float = 0.3, n: int = 10_000, seed: int = 1) -> dict:
    g = np.random.default_rng(seed)
    rest = np.array([0.3, 0.25, 0.15]) / 0.7 * (1 - share_a)
    return {"x": g.normal(shift, 1, n), "y": g.exponential(2.0, n),
            "c": g.choice(["a", "b", "c", "d"], n, p=[share_a, *rest])}


def _report(batch: dict, spec: DriftSpec | None = None, preds: np.ndarray | None = None):
    w = DatasetWindow(PROFILE)
    w.update(batch, predictions=preds)
    return evaluate_dataset(PROFILE, w, spec)


def test_unshifted_is_ok_and_statistics_match_oracles() -> None:
    """An unshifted window is ok; its KS is within the stated bound of scipy's."""
    cur = _cur()
    r = _report(cur)
    assert r.status == "ok" and r.drift_share == 0.0
    fx = r.features["x"]
    exact = stats.ks_2samp(REF["x"], cur["x"]).statistic
    assert fx.statistics["ks"] <= exact + 1e-12
    assert exact <= fx.statistics["ks"] + fx.definitions["ks"]["error_bound"]
    w = stats.wasserstein_distance(REF["x"], cur["x"]) / np.std(REF["x"])
    assert fx.statistics["wasserstein"] == pytest.approx(w, abs=0.01)


def test_shifts_flag_the_right_features() -> None:
    """A +0.5σ numeric shift is critical, a 30%->38% category move warns, others stay ok."""
    r = _report(_cur(shift=0.5, share_a=0.38))
    assert r.features["x"].status == "critical"
    assert r.features["c"].status == "warning"
    assert r.features["c"].method_status["linf"] == "warning"
    assert r.features["y"].status == "ok"
    assert r.drift_share == pytest.approx(2 / 3)
    assert r.status == "critical"


def test_missing_values_alone_only_change_quality() -> None:
    """Adding 20% missing values changes the quality status, never the drift status."""
    cur = _cur()
    cur["x"] = cur["x"].copy()
    cur["x"][::5] = np.nan
    fx = _report(cur).features["x"]
    assert fx.status == "ok" and fx.quality_status == "critical"
    assert fx.quality["missing_share_increase"] == pytest.approx(0.2)


def test_all_missing_is_insufficient_never_nan() -> None:
    """An all-missing feature gets insufficient_data and a JSON document without NaN."""
    cur = _cur()
    cur["x"] = np.full(10_000, np.nan)
    r = _report(cur)
    assert r.features["x"].status == "insufficient_data"
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert "NaN" not in text


def test_min_count() -> None:
    """Below min_count the status is insufficient_data, statistics are still reported."""
    r = _report(_cur(shift=1.0, n=500))
    assert r.features["x"].status == "insufficient_data"
    assert r.features["x"].statistics["psi"] > 0.2
    assert _report(_cur(shift=1.0, n=500), DriftSpec(min_count=100)).features["x"].status == "critical"


def test_dirty_batch_is_counted_not_raised() -> None:
    """NaN, inf, None, strings, unseen levels, extra and missing columns are counted, once
    per row affected; rows that cannot be aligned count as rows with every feature missing."""
    batch = {
        "x": np.array([0.1, np.nan, np.inf, None, "oops", 2.0], dtype=object),
        "c": np.array(["a", "zzz", None, "b", "", "a"], dtype=object),
        "extra": [1, 2, 3, 4, 5, 6],
    }
    w = DatasetWindow(PROFILE)
    w.update(batch)
    fx, fc, fy = w.features["x"], w.features["c"], w.features["y"]
    assert (fx.count, fx.missing, fx.invalid) == (2, 2, 2)
    assert (fc.count, fc.missing) == (4, 2) and fc.categories.unseen == 1
    assert fy.missing == 6
    assert w.schema_violations == {"unexpected_feature": 6, "missing_feature": 6,
                                   "wrong_type": 1}  # the string "oops"
    w.update(np.zeros((4, 2)))  # 4 rows of the wrong width
    w.update([[1.0, 2.0, "a"], [3.0]])  # one good row, one of the wrong width
    w.update("not a table")
    assert w.schema_violations["wrong_width"] == 4 + 1
    assert w.schema_violations["unreadable_input"] == 1
    w.update({})  # a dict row without any feature: one row, every feature missing
    assert w.rows == 6 + 4 + 2 + 1 + 1
    assert fy.missing == 6 + 4 + 1 + 1 + 1 and fy.count == 1


def test_array_and_frame_batches() -> None:
    """Arrays map columns by position, DataFrames by name."""
    cur = _cur(n=2000)
    w1, w2 = DatasetWindow(PROFILE), DatasetWindow(PROFILE)
    arr = np.empty((2000, 3), dtype=object)
    arr[:, 0], arr[:, 1], arr[:, 2] = cur["x"], cur["y"], cur["c"]
    w1.update(arr)
    w2.update(pd.DataFrame(cur))
    for n in ("x", "y", "c"):
        a, b = w1.features[n].to_dict(), w2.features[n].to_dict()
        # object columns and float columns fold by different (vectorised) paths: the sums of
        # squares agree to rounding, everything counted agrees exactly
        moments_a, moments_b = a.pop("moments", {}), b.pop("moments", {})
        assert a == b
        assert moments_a == pytest.approx(moments_b, rel=1e-12)


def test_window_merge_equals_one_pass() -> None:
    """Merging windows of two halves equals the window of the whole batch (counts exactly)."""
    cur = _cur(n=4000)
    whole, a, b = DatasetWindow(PROFILE), DatasetWindow(PROFILE), DatasetWindow(PROFILE)
    whole.update(cur)
    a.update({k: v[:1500] for k, v in cur.items()})
    b.update({k: v[1500:] for k, v in cur.items()})
    merged = a.merge(b)
    for n in ("x", "y", "c"):
        m, o = merged.features[n], whole.features[n]
        counts = (m.bins or m.categories).counts, (o.bins or o.categories).counts
        assert np.array_equal(*counts)
    assert merged.features["x"].moments.mean == pytest.approx(whole.features["x"].moments.mean)


def test_prediction_drift_and_importance_weighting() -> None:
    """Prediction drift is evaluated; importance weights the drift share."""
    g = np.random.default_rng(5)
    r = _report(_cur(), preds=g.beta(2, 1, 10_000))
    assert r.prediction is not None and r.prediction.status == "critical"
    assert r.status == "critical"
    weighted = ReferenceProfile.from_data(REF, importance={"x": 3.0, "y": 1.0, "c": 0.0})
    w = DatasetWindow(weighted)
    w.update(_cur(shift=0.5))
    rep = evaluate_dataset(weighted, w)
    assert rep.weighted and rep.drift_share == pytest.approx(0.75)


def test_prediction_drift_decides_when_no_feature_has_a_status() -> None:
    """With too few feature values for any feature status, a critical prediction drift still
    makes the dataset verdict critical (it was insufficient_data), and a stable prediction ok."""
    g = np.random.default_rng(6)
    spec = DriftSpec(features={n: DriftSpec(min_count=10**9) for n in ("x", "y", "c")})
    drifted = _report(_cur(), spec, preds=g.beta(2, 1, 10_000))
    assert all(f.status == "insufficient_data" for f in drifted.features.values())
    assert drifted.drift_share is None and drifted.status == "critical"
    stable = _report(_cur(), spec, preds=g.random(10_000))
    assert stable.prediction is not None and stable.prediction.status == "ok"
    assert stable.status == "ok"
    assert _report(_cur(), spec).status == "insufficient_data"  # nothing judged at all


def test_pvalue_alarm_bonferroni() -> None:
    """With alarm_on_pvalue a tiny shift warns via p < alpha / n_features; by default not."""
    cur = _cur(shift=0.08)
    assert _report(cur).features["x"].status == "ok"
    r = _report(cur, DriftSpec(alarm_on_pvalue=True))
    assert r.features["x"].method_status["ks_pvalue"] == "warning"
    assert r.features["x"].p_values["ks"] < 0.05 / 3


def test_js_base_and_per_feature_override() -> None:
    """js_base changes the JS value by 1/sqrt(ln 2); per-feature overrides apply."""
    cur = _cur(shift=0.3)
    base2 = _report(cur).features["x"].statistics["js"]
    base_e = _report(cur, DriftSpec(js_base=math.e)).features["x"].statistics["js"]
    assert base2 == pytest.approx(base_e / math.sqrt(math.log(2)), rel=1e-9)
    spec = DriftSpec(features={"x": DriftSpec(thresholds={"ks": (0.5, 0.9),
                                                          "wasserstein": (0.5, 0.9)})})
    assert _report(cur, spec).features["x"].status == "ok"


@pytest.mark.parametrize("kwargs", [
    {"numeric_methods": ("psi", "bogus")}, {"thresholds": {"psi": (0.3, 0.1)}},
    {"thresholds": {"nope": (0.1, 0.2)}}, {"min_count": 0}, {"js_base": 1.0},
    {"dataset_warning_share": 0.6, "dataset_critical_share": 0.5},
    {"features": {"x": "not a spec"}}, {"numeric_methods": "psi"},
])
def test_spec_validation(kwargs: dict) -> None:
    """Invalid DriftSpec arguments raise ConfigurationError at construction."""
    with pytest.raises(ConfigurationError, match="DriftSpec"):
        DriftSpec(**kwargs)


def test_feature_window_roundtrip_copy() -> None:
    """copy() is independent; to_dict is JSON-ready."""
    w = FeatureWindow(PROFILE.features["x"], sketch=True)
    w.update(np.array([0.0, 1.0, 99.0]))
    c = w.copy()
    c.update(np.array([5.0]))
    assert w.count == 3 and c.count == 4 and w.out_of_range == 1
    json.dumps(w.to_dict(), allow_nan=False)
    r = evaluate_feature(PROFILE.features["x"], w, DriftSpec(min_count=1))
    assert r.status in ("ok", "warning", "critical")
