"""QualitySpec: how a model's quality is measured once its outcomes (labels) arrive.

Configuration only, validated at construction (the first quality layer; the task it resolves
to is :mod:`mlprobe._quality_task`, the counts :mod:`mlprobe._quality_counts`, the evaluation
:mod:`mlprobe._quality_eval`). The defaults follow the monitoring guide: an accuracy drop of 2%
relative to the reference is a warning, 5% critical.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import ConfigurationError

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "QualitySpec", "TASKS"]

TASKS = ("binary", "multiclass", "regression")
"""The kinds of model whose quality mlprobe measures."""

HIGHER_IS_BETTER = ("accuracy", "precision", "recall", "f1", "precision_macro", "recall_macro",
                    "f1_macro", "f1_micro", "roc_auc")
"""Metrics that drop when the model gets worse."""

LOWER_IS_BETTER = ("log_loss", "ece", "mae", "rmse", "mape")
"""Metrics that rise when the model gets worse (the bias is reported, never judged)."""

DEFAULT_JUDGED = {"binary": ("accuracy", "roc_auc"), "multiclass": ("accuracy",),
                  "regression": ("rmse",)}
"""Metrics whose change against the reference sets the status, by task."""


def _pair(name: str, value: Any) -> tuple[float, float]:
    try:
        warning, critical = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"QualitySpec: thresholds[{name!r}] must be a (warning, "
                                 f"critical) pair of relative changes, got {value!r}") from None
    if not 0 <= warning <= critical < math.inf:
        raise ConfigurationError(f"QualitySpec: thresholds[{name!r}] must be (warning, "
                                 f"critical) with 0 <= warning <= critical, got {value!r}")
    return warning, critical


@dataclass(frozen=True)
class QualitySpec:
    """How model quality is measured, judged and stored. Frozen; validated at construction.

    Args:
        task: ``"binary"``, ``"multiclass"`` or ``"regression"``; by default the reference
            profile's (from its target and prediction), so it is needed only without one.
        positive_label: The positive class of a binary model (default: the profile's, else the
            greater of the two labels, as scikit-learn orders them, else ``1``).
        labels: The class labels (binary: both; multiclass: the vocabulary). By default the
            profile's target levels; without a profile, an open vocabulary of at most
            ``max_classes`` labels in order of arrival.
        classes: The class of each column of a probability matrix (``model.classes_``); by
            default ``labels`` when it has as many entries, else ``0 .. k-1``.
        threshold: A binary score above it predicts the positive class.
        window_seconds: Length of the rolling window of quality metrics (labels often come
            late and sparse, so it is longer than the feature window by default).
        window_buckets: Sub-buckets making the window (aligned on wall-clock time).
        history_buckets: Sub-buckets of loss history the concept-drift detector tests.
        max_classes: Cap on an open class vocabulary (further labels count as ``__other__``).
        min_count: Labelled pairs the window needs before a metric gets a status.
        metrics: Metrics whose change against the reference sets the status (default:
            accuracy and ROC AUC for binary models, accuracy for multiclass, RMSE for
            regression).
        thresholds: ``{metric: (warning, critical)}`` relative changes against the reference,
            merged over the defaults: a drop of 2% / 5% for metrics where higher is better
            (accuracy, F1, ROC AUC, ...), a rise of 10% / 25% for error metrics (RMSE, MAE,
            log loss, ...), whose sampling noise on a window of a thousand pairs is several
            percent.
        reference: Reference metric values, merged over (and taking precedence over) those of
            the profile.
        ttl_seconds: How long a prediction waits for its outcome in the store.
        max_entries: Most predictions kept waiting (the oldest are evicted first).
        max_bytes: Most memory the waiting predictions may take (estimated per entry).
        unknown_grace_seconds: How long an outcome whose prediction is not (yet) known is kept
            in case the prediction arrives (an outcome racing its prediction; in multi-process
            mode, a prediction held by another worker, which joins it within about two
            publish intervals: the grace must be at least that, checked when the probe is
            created); then it counts as unknown.
        max_unmatched: Most outcomes kept waiting for their prediction.
        detector_delta: False-alarm probability per evaluation of the concept-drift detector.

    Raises:
        ConfigurationError: A bad value; the message names it.
    """

    task: str | None = None
    positive_label: Any = None
    labels: Sequence[Any] | None = None
    classes: Sequence[Any] | None = None
    threshold: float = 0.5
    window_seconds: float = 3600.0
    window_buckets: int = 12
    history_buckets: int = 48
    max_classes: int = 50
    min_count: int = 1000
    metrics: Sequence[str] | None = None
    thresholds: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    reference: Mapping[str, float] = field(default_factory=dict)
    ttl_seconds: float = 86400.0
    max_entries: int = 100_000
    max_bytes: int = 64 * 1024 * 1024
    unknown_grace_seconds: float = 60.0
    max_unmatched: int = 10_000
    detector_delta: float = 0.002

    def __post_init__(self) -> None:
        def bad(msg: str) -> ConfigurationError:
            return ConfigurationError(f"QualitySpec: {msg}")

        if self.task is not None and self.task not in TASKS:
            raise bad(f"task must be one of {TASKS} (or None to take the profile's), got "
                      f"{self.task!r}")
        for name in ("labels", "classes"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) \
                        and not hasattr(value, "tolist"):
                    raise bad(f"{name} must be a list of class labels, got {value!r}")
                items = list(value.tolist() if hasattr(value, "tolist") else value)
                if not items:
                    raise bad(f"{name} must not be empty")
                object.__setattr__(self, name, tuple(items))
        if self.task == "binary" and self.labels is not None and len(self.labels) != 2:
            raise bad(f"a binary model has two labels, got {list(self.labels)!r}")
        for name, low, high in (("threshold", 0.0, 1.0), ("detector_delta", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low < value < high:
                raise bad(f"{name} must be a number in ({low:g}, {high:g}), got {value!r}")
        for name in ("window_seconds", "ttl_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0 < value < math.inf:
                raise bad(f"{name} must be a positive number of seconds, got {value!r}")
        grace = self.unknown_grace_seconds
        if isinstance(grace, bool) or not isinstance(grace, (int, float)) \
                or not 0 <= grace < math.inf:
            raise bad(f"unknown_grace_seconds must be >= 0 seconds, got {grace!r}")
        for name in ("window_buckets", "history_buckets", "max_classes", "min_count",
                     "max_entries", "max_bytes", "max_unmatched"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise bad(f"{name} must be a positive integer, got {value!r}")
        if self.max_classes > 1000:
            raise bad("max_classes must be at most 1000 (each class is a row and a column of "
                      "the confusion counts)")
        known = HIGHER_IS_BETTER + LOWER_IS_BETTER
        if self.metrics is not None:
            metrics = (self.metrics,) if isinstance(self.metrics, str) else tuple(self.metrics)
            unknown = [m for m in metrics if m not in known]
            if unknown:
                raise bad(f"metrics has unknown names {unknown}; choose from {known}")
            object.__setattr__(self, "metrics", metrics)
        merged: dict[str, tuple[float, float]] = {}
        for name, pair in dict(self.thresholds).items():
            if name not in known:
                raise bad(f"thresholds has unknown metric {name!r}; choose from {known}")
            merged[name] = _pair(name, pair)
        object.__setattr__(self, "thresholds", MappingProxyType(merged))
        reference: dict[str, float] = {}
        for name, value in dict(self.reference).items():
            if name not in known:
                raise bad(f"reference has unknown metric {name!r}; choose from {known}")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise bad(f"reference[{name!r}] must be a finite number, got {value!r}")
            reference[name] = float(value)
        object.__setattr__(self, "reference", MappingProxyType(reference))

    @property
    def bucket_seconds(self) -> float:
        """Length of one sub-bucket of the window (and of the detector's history)."""
        return self.window_seconds / self.window_buckets

    def judged(self, task: str) -> tuple[str, ...]:
        """The metrics whose change sets the status for ``task``."""
        return self.metrics if self.metrics is not None else DEFAULT_JUDGED[task]

    def threshold_for(self, metric: str) -> tuple[float, float]:
        """``(warning, critical)`` relative change of ``metric`` (default 2% / 5% drop, or
        10% / 25% rise for error metrics)."""
        default = (0.02, 0.05) if metric in HIGHER_IS_BETTER else (0.10, 0.25)
        return self.thresholds.get(metric, default)
