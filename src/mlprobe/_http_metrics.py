"""HTTP server metrics: the recorder the ASGI middleware writes into, and its collect side.

One :class:`HttpMetrics` per registry holds every HTTP series. A request touches it twice:
:meth:`HttpMetrics.enter` when it starts (one atomic counter, no lock) and
:meth:`HttpMetrics.record` when its last body message has been sent (or it failed): one tuple
appended to a list, no lock. Pending requests are applied to their series in batches
(:meth:`HttpMetrics.fold`) and always before a collect.

Series are keyed by ``(method index, route, status code, error type)``. Every label value is
bounded: methods by construction (the known set plus ``_OTHER``), and routes, status codes and
error types by a distinct-value cap past which new values count as ``__other__``
(:class:`~mlprobe._label_table.LabelTable`). So the number of series is bounded whatever
clients send. Every label value is valid UTF-8 of bounded length
(:func:`mlprobe.stats._labels.label_value`), whatever the app or a route resolver returns.

The collect side reads a raw state (:meth:`HttpMetrics.state`, :mod:`mlprobe._http_state`),
which merges with other processes' states; ``collect_into`` reports that state.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Mapping
from typing import Any

from ._fingerprint import config_fingerprint
from ._guard import report_internal_error
from ._http_state import OTHER_METHOD, UNMATCHED_ROUTE, HttpConfig, HttpState
from ._label_table import LabelTable, Tally
from ._registry import FamilyBuilder
from .stats._labels import label_value

__all__ = [
    "DEFAULT_DURATION_BUCKETS",
    "DEFAULT_KNOWN_METHODS",
    "HttpConfig",
    "HttpMetrics",
    "OTHER_METHOD",
    "UNMATCHED_ROUTE",
]

# The OTel HTTP semconv advice for http.server.request.duration (stable conventions).
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
# Semconv's known methods (RFC 9110 plus PATCH); anything else is recorded as _OTHER.
DEFAULT_KNOWN_METHODS: tuple[str, ...] = (
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")
_MAX_ALIASES = 10_000
FOLD_BATCH = 32
"""Finished requests buffered before they are applied to their series (see HttpMetrics)."""


class HttpMetrics:
    """Registry source holding every HTTP server series of one registry.

    Layout of one series: a flat list of bucket counts followed by five sums, so
    :meth:`fold` does all of a request's increments on one list. To keep the common
    request down to four increments, two histograms are partly implicit:

    - a response sent in one body message (its first byte left with its last, so its time to
      first byte equals its duration) is counted in the ``one`` duration buckets only; the
      duration and TTFB histograms both add them back at collect time;
    - an empty request body is not counted at all; the request-size histogram's first bucket
      gets them back at collect time (every request has a request size).
    """

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.method_labels: tuple[str, ...] = config.method_labels
        self.method_index: dict[str, int] = {m: i for i, m in enumerate(config.known_methods)}
        self.other_method = len(config.known_methods)
        # offsets inside a series list: see HttpConfig
        self._off_one = config.one
        self._off_ttfb = config.ttfb
        self._off_rx = config.rx
        self._off_tx = config.tx
        self._off_sums = config.sums
        self._dur = config.duration_buckets
        self._size = config.size_buckets
        self._fingerprint = config_fingerprint(
            config.duration_buckets, config.size_buckets, config.known_methods,
            config.max_routes, config.max_status_codes, config.max_error_types)
        self.reset()

    def reset(self) -> None:
        """Forget every series (fork child, tests)."""
        config = self.config
        self._lock = threading.Lock()  # a fork child must not inherit a held lock
        # Requests started, per method: next() on an itertools.count is one C call, atomic
        # under the GIL, so the start edge takes no lock (the middleware inlines
        # next(metrics.started[method])). Active requests are computed at collect time as
        # started - finished (finished = the duration histogram's count).
        self._started = Tally(len(self.method_labels))
        self.started = self._started.ticks
        # Finished requests not yet applied to their series: see record().
        self.pending: list[tuple[int, str, int, str, float, float, float, int, int]] = []
        # canonical key -> series; and raw key -> the series it maps to. Both are only ever
        # inserted into, under the lock.
        self._series: dict[tuple[int, str, str, str], list[float]] = {}
        self._by_raw: dict[tuple[int, str, int, str], list[float]] = {}
        self._routes = LabelTable(config.max_routes, (UNMATCHED_ROUTE,))
        self._statuses = LabelTable(config.max_status_codes)
        self._errors = LabelTable(config.max_error_types, ("",))

    # -- request path ----------------------------------------------------------------------
    #
    # A finished request is one tuple appended to ``pending`` (list.append is atomic, so no
    # lock); every FOLD_BATCH requests, the request that fills the batch applies the whole batch
    # to the series, after its own response has been handed to the server. Why: on a real
    # server each request finds the recording code and data cold (the server's own work in
    # between evicts them), so recording one request costs about three times what it costs in
    # a loop; applying 32 at once pays the cold start once. Collect applies what is pending
    # first, so every scrape is exact, and memory stays bounded by the batch size.

    def enter(self, method: int) -> None:
        """A request with method index ``method`` starts."""
        next(self.started[method])

    def record(self, method: int, route: str, status: int, error: str, start: float, end: float,
               first: float, received: int, sent: int) -> None:
        """A request ended; the middleware inlines this.

        ``start``, ``end`` and ``first`` are ``perf_counter()`` readings: the request's arrival,
        its end, and its first body byte (< 0: no body byte was sent).
        """
        pending = self.pending
        pending.append((method, route, status, error, start, end, first, received, sent))
        if len(pending) >= FOLD_BATCH:
            self.fold()

    def fold(self) -> None:
        """Apply every pending request to its series."""
        dur, size = self._dur, self._size
        o_one, o_ttfb, o_rx, o_tx = self._off_one, self._off_ttfb, self._off_rx, self._off_tx
        s_dur = self._off_sums
        s_one, s_ttfb, s_rx, s_tx = s_dur + 1, s_dur + 2, s_dur + 3, s_dur + 4
        by_raw = self._by_raw
        with self._lock:
            pending = self.pending
            # Appends by other threads may land while we work: take a prefix, delete it.
            batch = pending[:]
            del pending[:len(batch)]
            for method, route, status, error, start, end, first, received, sent in batch:
                try:
                    series = by_raw.get((method, route, status, error))
                    if series is None:
                        series = self._series_for((method, route, status, error))
                    duration = end - start if end > start else 0.0
                    ttfb = first - start if first >= 0.0 else -1.0
                    i_dur = bisect_left(dur, duration)
                    if ttfb == duration:  # the common case: one body message (see the class doc)
                        series[o_one + i_dur] += 1
                        series[s_one] += duration
                    else:
                        series[i_dur] += 1
                        series[s_dur] += duration
                        if ttfb >= 0.0:
                            series[o_ttfb + bisect_left(dur, ttfb)] += 1
                            series[s_ttfb] += ttfb
                    series[o_tx + bisect_left(size, sent)] += 1
                    series[s_tx] += sent
                    if received:
                        series[o_rx + bisect_left(size, received)] += 1
                        series[s_rx] += received
                except Exception as exc:  # noqa: BLE001 - one bad request costs that request only
                    report_internal_error("asgi.fold", exc)

    def _series_for(self, raw: tuple[int, str, int, str]) -> list[float]:
        """Slow path (lock held): cap every label, find or create the series, remember it.

        Every label is made a label value first (:func:`mlprobe.stats._labels.label_value`: valid
        UTF-8, bounded length), so raw values that render alike share one series.
        """
        method, route, status, error = raw
        key = (method, self._routes.admit(label_value(route)),
               self._statuses.admit(label_value(status)), self._errors.admit(label_value(error)))
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = self.config.empty_series()
        # Raw keys past the caps are remembered only while the alias table is small, so
        # memory stays bounded even if a route_resolver returned unbounded values.
        if len(self._by_raw) < _MAX_ALIASES:
            self._by_raw[raw] = series
        return series

    # -- collect path: the state protocol (see "Mergeable sources" in mlprobe._source) -----

    def fingerprint(self) -> str:
        """Identifies the settings that shape the series (buckets, methods, caps)."""
        return self._fingerprint

    def state(self) -> HttpState:
        """A consistent copy of every series (pending requests applied first)."""
        self.fold()
        with self._lock:
            series = {key: list(values) for key, values in self._series.items()}
        # Read the started counts after the finished ones, so active is never negative.
        started = self._started.values()
        return HttpState(self.config, series, started, self._routes.first_seen(),
                         self._statuses.first_seen(), self._errors.first_seen())

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, Any] | None = None) -> HttpState:
        """Rebuild a state of these series from :meth:`HttpState.to_dict` output."""
        return HttpState.from_dict(self.config, data)

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report every HTTP series (runs on the scraper's thread)."""
        self.state().collect_into(builder)
