"""Mergeable counts of a classifier's (prediction, actual) pairs, and the metrics they give.

:class:`Confusion` holds the confusion matrix over a bounded class vocabulary; from it come
accuracy, precision, recall and F1 (binary, macro and micro), defined as scikit-learn defines
them. :class:`ScoreCounts` holds what the predicted probabilities add: counts by score bin and
actual class (ROC AUC from binned scores, with its error bound), reliability bins (expected
calibration error) and the exact log-loss sum. Every part merges exactly (integer counts,
exact sums of :mod:`mlprobe.stats._exact`), so a window split across processes and merged
gives the metrics of one pass. Definitions and bounds: ``docs/quality.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._exact import FIXED_ONE, exact_sum, exact_to_float, fixed_point_bincount

__all__ = ["CALIBRATION_BINS", "Confusion", "OVERFLOW", "ScoreCounts", "binned_auc",
           "logit_edges"]

OVERFLOW = "__other__"
"""The class every label past the vocabulary cap is counted as."""

CALIBRATION_BINS = 10
"""Equal-width reliability bins over [0, 1] (scikit-learn's ``calibration_curve`` default)."""


def logit_edges(step: float = 0.1, limit: float = 12.0,
                extra: Sequence[float] = ()) -> np.ndarray:
    """Interior score-bin edges, equally spaced in log-odds, plus ``extra`` ones (a threshold).

    Log-odds spacing resolves confident models, whose scores crowd near 0 and 1, where
    equal-width bins would lump most scores together; a binned ROC AUC's error bound is the
    share of positive-negative pairs that share a bin, so it stays small.
    """
    z = np.arange(-limit, limit + step / 2, step)
    edges = 1.0 / (1.0 + np.exp(-z))
    return np.unique(np.concatenate([edges, np.asarray(extra, dtype=np.float64)]))


def binned_auc(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float] | None:
    """ROC AUC from positives and negatives per score bin (bins in increasing score order).

    Pairs in different bins are ordered by their bins; a pair sharing a bin counts one half
    (a tie). The exact AUC of the unbinned scores differs only in those pairs, each worth 0 to
    1 instead of one half, so ``|exact - binned| <= bound = sum(pos_i * neg_i) / (2 P N)``,
    which is returned with the value. Weights may be fractional (the label-free estimate).

    Returns:
        ``(auc, bound)``, or None when there are no positives or no negatives.
    """
    p = np.asarray(pos, dtype=np.float64)
    n = np.asarray(neg, dtype=np.float64)
    total_pos, total_neg = float(p.sum()), float(n.sum())
    if total_pos <= 0 or total_neg <= 0:
        return None
    below = np.cumsum(n) - n  # negatives in lower bins
    pairs = total_pos * total_neg
    auc = float(np.dot(p, below + 0.5 * n)) / pairs
    bound = float(np.dot(p, n)) / (2.0 * pairs)
    return min(max(auc, 0.0), 1.0), bound


class Confusion:
    """Confusion counts over a class vocabulary of at most ``max_classes`` labels.

    Rows are actual classes, columns predicted ones, both indexed by position in ``labels``
    plus 1; index 0 is :data:`OVERFLOW`. A fixed vocabulary (from a profile) never grows: any
    other label is counted as ``__other__``. An open one grows in order of arrival up to the
    cap. ``correct`` counts pairs whose labels are equal as given, so accuracy stays exact past
    the cap (two different folded labels are not a correct pair).

    Args:
        labels: Known class labels (label keys), in a fixed order.
        fixed: True when ``labels`` is the whole vocabulary.
        max_classes: Cap on the vocabulary of an open one.
    """

    __slots__ = ("labels", "fixed", "max_classes", "matrix", "correct", "_index")

    def __init__(self, labels: Sequence[str] = (), *, fixed: bool = False,
                 max_classes: int = 50) -> None:
        self.labels: list[str] = list(labels)
        self.fixed = fixed
        self.max_classes = max(max_classes, len(self.labels))
        self._index = {label: i + 1 for i, label in enumerate(self.labels)}
        k = len(self.labels) + 1
        self.matrix = np.zeros((k, k), dtype=np.int64)
        self.correct = 0

    @property
    def n(self) -> int:
        """Pairs counted."""
        return int(self.matrix.sum())

    def index(self, label: str) -> int:
        """The row/column of ``label``, adding it to an open vocabulary under the cap."""
        i = self._index.get(label)
        if i is not None:
            return i
        if self.fixed or label == OVERFLOW or len(self.labels) >= self.max_classes:
            return 0
        self.labels.append(label)
        i = self._index[label] = len(self.labels)
        self.matrix = np.pad(self.matrix, ((0, 1), (0, 1)))
        return i

    def add(self, actual: Sequence[str], predicted: Sequence[str]) -> None:
        """Count pairs of label keys (two sequences of equal length)."""
        a = np.fromiter((self.index(x) for x in actual), dtype=np.int64, count=len(actual))
        p = np.fromiter((self.index(x) for x in predicted), dtype=np.int64,
                        count=len(predicted))
        self.add_indexed(a, p, sum(x == y for x, y in zip(actual, predicted)))

    def add_indexed(self, actual: np.ndarray, predicted: np.ndarray,
                    correct: int | None = None) -> None:
        """Count pairs given as row and column indices (``correct``: when known, else the
        pairs with equal indices other than ``__other__``)."""
        k = self.matrix.shape[0]
        self.matrix += np.bincount(actual * k + predicted, minlength=k * k).reshape(k, k)
        if correct is None:
            correct = int(np.count_nonzero((actual == predicted) & (actual != 0)))
        self.correct += correct

    def merge(self, other: Confusion) -> Confusion:
        """Add ``other``'s counts into this one, in place (labels matched by name)."""
        if other.labels == self.labels:
            self.matrix += other.matrix
        else:
            mapping = np.array([0] + [self.index(x) for x in other.labels], dtype=np.int64)
            k = self.matrix.shape[0]
            rows, cols = np.nonzero(other.matrix)
            np.add.at(self.matrix.reshape(-1), mapping[rows] * k + mapping[cols],
                      other.matrix[rows, cols])
        self.correct += other.correct
        return self

    def copy(self) -> Confusion:
        """An independent copy."""
        out = Confusion(self.labels, fixed=self.fixed, max_classes=self.max_classes)
        out.matrix = self.matrix.copy()
        out.correct = self.correct
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data: labels, matrix (rows actual, columns predicted, ``__other__`` first)."""
        return {"labels": list(self.labels), "fixed": self.fixed,
                "max_classes": self.max_classes, "matrix": self.matrix.tolist(),
                "correct": self.correct}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Confusion:
        """Rebuild from :meth:`to_dict` output."""
        out = cls(data["labels"], fixed=bool(data["fixed"]), max_classes=int(data["max_classes"]))
        out.matrix = np.asarray(data["matrix"], dtype=np.int64).reshape(out.matrix.shape)
        out.correct = int(data["correct"])
        return out

    # -- metrics -----------------------------------------------------------------------------

    def accuracy(self) -> float | None:
        """Share of pairs whose predicted label equals the actual one."""
        n = self.n
        return self.correct / n if n else None

    def binary(self, positive: str) -> dict[str, float | None]:
        """Precision, recall and F1 of class ``positive`` (None where scikit-learn's
        ``zero_division`` would apply)."""
        i = self._index.get(positive)
        if i is None:
            return {"precision": None, "recall": None, "f1": None}
        tp = int(self.matrix[i, i])
        predicted, actual = int(self.matrix[:, i].sum()), int(self.matrix[i, :].sum())
        return {"precision": tp / predicted if predicted else None,
                "recall": tp / actual if actual else None,
                "f1": 2 * tp / (predicted + actual) if predicted + actual else None}

    def macro(self) -> dict[str, float | None]:
        """Unweighted means over every class seen as actual or predicted (an undefined
        per-class value counts as 0, as scikit-learn's default ``zero_division`` does)."""
        diagonal = np.diag(self.matrix).astype(np.float64)
        predicted = self.matrix.sum(axis=0).astype(np.float64)
        actual = self.matrix.sum(axis=1).astype(np.float64)
        seen = (predicted + actual) > 0
        if not seen.any():
            return {"precision_macro": None, "recall_macro": None, "f1_macro": None}
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predicted > 0, diagonal / predicted, 0.0)[seen]
            recall = np.where(actual > 0, diagonal / actual, 0.0)[seen]
            f1 = (2 * diagonal / (predicted + actual))[seen]
        return {"precision_macro": float(precision.mean()), "recall_macro": float(recall.mean()),
                "f1_macro": float(f1.mean())}

    def actual_counts(self) -> dict[str, int]:
        """Pairs per actual label (``__other__`` last), for label drift."""
        rows = self.matrix.sum(axis=1).tolist()
        return {**dict(zip(self.labels, rows[1:])), OVERFLOW: rows[0]}


class ScoreCounts:
    """What predicted probabilities add to a classifier's pairs, mergeable exactly.

    For ``columns`` classes (one for a binary model's positive-class score, ``k`` for a
    ``(n, k)`` probability matrix): counts per score bin (``edges``) split by whether the
    actual class is that column's (ROC AUC, one-vs-rest for ``k`` columns); equal-width
    reliability bins of the score (binary) or of the top-label confidence (``k`` columns) with
    their fixed-point score sums and positives or correct counts (expected calibration error);
    and the exact sum of the log loss with its count.

    Args:
        edges: Interior score-bin edges (increasing, inside (0, 1)).
        columns: Score columns (1 for binary scores).
    """

    __slots__ = ("edges", "columns", "by_bin", "cal_n", "cal_hit", "cal_sum", "log_loss",
                 "log_loss_n")

    def __init__(self, edges: np.ndarray, columns: int = 1) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.columns = columns
        # [column, actual is that column's class, bin]
        self.by_bin = np.zeros((columns, 2, self.edges.size + 1), dtype=np.int64)
        self.cal_n = np.zeros(CALIBRATION_BINS, dtype=np.int64)
        self.cal_hit = np.zeros(CALIBRATION_BINS, dtype=np.int64)
        self.cal_sum = np.zeros(CALIBRATION_BINS, dtype=np.int64)  # fixed point
        self.log_loss = 0  # exact sum
        self.log_loss_n = 0

    @staticmethod
    def calibration_bin(scores: np.ndarray) -> np.ndarray:
        """scikit-learn's ``calibration_curve(strategy="uniform")`` bin of each score."""
        return np.searchsorted(np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)[1:-1], scores)

    def add_binary(self, scores: np.ndarray, positive: np.ndarray) -> None:
        """Count positive-class scores (in [0, 1]) with whether each actual is positive."""
        bins = np.searchsorted(self.edges, scores, side="left")
        width = self.edges.size + 1
        self.by_bin[0] += np.bincount(positive.astype(np.int64) * width + bins,
                                      minlength=2 * width).reshape(2, width)[::-1]
        cal = self.calibration_bin(scores)
        self._calibrate(cal, scores, positive)
        # scikit-learn's log loss: the probability of the actual class, clipped to
        # [eps, 1 - eps] after it is formed
        eps = np.finfo(np.float64).eps
        p_actual = np.clip(np.where(positive, scores, 1.0 - scores), eps, 1 - eps)
        self._add_log_loss(p_actual)

    def add_proba(self, proba: np.ndarray, actual: np.ndarray) -> None:
        """Count rows of a ``(n, columns)`` probability matrix with the actual column index of
        each row (-1 for an actual class that is not a column: no score metric counts it)."""
        known = actual >= 0
        proba, actual = proba[known], actual[known]
        if not proba.shape[0]:
            return
        width = self.edges.size + 1
        bins = np.searchsorted(self.edges, proba, side="left")  # (n, columns)
        hits = actual[:, None] == np.arange(self.columns)[None, :]
        flat = (np.arange(self.columns)[None, :] * 2 + (~hits)) * width + bins
        self.by_bin += np.bincount(flat.ravel(), minlength=self.by_bin.size).reshape(
            self.by_bin.shape)
        confidence = proba.max(axis=1)
        top = np.argmax(proba, axis=1)
        self._calibrate(self.calibration_bin(confidence), confidence, top == actual)
        eps = np.finfo(np.float64).eps
        self._add_log_loss(np.clip(proba[np.arange(proba.shape[0]), actual], eps, 1 - eps))

    def _calibrate(self, cal: np.ndarray, scores: np.ndarray, hit: np.ndarray) -> None:
        self.cal_n += np.bincount(cal, minlength=CALIBRATION_BINS)
        self.cal_hit += np.bincount(cal, weights=hit.astype(np.float64),
                                    minlength=CALIBRATION_BINS).astype(np.int64)
        self.cal_sum += fixed_point_bincount(cal, scores, CALIBRATION_BINS)

    def _add_log_loss(self, p_actual: np.ndarray) -> None:
        # np.log, never math.log: numpy gives the same bits for a value whatever the batch
        # around it, which the exact merge relies on (math.log differs in the last bit).
        self.log_loss += exact_sum(-np.log(p_actual))
        self.log_loss_n += int(p_actual.size)

    def merge(self, other: ScoreCounts) -> ScoreCounts:
        """Add ``other`` (same edges and columns) into this one, in place."""
        if other.by_bin.shape != self.by_bin.shape:
            raise ValueError("cannot merge score counts of different bins or columns")
        self.by_bin += other.by_bin
        self.cal_n += other.cal_n
        self.cal_hit += other.cal_hit
        self.cal_sum += other.cal_sum
        self.log_loss += other.log_loss
        self.log_loss_n += other.log_loss_n
        return self

    def copy(self) -> ScoreCounts:
        """An independent copy (the edges are shared: never mutated)."""
        out = ScoreCounts.__new__(ScoreCounts)
        out.edges, out.columns = self.edges, self.columns
        for name in ("by_bin", "cal_n", "cal_hit", "cal_sum"):
            setattr(out, name, getattr(self, name).copy())
        out.log_loss, out.log_loss_n = self.log_loss, self.log_loss_n
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the edges are the configuration's, given back to :meth:`from_dict`)."""
        return {"columns": self.columns, "n_bins": int(self.edges.size + 1),
                "by_bin": self.by_bin.tolist(), "cal_n": self.cal_n.tolist(),
                "cal_hit": self.cal_hit.tolist(), "cal_sum": self.cal_sum.tolist(),
                "log_loss": self.log_loss, "log_loss_n": self.log_loss_n}

    @classmethod
    def from_dict(cls, data: dict[str, Any], edges: np.ndarray) -> ScoreCounts:
        """Rebuild from :meth:`to_dict` output on the same ``edges``."""
        out = cls(edges, int(data["columns"]))
        by_bin = np.asarray(data["by_bin"], dtype=np.int64)
        if by_bin.shape != out.by_bin.shape:
            raise ValueError("serialised score counts do not match the score bins")
        out.by_bin = by_bin
        for name in ("cal_n", "cal_hit", "cal_sum"):
            setattr(out, name, np.asarray(data[name], dtype=np.int64))
        out.log_loss, out.log_loss_n = int(data["log_loss"]), int(data["log_loss_n"])
        return out

    # -- metrics -----------------------------------------------------------------------------

    def metrics(self) -> dict[str, float | None]:
        """Log loss, ROC AUC (one-vs-rest macro average over columns with both positives and
        negatives) with its error bound, and the expected calibration error."""
        aucs = [binned_auc(self.by_bin[c, 0], self.by_bin[c, 1]) for c in range(self.columns)]
        aucs = [a for a in aucs if a is not None]
        n = int(self.cal_n.sum())
        ece = None
        if n:
            hit = self.cal_hit.astype(object) * FIXED_ONE
            ece = float(sum(abs(h - s) for h, s in zip(hit.tolist(), self.cal_sum.tolist()))
                        / (n * FIXED_ONE))
        return {
            "log_loss": (exact_to_float(self.log_loss, self.log_loss_n)
                         if self.log_loss_n else None),
            "roc_auc": float(np.mean([a for a, _ in aucs])) if aucs else None,
            "roc_auc_bound": float(np.mean([b for _, b in aucs])) if aucs else None,
            "ece": ece,
        }
