"""Recording objects: preallocated, lock-protected, incremented on the request path.

Every instrument keeps the cheapest state that answers its questions at collect time:
non-cumulative bucket counts (cumulative ``le`` counts are built by the snapshot), plain
integer counters, and label tables with a hard cap (:class:`~mlprobe._label_table.LabelTable`).
Each has one short lock, held only for the increments and never across user code; ``state()``
copies the raw counts under the lock (the mergeable state of :mod:`mlprobe._probe_state`),
and snapshots are built from such copies outside it.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ._flusher import flusher
from ._label_table import OVERFLOW, LabelTable
from .snapshot import HistogramSample, LabelSet
from .stats._labels import label_value

__all__ = ["BoundedCounter", "CallRecorder", "CallState", "Histogram", "LabelledHistograms",
           "OVERFLOW"]

HistogramState = tuple[list[int], float]
"""Raw histogram: non-cumulative bucket counts (the last one is +Inf) and the sum."""


FLUSH_ROWS = 4096
"""Buffered batch values are binned by the background flusher once this many are pending
(and at every snapshot)."""

MAX_PENDING_ROWS = 16 * FLUSH_ROWS
"""Past this many pending values (the flusher is far behind) the call that adds more bins
them itself, so memory stays bounded (128 KiB per histogram) and counts stay exact."""


class Histogram:
    """Fixed-bucket histogram with Prometheus ``le`` semantics (``v <= bound``).

    Single values are binned at once with ``bisect``. Arrays are copied into a pending buffer
    and binned together by the background flusher, one numpy pass per :data:`FLUSH_ROWS`
    values (or at a snapshot), so a service sending small batches does not pay numpy's fixed
    per-call cost on every request, and no request bins the others' values.
    """

    __slots__ = ("_bounds_array", "_counts", "_flush_lock", "_lock", "_pending",
                 "_pending_rows", "_requested", "_sum", "bounds")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self._bounds_array = np.asarray(self.bounds, dtype=np.float64)
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0
        self._requested = False  # the flusher has been asked to flush this buffer
        self._lock = threading.Lock()  # held only for increments and the pending swap
        # Held across a whole flush (swap, bin, add): a snapshot flushes first, so it waits
        # for a flush another thread is in the middle of, and never misses the values that
        # flush has taken but not yet added. Recording never takes it.
        self._flush_lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Record one finite value (callers drop NaN and infinities)."""
        i = bisect_left(self.bounds, value)
        with self._lock:
            self._counts[i] += 1
            self._sum += value

    def observe_array(self, values: np.ndarray) -> None:
        """Record a batch (buffered; non-finite values are dropped when it is binned)."""
        # A copy: the caller may reuse or mutate its array after we return.
        copy = np.array(values, dtype=np.float64, copy=True).ravel()
        with self._lock:
            self._pending.append(copy)
            self._pending_rows += copy.size
            pending = self._pending_rows
            # Ask the flusher once per full buffer, not on every call until it comes.
            ask = pending >= FLUSH_ROWS and not self._requested
            if ask:
                self._requested = True
        if pending >= MAX_PENDING_ROWS:
            self.flush()
        elif ask:
            flusher.request(self)  # off the request path: no call bins other calls' values

    def flush(self) -> None:
        """Bin every pending value in one vectorised pass."""
        with self._flush_lock:
            self._flush()

    def _flush(self) -> None:
        with self._lock:
            self._requested = False
            if not self._pending:
                return
            pending, self._pending, self._pending_rows = self._pending, [], 0
        values = pending[0] if len(pending) == 1 else np.concatenate(pending)
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        index = np.searchsorted(self._bounds_array, values, side="left")
        per_bucket = np.bincount(index, minlength=len(self._counts)).tolist()
        with np.errstate(over="ignore", invalid="ignore"):  # huge scores: inf (or NaN) sums
            total = float(values.sum())
        with self._lock:
            counts = self._counts
            for i, n in enumerate(per_bucket):
                if n:
                    counts[i] += n
            self._sum += total

    def state(self) -> HistogramState:
        """A copy of the counts and sum (pending values binned first)."""
        self.flush()
        with self._lock:
            return list(self._counts), self._sum

    def snapshot(self, labels: LabelSet) -> HistogramSample:
        """Return an immutable copy of the current state (pending values included)."""
        counts, total = self.state()
        return HistogramSample(labels, self.bounds, tuple(counts), total)


class BoundedCounter:
    """Counts per label value, with at most ``max_values`` distinct values.

    Values past the cap are counted under :data:`OVERFLOW`, so totals stay right and memory
    and series stay bounded whatever the traffic sends. Keys are label values: a key seen for
    the first time goes through :func:`mlprobe.stats._labels.label_value` (valid UTF-8, bounded
    length), so whatever string a caller passes, what is stored and exported is a valid label.
    """

    __slots__ = ("_counts", "_lock", "table")

    def __init__(self, max_values: int) -> None:
        self.table = LabelTable(max_values)
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, key: str, amount: int = 1) -> None:
        """Add ``amount`` to ``key`` (or to the overflow value once the cap is reached)."""
        counts = self._counts
        with self._lock:
            if key in counts:  # the common case: a label value seen before
                counts[key] += amount
                return
        # First sight of this key (or a key the label rule rewrites, which never matches a
        # stored one): make it a label value and admit it outside the lock, then count it.
        key = self.table.admit(label_value(key))
        with self._lock:
            counts[key] = counts.get(key, 0) + amount

    def state(self) -> tuple[dict[str, int], dict[str, int]]:
        """``(counts, first seen)``: copies of the counts and of the table's times."""
        with self._lock:
            counts = dict(self._counts)
        return counts, self.table.first_seen()


class LabelledHistograms:
    """One :class:`Histogram` per label value, at most ``max_values`` of them (then overflow)."""

    __slots__ = ("_children", "_lock", "bounds", "table")

    def __init__(self, bounds: Sequence[float], max_values: int) -> None:
        self.bounds = tuple(bounds)
        self.table = LabelTable(max_values)
        self._children: dict[str, Histogram] = {}
        self._lock = threading.Lock()

    def child(self, key: str) -> Histogram:
        """Return the histogram for ``key``, creating it (or using overflow) on first use.

        ``key`` is made a label value (:func:`mlprobe.stats._labels.label_value`) when first seen.
        """
        child = self._children.get(key)  # lock-free read: dict reads are atomic
        if child is not None:
            return child
        key = self.table.admit(label_value(key))
        with self._lock:
            children = self._children
            child = children.get(key)
            if child is None:
                child = Histogram(self.bounds)
                # copy-on-write so lock-free readers never see a dict being resized
                self._children = {**children, key: child}
            return child

    def state(self) -> tuple[dict[str, HistogramState], dict[str, int]]:
        """``(histogram per value, first seen)``: copies, pending values binned first."""
        return ({key: child.state() for key, child in self._children.items()},
                self.table.first_seen())


class CallRecorder:
    """Per-probe call statistics under one lock: outcomes, latency, in-flight, input sizes.

    One recorder instead of five instruments means one lock round trip per call edge, which is
    most of what the decorator's overhead budget allows (see benchmarks/bench_decorator.py).
    """

    __slots__ = ("_bytes_counts", "_bytes_sum", "_errors", "_in_flight", "_latency_counts",
                 "_latency_sum", "_lock", "_ok", "_rows_counts", "_rows_sum", "bytes_bounds",
                 "error_types", "latency_bounds", "rows_bounds")

    def __init__(self, latency_bounds: Sequence[float], rows_bounds: Sequence[float],
                 bytes_bounds: Sequence[float], max_error_types: int) -> None:
        self.latency_bounds = tuple(latency_bounds)
        self.rows_bounds = tuple(rows_bounds)
        self.bytes_bounds = tuple(bytes_bounds)
        self._latency_counts = [0] * (len(self.latency_bounds) + 1)
        self._rows_counts = [0] * (len(self.rows_bounds) + 1)
        self._bytes_counts = [0] * (len(self.bytes_bounds) + 1)
        self._latency_sum = 0.0
        self._rows_sum = 0
        self._bytes_sum = 0
        self._ok = 0
        self._errors = 0
        self._in_flight = 0
        self.error_types = BoundedCounter(max_error_types)
        self._lock = threading.Lock()

    def enter(self) -> None:
        """A call starts."""
        with self._lock:
            self._in_flight += 1

    def exit_ok(self, duration: float, rows: int | None = None, nbytes: int | None = None) -> None:
        """A call returned after ``duration`` seconds, having read ``rows``/``nbytes`` if known."""
        if duration < 0.0:  # perf_counter is monotonic, but stay safe on odd clocks
            duration = 0.0
        i = bisect_left(self.latency_bounds, duration)
        # bisect outside the lock; the lock covers only the increments
        r = -1 if rows is None or rows < 0 else bisect_left(self.rows_bounds, rows)
        b = -1 if nbytes is None or nbytes < 0 else bisect_left(self.bytes_bounds, nbytes)
        with self._lock:
            self._in_flight -= 1
            self._ok += 1
            self._latency_counts[i] += 1
            self._latency_sum += duration
            if r >= 0:
                self._rows_counts[r] += 1
                self._rows_sum += rows  # type: ignore[operator]
            if b >= 0:
                self._bytes_counts[b] += 1
                self._bytes_sum += nbytes  # type: ignore[operator]

    def observe_inputs(self, rows: int | None, nbytes: int | None) -> None:
        """Record input sizes seen outside a tracked call (``Probe.observe``)."""
        r = -1 if rows is None or rows < 0 else bisect_left(self.rows_bounds, rows)
        b = -1 if nbytes is None or nbytes < 0 else bisect_left(self.bytes_bounds, nbytes)
        with self._lock:
            if r >= 0:
                self._rows_counts[r] += 1
                self._rows_sum += rows  # type: ignore[operator]
            if b >= 0:
                self._bytes_counts[b] += 1
                self._bytes_sum += nbytes  # type: ignore[operator]

    def exit_error(self, duration: float, error_type: str) -> None:
        """A call raised an exception of type ``error_type`` after ``duration`` seconds."""
        if duration < 0.0 or math.isnan(duration):
            duration = 0.0
        i = bisect_left(self.latency_bounds, duration)
        with self._lock:
            self._in_flight -= 1
            self._errors += 1
            self._latency_counts[i] += 1
            self._latency_sum += duration
        # A class may carry any __qualname__, even a str subclass that cannot be hashed.
        self.error_types.add(error_type if type(error_type) is str else label_value(error_type))

    def state(self) -> CallState:
        """Copy the counts under the lock."""
        with self._lock:
            return CallState(self._ok, self._errors, self._in_flight,
                             [list(self._latency_counts), self._latency_sum],
                             [list(self._rows_counts), float(self._rows_sum)],
                             [list(self._bytes_counts), float(self._bytes_sum)])


class CallState(NamedTuple):
    """What :meth:`CallRecorder.state` returns: raw counts, histograms as ``[counts, sum]``.

    ``in_flight`` may be negative in a forked child (a call that began in the parent ended
    there); readers report at least zero.
    """

    ok: int
    errors: int
    in_flight: int
    latency: list
    rows: list
    input_bytes: list
