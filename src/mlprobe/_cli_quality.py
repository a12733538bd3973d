"""Model quality in ``mlprobe drift``: a batch's realised metrics against the profile's.

When the profile carries reference quality (built with ``--target`` and ``--prediction``) and
the current file has both columns, every (prediction, label) row is counted with the same
counts and definitions as serving uses, and the metrics are judged against the reference
(a 2% / 5% relative accuracy drop by default; ``--quality-drop``). The status joins the
verdict and ``--fail-on``. Label drift of the target column is the drift report's own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._feature_input import text_numbers
from ._profile import ReferenceProfile
from ._quality_counts import QualityCounts
from ._quality_eval import QualityReport, evaluate_quality
from ._quality_spec import HIGHER_IS_BETTER, QualitySpec
from ._quality_task import QualityTask, resolve_task

__all__ = ["BatchQuality", "markdown_section"]


class BatchQuality:
    """Counts a data file's (prediction, label) rows, chunk by chunk (constant memory).

    Args:
        profile: A profile with reference quality (``profile.quality``).
        min_count: Pairs needed before a metric gets a status.
        drop: ``(warning, critical)`` relative drop for metrics where higher is better.
    """

    def __init__(self, profile: ReferenceProfile, *, min_count: int | None = None,
                 drop: tuple[float, float] | None = None) -> None:
        reference = profile.quality
        assert reference is not None
        thresholds = {m: drop for m in HIGHER_IS_BETTER} if drop else {}
        spec = QualitySpec(task=reference.task, min_count=min_count or 1000,
                           thresholds=thresholds)
        self.task: QualityTask = resolve_task(spec, target=profile.target,
                                              prediction=profile.prediction,
                                              reference=reference)
        self.counts = QualityCounts(self.task)
        self.reference = dict(reference.metrics)
        self.invalid = 0

    def update(self, predictions: Any, targets: Any, *, text: bool) -> None:
        """Fold in a chunk's prediction and label columns (CSV text or typed values)."""
        task = self.task
        if text:
            predictions = _parse(predictions, numeric=task.task in ("binary", "regression"))
            targets = _parse(targets, numeric=task.task == "regression")
        payload = task.payload(np.asarray(predictions))
        if payload is None:
            self.invalid += len(targets)
            return
        actual = (task.actual_values(targets) if task.task == "regression"
                  else task.actual_keys(targets))
        self.invalid += self.counts.add_pairs(payload, actual)

    def report(self) -> QualityReport:
        """The batch's metrics judged against the reference."""
        report = evaluate_quality(self.counts, reference=self.reference)
        report.extra["invalid_pairs"] = self.invalid
        return report


def _parse(cells: Any, *, numeric: bool) -> Any:
    """CSV cells as the profile read them: numbers for scores and values, and class labels
    that look like numbers as numbers (so "1", "1.0" and "1e0" are label "1")."""
    if numeric:
        return text_numbers(cells)[0]
    out: list[Any] = []
    for cell in cells:
        try:
            value = float(cell)
        except ValueError:
            out.append(cell if cell.strip() else None)
            continue
        out.append(value if math.isfinite(value) else None)
    return out


def markdown_section(report: QualityReport) -> str:
    """The model-quality part of the Markdown report."""
    d = report.to_dict()
    lines = ["", f"## Model quality: **{d['status']}**", "",
             f"{d['pairs']} labelled rows ({d['task']}"
             + (f", positive label {d['positive_label']}" if d.get("positive_label") else "")
             + "); status from the relative change against the profile's reference.", "",
             "| metric | current | reference | change | status |", "|---|---|---|---|---|"]
    for name, value in d["metrics"].items():
        change = d["relative_change"].get(name)
        lines.append(f"| {name} | {_fmt(value)} | {_fmt(d['reference'].get(name))} | "
                     f"{_fmt(change)} | {d['metric_status'].get(name, '–')} |")
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.4g}"
