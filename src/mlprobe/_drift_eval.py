"""Drift evaluation policy: current windows against a ReferenceProfile (pure, no threads).

The third drift layer, shared by the ``mlprobe drift`` CLI and the serving side's collect path.
It decides, from a :class:`~mlprobe._drift_spec.DriftSpec`:

* which statistics each feature gets (numeric: the block statistics of
  :mod:`mlprobe.stats._drift_block` through :mod:`mlprobe._drift_block`; categorical: the
  one-feature functions of :mod:`mlprobe.stats.drift`) and how each is defined;
* each method's status from its thresholds, a feature's drift status (the worst of its
  alarming methods') and its separate data-quality status (:func:`feature_quality_status`);
* the dataset verdict from the drifted share and the prediction and target results.

The result is the JSON-ready document of :mod:`mlprobe._drift_report`. Windows are built by
:mod:`mlprobe._window`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._drift_block import binned_numeric_stats, block_statistics, reference_block
from ._drift_report import STATUS_RANK, DriftReport, FeatureDrift, json_float
from ._drift_spec import DriftSpec
from ._feature_profile import CategoricalProfile, FeatureProfile, NumericProfile
from ._profile import ReferenceProfile
from ._window import DatasetWindow, FeatureWindow
from .stats import drift as D

__all__ = ["ALL_MISSING_CHANCE", "evaluate_dataset", "evaluate_feature",
           "feature_quality_status"]

ALL_MISSING_CHANCE = 1e-3
"""A window in which every row lacks a feature is critical once that is less likely than this
under the reference's missing share (at once when the reference had no missing values)."""


def _level(value: float, pair: tuple[float, float]) -> str:
    return "critical" if value >= pair[1] else "warning" if value >= pair[0] else "ok"


def _numeric_stats(ref: NumericProfile, win: FeatureWindow, spec: DriftSpec,
                   binned: dict[str, float] | None = None
                   ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, Any]]]:
    assert win.bins is not None and win.moments is not None
    if binned is None:  # one feature on its own: a block of one row
        result = block_statistics(reference_block([ref]), [win],
                                  np.array([spec.psi_eps]), np.array([spec.js_base]))
        binned = {name: float(v[0]) for name, v in result.items()}
    ks, bound = binned["ks"], binned["ks_bound"]
    n_groups = len(ref.psi_edge_index) + 1
    m = win.moments
    sd = ref.std if math.isfinite(ref.std) else 0.0
    stats = {
        "psi": binned["psi"],
        "ks": ks,
        "wasserstein": D.normed(binned["wasserstein"], sd),
        "js": binned["js"],
        "mean_shift_sd": (m.mean - ref.mean) / max(sd, D.WASSERSTEIN_STD_FLOOR),
        "std_ratio": m.std() / sd if sd > 0 else math.nan,
    }
    pvals = {"ks": D.ks_pvalue(ks, ref.count, m.count)}
    bins = "reference deciles" if not ref.discrete else "reference deciles (snapped to values)"
    defs = {
        "psi": {"bins": bins, "n_bins": n_groups, "open_outer_bins": True, "eps": spec.psi_eps,
                "log": "e"},
        "ks": {"bins": "reference quantiles", "n_bins": int(ref.counts.size), "error_bound": bound,
               "pvalue": "asymptotic Kolmogorov, Stephens-corrected"},
        "wasserstein": {"norm": "reference population std", "std_floor": D.WASSERSTEIN_STD_FLOOR,
                        "bins": "reference quantiles", "n_bins": int(ref.counts.size),
                        "interpolation": "step" if ref.discrete else "linear",
                        "outer_bins": "tail means"},
        "js": {"bins": bins, "n_bins": n_groups, "base": spec.js_base, "kind": "distance"},
    }
    return stats, pvals, defs


def _categorical_stats(ref: CategoricalProfile, win: FeatureWindow, spec: DriftSpec
                       ) -> tuple[dict[str, float], dict[str, float], dict[str, dict[str, Any]]]:
    assert win.categories is not None
    rp, cp = ref.proportions(), win.categories.proportions()
    chi = D.chi_square(ref.counts, win.categories.counts, spec.psi_eps)
    stats = {"psi": D.psi(rp, cp, spec.psi_eps), "js": D.jensen_shannon(rp, cp, spec.js_base),
             "linf": D.linf_distance(rp, cp), "chi2": chi.statistic}
    bins = {"bins": "reference levels + __other__", "n_bins": int(rp.size)}
    defs = {"psi": {**bins, "eps": spec.psi_eps, "log": "e"},
            "js": {**bins, "base": spec.js_base, "kind": "distance"},
            "linf": {**bins, "definition": "max |current share - reference share|"},
            "chi2": {**bins, "test": "goodness of fit vs reference shares", "dof": chi.dof,
                     "reference_share_floor": spec.psi_eps}}
    return stats, {"chi2": chi.p_value}, defs


def feature_quality_status(ref: FeatureProfile, window: FeatureWindow, increase: float,
                           spec: DriftSpec) -> str:
    """The data-quality status of one feature's window (the rule in ``docs/stats.md``).

    * ``critical`` when no row has a valid value (the column is absent, all strings, all
      missing) although the reference had values, once that is less likely than
      :data:`ALL_MISSING_CHANCE` under the reference's missing share;
    * otherwise, below ``min_count`` rows, ``insufficient_data`` (a share of a few rows is
      noise);
    * otherwise by the increase of the missing + invalid share over the reference:
      ``warning`` / ``critical`` at ``missing_thresholds`` (5 / 10 points by default).
    """
    rows = window.rows
    if not rows:
        return "insufficient_data"
    if window.count == 0 and ref.count > 0 and ref.missing_share ** rows < ALL_MISSING_CHANCE:
        return "critical"
    if rows < spec.min_count:
        return "insufficient_data"
    return _level(increase, spec.missing_thresholds)


def evaluate_feature(ref: FeatureProfile, window: FeatureWindow, spec: DriftSpec | None = None,
                     *, n_features: int = 1, binned: dict[str, float] | None = None
                     ) -> FeatureDrift:
    """Evaluate one feature's current window against its reference.

    Args:
        ref: The feature's reference profile.
        window: Its current summary (built on the same edges / vocabulary).
        spec: Drift settings (its per-feature override is applied here); default
            ``DriftSpec()``.
        n_features: Number of features tested together (for the Bonferroni correction when
            ``alarm_on_pvalue`` is on).
        binned: A numeric feature's binned statistics when already computed with the other
            features' (:func:`evaluate_dataset` does that); computed here otherwise.

    Returns:
        A :class:`FeatureDrift`; never NaN: a window without enough values gets
        ``insufficient_data`` and ``None`` statistics.
    """
    spec = (spec or DriftSpec()).for_feature(ref.name)
    numeric = isinstance(ref, NumericProfile)
    methods = spec.numeric_methods if numeric else spec.categorical_methods
    thresholds = {m: {"warning": spec.thresholds[m][0], "critical": spec.thresholds[m][1]}
                  for m in methods if m != "chi2"}
    rows = window.rows
    bad_share = (window.missing + window.invalid) / rows if rows else math.nan
    increase = bad_share - ref.missing_share if rows else math.nan
    quality = {"rows": rows, "count": window.count, "missing": window.missing,
               "invalid": window.invalid, "missing_share": json_float(bad_share),
               "reference_missing_share": json_float(ref.missing_share),
               "missing_share_increase": json_float(increase)}
    if numeric:
        quality["out_of_range"] = window.out_of_range
        quality["out_of_range_share"] = json_float(window.out_of_range / window.count
                                               if window.count else math.nan)
    else:
        assert window.categories is not None
        quality["unseen"] = window.categories.unseen
        quality["unseen_share"] = json_float(window.categories.unseen / window.count
                                         if window.count else math.nan)
    quality_status = feature_quality_status(ref, window, increase, spec)
    if window.count == 0 or ref.count == 0:
        return FeatureDrift(ref.name, ref.kind, "insufficient_data", quality_status, {}, {}, {},
                            {}, thresholds, quality)
    if isinstance(ref, NumericProfile):
        stats, pvals, defs = _numeric_stats(ref, window, spec, binned)
    else:
        stats, pvals, defs = _categorical_stats(ref, window, spec)
    method_status = {m: _level(stats[m], spec.thresholds[m]) for m in methods if m != "chi2"}
    if spec.alarm_on_pvalue:
        cutoff = spec.pvalue_alpha / max(n_features, 1)
        for m, p in pvals.items():
            method_status[f"{m}_pvalue"] = "warning" if p < cutoff else "ok"
    if window.count < spec.min_count:
        status = "insufficient_data"
    else:
        status = max(method_status.values(), key=STATUS_RANK.__getitem__, default="ok")
    return FeatureDrift(ref.name, ref.kind, status, quality_status,
                        {k: json_float(v) for k, v in stats.items()},
                        {k: json_float(v) for k, v in pvals.items()}, method_status, defs,
                        thresholds, quality)


def evaluate_dataset(profile: ReferenceProfile, window: DatasetWindow,
                     spec: DriftSpec | None = None) -> DriftReport:
    """Evaluate every feature (and the prediction and target) of a window against the profile.

    Args:
        profile: The reference profile.
        window: Current summaries (for example merged from a ring of sub-buckets).
        spec: Drift settings; default ``DriftSpec()``.
    """
    spec = spec or DriftSpec()
    n = len(profile.features)
    binned = binned_numeric_stats(profile, window, spec.for_feature)
    results = {name: evaluate_feature(ref, window.features[name], spec, n_features=n,
                                      binned=binned.get(name))
               for name, ref in profile.features.items()}
    pred = target = None
    if profile.prediction is not None and window.prediction is not None:
        pred = evaluate_feature(profile.prediction, window.prediction, spec, n_features=1)
    if profile.target is not None and window.target is not None:
        target = evaluate_feature(profile.target, window.target, spec, n_features=1)
    outputs = [r for r in (pred, target) if r is not None]
    weights = profile.importance or {}
    evaluated = [f for f in results.values() if f.status in STATUS_RANK]
    total = sum(weights.get(f.name, 0.0) if weights else 1.0 for f in evaluated)
    share: float | None = None
    if evaluated and total > 0:
        share = sum((weights.get(f.name, 0.0) if weights else 1.0)
                    for f in evaluated if f.drifted) / total
    judged = [r for r in outputs if r.status in STATUS_RANK]
    if share is None and not judged:
        verdict = "insufficient_data"
    elif share is None:
        # No feature has enough values, but the prediction or the labels do: their drift
        # alone decides (critical stays critical; a warning stays a warning).
        verdict = max((r.status for r in judged), key=STATUS_RANK.__getitem__)
    elif share >= spec.dataset_critical_share or any(r.status == "critical" for r in outputs):
        verdict = "critical"
    elif (share >= spec.dataset_warning_share or any(f.status == "critical" for f in evaluated)
          or any(r.drifted for r in outputs)):
        verdict = "warning"
    else:
        verdict = "ok"
    return DriftReport(results, pred, share, bool(weights), verdict,
                       dict(window.schema_violations), window.rows, spec, target)
