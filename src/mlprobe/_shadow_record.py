"""What a shadow records for each candidate call, wherever the candidate ran.

Both ways of running the candidate (a thread of the serving process, or a child process; see
:mod:`mlprobe._shadow`) end here with the same four facts: the call's duration, its result or
the type of its error, the primary's result and the primary's prediction id. So both produce
exactly the same metrics: the call in the candidate's probe (latency, errors, scores, the
prediction kept under the primary's id when quality is on) and its comparison with the
primary (agreement, absolute score differences) in :class:`ShadowCounters`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._decorators import build_recorder
from ._guard import report_internal_error
from ._probe import Probe
from ._quality_task import QualityTask
from ._shadow_counts import ShadowCounters

__all__ = ["CandidateRecorder"]


class CandidateRecorder:
    """Records candidate calls into the candidate's probe and the shadow's counters."""

    def __init__(self, candidate: Probe, task: QualityTask, tolerance: float,
                 counters: ShadowCounters) -> None:
        self.task = task
        self.tolerance = tolerance
        self.counters = counters
        self._record = build_recorder(candidate._state)
        self._store = candidate._state.store

    def record(self, prediction_id: Any, primary_result: Any, duration: float, result: Any,
               error_type: str | None) -> None:
        """Count one candidate call (``error_type`` None: it returned ``result``)."""
        try:
            self._record(duration, prediction_id, result, error_type)
        except Exception as exc:  # noqa: BLE001 - the shadow must never hurt the primary
            report_internal_error("shadow.record", exc)
            return
        if error_type is not None:
            return
        try:
            self.compare(primary_result, result)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("shadow.compare", exc)

    def drained(self) -> None:
        """The runner has no call left for now: move the prediction store's queued entries
        into the store here, off the request path.

        The candidate's predictions go into the model's store, the one the primary's calls
        fill; left queued, they would make a request cross the store's batch size twice as
        often and pay for ingesting them (a tail latency spike, measured).
        """
        store = self._store
        if store is not None:
            try:
                store.ingest()
            except Exception as exc:  # noqa: BLE001
                report_internal_error("shadow.ingest", exc)

    def compare(self, primary_result: Any, candidate_result: Any) -> None:
        """Count the agreement of two outputs and their absolute score differences."""
        task = self.task
        a, b = task.payload(primary_result), task.payload(candidate_result)
        if a is None or b is None:
            return
        if type(a) is float and type(b) is float:  # one score or value each: no numpy
            if not (math.isfinite(a) and math.isfinite(b)):
                return
            difference = abs(a - b)
            if task.task == "regression":
                agree = difference <= self.tolerance * max(abs(a), abs(b))
            else:
                agree = (a > task.threshold) == (b > task.threshold)
            self.counters.compared_one(agree, difference)
            return
        a, b = _as_rows(a), _as_rows(b)
        if len(a) != len(b):
            return
        differences = None
        if isinstance(a, list) or isinstance(b, list):
            same = np.array([x == y for x, y in zip(_classes(task, a), _classes(task, b))])
        elif a.ndim == 2 or b.ndim == 2:
            if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
                return
            same = np.argmax(a, axis=1) == np.argmax(b, axis=1)
        else:
            ok = np.isfinite(a) & np.isfinite(b)
            a, b = a[ok], b[ok]
            differences = np.abs(a - b)
            if task.task == "regression":
                same = differences <= self.tolerance * np.maximum(np.abs(a), np.abs(b))
            else:
                same = (a > task.threshold) == (b > task.threshold)
        agree = int(np.count_nonzero(same))
        self.counters.compared(agree, int(same.size) - agree, differences)


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
