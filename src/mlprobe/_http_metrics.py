"""HTTP server metrics: the recorder the ASGI middleware writes into, and its collect side.

One :class:`HttpMetrics` per registry holds every HTTP series. A request touches it twice:
:meth:`HttpMetrics.enter` when it starts (one atomic counter, no lock) and
:meth:`HttpMetrics.record` when its last body message has been sent (or it failed): one tuple
appended to a list, no lock. Pending requests are applied to their series in batches
(:meth:`HttpMetrics.fold`) and always before a collect.

Series are keyed by ``(method index, route, status code, error type)``. Every label value is
bounded: methods by construction (the known set plus ``_OTHER``), and routes, status codes and
error types by a distinct-value cap past which new values count as ``__other__``. So the
number of series is bounded whatever clients send. Every label value is valid UTF-8 of bounded
length (:func:`mlprobe.stats._labels.label_value`), whatever the app or a route resolver returns.
"""

from __future__ import annotations

import itertools
import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from ._guard import report_internal_error
from ._instruments import OVERFLOW
from ._registry import FamilyBuilder
from .snapshot import HistogramSample, Sample
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
OTHER_METHOD = "_OTHER"
"""Method label for request methods outside the known set (semconv)."""
UNMATCHED_ROUTE = "__unmatched__"
"""Route label for requests no route template matched (404s, unrouted frameworks)."""


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Settings that shape the HTTP series; middlewares sharing a registry must agree."""

    duration_buckets: tuple[float, ...]
    size_buckets: tuple[float, ...]
    known_methods: tuple[str, ...]
    max_routes: int
    max_status_codes: int
    max_error_types: int


_MAX_ALIASES = 10_000
FOLD_BATCH = 32
"""Finished requests buffered before they are applied to their series (see HttpMetrics)."""


class _Cap:
    """A bounded set of label values: values past ``limit`` map to :data:`OVERFLOW`.

    Used on the slow path only (the first time a raw label combination is seen).
    """

    __slots__ = ("_lock", "_values", "limit")

    def __init__(self, limit: int, preset: Sequence[object] = ()) -> None:
        # Preset values (the unmatched route, "no error") and the overflow value itself are
        # free: they never crowd out real values and never overflow.
        self._values: dict[object, object] = {v: v for v in preset}
        self._values[OVERFLOW] = OVERFLOW
        self.limit = limit + len(self._values)
        self._lock = threading.Lock()

    def admit(self, value: object) -> object:
        with self._lock:
            values = self._values
            found = values.get(value)
            if found is not None:
                return found
            if len(values) >= self.limit:
                return OVERFLOW
            values[value] = value
            return value


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
        self.method_labels: tuple[str, ...] = config.known_methods + (OTHER_METHOD,)
        self.method_index: dict[str, int] = {m: i for i, m in enumerate(config.known_methods)}
        self.other_method = len(config.known_methods)
        d = len(config.duration_buckets) + 1
        s = len(config.size_buckets) + 1
        # offsets inside a series list: duration (streamed or bodiless responses), duration of
        # one-message responses, TTFB of streamed responses, request size (non-empty bodies),
        # response size; then the five sums in the same order
        self._d, self._s = d, s
        self._off_one = d
        self._off_ttfb = 2 * d
        self._off_rx = 3 * d
        self._off_tx = 3 * d + s
        self._off_sums = 3 * d + 2 * s
        self._dur = config.duration_buckets
        self._size = config.size_buckets
        self.reset()

    def reset(self) -> None:
        """Forget every series (fork child, tests)."""
        config = self.config
        self._lock = threading.Lock()  # a fork child must not inherit a held lock
        # Requests started, per method: itertools.count because next() on it is one C call,
        # atomic under the GIL, so the start edge takes no lock. Active requests are computed
        # at collect time as started - finished (finished = the duration histogram's count).
        self.started = [itertools.count() for _ in self.method_labels]
        # Finished requests not yet applied to their series: see record().
        self.pending: list[tuple[int, str, int, str, float, float, float, int, int]] = []
        # canonical key -> series; and raw key -> the series it maps to. Both are only ever
        # inserted into, under the lock.
        self._series: dict[tuple[int, object, object, object], list[float]] = {}
        self._by_raw: dict[tuple[int, str, int, str], list[float]] = {}
        self._routes = _Cap(config.max_routes, (UNMATCHED_ROUTE,))
        self._statuses = _Cap(config.max_status_codes)
        self._errors = _Cap(config.max_error_types, ("",))

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
            series = [0] * (self._off_sums + 5)  # type: ignore[list-item]
            series[self._off_sums:] = [0.0] * 5
            self._series[key] = series
        # Raw keys past the caps are remembered only while the alias table is small, so
        # memory stays bounded even if a route_resolver returned unbounded values.
        if len(self._by_raw) < _MAX_ALIASES:
            self._by_raw[raw] = series
        return series

    # -- collect path ----------------------------------------------------------------------

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report every HTTP series (runs on the scraper's thread)."""
        self.fold()
        with self._lock:
            rows = [(key, list(series)) for key, series in self._series.items()]
        # Read the started counts after the finished ones, so active is never negative.
        started = [_count_value(c) for c in self.started]
        finished = [0] * len(started)
        d, s = self._d, self._s
        for key, v in rows:
            finished[key[0]] += sum(v[0:2 * d])
        # a method appears once it has been seen: no zero series for methods never used
        builder.add("http_server_active_requests", [
            Sample((("http_request_method", self.method_labels[i]),), float(max(0, n - finished[i])))
            for i, n in enumerate(started) if n])
        if not rows:
            return
        one, ttfb, rx, tx, o = self._off_one, self._off_ttfb, self._off_rx, self._off_tx, \
            self._off_sums
        durations, ttfbs, received, sent = [], [], [], []
        for (method, route, status, error), v in sorted(rows, key=_sort_key):
            labels = (("http_request_method", self.method_labels[method]),
                      ("http_route", str(route)),
                      ("http_response_status_code", str(status)),
                      ("error_type", str(error)))
            one_message = v[one:one + d]
            total = sum(v[0:d]) + sum(one_message)
            durations.append(HistogramSample(
                labels, self._dur, tuple(a + b for a, b in zip(v[0:d], one_message)),
                v[o] + v[o + 1]))
            first_byte = tuple(a + b for a, b in zip(v[ttfb:ttfb + d], one_message))
            if any(first_byte):
                ttfbs.append(HistogramSample(labels, self._dur, first_byte, v[o + 1] + v[o + 2]))
            sizes = list(v[rx:rx + s])
            sizes[0] += total - sum(sizes)  # the empty request bodies (see the class doc)
            received.append(HistogramSample(labels, self._size, tuple(sizes), float(v[o + 3])))
            sent.append(HistogramSample(labels, self._size, tuple(v[tx:tx + s]),
                                        float(v[o + 4])))
        builder.add("http_server_request_duration_seconds", durations)
        builder.add("http_server_request_body_size_bytes", received)
        builder.add("http_server_response_body_size_bytes", sent)
        if ttfbs:
            builder.add("http_server_time_to_first_byte_seconds", ttfbs)


def _count_value(counter: itertools.count[int]) -> int:
    # repr is "count(N)" on every supported Python; reading it does not advance the counter
    return int(repr(counter)[6:-1])


def _sort_key(row: tuple[tuple[int, object, object, object], list[float]]) -> tuple[str, ...]:
    method, route, status, error = row[0]
    return (str(route), str(method), str(status), str(error))
