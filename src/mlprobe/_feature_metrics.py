"""Turn a feature monitor's window, totals and drift report into catalogue samples."""

from __future__ import annotations

import math
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np

from ._drift_eval import evaluate_dataset
from ._drift_report import DriftReport, worst
from ._drift_spec import DriftSpec
from ._feature_profile import NumericProfile
from ._fingerprint import profile_fingerprint
from ._profile import ReferenceProfile
from ._registry import FamilyBuilder
from ._window import DatasetWindow, FeatureWindow
from .snapshot import LabelSet, Sample, SummarySample
from .stats._labels import distinct_label_values

__all__ = ["PREDICTION_FEATURE", "STATUS_VALUE", "TARGET_FEATURE", "collect_feature_metrics",
           "drift_report"]

PREDICTION_FEATURE = "__prediction__"
TARGET_FEATURE = "__target__"
"""The ``feature`` label of label drift (the outcomes' labels against the profile's target)."""
STATUS_VALUE = {"ok": 0.0, "warning": 1.0, "critical": 2.0}
QUANTILES = (0.05, 0.5, 0.95)


_FEATURE_LABELS: WeakKeyDictionary[ReferenceProfile, dict[str, str]] = WeakKeyDictionary()


def feature_labels(profile: ReferenceProfile) -> dict[str, str]:
    """The ``feature`` label of each feature name, computed once per profile.

    Label values (:func:`mlprobe.stats._labels.label_value`) that stay distinct from each other and
    from :data:`PREDICTION_FEATURE`, so two features never export as one series.
    """
    labels = _FEATURE_LABELS.get(profile)
    if labels is None:
        names = list(profile.features)
        labels = dict(zip(names, distinct_label_values(
            names, reserved=(PREDICTION_FEATURE, TARGET_FEATURE))))
        _FEATURE_LABELS[profile] = labels
    return labels


def drift_report(profile: ReferenceProfile, spec: DriftSpec, window: DatasetWindow
                 ) -> DriftReport:
    """Evaluate a rolling window against the reference (collect time)."""
    return evaluate_dataset(profile, window, spec)


def _bins(ref: Any, win: FeatureWindow, sensitive: bool = False
          ) -> list[tuple[str, int, float]]:
    """(bin label, count, reference share) per exported bin of one feature.

    A sensitive categorical feature's bins are labelled by the level's index in the profile
    (``"0"``, ``"1"``, ...; ``__other__`` stays), never by the level itself.
    """
    ref_counts = np.asarray(ref.counts, dtype=np.float64)
    if isinstance(ref, NumericProfile):
        groups = ref.decile_groups()
        n_groups = int(groups.max()) + 1 if groups.size else 1
        cur = np.bincount(groups, weights=win.bins.counts,  # type: ignore[union-attr]
                          minlength=n_groups)
        refc = np.bincount(groups, weights=ref_counts, minlength=n_groups)
        labels = [str(i) for i in range(n_groups)]
    else:
        # The counts' own labels: the levels keyed by level_key, so valid label values even
        # when the profile document holds raw ones.
        categories = win.categories
        cur, refc = categories.counts, ref_counts  # type: ignore[union-attr]
        labels = list(categories.labels)  # type: ignore[union-attr]
        if sensitive:
            labels = [str(i) for i in range(len(labels) - 1)] + [labels[-1]]
    total = refc.sum()
    return [(label, int(c), float(r / total) if total else 0.0)
            for label, c, r in zip(labels, cur.tolist(), refc.tolist())]


def collect_feature_metrics(builder: FamilyBuilder, base: LabelSet, profile: ReferenceProfile,
                            window: DatasetWindow, totals: DatasetWindow, dropped: int,
                            spec: DriftSpec, *, sensitive: frozenset[str] = frozenset(),
                            target: FeatureWindow | None = None,
                            model_quality: str | None = None) -> None:
    """Add every feature family for one model to ``builder``: counters from ``totals``,
    statistics and drift from the rolling ``window``.

    ``sensitive`` features export no raw value: bins by index, no window value gauges.
    ``target`` is the labels' window (outcomes), evaluated as label drift; ``model_quality``
    the model-quality status, which the overall status includes.
    """
    window.target = target
    report = drift_report(profile, spec, window)
    _counters(builder, base, profile, totals, dropped, sensitive)
    feature = feature_labels(profile)
    _window_gauges(builder, base, window, feature, sensitive)
    _drift_gauges(builder, base, report, feature, model_quality)


def _counters(builder: FamilyBuilder, base: LabelSet, profile: ReferenceProfile,
              totals: DatasetWindow, dropped: int, sensitive: frozenset[str]) -> None:
    bins, ratios, missing, out_of_range, unseen = [], [], [], [], []
    feature = feature_labels(profile)
    # Bin series carry the profile's fingerprint, so replicas serving different profiles
    # never add up in one `sum by (feature, bin)` (see mlprobe._fingerprint).
    fingerprint = profile_fingerprint(profile, feature, sensitive, PREDICTION_FEATURE)
    with_profile = base + (("profile", fingerprint),)
    for name, ref in profile.features.items():
        win = totals.features[name]
        labels = base + (("feature", feature[name]),)
        binned = with_profile + (("feature", feature[name]),)
        for label, count, share in _bins(ref, win, name in sensitive):
            bins.append(Sample(binned + (("bin", label),), float(count)))
            ratios.append(Sample(binned + (("bin", label),), share))
        missing.append(Sample(labels, float(win.missing)))
        if win.categories is not None:
            unseen.append(Sample(labels, float(win.categories.unseen)))
        else:
            out_of_range.append(Sample(labels, float(win.out_of_range)))
    if profile.prediction is not None and totals.prediction is not None:
        # The model's output on its reference bins too: fleet-wide prediction drift in PromQL.
        binned = with_profile + (("feature", PREDICTION_FEATURE),)
        for label, count, share in _bins(profile.prediction, totals.prediction):
            bins.append(Sample(binned + (("bin", label),), float(count)))
            ratios.append(Sample(binned + (("bin", label),), share))
    builder.add("mlprobe_feature_bin", bins)
    builder.add("mlprobe_feature_reference_ratio", ratios)
    builder.add("mlprobe_feature_missing", missing)
    builder.add("mlprobe_feature_out_of_range", out_of_range)
    builder.add("mlprobe_feature_unseen_category", unseen)
    builder.add("mlprobe_feature_dropped_rows", [Sample(base, float(dropped))])
    builder.add("mlprobe_schema_violations", [
        Sample(base + (("kind", kind),), float(n))
        for kind, n in sorted(totals.schema_violations.items())])


def _window_gauges(builder: FamilyBuilder, base: LabelSet, window: DatasetWindow,
                   feature: dict[str, str], sensitive: frozenset[str]) -> None:
    means, stds, mins, maxs, quantiles = [], [], [], [], []
    for name, win in window.features.items():
        moments = win.moments
        if moments is None or moments.count == 0:
            continue  # no value in the window: absent rather than NaN
        if name in sensitive:
            continue  # each of these is on the raw scale; min and max are raw values
        labels = base + (("feature", feature[name]),)
        means.append(Sample(labels, float(moments.mean)))
        stds.append(Sample(labels, float(moments.std())))
        mins.append(Sample(labels, float(moments.min)))
        maxs.append(Sample(labels, float(moments.max)))
        if win.sketch is not None and win.sketch.count:
            values = np.atleast_1d(win.sketch.quantile(np.asarray(QUANTILES)))  # one pass
            # A summary (promtool reserves the quantile label for them): the sketch's
            # quantiles with the count and sum of the same window, from its moments.
            quantiles.append(SummarySample(
                labels, tuple((q, v) for q, v in zip(QUANTILES, values.tolist())
                              if math.isfinite(v)),
                int(moments.count), float(moments.mean) * int(moments.count)))
    builder.add("mlprobe_feature_mean", means)
    builder.add("mlprobe_feature_stddev", stds)
    builder.add("mlprobe_feature_min", mins)
    builder.add("mlprobe_feature_max", maxs)
    builder.add("mlprobe_feature_quantile", quantiles)


def _drift_gauges(builder: FamilyBuilder, base: LabelSet, report: DriftReport,
                  feature: dict[str, str], model_quality: str | None = None) -> None:
    drift, status, quality = [], [], []
    results = [(feature[name], result) for name, result in report.features.items()]
    if report.prediction is not None:
        results.append((PREDICTION_FEATURE, report.prediction))
    if report.target is not None:
        results.append((TARGET_FEATURE, report.target))
    for label, result in results:
        labels = base + (("feature", label),)
        for method, value in sorted(result.statistics.items()):
            if value is not None and math.isfinite(value):
                drift.append(Sample(labels + (("method", method),), float(value)))
        if result.status in STATUS_VALUE:
            status.append(Sample(labels, STATUS_VALUE[result.status]))
        # Reported even when the drift status is absent: a feature missing from every row
        # has no drift status, and this series is what says so.
        if result.quality_status in STATUS_VALUE:
            quality.append(Sample(labels, STATUS_VALUE[result.quality_status]))
    builder.add("mlprobe_feature_drift", drift)
    builder.add("mlprobe_feature_drift_status", status)
    builder.add("mlprobe_feature_quality_status", quality)
    builder.add("mlprobe_dataset_status", [
        Sample(base + (("aspect", aspect),), STATUS_VALUE[value])
        for aspect, value in (("drift", report.drift_verdict),
                              ("overall", worst((report.status, model_quality or ""))),
                              ("quality", report.quality_status))
        if value in STATUS_VALUE])
    if report.drift_share is not None:
        builder.add("mlprobe_dataset_drift_share", [Sample(base, float(report.drift_share))])
