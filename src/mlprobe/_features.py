"""FeatureMonitor: rolling per-feature statistics of live inputs against a reference profile.

Request path: :meth:`FeatureMonitor.observe` appends the input to a pending list (a shallow
copy for single rows; batches of ``BATCH_ROWS`` rows or more are ingested at once). Pending
rows are turned into columns and ingested in one vectorised pass per ``flush_rows`` rows, or
when a scrape or a status call needs them.

State is a ring of time sub-buckets (``window_seconds / sub_buckets`` each) of mergeable
summaries per feature: bin counts on the reference's fine edges, moments, a quantile sketch,
category counts on the reference vocabulary, and missing / invalid / out-of-range counts.
The rolling window is the merge of the live sub-buckets. Cumulative counts (for Prometheus
counters, which a fleet sums with PromQL) are kept beside the ring. Memory is
O(features x bins x sub-buckets), independent of traffic.
"""

from __future__ import annotations

import threading
import time
from operator import itemgetter
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ._drift import DatasetWindow
from ._feature_input import to_columns
from ._profile import ReferenceProfile

__all__ = ["FeatureMonitor"]

BATCH_ROWS = 64
"""Inputs with at least this many rows are ingested at once instead of buffered."""


def _ingest_columns(window: DatasetWindow, columns: dict[str, Any], rows: int) -> None:
    """Fold aligned columns into a window, one vectorised update per feature."""
    window.rows += rows
    for name, column in columns.items():
        feature = window.features[name]
        invalid_before = feature.invalid
        feature.update(column)
        if feature.invalid > invalid_before:  # strings/objects in a numeric feature
            window.schema_violations["wrong_type"] += feature.invalid - invalid_before


class FeatureMonitor:
    """Rolling and cumulative feature statistics for one model (see the module docstring).

    Args:
        profile: the reference profile; it fixes features, bins and vocabularies.
        window_seconds: length of the rolling window.
        sub_buckets: how many time buckets make the window (its time resolution).
        flush_rows: pending single rows are ingested once this many have arrived.
        clock: monotonic time source (tests pass a fake).
    """

    def __init__(self, profile: ReferenceProfile, *, window_seconds: float = 600.0,
                 sub_buckets: int = 10, flush_rows: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.profile = profile
        self.names = tuple(profile.features)
        self.window_seconds = float(window_seconds)
        self.sub_buckets = int(sub_buckets)
        self.bucket_seconds = self.window_seconds / self.sub_buckets
        self.flush_rows = int(flush_rows)
        self._clock = clock
        getter = itemgetter(*self.names)
        # itemgetter of one key returns the value itself; keep rows as tuples either way
        self._row_getter = getter if len(self.names) > 1 else (lambda row: (getter(row),))
        self._numeric = tuple(f.kind == "numeric" for f in profile.features.values())
        self.reset()

    def reset(self) -> None:
        """Forget everything (also used in a forked child)."""
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._pending_predictions: list[Any] = []
        self._pending_tuples: list[tuple[Any, ...]] = []  # fast-path rows, in reference order
        self._pending_lock = threading.Lock()  # held only to append or swap the pending list
        self._ingest_lock = threading.Lock()  # serialises ingestion and window reads
        self._ring: deque[tuple[int, DatasetWindow]] = deque()
        self._expired = self._empty()  # everything that has left the rolling window

    def _empty(self) -> DatasetWindow:
        return DatasetWindow(self.profile, sketch=True)

    # -- request path --------------------------------------------------------------------

    def observe_predictions(self, scores: Any) -> None:
        """Queue predicted scores (or classes): an array, a list or a scalar."""
        if self.profile.prediction is None:
            return
        if isinstance(scores, np.ndarray):
            scores = scores.copy()
        size = len(scores) if isinstance(scores, (np.ndarray, list, tuple)) else 1
        # Predictions count toward the flush too, so a model whose inputs are not monitored
        # (inputs=False) still keeps a bounded buffer between scrapes.
        self._enqueue("_pending_predictions", scores, size)

    def observe(self, batch: Any) -> None:
        """Queue an input batch (or a single row) for ingestion; never raises on bad input."""
        if type(batch) is dict and len(batch) == len(self.names):
            # Fast path for the common single dict row with exactly the reference's keys:
            # one C-level itemgetter call both checks the schema and copies the values.
            try:
                values = self._row_getter(batch)
            except KeyError:
                pass
            else:
                if not _is_columnar_values(values):
                    self._enqueue("_pending_tuples", values, 1)
                    return
        rows = _row_count(batch)
        if rows >= BATCH_ROWS:
            self._ingest([batch])
            return
        self._enqueue("_pending", _shallow_copy(batch), max(rows, 1))

    def _enqueue(self, pending: str, item: Any, rows: int) -> None:
        # The list is looked up *under* the lock: flush() swaps the lists, and an item
        # appended to a list already taken by a flush would be lost. The flush itself runs
        # outside the lock.
        with self._pending_lock:
            getattr(self, pending).append(item)
            self._pending_rows += rows
            full = self._pending_rows >= self.flush_rows
        if full:
            self.flush()

    # -- ingestion (vectorised) ----------------------------------------------------------

    def flush(self) -> None:
        """Ingest every pending input."""
        with self._pending_lock:
            if not (self._pending or self._pending_predictions or self._pending_tuples):
                return
            pending, self._pending, self._pending_rows = self._pending, [], 0
            predictions, self._pending_predictions = self._pending_predictions, []
            tuples, self._pending_tuples = self._pending_tuples, []
        self._ingest(pending, predictions, tuples)

    def _ingest(self, inputs: list[Any], predictions: list[Any] = (),  # type: ignore[assignment]
                tuples: list[tuple[Any, ...]] = ()) -> None:  # type: ignore[assignment]
        delta = self._empty()
        if tuples:
            _ingest_columns(delta, self._columns_from_tuples(tuples), len(tuples))
        for columns, rows in _group_columns(inputs, self.names, delta.schema_violations):
            _ingest_columns(delta, columns, rows)
        if predictions and delta.prediction is not None:
            parts = [np.asarray(p).reshape(-1) for p in predictions]
            delta.prediction.update(np.concatenate(parts) if len(parts) > 1 else parts[0])
        with self._ingest_lock:
            index = int(self._clock() // self.bucket_seconds)
            if self._ring and self._ring[-1][0] == index:
                self._ring[-1][1].merge(delta)
            else:  # the first ingest of a sub-bucket becomes the sub-bucket: no merge
                self._ring.append((index, delta))
                self._expire(index)

    def _columns_from_tuples(self, tuples: list[tuple[Any, ...]]) -> dict[str, Any]:
        """Transpose buffered rows into columns: numeric ones straight to float64 when clean."""
        columns: dict[str, Any] = {}
        for name, values, numeric in zip(self.names, zip(*tuples), self._numeric):
            if numeric:
                try:
                    # One C loop. None becomes NaN (counted as missing, as on every path);
                    # numeric-looking strings ("1.5") are parsed, other strings and objects
                    # raise and take the counting path, where they are wrong_type.
                    columns[name] = np.array(values, dtype=np.float64)
                    continue
                except (TypeError, ValueError):
                    pass
            column = np.empty(len(values), dtype=object)
            column[:] = values
            columns[name] = column
        return columns

    def _expire(self, now_index: int) -> None:
        # A sub-bucket leaving the window is folded into ``_expired`` once, so totals cost
        # one merge per sub-bucket lifetime instead of one per ingest.
        while self._ring and self._ring[0][0] <= now_index - self.sub_buckets:
            self._expired.merge(self._ring.popleft()[1])

    # -- collect path --------------------------------------------------------------------

    def window(self) -> DatasetWindow:
        """The rolling window: the merge of the live sub-buckets (pending rows included)."""
        return self.window_and_totals()[0]

    def totals(self) -> DatasetWindow:
        """Counts since start (or fork), for monotonic counters."""
        return self.window_and_totals()[1]

    def window_and_totals(self) -> tuple[DatasetWindow, DatasetWindow]:
        """Both views from one pass over the ring: (rolling window, totals since start)."""
        self.flush()
        window, totals = self._empty(), self._empty()
        with self._ingest_lock:
            self._expire(int(self._clock() // self.bucket_seconds))
            for _, bucket in self._ring:
                window.merge(bucket)  # merge adds into ``window``; buckets stay unchanged
            totals.merge(self._expired)
        totals.merge(window)
        return window, totals


def _is_columnar_values(values: tuple[Any, ...]) -> bool:
    return isinstance(values[0], (list, tuple, np.ndarray))


def _row_count(batch: Any) -> int:
    kind = type(batch)
    if kind is np.ndarray:
        return int(batch.shape[0]) if batch.ndim == 2 else 1
    if kind is list or kind is tuple:
        return len(batch) if batch and isinstance(batch[0], (dict, list, tuple,
                                                              np.ndarray)) else 1
    if kind is dict:
        first = next(iter(batch.values()), None)
        return len(first) if isinstance(first, (list, tuple, np.ndarray)) else 1
    shape = getattr(batch, "shape", None)
    return int(shape[0]) if isinstance(shape, tuple) and shape else 1


def _shallow_copy(batch: Any) -> Any:
    # The caller may mutate its row after predict returns; a shallow copy of a small input
    # is cheap and keeps the buffered values as they were at call time.
    kind = type(batch)
    if kind is dict:
        return dict(batch)
    if kind is list:
        return [dict(r) if type(r) is dict else r for r in batch]
    if kind is np.ndarray:
        return batch.copy()
    return batch


def _group_columns(inputs: list[Any], names: tuple[str, ...], violations: Counter[str]
                   ) -> list[tuple[dict[str, Any], int]]:
    """Turn pending inputs into column batches: runs of single dict rows become one table."""
    out = []
    run: list[Any] = []
    run_kind = ""
    for item in inputs:
        kind = _single_row_kind(item)
        if kind and (kind == run_kind or not run):
            run.append(item)
            run_kind = kind
            continue
        if run:
            out.append(to_columns(run, names, violations))
            run, run_kind = [], ""
        if kind:
            run, run_kind = [item], kind
        else:
            out.append(to_columns(item, names, violations))
    if run:
        out.append(to_columns(run, names, violations))
    return [(c, n) for c, n in out if n]


def _single_row_kind(item: Any) -> str:
    """``"dict"`` or ``"seq"`` for one row that can join a run of rows, else ``""``."""
    kind = type(item)
    if kind is dict:
        return "" if _is_columnar(item) else "dict"
    if kind is np.ndarray:
        return "seq" if item.ndim == 1 else ""
    if (kind is list or kind is tuple) and item and not isinstance(
            item[0], (dict, list, tuple, np.ndarray)):
        return "seq"
    return ""


def _is_columnar(row: dict[str, Any]) -> bool:
    return bool(row) and all(isinstance(v, (list, tuple, np.ndarray)) for v in row.values())
