"""Turn a FeatureMonitor's window, totals and drift report into catalogue samples."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._drift import DatasetWindow, DriftReport, DriftSpec, evaluate_dataset
from ._features import FeatureMonitor
from ._profile import NumericProfile
from ._registry import FamilyBuilder
from .snapshot import LabelSet, Sample

__all__ = ["PREDICTION_FEATURE", "STATUS_VALUE", "collect_feature_metrics", "drift_report"]

PREDICTION_FEATURE = "__prediction__"
STATUS_VALUE = {"ok": 0.0, "warning": 1.0, "critical": 2.0}
QUANTILES = (0.05, 0.5, 0.95)


def drift_report(monitor: FeatureMonitor, spec: DriftSpec,
                 window: DatasetWindow | None = None) -> DriftReport:
    """Evaluate the rolling window (or the given one) against the reference (collect time)."""
    return evaluate_dataset(monitor.profile, monitor.window() if window is None else window,
                            spec)


def _bins(ref: Any, counts: np.ndarray) -> list[tuple[str, int, float]]:
    """(bin label, count, reference share) per exported bin of one feature."""
    ref_counts = np.asarray(ref.counts, dtype=np.float64)
    if isinstance(ref, NumericProfile):
        groups = ref.decile_groups()
        n_groups = int(groups.max()) + 1 if groups.size else 1
        cur = np.bincount(groups, weights=counts, minlength=n_groups)
        refc = np.bincount(groups, weights=ref_counts, minlength=n_groups)
        labels = [str(i) for i in range(n_groups)]
    else:
        cur, refc = counts, ref_counts
        labels = [*ref.levels, ref.other]
    total = refc.sum()
    return [(label, int(c), float(r / total) if total else 0.0)
            for label, c, r in zip(labels, cur.tolist(), refc.tolist())]


def collect_feature_metrics(builder: FamilyBuilder, base: LabelSet, monitor: FeatureMonitor,
                            spec: DriftSpec) -> None:
    """Add every feature family for one model to ``builder`` (one window merge per collect)."""
    window, totals = monitor.window_and_totals()
    report = drift_report(monitor, spec, window)
    _counters(builder, base, monitor, totals)
    _window_gauges(builder, base, window)
    _drift_gauges(builder, base, report)


def _counters(builder: FamilyBuilder, base: LabelSet, monitor: FeatureMonitor,
              totals: DatasetWindow) -> None:
    bins, ratios, missing, out_of_range, unseen = [], [], [], [], []
    for name, ref in monitor.profile.features.items():
        win = totals.features[name]
        labels = base + (("feature", name),)
        counts = win.bins.counts if win.bins is not None else win.categories.counts  # type: ignore[union-attr]
        for label, count, share in _bins(ref, counts):
            bins.append(Sample(labels + (("bin", label),), float(count)))
            ratios.append(Sample(labels + (("bin", label),), share))
        missing.append(Sample(labels, float(win.missing)))
        if win.categories is not None:
            unseen.append(Sample(labels, float(win.categories.unseen)))
        else:
            out_of_range.append(Sample(labels, float(win.out_of_range)))
    builder.add("mlprobe_feature_bin", bins)
    builder.add("mlprobe_feature_reference_ratio", ratios)
    builder.add("mlprobe_feature_missing", missing)
    builder.add("mlprobe_feature_out_of_range", out_of_range)
    builder.add("mlprobe_feature_unseen_category", unseen)
    builder.add("mlprobe_feature_dropped_rows", [Sample(base, float(monitor.dropped_rows))])
    builder.add("mlprobe_schema_violations", [
        Sample(base + (("kind", kind),), float(n))
        for kind, n in sorted(totals.schema_violations.items())])


def _window_gauges(builder: FamilyBuilder, base: LabelSet, window: DatasetWindow) -> None:
    means, stds, mins, maxs, quantiles = [], [], [], [], []
    for name, win in window.features.items():
        moments = win.moments
        if moments is None or moments.count == 0:
            continue  # no value in the window: absent rather than NaN
        labels = base + (("feature", name),)
        means.append(Sample(labels, float(moments.mean)))
        stds.append(Sample(labels, float(moments.std())))
        mins.append(Sample(labels, float(moments.min)))
        maxs.append(Sample(labels, float(moments.max)))
        if win.sketch is not None and win.sketch.count:
            values = np.atleast_1d(win.sketch.quantile(np.asarray(QUANTILES)))  # one pass
            for q, value in zip(QUANTILES, values.tolist()):
                if math.isfinite(value):
                    quantiles.append(Sample(labels + (("quantile", str(q)),), value))
    builder.add("mlprobe_feature_mean", means)
    builder.add("mlprobe_feature_stddev", stds)
    builder.add("mlprobe_feature_min", mins)
    builder.add("mlprobe_feature_max", maxs)
    builder.add("mlprobe_feature_quantile", quantiles)


def _drift_gauges(builder: FamilyBuilder, base: LabelSet, report: DriftReport) -> None:
    drift, status = [], []
    results = dict(report.features)
    if report.prediction is not None:
        results[PREDICTION_FEATURE] = report.prediction
    for name, result in results.items():
        labels = base + (("feature", name),)
        for method, value in sorted(result.statistics.items()):
            if value is not None and math.isfinite(value):
                drift.append(Sample(labels + (("method", method),), float(value)))
        if result.status in STATUS_VALUE:
            status.append(Sample(labels, STATUS_VALUE[result.status]))
    builder.add("mlprobe_feature_drift", drift)
    builder.add("mlprobe_feature_drift_status", status)
    if report.drift_share is not None:
        builder.add("mlprobe_dataset_drift_share", [Sample(base, float(report.drift_share))])
