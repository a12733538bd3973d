"""ShadowCounters: what a shadow records besides its candidate's probe, mergeable exactly.

Agreement counts of the candidate's predictions with the primary's, calls the candidate did
not run (a full queue, a lost process), and the histogram of absolute score differences
(counts and an exact sum), exported as ``mlprobe_shadow_comparisons_total``,
``mlprobe_shadow_dropped_total`` and ``mlprobe_shadow_score_difference``; a registry source
of its own (:mod:`mlprobe._shadow`), mergeable across worker processes (the state protocol of
:mod:`mlprobe._source`: its state is a copy of the counters, of the same class).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._registry import FamilyBuilder
from .snapshot import HistogramSample, Sample
from .stats._exact import exact_sum, exact_to_float

Comparison = tuple[int, int, "list[int] | None", int]
"""Rows that agree, rows that disagree, counts per score-difference bucket (None: no scores
compared), exact sum of the differences (see :mod:`mlprobe.stats._exact`)."""

__all__ = ["DIFFERENCE_BUCKETS", "Comparison", "ShadowCounters", "comparison_of"]

DIFFERENCE_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0)
"""Default upper bounds of ``mlprobe_shadow_score_difference`` (absolute score differences)."""


def comparison_of(agree: int, disagree: int, differences: np.ndarray | None,
                  bounds: np.ndarray) -> Comparison:
    """The counts of a comparison: ``differences`` (absolute) binned on ``bounds``."""
    if differences is None or not differences.size:
        return agree, disagree, None, 0
    index = np.searchsorted(bounds, differences, side="left")
    counts = np.bincount(index, minlength=len(bounds) + 1).tolist()
    return agree, disagree, counts, exact_sum(differences)


class ShadowCounters:
    """What a shadow records besides the candidate's own probe: agreement counts, drops and
    absolute score differences. Mergeable exactly (counts and an exact sum)."""

    def __init__(self, labels: tuple[tuple[str, str], ...], bounds: Sequence[float]) -> None:
        self.labels = labels
        self.bounds = tuple(bounds)
        self.reset()

    def reset(self) -> None:
        """Forget everything (a forked child)."""
        self._lock = threading.Lock()
        self.agree = self.disagree = self.dropped = 0
        self.differences = [0] * (len(self.bounds) + 1)
        self.difference_sum = 0  # exact

    def compared(self, agree: int, disagree: int, differences: np.ndarray | None) -> None:
        """Count rows that agree and disagree, and absolute score differences."""
        self.add(comparison_of(agree, disagree, differences, np.asarray(self.bounds)))

    def add(self, comparison: Comparison) -> None:
        """Add the counts of a batch of comparisons (:class:`~mlprobe._shadow_compare.Comparer`)."""
        agree, disagree, counts, total = comparison
        with self._lock:
            self.agree += agree
            self.disagree += disagree
            if counts:
                self.differences = [a + b for a, b in zip(self.differences, counts)]
                self.difference_sum += total

    def drop(self, n: int = 1) -> None:
        """Count ``n`` calls the candidate did not run (a full queue, a lost process)."""
        with self._lock:
            self.dropped += n

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report agreement, drops and score differences."""
        with self._lock:
            agree, disagree, dropped = self.agree, self.disagree, self.dropped
            differences, total = tuple(self.differences), self.difference_sum
        base = self.labels
        builder.add("mlprobe_shadow_comparisons", [
            Sample(base + (("result", "agree"),), float(agree)),
            Sample(base + (("result", "disagree"),), float(disagree))])
        builder.add("mlprobe_shadow_dropped", [Sample(base, float(dropped))])
        builder.add("mlprobe_shadow_score_difference", [HistogramSample(
            base, self.bounds, differences, exact_to_float(total))])

    # -- the state protocol (mlprobe._source): merged across worker processes -----------------

    def fingerprint(self) -> str:
        """Counters merge when their difference buckets agree."""
        return repr(self.bounds)

    def state(self) -> ShadowCounters:
        """An independent copy of the counts."""
        return ShadowCounters.from_dict(self.to_dict(), self.labels, self.bounds)

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, Any] | None = None) -> ShadowCounters:
        """Counters another process serialised (:meth:`to_dict`)."""
        if len(data["differences"]) != len(self.bounds) + 1:
            raise ValueError("shadow score differences of other buckets")
        return ShadowCounters.from_dict(dict(data), self.labels, self.bounds)

    def merge(self, other: ShadowCounters) -> ShadowCounters:
        """Add another process's counters (same buckets); returns ``self``."""
        return self.merge_dict(other.to_dict())

    def archived(self) -> ShadowCounters:
        """Counts only: nothing to drop for a dead process."""
        return self

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data."""
        with self._lock:
            return {"agree": self.agree, "disagree": self.disagree, "dropped": self.dropped,
                    "differences": list(self.differences), "difference_sum": self.difference_sum}

    @classmethod
    def from_dict(cls, data: dict[str, Any], labels: tuple[tuple[str, str], ...],
                  bounds: Sequence[float]) -> ShadowCounters:
        """Counters holding what :meth:`to_dict` serialised (same labels and bounds)."""
        return cls(labels, bounds).merge_dict(data)

    def merge_dict(self, data: dict[str, Any]) -> ShadowCounters:
        """Add another shadow's :meth:`to_dict` into this one."""
        with self._lock:
            self.agree += int(data["agree"])
            self.disagree += int(data["disagree"])
            self.dropped += int(data["dropped"])
            self.differences = [a + int(b) for a, b in zip(self.differences,
                                                           data["differences"])]
            self.difference_sum += int(data["difference_sum"])
        return self
