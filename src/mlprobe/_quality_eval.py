"""Quality evaluation: metrics, statuses against the reference, estimate and change signal.

The last quality layer, shared by the serving side's collect path and the ``mlprobe drift``
CLI. From a :class:`~mlprobe._quality_counts.QualityCounts` it computes the realised metrics
(scikit-learn's definitions), each judged metric's status from its relative change against
the reference value (a drop for accuracy-like metrics, a rise for error-like ones), the
label-free estimate (CBPE-style, from the scores of every prediction), and, from a bucketed
loss history, the concept-drift signal. The result is a JSON-ready
:class:`QualityReport`. Definitions: ``docs/quality.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._drift_report import STATUS_RANK, json_float, worst
from ._quality_counts import QualityCounts
from ._quality_spec import HIGHER_IS_BETTER, QualitySpec
from ._quality_task import QualityTask
from .stats._classification import binned_auc
from .stats._detectors import ChangeResult, detect_change
from .stats._exact import FIXED_ONE, exact_to_float

__all__ = ["ESTIMATE_ASSUMPTIONS", "QualityReport", "change_status", "estimate",
           "evaluate_quality", "metric_status", "realised_metrics"]

ESTIMATE_ASSUMPTIONS = (
    "Label-free estimate (CBPE-style): every prediction counts as correct with the "
    "probability its score gives, so it assumes calibrated scores (P(label | score) = score, "
    "as on the reference data) and no concept drift (P(label | inputs) unchanged); it follows "
    "covariate shift, not a change of the relation between inputs and labels.")
"""What the label-free estimate assumes, stated next to it."""


def realised_metrics(counts: QualityCounts) -> dict[str, float | None]:
    """The metrics of the counted pairs (None where undefined)."""
    task = counts.task
    if counts.regression is not None:
        return dict(counts.regression.metrics())
    assert counts.confusion is not None
    confusion = counts.confusion
    out: dict[str, float | None] = {"accuracy": confusion.accuracy()}
    if task.task == "binary":
        out.update(confusion.binary(task.positive))  # type: ignore[arg-type]
    else:
        out.update(confusion.macro())
        out["f1_micro"] = out["accuracy"]  # single-label multiclass: micro P = R = F1
    if counts.scores is not None and counts.scores.log_loss_n:
        out.update(counts.scores.metrics())
    return out


def estimate(counts: QualityCounts) -> dict[str, float | None] | None:
    """The label-free estimate from the predictions' scores (None without scored ones)."""
    n = int(counts.estimate_n.sum())
    if not n:
        return None
    task = counts.task
    if task.task == "multiclass":
        return {"accuracy": float(counts.estimate_sum[0]) / FIXED_ONE / n, "predictions": n}
    positive = counts.estimate_sum.astype(np.float64) / FIXED_ONE  # expected positives per bin
    negative = counts.estimate_n - positive
    above = int(np.searchsorted(task.edges, task.threshold, side="left")) + 1
    correct = float(positive[above:].sum() + negative[:above].sum())
    auc = binned_auc(positive, negative)
    return {"accuracy": correct / n, "roc_auc": auc[0] if auc else None,
            "roc_auc_bound": auc[1] if auc else None, "predictions": n}


def metric_status(metric: str, value: float | None, reference: float | None,
                  thresholds: tuple[float, float]) -> tuple[str, float | None]:
    """``(status, relative change)`` of one metric against its reference value.

    The change is a drop ``(reference - value) / reference`` for metrics where higher is
    better, a rise ``(value - reference) / reference`` for the others; the status is
    ``warning`` / ``critical`` from ``thresholds``, ``no_reference`` without a (positive)
    reference, ``insufficient_data`` without a value.
    """
    if value is None or not math.isfinite(value):
        return "insufficient_data", None
    if reference is None or not math.isfinite(reference) or reference <= 0:
        return "no_reference", None
    change = ((reference - value) if metric in HIGHER_IS_BETTER else (value - reference)
              ) / reference
    warning, critical = thresholds
    status = "critical" if change >= critical else "warning" if change >= warning else "ok"
    return status, change


def change_status(result: ChangeResult | None) -> str:
    """``warning`` when the loss rose significantly, ``ok`` otherwise (``insufficient_data``
    without enough history). A fall (the model got better) is reported, not alarmed on."""
    if result is None:
        return "insufficient_data"
    return "warning" if result.detected and result.direction == "increase" else "ok"


@dataclass(frozen=True)
class QualityReport:
    """Model quality of one window (see the module docstring); :meth:`to_dict` is the
    ``model_quality`` part of the status document."""

    task: QualityTask
    pairs: int
    metrics: dict[str, float | None]
    reference: dict[str, float]
    metric_status: dict[str, str]
    changes: dict[str, float | None]
    estimate: dict[str, float | None] | None
    change: ChangeResult | None
    window_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def change_status(self) -> str:
        """The concept-drift signal's status."""
        return change_status(self.change)

    @property
    def status(self) -> str:
        """Worst of the judged metrics' statuses and the concept-drift signal's;
        ``insufficient_data`` while the window has fewer than ``min_count`` pairs (or no
        reference value to judge against, ``no_reference``)."""
        judged = [*self.metric_status.values(), self.change_status]
        if any(s in STATUS_RANK for s in judged):
            return worst(judged)
        if self.pairs < self.task.spec.min_count:
            return "insufficient_data"
        return "no_reference" if not self.reference else "insufficient_data"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: status, task, counts, metrics beside reference and estimate, statuses
        and thresholds, the concept-drift signal, definitions."""
        task, spec = self.task, self.task.spec
        change = None
        if self.change is not None:
            c = self.change
            change = {"status": self.change_status, "detected": c.detected,
                      "direction": c.direction, "mean_before": json_float(c.mean_before),
                      "mean_after": json_float(c.mean_after), "epsilon": json_float(c.epsilon),
                      "score": json_float(c.score), "n_before": c.n_before,
                      "n_after": c.n_after}
        return {
            "status": self.status, "task": task.task, "pairs": self.pairs,
            "positive_label": task.positive, "threshold": task.threshold if
            task.task == "binary" else None, "labels": list(task.labels) if task.labels
            else None, "window_seconds": self.window_seconds,
            "metrics": {k: _num(v) for k, v in self.metrics.items()},
            "reference": dict(self.reference),
            "metric_status": dict(self.metric_status),
            "relative_change": {k: _num(v) for k, v in self.changes.items()},
            "thresholds": {m: {"warning": spec.threshold_for(m)[0],
                               "critical": spec.threshold_for(m)[1],
                               "direction": "drop" if m in HIGHER_IS_BETTER else "rise"}
                           for m in self.metric_status},
            "min_count": spec.min_count,
            "estimate": ({k: _num(v) for k, v in self.estimate.items()}
                         if self.estimate else None),
            "estimate_assumptions": ESTIMATE_ASSUMPTIONS if self.estimate else None,
            "concept_drift": change,
            "definitions": _definitions(task),
            **self.extra,
        }


def _num(value: Any) -> Any:
    return json_float(value) if isinstance(value, float) else value


def _definitions(task: QualityTask) -> dict[str, Any]:
    if task.task == "regression":
        return {"error": "prediction - actual", "mape": "|e| / max(|actual|, float64 eps)",
                "concept_drift": "ADWIN-style test on absolute errors per time bucket"}
    out: dict[str, Any] = {"concept_drift": "ADWIN-style test on 0/1 errors per time bucket",
                           "macro": "mean over classes seen, undefined per-class values as 0"}
    if task.task == "binary":
        out["predicted_positive"] = f"score > {task.threshold:g}"
    out.update({
        "roc_auc": {"bins": int(task.edges.size + 1), "spacing": "log-odds, 0.1 apart",
                    "bound": "|exact - binned| <= roc_auc_bound",
                    "multiclass": "one-vs-rest, macro average"},
        "ece": {"bins": 10, "width": "equal over [0, 1]", "of": "positive-class score"
                if task.task == "binary" else "top-label confidence"},
        "log_loss": {"clip": "[eps, 1 - eps] of the actual class's probability", "log": "e"},
    })
    return out


def evaluate_quality(counts: QualityCounts, *, reference: Mapping[str, float] | None = None,
                     history: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                     window_seconds: float | None = None,
                     spec: QualitySpec | None = None) -> QualityReport:
    """Evaluate a window of counts (and a loss history for the concept-drift signal).

    Args:
        counts: The window's counts.
        reference: Reference metric values (the profile's, merged with the spec's).
        history: ``(n, sum, sum of squares)`` of the loss per time bucket, oldest first.
        window_seconds: The window's length, for the document.
        spec: Judging settings (default: the task's spec).
    """
    spec = spec or counts.task.spec
    metrics = realised_metrics(counts)
    reference = {k: float(v) for k, v in (reference or {}).items()}
    pairs = counts.pairs
    statuses: dict[str, str] = {}
    changes: dict[str, float | None] = {}
    for metric in spec.judged(counts.task.task):
        status, change = metric_status(metric, metrics.get(metric), reference.get(metric),
                                       spec.threshold_for(metric))
        if pairs < spec.min_count and status in STATUS_RANK:
            status = "insufficient_data"
        statuses[metric], changes[metric] = status, change
    change_result = None
    if history is not None:
        change_result = detect_change(*history, delta=spec.detector_delta,
                                      bounded=counts.task.classification)
    return QualityReport(counts.task, pairs, metrics, reference, statuses, changes,
                         estimate(counts), change_result, window_seconds)


def history_arrays(triples: list[tuple[int, int, int]]) -> tuple[np.ndarray, ...]:
    """``(n, sum, sum of squares)`` arrays of float64 from exact loss triples."""
    n = np.array([t[0] for t in triples], dtype=np.float64)
    s = np.array([exact_to_float(t[1]) for t in triples], dtype=np.float64)
    q = np.array([exact_to_float(t[2]) for t in triples], dtype=np.float64)
    return n, s, q
