"""Turn a version's quality state into catalogue samples and the status document's section.

One :func:`quality_view` per collect (or status call) folds what is pending, merges the window
once and evaluates it; :func:`collect_quality` exports it, :func:`quality_document` is the
``model_quality`` part of ``drift_status()``. Label drift (the labels' distribution against the
profile's target) is handed to the drift report as its target window, so it is judged, shown
and exported like the CLI's label drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._drift_report import STATUS_RANK
from ._feature_profile import CategoricalProfile, FeatureProfile
from ._outcomes import PredictionStore
from ._quality import DELAY_BUCKETS, ID_STATES, RESULTS, QualityMonitor
from ._quality_counts import QualityCounts
from ._quality_eval import QualityReport, evaluate_quality, history_arrays
from ._registry import FamilyBuilder
from ._window import FeatureWindow
from .snapshot import HistogramSample, LabelSet, Sample
from .stats._exact import exact_to_float

__all__ = ["QualityView", "collect_quality", "label_window", "quality_document",
           "quality_view"]

STATUS_VALUE = {"ok": 0.0, "warning": 1.0, "critical": 2.0}


@dataclass
class QualityView:
    """One evaluation of a version's quality state."""

    window: QualityCounts
    totals: QualityCounts
    report: QualityReport
    labels: FeatureWindow | None


def quality_view(monitor: QualityMonitor, store: PredictionStore | None,
                 reference: Mapping[str, float]) -> QualityView:
    """Fold, merge and evaluate once (collect path)."""
    if store is not None:
        store.sweep()
    window, totals, history = monitor.snapshot()
    report = evaluate_quality(window, reference=reference, history=history_arrays(history),
                              window_seconds=monitor.task.spec.window_seconds)
    return QualityView(window, totals, report, label_window(monitor.target, window))


def label_window(target: FeatureProfile | None, counts: QualityCounts) -> FeatureWindow | None:
    """The window's labels as a window of the profile's target (None without a target)."""
    if target is None:
        return None
    window = FeatureWindow(target)
    if isinstance(target, CategoricalProfile):
        if counts.confusion is None:
            return None
        assert window.categories is not None
        window.categories.update_counts(counts.confusion.actual_counts())
        return window
    if counts.label_bins is None or counts.label_moments is None:
        return None
    window.bins = counts.label_bins.copy()
    window.moments = counts.label_moments.copy()
    return window


def _outcome_stats(totals: QualityCounts) -> dict[str, float]:
    """Cumulative sums since start, summable across replicas (all non-negative)."""
    if totals.regression is not None:
        r = totals.regression
        return {"count": float(r.n), **r.sums()}
    assert totals.confusion is not None
    c = totals.confusion
    out = {"count": float(c.n), "correct": float(c.correct)}
    task = totals.task
    if task.task == "binary":
        i = task.labels.index(task.positive) + 1  # type: ignore[union-attr]
        m = c.matrix
        tp = int(m[i, i])
        predicted, actual = int(m[:, i].sum()), int(m[i, :].sum())
        out.update({"true_positive": float(tp), "false_positive": float(predicted - tp),
                    "false_negative": float(actual - tp),
                    "true_negative": float(c.n - predicted - actual + tp)})
    if totals.scores is not None and totals.scores.log_loss_n:
        out["log_loss"] = exact_to_float(totals.scores.log_loss)
    return out


def collect_quality(builder: FamilyBuilder, base: LabelSet, monitor: QualityMonitor,
                    view: QualityView, *, overall: bool = False) -> None:
    """Add every quality family of one version to ``builder`` (with ``overall``, also the
    overall dataset status: a probe without a reference profile has no other)."""
    counters, delays, delay_sum = monitor.counter_values()
    builder.add("mlprobe_outcomes", [Sample(base + (("result", r),), float(counters[r]))
                                     for r in RESULTS])
    builder.add("mlprobe_prediction_ids", [Sample(base + (("state", s),), float(counters[s]))
                                           for s in ID_STATES])
    builder.add("mlprobe_outcome_delay_seconds", [HistogramSample(
        base, DELAY_BUCKETS, tuple(delays), exact_to_float(delay_sum))])
    builder.add("mlprobe_outcome_stats", [
        Sample(base + (("metric", name),), value)
        for name, value in sorted(_outcome_stats(view.totals).items())])
    report = view.report

    def gauges(values: Mapping[str, Any]) -> list[Sample]:
        return [Sample(base + (("metric", k),), float(v)) for k, v in sorted(values.items())
                if isinstance(v, (int, float)) and v == v and abs(v) != float("inf")]

    builder.add("mlprobe_model_quality", gauges(report.metrics))
    if report.estimate:
        builder.add("mlprobe_model_quality_estimate", gauges(
            {k: v for k, v in report.estimate.items() if k != "predictions"}))
    builder.add("mlprobe_model_quality_reference", gauges(report.reference))
    builder.add("mlprobe_model_quality_status", [
        Sample(base + (("metric", m),), STATUS_VALUE[s])
        for m, s in sorted(report.metric_status.items()) if s in STATUS_VALUE])
    if report.change_status in STATUS_VALUE:
        builder.add("mlprobe_concept_drift_status",
                    [Sample(base, STATUS_VALUE[report.change_status])])
    if report.status in STATUS_RANK:
        aspects = ("model_quality", "overall") if overall else ("model_quality",)
        builder.add("mlprobe_dataset_status", [
            Sample(base + (("aspect", a),), STATUS_VALUE[report.status]) for a in aspects])


def quality_document(monitor: QualityMonitor, store: PredictionStore | None,
                     view: QualityView) -> dict[str, Any]:
    """The ``model_quality`` section of ``drift_status()``: the report, the outcome and
    prediction-id counters, and what waits in the store."""
    counters, delays, delay_sum = monitor.counter_values()
    doc = view.report.to_dict()
    matched = sum(delays)
    doc["outcomes"] = {r: counters[r] for r in RESULTS}
    doc["prediction_ids"] = {s: counters[s] for s in ID_STATES}
    doc["mean_label_delay_seconds"] = (exact_to_float(delay_sum, matched) if matched
                                       else None)
    if store is not None:
        doc["store"] = {"predictions_waiting": store.entries, "bytes": store.bytes,
                        "outcomes_waiting": store.waiting_outcomes,
                        "ttl_seconds": store.ttl, "max_entries": store.max_entries,
                        "max_bytes": store.max_bytes}
    return doc
