"""FeatureMonitor: rolling per-feature statistics of live inputs against a reference profile.

Request path: a dict row with exactly the reference's keys (the common single-row call) is
read with two C-level ``itemgetter`` calls, its numeric values packed into 8-byte doubles
with ``struct`` while they are still in the CPU cache, and both parts appended to lists
without a lock. Any other input is appended to a pending list (a shallow copy); batches of
``BATCH_ROWS`` rows or more are ingested at once. Pending rows are ingested in one
vectorised pass per ``flush_rows`` rows, or when a scrape or a status call needs them:
packed rows become a ``(features, rows)`` matrix with no per-value Python work.

State is a ring of time sub-buckets (``window_seconds / sub_buckets`` each) of mergeable
summaries per feature: bin counts on the reference's fine edges, moments, a quantile sketch,
category counts on the reference vocabulary, and missing / invalid / out-of-range counts.
The rolling window is the merge of the live sub-buckets. Cumulative counts (for Prometheus
counters, which a fleet sums with PromQL) are kept beside the ring. Memory is
O(features x bins x sub-buckets), independent of traffic.
"""

from __future__ import annotations

import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ._feature_input import to_columns, tuple_getter
from ._profile import ReferenceProfile
from ._window import DatasetWindow, update_numeric_block

__all__ = ["FeatureMonitor"]

BATCH_ROWS = 64
"""Inputs with at least this many rows are ingested at once instead of buffered."""


def _ingest_columns(window: DatasetWindow, columns: dict[str, Any], rows: int) -> None:
    """Fold aligned columns into a window (the same folding the CLI uses)."""
    window.add_columns(columns, rows)


def _take_all(items: list[Any]) -> list[Any]:
    # Appenders never take a lock: they only append to this same list object, and a slice
    # and a slice deletion are each atomic, so rows appended meanwhile stay for the next
    # flush. Callers hold the flush lock, so two flushes never take the same rows.
    n = len(items)
    taken = items[:n]
    del items[:n]
    return taken


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
        features = profile.features
        self._width = len(features)
        self._numeric_names = tuple(n for n, f in features.items() if f.kind == "numeric")
        self._categorical_names = tuple(n for n, f in features.items() if f.kind != "numeric")
        self._numeric_getter = tuple_getter(self._numeric_names)
        self._categorical_getter = tuple_getter(self._categorical_names)
        self._pack = struct.Struct(f"<{len(self._numeric_names)}d").pack
        self._template = DatasetWindow(profile, sketch=True)
        self.reset()

    def reset(self) -> None:
        """Forget everything (also used in a forked child)."""
        self._pending: list[Any] = []
        self._pending_rows = 0
        self._pending_predictions: list[Any] = []
        # Fast-path rows: packed numeric values, and the categorical values of every row one
        # after the other (a flat list holds no per-row objects for the garbage collector to
        # scan). Never swapped for new lists (see _take_all), so appends need no lock.
        self._packed: list[bytes] = []
        self._labels: list[Any] = []
        self._pending_lock = threading.Lock()  # held only to append or swap the pending list
        self._flush_lock = threading.Lock()  # one flush at a time
        self._ingest_lock = threading.Lock()  # serialises ingestion and window reads
        self._ring: deque[tuple[int, DatasetWindow]] = deque()
        self._expired = self._empty()  # everything that has left the rolling window

    def _empty(self) -> DatasetWindow:
        return self._template.copy()

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

    def observe(self, batch: Any) -> bool:
        """Queue an input batch (or a single row) for ingestion; never raises on bad input.

        Returns True when the input was one dict row with exactly the reference's keys and
        plain numbers in its numeric features (so the caller knows it is one row).
        """
        if type(batch) is dict and len(batch) == self._width:
            try:
                # Missing keys raise KeyError; a value that is not a plain number (None, a
                # string, a column of a dict of columns) makes struct raise. Both go the
                # general way below, which counts them by kind.
                packed = self._pack(*self._numeric_getter(batch))
                labels = self._categorical_getter(batch)
            except (KeyError, TypeError, OverflowError, struct.error):
                pass
            else:
                # With numeric features, a dict of columns has already failed the packing.
                if self._numeric_names or not labels or not isinstance(labels[0], _COLUMN_TYPES):
                    self._labels.extend(labels)  # one C call: atomic, like the append
                    queued = self._packed
                    queued.append(packed)
                    if len(queued) >= self.flush_rows:
                        self.flush()
                    return True
        rows = _row_count(batch)
        if rows >= BATCH_ROWS:
            self._ingest([batch])
            return False
        self._enqueue("_pending", _shallow_copy(batch), max(rows, 1))
        return False

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
        with self._flush_lock:
            packed, labels = _take_all(self._packed), _take_all(self._labels)
            with self._pending_lock:
                pending, self._pending, self._pending_rows = self._pending, [], 0
                predictions, self._pending_predictions = self._pending_predictions, []
            if pending or predictions or packed or labels:
                self._ingest(pending, predictions, packed, labels)

    def _ingest(self, inputs: list[Any], predictions: list[Any] = (),  # type: ignore[assignment]
                packed: list[bytes] = (),  # type: ignore[assignment]
                labels: list[tuple[Any, ...]] = ()) -> None:  # type: ignore[assignment]
        delta = self._empty()
        if packed or labels:
            self._ingest_fast_rows(delta, packed, labels)
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

    def _ingest_fast_rows(self, delta: DatasetWindow, packed: list[bytes],
                          labels: list[Any]) -> None:
        # The two lists may differ by a row appended between the two takes; that row's
        # other half is counted in the next flush, so every value is counted exactly once.
        delta.rows += len(packed)
        if self._numeric_names and packed:
            block = np.frombuffer(b"".join(packed), dtype="<f8").reshape(len(packed), -1)
            update_numeric_block([delta.features[n] for n in self._numeric_names], block.T)
        width = len(self._categorical_names)
        for j, name in enumerate(self._categorical_names):
            column = labels[j::width]  # the j-th categorical value of every row
            if column:
                delta.features[name].update(column)

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


_COLUMN_TYPES = (list, tuple, np.ndarray)


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
