"""HTTP server metrics: the recorder the ASGI middleware writes into, and its collect side.

One :class:`HttpMetrics` per registry holds every HTTP series. A request touches it twice:
:meth:`HttpMetrics.enter` when it starts and :meth:`HttpMetrics.finish` when its last body
message has been sent (or it failed). Each edge is one short lock round trip; the bucket
searches and label lookups happen before the lock is taken.

Series are keyed by ``(method index, route, status code, error type)``. Every label value is
bounded: methods by construction (the known set plus ``_OTHER``), and routes, status codes and
error types by a distinct-value cap past which new values count as ``__other__``. So the
number of series is bounded whatever clients send.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass

from ._instruments import OVERFLOW
from ._registry import FamilyBuilder
from .snapshot import HistogramSample, Sample

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


class _Cap:
    """A bounded set of label values: values past ``limit`` map to :data:`OVERFLOW`.

    Readers call :meth:`get` without a lock (a dict read is atomic); :meth:`admit` inserts
    under the lock, copy-on-write, so a reader never sees a dict being resized.
    """

    __slots__ = ("_lock", "_values", "limit")

    def __init__(self, limit: int, preset: Sequence[object] = ()) -> None:
        # Preset values (the unmatched route, "no error") and the overflow value itself are
        # free: they never crowd out real values and never overflow.
        self._values: dict[object, object] = {v: v for v in preset}
        self._values[OVERFLOW] = OVERFLOW
        self.limit = limit + len(self._values)
        self._lock = threading.Lock()

    def get(self, value: object) -> object | None:
        return self._values.get(value)

    def admit(self, value: object) -> object:
        with self._lock:
            values = self._values
            found = values.get(value)
            if found is not None:
                return found
            if len(values) >= self.limit:
                return OVERFLOW
            self._values = {**values, value: value}
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
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget every series (fork child, tests)."""
        config = self.config
        with self._lock:
            self._active = [0] * len(self.method_labels)
            self._seen = [False] * len(self.method_labels)
            self._series: dict[tuple[int, object, object, object], list[float]] = {}
        self._routes = _Cap(config.max_routes, (UNMATCHED_ROUTE,))
        self._statuses = _Cap(config.max_status_codes)
        self._errors = _Cap(config.max_error_types, ("",))

    # -- request path ----------------------------------------------------------------------

    def enter(self, method: int) -> None:
        """A request with method index ``method`` starts."""
        with self._lock:
            self._active[method] += 1
            self._seen[method] = True

    def finish(self, method: int, route: str, status: int, error: str, duration: float,
               ttfb: float, received: int, sent: int) -> None:
        """A request ended: record it and count it out of the active requests.

        ``ttfb`` is negative when no body byte was sent (then it is not recorded).
        """
        r = self._routes.get(route)
        if r is None:
            r = self._routes.admit(route)
        c = self._statuses.get(status)
        if c is None:
            c = self._statuses.admit(status)
        e = self._errors.get(error)
        if e is None:
            e = self._errors.admit(error)
        key = (method, r, c, e)
        series = self._series.get(key)
        if series is None:
            series = self._new_series(key)
        if duration < 0.0:
            duration = 0.0
        i_dur = bisect_left(self._dur, duration)
        i_rx = self._off_rx + bisect_left(self._size, received)
        i_tx = self._off_tx + bisect_left(self._size, sent)
        sums = self._off_sums
        if ttfb >= 0.0:
            i_ttfb = self._off_ttfb + bisect_left(self._dur, ttfb)
            with self._lock:
                self._active[method] -= 1
                series[i_dur] += 1
                series[i_ttfb] += 1
                series[i_rx] += 1
                series[i_tx] += 1
                series[sums] += duration
                series[sums + 1] += ttfb
                series[sums + 2] += received
                series[sums + 3] += sent
        else:
            with self._lock:
                self._active[method] -= 1
                series[i_dur] += 1
                series[i_rx] += 1
                series[i_tx] += 1
                series[sums] += duration
                series[sums + 2] += received
                series[sums + 3] += sent

    def _new_series(self, key: tuple[int, object, object, object]) -> list[float]:
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = [0] * (self._off_sums + 4)  # type: ignore[list-item]
                series[self._off_sums:] = [0.0] * 4
                # copy-on-write: finish() reads the table without the lock
                self._series = {**self._series, key: series}
            return series

    # -- collect path ----------------------------------------------------------------------

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report every HTTP series (runs on the scraper's thread)."""
        with self._lock:
            active = list(self._active)
            seen = list(self._seen)
            rows = [(key, list(series)) for key, series in self._series.items()]
        builder.add("http_server_active_requests", [
            Sample((("http_request_method", self.method_labels[i]),), float(n))
            for i, n in enumerate(active) if seen[i]])
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


def _sort_key(row: tuple[tuple[int, object, object, object], list[float]]) -> tuple[str, ...]:
    method, route, status, error = row[0]
    return (str(route), str(method), str(status), str(error))
