"""FeatureMonitor: rolling per-feature statistics of live inputs against a reference profile.

Request path: an input is encoded at once into fixed-width rows (:mod:`mlprobe._row_codec`):
numeric values as doubles, categorical values as their vocabulary code. The buffer therefore
holds bytes the monitor owns, never the caller's objects, and its size is known exactly. A
dict row with exactly the reference's keys (the common single-row call) is packed by one
generated function and appended to a list without a lock. Inputs of ``BATCH_ROWS`` rows or
more are ingested at once by the calling request (its own rows, amortised over them).

Flush: buffered rows are ingested off the request path by the background flusher
(:mod:`mlprobe._flusher`), in short steps, when ``flush_rows`` rows are waiting or at the
latest every ``FLUSH_INTERVAL_S``; a scrape or a status call ingests whatever is left first,
so it sees every row recorded before it started. When the flusher cannot keep up, the buffer
stops at ``max_buffer_bytes`` and further rows are dropped and counted, never waited for.

State is a ring of time sub-buckets (``window_seconds / sub_buckets`` each, on wall-clock
boundaries: :mod:`mlprobe._feature_ring`) of mergeable summaries per feature: bin counts on
the reference's fine edges, moments, a quantile sketch, category counts on the reference
vocabulary, and missing / invalid / out-of-range counts. The rolling window is the merge of
the live sub-buckets. Cumulative counts (for Prometheus counters, which a fleet sums with
PromQL) are kept beside the ring. Memory is O(features x bins x sub-buckets) plus the bounded
buffer, independent of traffic. :meth:`FeatureMonitor.state` is the raw, mergeable state
(:mod:`mlprobe._feature_state`) that windows, totals and other processes read.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._feature_input import to_columns
from ._feature_ring import Ring
from ._feature_state import FeatureState
from ._flusher import COLLECT_BUDGET_S, STEP_BUDGET_S, flusher, flusher_pace
from ._flusher import pause as give_way
from ._ingest import Encoded, ingest_steps, run_steps
from ._label_table import Tally
from ._profile import ReferenceProfile
from ._row_codec import RowCodec
from ._value_codes import category_codes, classify_input
from ._window import DatasetWindow
from .errors import ConfigurationError

__all__ = ["BATCH_ROWS", "DEFAULT_BUFFER_BYTES", "FeatureMonitor"]

BATCH_ROWS = 64
"""Inputs with at least this many rows are ingested by their own call instead of buffered."""

DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024
"""Default bound of one monitor's buffer of encoded rows (8 MiB)."""

_ROW_OVERHEAD = sys.getsizeof(b"") + 8  # a bytes object's header, and its slot in a list


def _no_pause() -> None:
    """Pause function of a flush that runs straight through (a scrape, a status call)."""


class FeatureMonitor:
    """Rolling and cumulative feature statistics for one model (see the module docstring).

    Args:
        profile: the reference profile; it fixes features, bins and vocabularies.
        window_seconds: length of the rolling window.
        sub_buckets: how many time buckets make the window (its time resolution).
        flush_rows: buffered rows that wake the background flusher.
        max_buffer_bytes: bound of the buffered rows; past it rows are dropped and counted.
        clock: wall-clock time in seconds (sub-buckets are aligned on it, so that monitors of
            several processes merge; tests pass a fake).
    """

    def __init__(self, profile: ReferenceProfile, *, window_seconds: float = 600.0,
                 sub_buckets: int = 10, flush_rows: int = 4096,
                 max_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
                 clock: Callable[[], float] = time.time) -> None:
        self.profile = profile
        self.names = tuple(profile.features)
        self.window_seconds = float(window_seconds)
        self.sub_buckets = int(sub_buckets)
        self.bucket_seconds = self.window_seconds / self.sub_buckets
        self.flush_rows = int(flush_rows)
        self._clock = clock
        self._codec = RowCodec(profile)
        self._pack_row = self._codec.pack_row
        self._width = len(self.names)
        if isinstance(max_buffer_bytes, bool) or not isinstance(max_buffer_bytes, int) \
                or max_buffer_bytes <= 0:
            raise ConfigurationError(f"max_buffer_bytes must be a positive int (bytes), got "
                                     f"{max_buffer_bytes!r}")
        # Rows (and, separately, buffered predictions) the buffer may hold: at least one
        # flush's worth, so a small bound cannot stop the flusher from ever being woken. A
        # buffered single row costs its encoded bytes plus a bytes object's header and a
        # list slot, and the bound counts all of it.
        self.max_rows = max(self.flush_rows,
                            max_buffer_bytes // (self._codec.row_bytes + _ROW_OVERHEAD))
        self.template = DatasetWindow(profile, sketch=True)
        """An empty window of this monitor's profile and settings (never modified)."""
        self.reset()
        flusher.register(self)

    def reset(self) -> None:
        """Forget everything (also used in a forked child)."""
        # Single encoded rows, appended without a lock (list.append is atomic under the GIL);
        # taken by slicing, never swapped for a new list, so no append can be lost.
        self._rows: list[bytes] = []
        # Buffered scores of single calls (numeric predictions), the same way.
        self._scores: list[float] = []
        # Everything else under _pending_lock: blocks of encoded rows (small batches, odd
        # rows), prediction arrays, and schema violations counted while encoding.
        self._pending_lock = threading.Lock()
        self._blocks: list[bytes] = []
        self._block_rows = 0
        self._predictions: list[Any] = []
        self._prediction_values = 0
        self._violations: Counter[str] = Counter()
        self._dropped_blocked = 0  # rows of blocks and predictions dropped (under the lock)
        self._flush_lock = threading.Lock()  # one flush at a time (the flusher, or a collect)
        self._hurry = False  # a collect waits for the flusher: longer stretches (see _ingest)
        # next() on an itertools.count is one C call: atomic, so drops need no lock
        # (slot 0: single rows, slot 1: single scores).
        self._dropped = Tally(2)
        # The row count at which the request path looks up (starts the flusher, wakes it,
        # or drops): 0 after a (re)start, so the first row starts the flusher lazily.
        self._wake_at = 0
        self._scores_wake_at = 0  # the same for buffered single scores
        self.ring = Ring(self.template, self.bucket_seconds, self.sub_buckets, self._clock)
        self.merge_cache: dict[object, Any] = {}  # sums of unchanging parts (_feature_state)

    # -- request path --------------------------------------------------------------------

    def observe(self, batch: Any) -> bool:
        """Buffer an input batch (or a single row) for ingestion; never raises on bad input.

        Returns True when the input was one dict row with exactly the reference's keys and
        clean values (so the caller knows it is one row).
        """
        if type(batch) is dict and len(batch) == self._width:
            try:
                packed = self._pack_row(batch)
            except Exception:  # noqa: BLE001 - not the common case: the general way below
                pass
            else:
                queued = self._rows
                n = len(queued)
                if n >= self._wake_at and not self._on_threshold(n):
                    return True  # the buffer is full: dropped and counted
                queued.append(packed)
                return True
        self._observe_general(batch)
        return False

    def _on_threshold(self, n: int) -> bool:
        """The request path's rare branch: start or wake the flusher, or drop when full.

        Returns False when the row must be dropped (it has been counted).
        """
        if n + self._block_rows >= self.max_rows:
            next(self._dropped.ticks[0])
            flusher.wake()
            return False
        if n + self._block_rows >= self.flush_rows:
            flusher.wake()
            self._wake_at = self.max_rows - self._block_rows  # look up again only when full
        else:
            flusher.ensure_running()
            self._wake_at = self.flush_rows
        return True

    def observe_predictions(self, scores: Any) -> None:
        """Buffer predicted scores (or classes): an array, a list or a scalar."""
        if self.profile.prediction is None:
            return
        if type(scores) is float and self._codec.prediction_index is None:
            queued = self._scores
            n = len(queued)
            if n >= self._scores_wake_at and not self._on_scores_threshold(n):
                return  # the buffer is full: dropped and counted
            queued.append(scores)
            return
        if self._codec.prediction_index is not None:
            index, size = self._codec.prediction_index
            items = scores if isinstance(scores, (list, tuple, np.ndarray)) else [scores]
            values = category_codes(items, len(items), index, size)
        else:
            values = np.array(scores, dtype=np.float64).reshape(-1)  # a copy we own
        with self._pending_lock:
            if self._prediction_values + values.size > self.max_rows:
                self._dropped_blocked += values.size
                return
            self._predictions.append(values)
            self._prediction_values += values.size
            full = self._prediction_values >= self.flush_rows
        if full:
            flusher.wake()
        else:
            flusher.ensure_running()

    def _on_scores_threshold(self, n: int) -> bool:
        """:meth:`_on_threshold` for buffered single scores (a model whose inputs are not
        monitored still needs the flusher to run)."""
        if n >= self.max_rows:
            next(self._dropped.ticks[1])
            flusher.wake()
            return False
        if n >= self.flush_rows:
            flusher.wake()
            self._scores_wake_at = self.max_rows
        else:
            flusher.ensure_running()
            self._scores_wake_at = self.flush_rows
        return True

    def _observe_general(self, batch: Any) -> None:
        """Every input but a clean dict row: encode now (or ingest a large batch now)."""
        codec = self._codec
        violations: Counter[str] = Counter()
        try:
            shape, rows = classify_input(batch)
        except Exception:  # noqa: BLE001 - an input that lies about itself (__class__, __len__)
            self._enqueue_unreadable(violations)
            return
        if shape == "row":
            self._enqueue(codec.encode_row(batch, violations), 1, violations)
            return
        if shape == "rows" and rows < BATCH_ROWS:
            parts = [codec.encode_row(row, violations) for row in batch]
            self._enqueue(b"".join(p for p in parts if p is not None),
                          sum(p is not None for p in parts), violations)
            return
        if shape == "positional row":
            self._enqueue(codec.encode_sequence_row(batch, violations), 1, violations)
            return
        found: Counter[str] = Counter()
        try:
            columns, n = to_columns(batch, self.names, found)
        except Exception:  # noqa: BLE001 - a frame whose to_numpy raises, a lying __len__...
            self._enqueue_unreadable(violations)
            return
        violations.update(found)
        if n >= BATCH_ROWS:  # the caller's own rows, ingested now: categories are tallied
            numbers = codec.encode_numeric(columns, n, violations)
            self._ingest(Encoded(numbers=numbers.T, code_counts=codec.count_categories(
                columns, n), violations=violations), _no_pause)
            return
        numbers, codes = codec.encode_columns(columns, n, violations)
        self._enqueue(codec.to_bytes(numbers, codes) if n else None, n, violations)

    def _enqueue_unreadable(self, violations: Counter[str]) -> None:
        # An input that cannot be read at all counts as one row with every feature missing,
        # as _feature_input counts unreadable inputs on every other path.
        violations["unreadable_input"] += 1
        self._enqueue(self._codec.missing_row(), 1, violations)

    def _enqueue(self, data: bytes | None, rows: int, violations: Counter[str]) -> None:
        if data is None:
            rows = 0
        with self._pending_lock:
            if violations:
                self._violations.update(violations)
            if not rows:
                return
            total = len(self._rows) + self._block_rows
            if total + rows > self.max_rows:
                self._dropped_blocked += rows
                full = True
            else:
                self._blocks.append(data)  # type: ignore[arg-type]
                self._block_rows += rows
                total += rows
                full = total >= self.flush_rows
                # Single rows look up again before the combined buffer can pass its bound.
                self._wake_at = min(self._wake_at, max(0, self.max_rows - self._block_rows))
        if full:
            flusher.wake()
        else:
            flusher.ensure_running()

    # -- ingestion -----------------------------------------------------------------------

    def flush(self) -> None:
        """Ingest every buffered input now, on the calling thread (in stretches of
        ``COLLECT_BUDGET_S`` with pauses between, like the flusher's)."""
        self._hurry = True  # the flusher, if it is mid-flush, hurries up (see _ingest)
        try:
            with self._flush_lock:
                data = self._take()
                if data is not None:
                    self._ingest(data, give_way, COLLECT_BUDGET_S)
        finally:
            self._hurry = False

    def flush_in_background(self, pause: Callable[[], None]) -> None:
        """The flusher's entry point: ingest what is buffered, pausing between steps."""
        if not self._flush_lock.acquire(blocking=False):
            return  # a scrape is flushing this monitor: it does the work
        try:
            self._wake_at = self._scores_wake_at = self.flush_rows
            # Cycles of at most CYCLE_ROWS single rows (short steps), over the rows buffered
            # now: rows arriving meanwhile wait for the next wake-up, so that a collect
            # waiting for the lock (it sets _hurry) is never starved by a steady stream.
            backlog = len(self._rows)
            while True:
                budget, cycle_rows = flusher_pace(
                    (len(self._rows) + self._block_rows) / self.max_rows)
                data = self._take(cycle_rows)
                if data is None:
                    return
                self._ingest(data, pause, budget)
                backlog -= cycle_rows
                if backlog <= 0 or self._hurry:
                    return
                pause()
        finally:
            self._flush_lock.release()

    def _take(self, limit: int | None = None) -> Encoded | None:
        """Take what is buffered: every block, and at most ``limit`` single rows (the caller
        holds the flush lock)."""
        rows = _take_all(self._rows, limit)
        scores = _take_all(self._scores)
        with self._pending_lock:
            blocks, self._blocks, self._block_rows = self._blocks, [], 0
            predictions, self._predictions, self._prediction_values = self._predictions, [], 0
            violations, self._violations = self._violations, Counter()
        if scores:
            predictions.append(np.array(scores, dtype=np.float64))
        if not (rows or blocks or predictions or violations):
            return None
        return Encoded(parts=rows + blocks if blocks else rows, violations=violations,
                       predictions=predictions)

    def _ingest(self, data: Encoded, pause: Callable[[], None],
                budget: float = STEP_BUDGET_S) -> None:
        # A collect waiting for this flush (it sets _hurry) makes it use longer stretches.
        delta = run_steps(ingest_steps(self.template, self._codec, data), pause, budget,
                          lambda: self._hurry)
        # (merging windows that hold values near 1e308 overflows: the ring silences numpy
        # there, as run_steps does)
        self.ring.add(delta)

    # -- collect path --------------------------------------------------------------------

    @property
    def dropped_rows(self) -> int:
        """Input rows and predictions dropped because the buffer was full, since start."""
        with self._pending_lock:
            blocked = self._dropped_blocked
        return sum(self._dropped.values()) + blocked

    def index_now(self) -> int:
        """The wall-clock sub-bucket index of the current time (see :mod:`._feature_ring`)."""
        return self.ring.index_now()

    def state(self) -> FeatureState:
        """The raw, mergeable state: every row buffered before the call ingested first (see
        :meth:`flush`), closed sub-buckets shared, the open one copied."""
        self.flush()
        buckets, expired = self.ring.parts()
        return FeatureState(self, buckets, expired, self.dropped_rows)

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, DatasetWindow] | None = None) -> FeatureState:
        """Rebuild a state of this monitor's model from ``FeatureState.to_dict`` output."""
        return FeatureState.from_dict(self, data, parts)

    def part_from_dict(self, data: dict[str, Any]) -> DatasetWindow:
        """Rebuild one part (a sub-bucket's window) written by ``FeatureState.to_dict``."""
        return DatasetWindow.from_dict(data, self.template)

    def window(self) -> DatasetWindow:
        """The rolling window: the merge of the live sub-buckets (pending rows included)."""
        return self.window_and_totals()[0]

    def totals(self) -> DatasetWindow:
        """Counts since start (or fork), for monotonic counters."""
        return self.window_and_totals()[1]

    def window_and_totals(self) -> tuple[DatasetWindow, DatasetWindow]:
        """Both views from one pass over the ring: (rolling window, totals since start).

        Every row buffered before the call is ingested first (see :meth:`flush`).
        """
        return self.state().window_and_totals()


def _take_all(items: list[Any], limit: int | None = None) -> list[Any]:
    # Appenders never take a lock: they only append to this same list object, and a slice
    # and a slice deletion are each atomic, so rows appended meanwhile stay for the next
    # flush. Callers hold the flush lock, so two flushes never take the same rows.
    n = len(items) if limit is None else min(limit, len(items))
    taken = items[:n]
    del items[:n]
    return taken
