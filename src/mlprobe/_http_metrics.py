"""HTTP server metrics: the recorder the ASGI middleware writes into, and its collect side.

One :class:`HttpMetrics` per registry holds every HTTP series. A request touches it twice:
:meth:`HttpMetrics.enter` when it starts and :meth:`HttpMetrics.finish` when its last body
message has been sent (or it failed). Each edge is one short lock round trip; the bucket
searches and label lookups happen before the lock is taken.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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

    Layout of one series: a flat list of integer bucket counts (duration, time to first byte,
    request size, response size, each with its +Inf bucket) followed by the four sums, so
    :meth:`finish` does all its increments on one list under one lock.
    """

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self.method_labels: tuple[str, ...] = config.known_methods + (OTHER_METHOD,)
        self.method_index: dict[str, int] = {m: i for i, m in enumerate(config.known_methods)}
        self.other_method = len(config.known_methods)
        d = len(config.duration_buckets) + 1
        s = len(config.size_buckets) + 1
        # offsets of the four histograms inside a series list, then of the four sums
        self._off_ttfb = d
        self._off_rx = 2 * d
        self._off_tx = 2 * d + s
        self._off_sums = 2 * d + 2 * s
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
        # canonical key -> series; and raw key -> the series it maps to (the fast path).
        # Both are only ever inserted into, under the lock; readers read without it (a dict
        # read never sees a half-done insert in CPython).
        self._series: dict[tuple[int, object, object, object], list[float]] = {}
        self._by_raw: dict[tuple[int, str, int, str], list[float]] = {}
        self._routes = _Cap(config.max_routes, (UNMATCHED_ROUTE,))
        self._statuses = _Cap(config.max_status_codes)
        self._errors = _Cap(config.max_error_types, ("",))
        self.finish = self._build_finish()

    # -- request path ----------------------------------------------------------------------

    def enter(self, method: int) -> None:
        """A request with method index ``method`` starts."""
        next(self.started[method])

    def _build_finish(self) -> Callable[[int, str, int, str, float, float, int, int], None]:
        # A closure over locals rather than a method: it runs once per request, and local
        # loads are several times cheaper than the dozen attribute loads a method would do.
        acquire, release = self._lock.acquire, self._lock.release
        by_raw = self._by_raw
        series_for = self._series_for
        dur = self._dur
        size = self._size
        o_ttfb, o_rx, o_tx = self._off_ttfb, self._off_rx, self._off_tx
        s_dur = self._off_sums
        s_ttfb, s_rx, s_tx = s_dur + 1, s_dur + 2, s_dur + 3

        def finish(method: int, route: str, status: int, error: str, duration: float,
                   ttfb: float, received: int, sent: int) -> None:
            """A request ended: record it (``ttfb`` < 0: no body byte was sent)."""
            key = (method, route, status, error)
            series = by_raw.get(key)
            if series is None:
                series = series_for(key)
            if duration < 0.0:
                duration = 0.0
            i_dur = bisect_left(dur, duration)
            # The common cases skip a search: an empty request body, and a response sent in
            # one body message (its first byte left with its last, so ttfb == duration).
            i_rx = o_rx + bisect_left(size, received) if received else o_rx
            i_tx = o_tx + bisect_left(size, sent)
            if ttfb < 0.0:
                i_ttfb = -1
            elif ttfb == duration:
                i_ttfb = o_ttfb + i_dur
            else:
                i_ttfb = o_ttfb + bisect_left(dur, ttfb)
            # acquire/release rather than "with": measurably cheaper on this path, and
            # nothing between them can raise (fixed indexes into a preallocated list).
            acquire()
            try:
                series[i_dur] += 1
                series[s_dur] += duration
                series[i_rx] += 1
                if received:
                    series[s_rx] += received
                series[i_tx] += 1
                series[s_tx] += sent
                if i_ttfb >= 0:
                    series[i_ttfb] += 1
                    series[s_ttfb] += ttfb
            finally:
                release()

        return finish

    def _series_for(self, raw: tuple[int, str, int, str]) -> list[float]:
        """Slow path: cap every label, find or create the series, remember the raw key.

        Every label is made a label value first (:func:`mlprobe.stats._labels.label_value`: valid
        UTF-8, bounded length), so raw values that render alike share one series.
        """
        method, route, status, error = raw
        key = (method, self._routes.admit(label_value(route)),
               self._statuses.admit(label_value(status)), self._errors.admit(label_value(error)))
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = [0] * (self._off_sums + 4)  # type: ignore[list-item]
                series[self._off_sums:] = [0.0] * 4
                self._series[key] = series
            # Raw keys past the caps are remembered only while the alias table is small, so
            # memory stays bounded even if a route_resolver returned unbounded values.
            if len(self._by_raw) < _MAX_ALIASES:
                self._by_raw[raw] = series
            return series

    # -- collect path ----------------------------------------------------------------------

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report every HTTP series (runs on the scraper's thread)."""
        with self._lock:
            rows = [(key, list(series)) for key, series in self._series.items()]
        # Read the started counts after the finished ones, so active is never negative.
        started = [_count_value(c) for c in self.started]
        finished = [0] * len(started)
        d = self._off_ttfb
        for key, v in rows:
            finished[key[0]] += sum(v[0:d])
        # a method appears once it has been seen: no zero series for methods never used
        builder.add("http_server_active_requests", [
            Sample((("http_request_method", self.method_labels[i]),), float(max(0, n - finished[i])))
            for i, n in enumerate(started) if n])
        if not rows:
            return
        d, s = self._off_ttfb, self._off_tx - self._off_rx
        o = self._off_sums
        durations, ttfbs, received, sent = [], [], [], []
        for (method, route, status, error), v in sorted(rows, key=_sort_key):
            labels = (("http_request_method", self.method_labels[method]),
                      ("http_route", str(route)),
                      ("http_response_status_code", str(status)),
                      ("error_type", str(error)))
            durations.append(HistogramSample(labels, self._dur, tuple(v[0:d]), v[o]))
            if any(v[d:2 * d]):
                ttfbs.append(HistogramSample(labels, self._dur, tuple(v[d:2 * d]), v[o + 1]))
            rx = self._off_rx
            received.append(HistogramSample(labels, self._size, tuple(v[rx:rx + s]),
                                            float(v[o + 2])))
            tx = self._off_tx
            sent.append(HistogramSample(labels, self._size, tuple(v[tx:tx + s]),
                                        float(v[o + 3])))
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
