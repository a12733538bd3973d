"""QualityTask: a QualitySpec resolved against a profile, and how it reads outputs and labels.

The task fixes what a prediction and an outcome are: a binary model's positive-class score (or
its predicted class), a multiclass model's probability matrix (or classes), a regressor's
value. :meth:`QualityTask.payload` turns whatever the model returned into the compact form the
prediction store keeps and the counts fold in; :meth:`QualityTask.actual_keys` and
:meth:`QualityTask.actual_values` read outcomes. Neither raises on bad data: what cannot be
read is ``None`` (or flagged per row) and counted as an invalid outcome by the caller.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from ._feature_profile import CategoricalProfile, FeatureProfile, NumericProfile
from ._quality_spec import QualitySpec
from .errors import ConfigurationError
from .stats._categorical import level_key
from .stats._classification import logit_edges

__all__ = ["Payload", "QualityTask", "resolve_task"]

Payload = Any
"""A stored prediction: a float (one score or value), a 1-D float array (scores or values), a
2-D float array (a probability matrix, one row per prediction) or a list of class keys."""

_NUMBER = (int, float, np.integer, np.floating)
_UNSEEN = object()


def _sort_key(label: str) -> tuple[int, float, str]:
    # scikit-learn orders classes with np.unique: numerically for numbers, else as text
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def class_key(value: Any, vocabulary: frozenset[str] | None = None) -> str | None:
    """The label key of one class value (None for a missing one). Booleans match ``"1"`` /
    ``"0"`` labels when the vocabulary has those rather than ``"True"`` / ``"False"``."""
    if value is None or (isinstance(value, (float, np.floating)) and not math.isfinite(value)):
        return None
    key = level_key(value)
    if vocabulary is not None and key not in vocabulary and key in ("True", "False"):
        alternative = "1" if key == "True" else "0"
        if alternative in vocabulary:
            return alternative
    return key


@dataclass(frozen=True)
class QualityTask:
    """A resolved quality configuration (see :func:`resolve_task`).

    Attributes:
        task: ``binary``, ``multiclass`` or ``regression``.
        labels: The class vocabulary (label keys), or None for an open one.
        positive: A binary model's positive label key.
        negative: A binary model's negative label key.
        classes: The label key of each probability column, when known.
        threshold: A binary score above it predicts ``positive``.
        edges: Interior score-bin edges (log-odds spaced, with the threshold as an edge).
        spec: The spec it came from.
    """

    task: str
    labels: tuple[str, ...] | None
    positive: str | None
    negative: str | None
    classes: tuple[str, ...] | None
    threshold: float
    edges: np.ndarray
    spec: QualitySpec

    @property
    def classification(self) -> bool:
        """True for binary and multiclass models."""
        return self.task != "regression"

    @cached_property
    def vocabulary(self) -> frozenset[str] | None:
        """The labels as a set, for lookups."""
        return frozenset(self.labels) if self.labels is not None else None

    def column_labels(self, k: int) -> tuple[str, ...]:
        """The class of each of ``k`` probability columns."""
        if self.classes is not None and len(self.classes) == k:
            return self.classes
        return tuple(str(i) for i in range(k))

    # -- outputs -------------------------------------------------------------------------------

    def payload(self, result: Any) -> Payload | None:
        """The compact form of a model output (a copy: the caller may reuse its arrays)."""
        kind = type(result)
        if kind is float:
            return result if self.task != "multiclass" else None
        if isinstance(result, Mapping):
            return None
        if isinstance(result, (str, bool, np.bool_)) or kind is int or isinstance(
                result, np.integer):
            return self._from_array(np.asarray([result]))
        if isinstance(result, np.floating):
            return float(result) if self.task != "multiclass" else None
        if kind is not np.ndarray:
            if hasattr(result, "to_numpy"):
                result = result.to_numpy()
            else:
                try:
                    result = np.asarray(result)
                except (ValueError, TypeError):
                    return None
        return self._from_array(result)

    def _from_array(self, array: np.ndarray) -> Payload | None:
        if self.task == "regression":  # values: numbers only
            if array.dtype.kind not in "fiu":
                return None
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            return array.astype(np.float64).ravel() if array.ndim <= 1 else None
        if array.dtype.kind == "f":
            if array.ndim == 0:
                return float(array) if self.task == "binary" else None
            if array.ndim == 2 and array.shape[1] == 1:
                array = array[:, 0]
            if array.ndim == 1:
                return np.array(array, dtype=np.float64) if self.task == "binary" else None
            if array.ndim != 2:
                return None
            if self.task == "binary":
                columns = self.column_labels(array.shape[1])
                if self.positive not in columns:
                    return None
                return np.array(array[:, columns.index(self.positive)], dtype=np.float64)
            return np.array(array, dtype=np.float64)
        if array.dtype.kind in "iubUSO":
            vocabulary = self.vocabulary
            return [class_key(v, vocabulary) or "" for v in array.ravel().tolist()]
        return None

    # -- outcomes ------------------------------------------------------------------------------

    def actual_keys(self, values: Any) -> list[str | None]:
        """Label keys of outcome values (None where one is missing)."""
        vocabulary = self.vocabulary
        out: list[str | None] = []
        known: dict[tuple[type, Any], str | None] = {}  # labels repeat: key each value once
        for v in _as_list(values):
            kind = type(v)
            if kind is str or kind is int or kind is bool:
                key = known.get((kind, v), _UNSEEN)
                if key is _UNSEEN:
                    key = known[(kind, v)] = class_key(v, vocabulary)
                out.append(key)  # type: ignore[arg-type]
            else:
                out.append(class_key(v, vocabulary))
        return out

    def actual_values(self, values: Any) -> np.ndarray:
        """Outcome values of a regressor as float64 (NaN where one is not a number)."""
        items = _as_list(values)
        out = np.full(len(items), np.nan)
        for i, v in enumerate(items):
            if isinstance(v, _NUMBER) and not isinstance(v, (bool, np.bool_)):
                out[i] = float(v)
        return out


def _as_list(values: Any) -> list[Any]:
    if isinstance(values, np.ndarray):
        return values.ravel().tolist()
    if isinstance(values, (list, tuple)):
        return list(values)
    if hasattr(values, "to_numpy") and hasattr(values, "shape"):
        return list(values.to_numpy().ravel().tolist())
    return [values]


def rows_of(payload: Payload) -> int:
    """Predictions in a payload."""
    if type(payload) is float:
        return 1
    return len(payload) if isinstance(payload, list) else int(payload.shape[0])


def _infer_task(target: FeatureProfile | None, prediction: FeatureProfile | None) -> str | None:
    if target is None:
        return None
    if isinstance(target, NumericProfile):
        return "regression"
    levels = [lv for lv in target.levels]
    if len(levels) <= 2:
        return "binary"
    return "multiclass"


def resolve_task(spec: QualitySpec, *, target: FeatureProfile | None = None,
                 prediction: FeatureProfile | None = None,
                 reference: Any = None) -> QualityTask:
    """Resolve a spec against a profile's target and prediction (and its reference quality,
    whose labels, positive class, threshold and columns are used where the spec is silent).

    Raises:
        ConfigurationError: The task cannot be known (no ``task=`` and no profile target), or
            the labels do not fit it.
    """
    stored = reference
    task = spec.task or (stored.task if stored is not None else None) or _infer_task(
        target, prediction)
    if task is None:
        raise ConfigurationError("QualitySpec: say which task the model solves "
                                 "(task='binary', 'multiclass' or 'regression'); the "
                                 "reference profile has no target to infer it from")
    if task == "regression":
        return QualityTask("regression", None, None, None, None, spec.threshold,
                           np.zeros(0), spec)
    labels: tuple[str, ...] | None = None
    if spec.labels is not None:
        labels = tuple(level_key(v) for v in spec.labels)
    elif stored is not None and stored.labels is not None:
        labels = stored.labels
    elif isinstance(target, CategoricalProfile):
        labels = target.levels
    threshold = spec.threshold if spec.threshold != 0.5 or stored is None else stored.threshold
    positive = negative = None
    if task == "binary":
        if spec.positive_label is not None:
            positive = level_key(spec.positive_label)
        elif stored is not None and stored.positive_label is not None:
            positive = stored.positive_label
        if labels is None:
            labels = ("0", "1") if positive in (None, "0", "1") else None
        if labels is None or len(labels) > 2:
            raise ConfigurationError("QualitySpec: a binary model needs its two labels "
                                     "(labels=[negative, positive])")
        if len(labels) == 1:
            labels = tuple(sorted({labels[0], positive or labels[0]}, key=_sort_key))
        positive = positive or max(labels, key=_sort_key)
        if positive not in labels:
            raise ConfigurationError(f"QualitySpec: positive_label {positive!r} is not one of "
                                     f"the labels {list(labels)}")
        negative = next((x for x in labels if x != positive), None)
        if negative is None:
            raise ConfigurationError("QualitySpec: a binary model needs two different labels")
    classes = None
    if spec.classes is not None:
        classes = tuple(level_key(v) for v in spec.classes)
    elif stored is not None and stored.classes is not None:
        classes = stored.classes
    elif labels is not None:
        classes = tuple(sorted(labels, key=_sort_key))
    edges = logit_edges(extra=(threshold,)) if task == "binary" else logit_edges()
    return QualityTask(task, labels, positive, negative, classes, float(threshold), edges,
                       spec)


def sorted_labels(labels: Sequence[str]) -> list[str]:
    """Labels in scikit-learn's class order."""
    return sorted(labels, key=_sort_key)
