"""The raw, mergeable state of the HTTP server series, and how it is reported.

:class:`HttpState` is what :meth:`mlprobe._http_metrics.HttpMetrics.state` returns: every
series as its flat list of counts and sums (:class:`HttpConfig`), the requests started per
method, and when each capped label value was first seen. States of several processes merge
exactly (series add, starts add, label tables unite and are capped again, keeping the values
seen first); a dead process's state keeps its series but no active request
(:meth:`HttpState.archived`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import _exact
from ._label_table import OVERFLOW, kept_values, merge_first_seen
from ._registry import FamilyBuilder
from .snapshot import HistogramSample, Sample

__all__ = ["HttpConfig", "HttpState", "OTHER_METHOD", "SeriesKey", "UNMATCHED_ROUTE"]

UNMATCHED_ROUTE = "__unmatched__"
"""Route label for requests no route template matched (404s, unrouted frameworks)."""

SeriesKey = tuple[int, str, str, str]
"""``(method index, route, status code, error type)``, each a capped label value."""


OTHER_METHOD = "_OTHER"
"""Method label for request methods outside the known set (semconv)."""


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Settings that shape the HTTP series (middlewares sharing a registry must agree), and
    where each count sits in a series list.

    A series is ``d`` duration buckets of responses sent in several messages (or none), ``d``
    duration buckets of one-message responses, ``d`` time-to-first-byte buckets of the former,
    ``s`` request-size buckets of non-empty bodies, ``s`` response-size buckets, then five
    sums in the same order (``d``/``s``: bucket bounds plus one). The one-message and
    empty-body parts are what keep a request down to four increments; reporting adds them back
    (see :class:`~mlprobe._http_metrics.HttpMetrics`).
    """

    duration_buckets: tuple[float, ...]
    size_buckets: tuple[float, ...]
    known_methods: tuple[str, ...]
    max_routes: int
    max_status_codes: int
    max_error_types: int

    @property
    def method_labels(self) -> tuple[str, ...]:
        """The method label of each method index: the known methods, then ``_OTHER``."""
        return self.known_methods + (OTHER_METHOD,)

    @property
    def d(self) -> int:
        """Duration (and TTFB) buckets, +Inf included."""
        return len(self.duration_buckets) + 1

    @property
    def s(self) -> int:
        """Size buckets, +Inf included."""
        return len(self.size_buckets) + 1

    @property
    def one(self) -> int:
        """Offset of the one-message duration buckets."""
        return self.d

    @property
    def ttfb(self) -> int:
        """Offset of the time-to-first-byte buckets."""
        return 2 * self.d

    @property
    def rx(self) -> int:
        """Offset of the request-size buckets."""
        return 3 * self.d

    @property
    def tx(self) -> int:
        """Offset of the response-size buckets."""
        return 3 * self.d + self.s

    @property
    def sums(self) -> int:
        """Offset of the five sums."""
        return 3 * self.d + 2 * self.s

    def empty_series(self) -> list[float]:
        """A new series with every count and sum at zero."""
        return [0] * self.sums + [0.0] * 5  # type: ignore[list-item]


class HttpState:
    """Raw HTTP series of one registry (see the module docstring)."""

    __slots__ = ("errors_seen", "layout", "routes_seen", "series", "started", "statuses_seen")

    def __init__(self, layout: HttpConfig, series: dict[SeriesKey, list[float]],
                 started: list[int], routes_seen: dict[str, int],
                 statuses_seen: dict[str, int], errors_seen: dict[str, int]) -> None:
        self.layout = layout
        self.series = series
        self.started = started
        self.routes_seen = routes_seen
        self.statuses_seen = statuses_seen
        self.errors_seen = errors_seen

    def finished(self) -> list[int]:
        """Requests finished per method (the duration histograms' counts)."""
        finished = [0] * len(self.started)
        end = 2 * self.layout.d
        for key, values in self.series.items():
            finished[key[0]] += int(sum(values[0:end]))
        return finished

    def merge(self, other: HttpState) -> HttpState:
        """Add ``other``'s series and starts (in place); returns ``self``."""
        series = self.series
        for key, values in other.series.items():
            mine = series.get(key)
            series[key] = list(values) if mine is None else self._add(mine, values)
        self.started = [a + b for a, b in zip(self.started, other.started)]
        merge_first_seen(self.routes_seen, other.routes_seen)
        merge_first_seen(self.statuses_seen, other.statuses_seen)
        merge_first_seen(self.errors_seen, other.errors_seen)
        self._cap()
        return self

    def _add(self, a: list[Any], b: list[Any]) -> list[Any]:
        # counts add as ints; the five sums exactly (see mlprobe._exact: they are counters)
        n = self.layout.sums
        return [x + y for x, y in zip(a[:n], b[:n])] + [_exact.add(x, y)
                                                        for x, y in zip(a[n:], b[n:])]

    def _cap(self) -> None:
        # The union of several processes' label values may pass a cap: fold the values seen
        # last into __other__ (the free values, unmatched route and "no error", stay).
        layout = self.layout
        maps = []
        for slot, seen, limit, free in (
                (1, self.routes_seen, layout.max_routes, {UNMATCHED_ROUTE}),
                (2, self.statuses_seen, layout.max_status_codes, set()),
                (3, self.errors_seen, layout.max_error_types, {""})):
            free_set = frozenset({OVERFLOW, *free})
            counted = {v: t for v, t in seen.items() if v not in free_set}
            if len(counted) <= limit:
                continue
            keep = kept_values(counted, limit) | free_set
            maps.append((slot, keep))
            for value in [v for v in seen if v not in keep]:
                del seen[value]
        if not maps:
            return
        out: dict[SeriesKey, list[float]] = {}
        for key, values in self.series.items():
            parts = list(key)
            for slot, kept in maps:
                if parts[slot] not in kept:
                    parts[slot] = OVERFLOW
            new_key: SeriesKey = tuple(parts)  # type: ignore[assignment]
            mine = out.get(new_key)
            out[new_key] = values if mine is None else self._add(mine, values)
        self.series = out

    def archived(self) -> HttpState:
        """This state as a dead process leaves it: its requests count, none is active."""
        self.started = self.finished()
        return self

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data."""
        n = self.layout.sums
        return {"series": [[*key, list(values[:n]) + [_exact.to_plain(v) for v in values[n:]]]
                           for key, values in self.series.items()],
                "started": list(self.started), "routes_seen": dict(self.routes_seen),
                "statuses_seen": dict(self.statuses_seen), "errors_seen": dict(self.errors_seen)}

    @classmethod
    def from_dict(cls, layout: HttpConfig, data: Mapping[str, Any]) -> HttpState:
        """Rebuild a state of series with ``layout`` from :meth:`to_dict` output.

        Raises:
            ValueError, KeyError, TypeError: malformed data or series of another layout.
        """
        width = layout.sums + 5
        methods = len(layout.method_labels)
        series: dict[SeriesKey, list[float]] = {}
        for method, route, status, error, values in data["series"]:
            if not 0 <= int(method) < methods or len(values) != width:
                raise ValueError("a series of another layout")
            counts = [int(v) for v in values[:layout.sums]]
            series[(int(method), str(route), str(status), str(error))] = (
                counts + [_exact.from_plain(v) for v in values[layout.sums:]])  # type: ignore
        started = [int(n) for n in data["started"]]
        if len(started) != methods:
            raise ValueError("started counts of another set of methods")
        return cls(layout, series, started,
                   *({str(k): int(t) for k, t in data[name].items()}
                     for name in ("routes_seen", "statuses_seen", "errors_seen")))

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report every HTTP series, as the middleware's source does."""
        layout = self.layout
        labels_of = layout.method_labels
        finished = self.finished()
        # a method appears once it has been seen: no zero series for methods never used
        builder.add("http_server_active_requests", [
            Sample((("http_request_method", labels_of[i]),), float(max(0, n - finished[i])))
            for i, n in enumerate(self.started) if n])
        if not self.series:
            return
        d, s = layout.d, layout.s
        one, ttfb, rx, tx, o = layout.one, layout.ttfb, layout.rx, layout.tx, layout.sums
        dur, size = layout.duration_buckets, layout.size_buckets
        durations, ttfbs, received, sent = [], [], [], []
        for (method, route, status, error), v in sorted(self.series.items(), key=_sort_key):
            labels = (("http_request_method", labels_of[method]), ("http_route", route),
                      ("http_response_status_code", status), ("error_type", error))
            one_message = v[one:one + d]
            total = sum(v[0:d]) + sum(one_message)
            durations.append(HistogramSample(
                labels, dur, tuple(a + b for a, b in zip(v[0:d], one_message)),
                _sum(v[o], v[o + 1])))
            first_byte = tuple(a + b for a, b in zip(v[ttfb:ttfb + d], one_message))
            if any(first_byte):
                ttfbs.append(HistogramSample(labels, dur, first_byte, _sum(v[o + 1], v[o + 2])))
            sizes = list(v[rx:rx + s])
            sizes[0] += total - sum(sizes)  # the empty request bodies (see HttpConfig)
            received.append(HistogramSample(labels, size, tuple(sizes), _exact.to_float(v[o + 3])))
            sent.append(HistogramSample(labels, size, tuple(v[tx:tx + s]),
                                        _exact.to_float(v[o + 4])))
        builder.add("http_server_request_duration_seconds", durations)
        builder.add("http_server_request_body_size_bytes", received)
        builder.add("http_server_response_body_size_bytes", sent)
        if ttfbs:
            builder.add("http_server_time_to_first_byte_seconds", ttfbs)


def _sum(a: Any, b: Any) -> float:
    # Two parts of one reported sum: added as the single-process code always did (float
    # addition) unless the parts are exact merged sums, which are added exactly first.
    if type(a) is float and type(b) is float:
        return a + b
    return _exact.to_float(_exact.add(a, b))


def _sort_key(row: tuple[SeriesKey, list[float]]) -> tuple[str, ...]:
    method, route, status, error = row[0]
    return (route, str(method), status, error)
