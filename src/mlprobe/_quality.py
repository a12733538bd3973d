"""QualityMonitor: one model version's quality state, windowed and mergeable.

Request path (a tracked call): the prediction's payload is appended to a pending list for the
label-free estimate (one list append); the prediction store keeps it for its outcome. Outcome
path (``record_outcome``, off the request path as a rule): a joined pair is appended to a
pending list with its time bucket. Pending items are folded in one vectorised pass per
:data:`FLUSH_ITEMS` items, or when a collect needs them.

State: a ring of :class:`~mlprobe._quality_counts.QualityCounts`, one per time sub-bucket,
indexed by ``floor(wall time / bucket seconds)``: windows of different processes line up
bucket by bucket, so merging them (:meth:`QualityMonitor.merge`) gives the window of the union
of their traffic. Buckets leaving the window fold into the totals (the cumulative counters'
source) and leave a loss triple in the history the concept-drift detector tests. Beside them:
outcome and prediction-id counters and the label-delay histogram. Memory is bounded by the
ring, the history and the pending bound, whatever the traffic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ._feature_profile import FeatureProfile
from ._quality_counts import QualityCounts
from ._quality_task import QualityTask, rows_of
from .stats._exact import exact_sum

__all__ = ["DELAY_BUCKETS", "FLUSH_ITEMS", "QualityMonitor", "RESULTS"]

FLUSH_ITEMS = 4096
"""Pending predictions or outcomes folded in at once (and at every collect)."""

RESULTS = ("matched", "paired", "late", "duplicate", "unknown", "invalid")
"""Outcome results counted in ``mlprobe_outcomes_total{result}``."""

ID_STATES = ("stored", "replaced", "expired", "evicted")
"""Prediction-id events counted in ``mlprobe_prediction_ids_total{state}``."""

DELAY_BUCKETS: tuple[float, ...] = (1.0, 10.0, 60.0, 300.0, 900.0, 3600.0, 6 * 3600.0,
                                    86400.0, 7 * 86400.0, 30 * 86400.0)
"""Upper bounds of the label-delay histogram, in seconds (1 s to 30 days)."""


class QualityMonitor:
    """Quality state of one model version (see the module docstring).

    Args:
        task: The resolved task.
        target: The profile's target (label drift of a regressor's labels).
        clock: Wall-clock time in seconds (tests pass a fake).
    """

    def __init__(self, task: QualityTask, target: FeatureProfile | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.task = task
        self.target = target
        spec = task.spec
        self.bucket_seconds = spec.bucket_seconds
        self.window_buckets = spec.window_buckets
        self.history_buckets = max(spec.history_buckets, spec.window_buckets)
        self._clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget everything (also in a forked child)."""
        self._lock = threading.Lock()  # pending pairs and counters
        self._flush_lock = threading.Lock()
        self._window_lock = threading.Lock()  # ring, totals and history
        self._pending_pairs: list[tuple[int, str, Any, Any, float]] = []
        self._pending_predictions: list[tuple[int, Any, bool]] = []
        self._ring: dict[int, QualityCounts] = {}
        self._expired = self._empty()
        self._history: dict[int, tuple[int, int, int]] = {}
        self.counters: dict[str, int] = dict.fromkeys((*RESULTS, *ID_STATES), 0)
        self.delay_counts = [0] * (len(DELAY_BUCKETS) + 1)
        self.delay_sum = 0  # exact

    def _empty(self) -> QualityCounts:
        return QualityCounts(self.task, self.target)

    @property
    def clock(self) -> Callable[[], float]:
        """The wall clock the buckets are indexed by (a copy of the state keeps it)."""
        return self._clock

    def _index(self) -> int:
        return int(self._clock() // self.bucket_seconds)

    # -- recording -----------------------------------------------------------------------------

    def count(self, result: str, n: int = 1) -> None:
        """Count ``n`` outcomes or prediction-id events as ``result``."""
        with self._lock:
            self.counters[result] += n

    def observe_prediction(self, payload: Any, now: float, stored: bool = False) -> None:
        """Queue a prediction (request path): for the label-free estimate, and counted
        ``stored`` when the prediction store keeps it. ``now`` is the wall-clock time."""
        # No lock: an append is atomic, and flush() takes items with a slice and a slice
        # deletion (each atomic), never by swapping the list, so nothing appended meanwhile is
        # lost. The bucket is the time of the prediction, not of the flush: windows of several
        # processes then hold the same predictions in the same buckets.
        pending = self._pending_predictions
        pending.append((int(now // self.bucket_seconds), payload, stored))
        if len(pending) >= FLUSH_ITEMS:
            self.flush()

    def add_outcome(self, payload: Any, actual: Any, delay: float) -> None:
        """Queue the pairs of a joined prediction and outcome (``matched``), with the delay
        since the prediction (seconds)."""
        pending = self._pending_pairs  # lock-free, as in observe_prediction
        pending.append((int(self._clock() // self.bucket_seconds), "matched", payload, actual,
                        delay))
        if len(pending) >= FLUSH_ITEMS:
            self.flush()

    def add_outcomes(self, items: list[tuple[Any, Any, float]]) -> None:
        """Queue a batch of joined ``(payload, actual, delay)``."""
        index = self._index()
        pending = self._pending_pairs
        pending.extend([(index, "matched", payload, actual, delay)  # one atomic C call
                        for payload, actual, delay in items])
        if len(pending) >= FLUSH_ITEMS:
            self.flush()

    def add_pairs(self, payload: Any, actual: Any) -> None:
        """Queue pairs joined by the caller (``paired``)."""
        pending = self._pending_pairs
        pending.append((self._index(), "paired", payload, actual, -1.0))
        if len(pending) >= FLUSH_ITEMS:
            self.flush()

    # -- folding -------------------------------------------------------------------------------

    def flush(self) -> None:
        """Fold every pending prediction and pair into the window (vectorised per bucket)."""
        with self._flush_lock:  # one flush at a time: no two take the same items
            predictions = _take_all(self._pending_predictions)
            pairs = _take_all(self._pending_pairs)
            if pairs or predictions:
                self._fold(pairs, predictions)

    def _fold(self, pairs: list[tuple[int, str, Any, Any, float]],
              predictions: list[tuple[int, Any, bool]]) -> None:
        deltas: dict[int, QualityCounts] = {}
        counted = dict.fromkeys(RESULTS, 0)
        counted["stored"] = 0
        groups: dict[tuple[int, str], list[tuple[Any, Any]]] = {}
        delays = []
        for index, result, payload, actual, delay in pairs:
            groups.setdefault((index, result), []).append((payload, actual))
            if delay >= 0.0:
                delays.append(delay)
        for (index, result), items in groups.items():
            delta = deltas.setdefault(index, self._empty())
            valid, invalid = self._fold_pairs(delta, items)
            counted[result] += valid
            counted["invalid"] += invalid
        by_index: dict[int, list[Any]] = {}
        for index, payload, stored in predictions:
            if type(payload) is float or isinstance(payload, np.ndarray):
                by_index.setdefault(index, []).append(payload)
            counted["stored"] += stored
        for index, payloads in by_index.items():
            delta = deltas.setdefault(index, self._empty())
            for batch in _batches(payloads):
                delta.add_predictions(batch)
        delay_counts, delay_sum = None, 0
        if delays:
            values = np.asarray(delays)
            delay_counts = np.bincount(np.searchsorted(DELAY_BUCKETS, values, side="left"),
                                       minlength=len(DELAY_BUCKETS) + 1).tolist()
            delay_sum = exact_sum(values)
        with self._lock:
            for result, n in counted.items():
                self.counters[result] += n
            if delay_counts is not None:
                self.delay_counts = [a + b for a, b in zip(self.delay_counts, delay_counts)]
                self.delay_sum += delay_sum
        with self._window_lock:
            now = self._index()
            for index, delta in deltas.items():
                bucket = self._ring.get(index)
                if index <= now - self.window_buckets:  # came in after its bucket left
                    self._retire(index, delta)
                elif bucket is None:
                    self._ring[index] = delta
                else:
                    bucket.merge(delta)
            self._expire(now)

    def _fold_pairs(self, delta: QualityCounts, items: list[tuple[Any, Any]]
                    ) -> tuple[int, int]:
        """Fold (payload, actual) items into ``delta``; returns (valid, invalid) pairs."""
        task = self.task
        invalid = 0
        by_kind: dict[str, tuple[list[Any], list[Any]]] = {}
        for payload, actual in items:
            rows = rows_of(payload)
            values = _actual_rows(actual, rows)
            if values is None:
                invalid += rows
                continue
            kind = _kind(payload)
            predicted, actuals = by_kind.setdefault(kind, ([], []))
            predicted.append(payload)
            actuals.extend(values)
        valid = 0
        for kind, (predicted, actuals) in by_kind.items():
            joined = _join(kind, predicted)
            if joined is None:
                invalid += len(actuals)
                continue
            read = task.actual_values(actuals) if task.task == "regression" \
                else task.actual_keys(actuals)
            bad = delta.add_pairs(joined, read)
            valid += len(actuals) - bad
            invalid += bad
        return valid, invalid

    def _retire(self, index: int, counts: QualityCounts) -> None:
        """A bucket leaves the window: into the totals, and its loss into the history."""
        self._expired.merge(counts)
        n, s, q = counts.loss()
        old = self._history.get(index, (0, 0, 0))
        self._history[index] = (old[0] + n, old[1] + s, old[2] + q)

    def _expire(self, now: int) -> None:
        for index in [i for i in self._ring if i <= now - self.window_buckets]:
            self._retire(index, self._ring.pop(index))
        for index in [i for i in self._history if i <= now - self.history_buckets]:
            del self._history[index]

    # -- collect path --------------------------------------------------------------------------

    def snapshot(self) -> tuple[QualityCounts, QualityCounts, list[tuple[int, int, int]]]:
        """``(window, totals since start, loss history)`` after folding what is pending; the
        history holds one ``(n, sum, sum of squares)`` triple per bucket of the last
        ``history_buckets``, oldest first, the window's buckets included."""
        self.flush()
        window = self._empty()
        with self._window_lock:
            now = self._index()
            self._expire(now)
            for bucket in self._ring.values():
                window.merge(bucket)
            totals = self._expired.copy()
            start = now - self.history_buckets + 1
            history = []
            for index in range(start, now + 1):
                bucket = self._ring.get(index)
                triple = bucket.loss() if bucket is not None else (0, 0, 0)
                old = self._history.get(index, (0, 0, 0))
                history.append((triple[0] + old[0], triple[1] + old[1], triple[2] + old[2]))
        totals.merge(window)
        return window, totals, history

    def counter_values(self) -> tuple[dict[str, int], list[int], int]:
        """Copies of the counters, the delay bucket counts and the exact delay sum."""
        with self._lock:
            return dict(self.counters), list(self.delay_counts), self.delay_sum

    # -- plain data and merging (the multi-worker contract) ------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The raw state as plain data (pending items folded in first)."""
        self.flush()
        counters, delays, delay_sum = self.counter_values()
        with self._window_lock:
            return {
                "bucket_seconds": self.bucket_seconds,
                "ring": {str(i): c.to_dict() for i, c in sorted(self._ring.items())},
                "expired": self._expired.to_dict(),
                "history": {str(i): list(t) for i, t in sorted(self._history.items())},
                "counters": counters, "delay_counts": delays, "delay_sum": delay_sum,
            }

    @classmethod
    def from_dict(cls, data: dict[str, Any], task: QualityTask,
                  target: FeatureProfile | None = None, *,
                  clock: Callable[[], float] = time.time) -> QualityMonitor:
        """A monitor holding the state :meth:`to_dict` serialised (same task and buckets).

        Raises:
            ValueError: Different bucket lengths or another task.
        """
        out = cls(task, target, clock=clock)
        if float(data["bucket_seconds"]) != out.bucket_seconds:
            raise ValueError("cannot merge quality windows with different bucket lengths")
        out._ring = {int(i): QualityCounts.from_dict(c, task, target)
                     for i, c in data["ring"].items()}
        out._expired = QualityCounts.from_dict(data["expired"], task, target)
        out._history = {int(i): (int(n), int(total), int(squares))
                        for i, (n, total, squares) in data["history"].items()}
        for name, n in data["counters"].items():
            out.counters[name] = out.counters.get(name, 0) + int(n)
        out.delay_counts = [int(n) for n in data["delay_counts"]]
        if len(out.delay_counts) != len(DELAY_BUCKETS) + 1:
            raise ValueError("quality delay histogram of other buckets")
        out.delay_sum = int(data["delay_sum"])
        with out._window_lock:
            out._expire(out._index())
        return out

    def merge_dict(self, data: dict[str, Any]) -> QualityMonitor:
        """Merge the state another monitor of the same task serialised (:meth:`to_dict`).

        Raises:
            ValueError: Different bucket lengths or another task.
        """
        return self.merge(QualityMonitor.from_dict(data, self.task, self.target,
                                                   clock=self._clock))

    def copy(self) -> QualityMonitor:
        """An independent copy of the state (pending items folded in first): what
        ``from_dict(to_dict())`` gives, at a fraction of its cost (no plain-data round trip;
        ``benchmarks/bench_quality.py``, section 7)."""
        self.flush()
        out = QualityMonitor(self.task, self.target, clock=self._clock)
        out.counters, out.delay_counts, out.delay_sum = self.counter_values()
        with self._window_lock:
            out._ring = {i: c.copy() for i, c in self._ring.items()}
            out._expired = self._expired.copy()
            out._history = dict(self._history)
        return out

    def merge(self, other: QualityMonitor) -> QualityMonitor:
        """Add another monitor's state (same task and buckets) in place; ``other`` is left
        unchanged (its counts are copied before they are added).

        Raises:
            ValueError: Different bucket lengths.
        """
        if other.bucket_seconds != self.bucket_seconds:
            raise ValueError("cannot merge quality windows with different bucket lengths")
        other.flush()
        counters, delays, delay_sum = other.counter_values()
        with other._window_lock:  # copied first: never two window locks held at once
            ring = [(i, c.copy()) for i, c in other._ring.items()]
            expired = other._expired.copy()
            history = list(other._history.items())
        self.flush()
        with self._window_lock:
            for index, counts in ring:
                bucket = self._ring.get(index)
                if bucket is None:
                    self._ring[index] = counts
                else:
                    bucket.merge(counts)
            self._expired.merge(expired)
            for i, (n, total, squares) in history:
                old = self._history.get(i, (0, 0, 0))
                self._history[i] = (old[0] + n, old[1] + total, old[2] + squares)
            self._expire(self._index())
        with self._lock:
            for name, n in counters.items():
                self.counters[name] = self.counters.get(name, 0) + n
            self.delay_counts = [a + b for a, b in zip(self.delay_counts, delays)]
            self.delay_sum += delay_sum
        return self


def _take_all(items: list[Any]) -> list[Any]:
    # Appenders never take a lock: a slice and a slice deletion are each atomic, so items
    # appended meanwhile stay for the next flush (callers hold the flush lock).
    n = len(items)
    taken = items[:n]
    del items[:n]
    return taken


def _kind(payload: Any) -> str:
    if type(payload) is float:
        return "scalar"
    if isinstance(payload, list):
        return "classes"
    return "matrix" if payload.ndim == 2 else "scalar"


def _join(kind: str, payloads: list[Any]) -> Any:
    """Concatenate payloads of one kind (None when matrices differ in width)."""
    if kind == "classes":
        return [k for p in payloads for k in p]
    if kind == "scalar":
        if all(type(p) is float for p in payloads):  # one-row predictions: the common case
            return np.array(payloads, dtype=np.float64)
        parts = [np.asarray([p]) if type(p) is float else p for p in payloads]
        return np.concatenate(parts) if len(parts) > 1 else parts[0]
    widths = {p.shape[1] for p in payloads}
    return np.vstack(payloads) if len(widths) == 1 else None


def _actual_rows(actual: Any, rows: int) -> list[Any] | None:
    """The outcome as one value per predicted row (None when the counts differ)."""
    if isinstance(actual, np.ndarray):
        values = actual.ravel().tolist()
    elif isinstance(actual, (list, tuple)):
        values = list(actual)
    elif hasattr(actual, "to_numpy") and hasattr(actual, "shape"):
        values = actual.to_numpy().ravel().tolist()
    else:
        values = [actual]
    return values if len(values) == rows else None


def _batches(predictions: list[Any]) -> list[Any]:
    """Pending predictions grouped into arrays of one kind (floats, 1-D, 2-D of a width)."""
    scalars = [p for p in predictions if type(p) is float]
    arrays = [p for p in predictions if isinstance(p, np.ndarray)]
    out: list[Any] = []
    flat = [np.asarray(scalars)] if scalars else []
    flat += [a for a in arrays if a.ndim == 1]
    if flat:
        out.append(np.concatenate(flat) if len(flat) > 1 else flat[0])
    by_width: dict[int, list[np.ndarray]] = {}
    for a in arrays:
        if a.ndim == 2:
            by_width.setdefault(a.shape[1], []).append(a)
    out += [np.vstack(group) for group in by_width.values()]
    return out
