"""QualityCounts: every count model quality is computed from, for one stretch of time.

One instance holds what a window sub-bucket (or a batch, on the CLI) has seen: the joined
(prediction, actual) pairs as confusion counts, score-bin counts and exact error sums
(:mod:`mlprobe.stats._classification`, :mod:`mlprobe.stats._regression`), the label-free
estimate's counts over *all* predictions (labelled or not), and, for a regressor with a profiled
target, the labels' window for label drift. Everything merges exactly and round-trips through
plain data (:meth:`QualityCounts.to_dict` / :meth:`QualityCounts.from_dict`), which is what
rolling windows and the multi-worker mode rely on.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._feature_profile import FeatureProfile, NumericProfile
from ._quality_task import QualityTask
from .stats import BinnedCounts, Moments
from .stats._classification import Confusion, ScoreCounts
from .stats._exact import exact_scalar, fixed_point, fixed_point_bincount
from .stats._regression import RegressionCounts

__all__ = ["QualityCounts"]


class QualityCounts:
    """Counts of one stretch of time (see the module docstring).

    Args:
        task: The resolved task; fixes the parts kept and the score bins.
        target: The profile's target, for a regressor's label drift (categorical labels are
            read from the confusion counts instead).
    """

    __slots__ = ("task", "confusion", "scores", "regression", "estimate_n", "estimate_sum",
                 "label_bins", "label_moments", "_target")

    def __init__(self, task: QualityTask, target: FeatureProfile | None = None) -> None:
        self.task = task
        self._target = target
        self.confusion: Confusion | None = None
        self.scores: ScoreCounts | None = None
        self.regression: RegressionCounts | None = None
        if task.classification:
            self.confusion = Confusion(task.labels or (), fixed=task.labels is not None,
                                       max_classes=task.spec.max_classes)
            if task.task == "binary":
                self.scores = ScoreCounts(task.edges, 1)
        else:
            self.regression = RegressionCounts()
        # label-free estimate: binary, predictions per score bin with their fixed-point score
        # sums; multiclass, one bin holding the count and the sum of top-label confidences
        width = task.edges.size + 1 if task.task == "binary" else 1
        self.estimate_n = np.zeros(width, dtype=np.int64)
        self.estimate_sum = np.zeros(width, dtype=np.int64)
        # a regressor's labels on the profiled target's bins, for label drift (a classifier's
        # labels are the confusion counts' rows)
        self.label_bins: BinnedCounts | None = None
        self.label_moments: Moments | None = None
        if isinstance(target, NumericProfile) and not task.classification:
            self.label_bins, self.label_moments = target.empty_bins(), Moments()

    # -- recording -----------------------------------------------------------------------------

    def add_pairs(self, predicted: Any, actual: Any) -> int:
        """Fold in pairs of one payload kind (a float array of scores or values, a probability
        matrix, or a list of class keys) and their outcomes (label keys, or float values for a
        regressor). Returns how many pairs were invalid and left out."""
        if self.regression is not None:
            return self._add_regression(np.asarray(predicted, dtype=np.float64),
                                        np.asarray(actual, dtype=np.float64))
        keys: list[str | None] = list(actual)
        assert self.confusion is not None
        if isinstance(predicted, list):
            known = self.task.vocabulary if self.task.task == "binary" else None
            ok = [i for i, (a, p) in enumerate(zip(keys, predicted))
                  if a is not None and p and (known is None or (a in known and p in known))]
            self.confusion.add([keys[i] for i in ok], [predicted[i] for i in ok])  # type: ignore
            return len(keys) - len(ok)
        if self.task.task == "binary":
            return self._add_binary(predicted, keys)
        return self._add_proba(predicted, keys)

    def _add_binary(self, scores: np.ndarray, keys: list[str | None]) -> int:
        task = self.task
        positive = np.array([k == task.positive for k in keys], dtype=bool)
        known = np.array([k == task.positive or k == task.negative for k in keys], dtype=bool)
        ok = known & (scores >= 0.0) & (scores <= 1.0)  # NaN fails both
        scores, positive = scores[ok], positive[ok]
        if scores.size:
            assert self.confusion is not None and self.scores is not None
            # index 1 + position in the fixed (negative, positive) vocabulary
            pos_index, neg_index = self.confusion.index(task.positive), self.confusion.index(
                task.negative)  # type: ignore[arg-type]
            predicted_positive = scores > task.threshold
            actual = np.where(positive, pos_index, neg_index)
            predicted = np.where(predicted_positive, pos_index, neg_index)
            self.confusion.add_indexed(actual, predicted,
                                       int(np.count_nonzero(positive == predicted_positive)))
            self.scores.add_binary(scores, positive)
        return len(keys) - int(scores.size)

    def _add_proba(self, proba: np.ndarray, keys: list[str | None]) -> int:
        assert self.confusion is not None
        k = proba.shape[1]
        columns = self.task.column_labels(k)
        if self.scores is None:
            self.scores = ScoreCounts(self.task.edges, k)
        elif self.scores.columns != k:
            return len(keys)  # a matrix of another width: not this model's output
        rows_ok = np.all((proba >= 0.0) & (proba <= 1.0), axis=1)
        index = {c: i for i, c in enumerate(columns)}
        ok = [i for i, key in enumerate(keys) if key is not None and rows_ok[i]]
        if not ok:
            return len(keys)
        proba = proba[ok]
        actual_keys = [keys[i] for i in ok]
        predicted_keys = [columns[j] for j in np.argmax(proba, axis=1).tolist()]
        self.confusion.add(actual_keys, predicted_keys)  # type: ignore[arg-type]
        actual_column = np.array([index.get(key, -1) for key in actual_keys], dtype=np.int64)
        self.scores.add_proba(proba, actual_column)
        return len(keys) - len(ok)

    def _add_regression(self, predicted: np.ndarray, actual: np.ndarray) -> int:
        assert self.regression is not None
        ok = RegressionCounts.valid(predicted, actual)
        self.regression.add(predicted[ok], actual[ok])
        if self.label_bins is not None and self.label_moments is not None and ok.any():
            self.label_bins.update(actual[ok])
            self.label_moments.update(actual[ok])
        return int(ok.size - np.count_nonzero(ok))

    def add_predictions(self, predicted: Any) -> None:
        """Fold predictions (labelled or not) into the label-free estimate's counts."""
        if self.task.task == "binary" and isinstance(predicted, np.ndarray) \
                and predicted.ndim == 1:
            scores = predicted[(predicted >= 0.0) & (predicted <= 1.0)]
            bins = np.searchsorted(self.task.edges, scores, side="left")
            width = self.estimate_n.size
            self.estimate_n += np.bincount(bins, minlength=width)
            self.estimate_sum += fixed_point_bincount(bins, scores, width)
        elif self.task.task == "multiclass" and isinstance(predicted, np.ndarray) \
                and predicted.ndim == 2:
            rows = predicted[np.all((predicted >= 0.0) & (predicted <= 1.0), axis=1)]
            if rows.shape[0]:
                self.estimate_n[0] += rows.shape[0]
                self.estimate_sum[0] += int(fixed_point(rows.max(axis=1)).sum())

    # -- reading -------------------------------------------------------------------------------

    @property
    def pairs(self) -> int:
        """Labelled pairs counted."""
        if self.confusion is not None:
            return self.confusion.n
        assert self.regression is not None
        return self.regression.n

    def loss(self) -> tuple[int, int, int]:
        """``(n, sum, sum of squares)`` of the per-pair loss, sums exact (``2**-SCALE_BITS``
        units): 0/1 errors of a classifier, absolute errors of a regressor."""
        if self.confusion is not None:
            errors = self.confusion.n - self.confusion.correct
            one = exact_scalar(1.0)
            return self.confusion.n, errors * one, errors * one
        assert self.regression is not None
        r = self.regression
        return r.n, r.over + r.under, r.squared

    # -- merging and plain data ---------------------------------------------------------------

    def merge(self, other: QualityCounts) -> QualityCounts:
        """Add ``other`` (same task) into this one, in place."""
        if self.confusion is not None and other.confusion is not None:
            self.confusion.merge(other.confusion)
        if other.scores is not None:
            if self.scores is None:
                self.scores = other.scores.copy()
            else:
                self.scores.merge(other.scores)
        if self.regression is not None and other.regression is not None:
            self.regression.merge(other.regression)
        self.estimate_n += other.estimate_n
        self.estimate_sum += other.estimate_sum
        if self.label_bins is not None and other.label_bins is not None:
            self.label_bins.merge(other.label_bins)
            self.label_moments.merge(other.label_moments)  # type: ignore[union-attr]
        return self

    def copy(self) -> QualityCounts:
        """An independent copy."""
        out = QualityCounts.__new__(QualityCounts)
        out.task, out._target = self.task, self._target
        out.confusion = self.confusion.copy() if self.confusion is not None else None
        out.scores = self.scores.copy() if self.scores is not None else None
        out.regression = self.regression.copy() if self.regression is not None else None
        out.estimate_n, out.estimate_sum = self.estimate_n.copy(), self.estimate_sum.copy()
        out.label_bins = self.label_bins.copy() if self.label_bins is not None else None
        out.label_moments = (self.label_moments.copy() if self.label_moments is not None
                             else None)
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, ints, strings); the task is the configuration's."""
        out: dict[str, Any] = {"task": self.task.task,
                               "estimate_n": self.estimate_n.tolist(),
                               "estimate_sum": self.estimate_sum.tolist()}
        for name in ("confusion", "scores", "regression"):
            part = getattr(self, name)
            if part is not None:
                out[name] = part.to_dict()
        if self.label_bins is not None and self.label_moments is not None:
            out["label_bins"] = self.label_bins.to_dict()
            out["label_moments"] = self.label_moments.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], task: QualityTask,
                  target: FeatureProfile | None = None) -> QualityCounts:
        """Rebuild from :meth:`to_dict` output, for the same task (and target).

        Raises:
            ValueError: The data belongs to another task or other score bins.
        """
        if data.get("task") != task.task:
            raise ValueError(f"quality counts of task {data.get('task')!r}, expected "
                             f"{task.task!r}")
        out = cls(task, target)
        if "confusion" in data:
            out.confusion = Confusion.from_dict(data["confusion"])
        if "scores" in data:
            out.scores = ScoreCounts.from_dict(data["scores"], task.edges)
        if "regression" in data:
            out.regression = RegressionCounts.from_dict(data["regression"])
        out.estimate_n = np.asarray(data["estimate_n"], dtype=np.int64)
        out.estimate_sum = np.asarray(data["estimate_sum"], dtype=np.int64)
        if out.estimate_n.shape != (out.estimate_sum.shape):
            raise ValueError("estimate counts and sums differ in length")
        if "label_bins" in data and out.label_bins is not None:
            out.label_bins = BinnedCounts.from_dict(data["label_bins"])
            out.label_moments = Moments.from_dict(data["label_moments"])
        return out

