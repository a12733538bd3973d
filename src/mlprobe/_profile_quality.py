"""Reference quality: the model's metrics on the profiled data, stored in the profile.

When a profile is built with both labels and predictions (``ReferenceProfile.from_data(X, y,
predictions)``, ``mlprobe profile --target ... --prediction ...``), the model's quality on
those rows is computed with the same counts and definitions as serving uses
(:mod:`mlprobe._quality_eval`) and stored as the document's optional ``"quality"`` entry.
Serving then judges its windows against these values (a 2% / 5% accuracy drop by default).

The entry is optional, so profiles that carry it stay readable by earlier releases of the same
format version (they ignore it); every field is checked when it is read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._feature_profile import FeatureProfile
from ._profile_fields import as_int, as_list, as_number, as_object, as_text, bad
from ._quality_counts import QualityCounts
from ._quality_eval import realised_metrics
from ._quality_spec import HIGHER_IS_BETTER, LOWER_IS_BETTER, TASKS, QualitySpec
from ._quality_task import QualityTask, resolve_task
from .errors import ConfigurationError

__all__ = ["ReferenceQuality", "prediction_labels", "quality_from_data"]

_METRICS = (*HIGHER_IS_BETTER, *LOWER_IS_BETTER, "bias", "roc_auc_bound")


@dataclass(frozen=True)
class ReferenceQuality:
    """The model's quality on the reference data, and how it was measured.

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        labels: The class labels (keys) of a classifier.
        positive_label: A binary model's positive class.
        threshold: A binary score above it was a positive prediction.
        classes: The class of each probability column, when the predictions were a matrix.
        pairs: (prediction, label) pairs measured.
        metrics: Metric values (only those defined on the data).
    """

    task: str
    labels: tuple[str, ...] | None
    positive_label: str | None
    threshold: float
    classes: tuple[str, ...] | None
    pairs: int
    metrics: dict[str, float] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        """The profile document's ``"quality"`` entry."""
        return {"task": self.task, "labels": list(self.labels) if self.labels else None,
                "positive_label": self.positive_label, "threshold": self.threshold,
                "classes": list(self.classes) if self.classes else None, "pairs": self.pairs,
                "metrics": dict(self.metrics)}

    @classmethod
    def from_document(cls, raw: Any, max_labels: int, max_chars: int) -> ReferenceQuality:
        """Read and check a ``"quality"`` entry.

        Raises:
            ProfileError: One line naming the field that is wrong.
        """
        data = as_object(raw, "quality")
        task = data.get("task")
        if task not in TASKS:
            raise bad("quality.task", f"one of {', '.join(TASKS)}", task)
        label_lists: dict[str, tuple[str, ...] | None] = {}
        for key in ("labels", "classes"):
            value = data.get(key)
            label_lists[key] = None if value is None else tuple(
                as_text(v, f"quality.{key}[{i}]", max_chars)
                for i, v in enumerate(as_list(value, f"quality.{key}", max_labels)))
        positive = data.get("positive_label")
        if positive is not None:
            positive = as_text(positive, "quality.positive_label", max_chars)
        threshold = as_number(data.get("threshold"), "quality.threshold", nullable=False)
        if not 0 < threshold < 1:
            raise bad("quality.threshold", "in (0, 1)", threshold)
        metrics = {}
        for name, value in as_object(data.get("metrics"), "quality.metrics").items():
            if name not in _METRICS:
                raise bad("quality.metrics", f"keyed by metric names ({', '.join(_METRICS)})",
                          name)
            metrics[name] = as_number(value, f"quality.metrics[{name!r}]", nullable=False)
        return cls(task, label_lists["labels"], positive, threshold, label_lists["classes"],
                   as_int(data.get("pairs"), "quality.pairs"), metrics)


def quality_from_data(y: Any, predictions: Any, *, target: FeatureProfile | None,
                      prediction: FeatureProfile | None,
                      spec: QualitySpec | None = None) -> ReferenceQuality:
    """Measure the model's quality on reference pairs (the definitions serving uses).

    Raises:
        ConfigurationError: The predictions cannot be read for the task (say which task with
            ``quality=QualitySpec(task=...)``), or no pair is valid.
    """
    task = resolve_task(spec or QualitySpec(), target=target, prediction=prediction)
    counts = QualityCounts(task)
    payload = task.payload(predictions)
    if payload is None:
        raise ConfigurationError(f"predictions cannot be read as the outputs of a {task.task} "
                                 "model; pass quality=QualitySpec(task=...) to say which "
                                 "task it is")
    actual = task.actual_values(y) if task.task == "regression" else task.actual_keys(y)
    invalid = counts.add_pairs(payload, actual)
    if invalid == len(actual):
        raise ConfigurationError(f"no (prediction, label) pair of the reference data is valid "
                                 f"for a {task.task} model (labels {task.labels}); check y, "
                                 "predictions and quality=QualitySpec(...)")
    metrics = {k: float(v) for k, v in realised_metrics(counts).items()
               if v is not None and math.isfinite(v)}
    return ReferenceQuality(task.task, task.labels if task.classification else None,
                            task.positive, task.threshold, _classes(task, payload),
                            counts.pairs, metrics)


def _classes(task: QualityTask, payload: Any) -> tuple[str, ...] | None:
    shape = getattr(payload, "shape", ())
    if task.task == "multiclass" and len(shape) == 2:
        return task.column_labels(shape[1])
    return None


def prediction_labels(predictions: Any, spec: QualitySpec | None,
                      target: FeatureProfile | None) -> Any:
    """What the prediction profile summarises: a ``(n, k)`` probability matrix becomes the
    predicted class of each row (its columns' classes: ``spec.classes``, else the target's
    labels in scikit-learn's order when there are ``k`` of them, else ``0 .. k-1``); anything
    else is returned as it is."""
    array = predictions if isinstance(predictions, np.ndarray) else None
    if array is None and hasattr(predictions, "to_numpy") and getattr(predictions, "ndim", 1) == 2:
        array = predictions.to_numpy()
    if array is None or array.ndim != 2 or array.shape[1] < 2 or array.dtype.kind != "f":
        return predictions
    task = resolve_task(spec or QualitySpec(task="multiclass"), target=target)
    columns = task.column_labels(array.shape[1])
    return np.array(columns, dtype=object)[np.argmax(np.nan_to_num(array, nan=-np.inf), axis=1)]
