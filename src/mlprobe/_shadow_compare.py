"""Comparing a candidate's outputs with the primary's, a batch at a time.

Used where the candidate runs: in the shadow's thread, or in the candidate's process (which
then sends the counts back: the serving process only adds them up). Per output, a few numpy
calls cost ~20 µs for 8 rows, almost all of it per-call overhead, so a batch of outputs is
compared in one pass per kind of output; the counts are the same as one by one (exact sums,
the same buckets).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._quality_task import QualityTask
from ._shadow_counts import Comparison, comparison_of

__all__ = ["Comparer"]


class Comparer:
    """Counts agreement and absolute score differences of pairs of outputs."""

    def __init__(self, task: QualityTask, tolerance: float, bounds: Sequence[float]) -> None:
        self.task = task
        self.tolerance = tolerance
        self.bounds = tuple(bounds)
        self._bounds = np.asarray(self.bounds)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled for a spawned candidate process. The task's spec holds read-only mapping
        # proxies, which do not pickle, and comparing outputs never reads it.
        return (Comparer, (replace(self.task, spec=None), self.tolerance, self.bounds))

    def compare(self, outputs: list[tuple[Any, Any]]) -> Comparison | None:
        """Count the agreement of pairs of outputs and their absolute score differences.

        Per pair: a row agrees when both are on the same side of the threshold (binary), have
        the same arg-max (probabilities) or the same label (classes), or are within the
        relative ``tolerance`` (regression); rows with a NaN or an infinity, and pairs of
        different lengths or kinds, are not compared. None when no row was compared.
        """
        task = self.task
        agree = disagree = 0
        first: list[Any] = []  # 1-D scores or values, compared in one pass
        second: list[Any] = []
        matrices: dict[int, tuple[list[Any], list[Any]]] = {}  # class probabilities by width
        single_a: list[float] = []  # one score or value each (the common case)
        single_b: list[float] = []
        for primary_result, candidate_result in outputs:
            a, b = task.payload(primary_result), task.payload(candidate_result)
            if a is None or b is None:
                continue
            if type(a) is float and type(b) is float:
                single_a.append(a)
                single_b.append(b)
                continue
            a, b = _as_rows(a), _as_rows(b)
            if len(a) != len(b):
                continue
            if isinstance(a, list) or isinstance(b, list):
                same = sum(x == y for x, y in zip(_classes(task, a), _classes(task, b)))
                agree += same
                disagree += len(a) - same
            elif a.ndim == 2 or b.ndim == 2:
                if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[1]:
                    pair = matrices.setdefault(a.shape[1], ([], []))
                    pair[0].append(a)
                    pair[1].append(b)
            else:
                first.append(a)
                second.append(b)
        for left, right in matrices.values():
            same = np.argmax(np.concatenate(left), axis=1) == np.argmax(np.concatenate(right),
                                                                       axis=1)
            n = int(np.count_nonzero(same))
            agree += n
            disagree += int(same.size) - n
        if single_a:
            first.append(np.asarray(single_a))
            second.append(np.asarray(single_b))
        differences = None
        if first:
            a, b = np.concatenate(first), np.concatenate(second)
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            differences = np.abs(a - b)
            if task.task == "regression":
                same = differences <= self.tolerance * np.maximum(np.abs(a), np.abs(b))
            else:
                same = (a > task.threshold) == (b > task.threshold)
            n = int(np.count_nonzero(same))
            agree += n
            disagree += int(same.size) - n
        if not (agree or disagree):
            return None
        return comparison_of(agree, disagree, differences, self._bounds)


def _as_rows(payload: Any) -> Any:
    if type(payload) is float:
        return np.asarray([payload])
    return payload


def _classes(task: QualityTask, payload: Any) -> list[str]:
    if isinstance(payload, list):
        return payload
    if payload.ndim == 2:
        columns = task.column_labels(payload.shape[1])
        return [columns[i] for i in np.argmax(payload, axis=1).tolist()]
    if task.task == "binary":
        return [task.positive if p > task.threshold else task.negative  # type: ignore[misc]
                for p in payload.tolist()]
    return [str(v) for v in payload.tolist()]
