"""mlprobe snapshots to OpenTelemetry ``Metric`` objects, cumulative or delta.

The data model (names, units, attribute keys from the catalogue, :mod:`mlprobe.snapshot`):

- counters are monotonic sums, with integer values;
- histograms keep mlprobe's bucket boundaries (OTLP explicit buckets are upper-inclusive, as
  Prometheus ``le``); min and max are not known, so they are left unset;
- gauges are gauges, except those the catalogue marks ``updown`` (active requests, predictions
  in flight), which are non-monotonic sums, as the HTTP semantic conventions define
  ``http.server.active_requests``;
- the summary family (``mlprobe_feature_quantile``) is three gauges: the quantiles, with a
  ``quantile`` attribute written as Prometheus writes its label (``"0.05"``), and
  ``<name>.count`` / ``<name>.sum`` of the same window. The Python SDK's data model and OTLP
  encoders have no summary type, and OTLP's ``SummaryDataPoint`` requires non-negative
  quantile values while features go below zero. Through a collector's Prometheus exporter the
  three gauges become exactly the summary's series.

Start times come from the snapshot (``start_time_unix_nano``, the stream's start). For delta
temporality the translator keeps, per stream, the values and time of the last export that
succeeded: a delta point covers (that time, now]. A stream seen for the first time, whose
start time changed, or whose value went down (a reset: the process forked, the source was
recreated) starts again from its own start time with its whole value. The state is committed
only after the export succeeded, so a failed export's interval is included in the next one;
it holds one entry per series, which mlprobe bounds by construction.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.metrics.export import Gauge as OtelGauge
from opentelemetry.sdk.metrics.export import Histogram as OtelHistogram
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
)

from ..errors import report_internal_error
from ..snapshot import HistogramSample, MetricFamily, MetricSpec, Sample, SummarySample

__all__ = ["Temporalities", "Translation", "Translator", "temporalities_of"]

CUMULATIVE = AggregationTemporality.CUMULATIVE
DELTA = AggregationTemporality.DELTA


@dataclass(frozen=True, slots=True)
class Temporalities:
    """The temporality of each OTel type mlprobe produces (gauges have none)."""

    sum: AggregationTemporality = CUMULATIVE
    updown_sum: AggregationTemporality = CUMULATIVE
    histogram: AggregationTemporality = CUMULATIVE


def temporalities_of(exporter: Any) -> Temporalities:
    """The temporalities an SDK ``MetricExporter`` prefers (cumulative where it says nothing).

    The SDK keeps the preference in ``MetricExporter._preferred_temporality``, which its own
    ``PeriodicExportingMetricReader`` reads the same way (there is no public accessor); keys
    are instrument classes. mlprobe's counters are read like a ``Counter``, its histograms
    like a ``Histogram``, its up-down gauges like an ``UpDownCounter``.
    """
    preferred = getattr(exporter, "_preferred_temporality", None) or {}
    return Temporalities(sum=preferred.get(Counter, CUMULATIVE),
                         updown_sum=preferred.get(UpDownCounter, CUMULATIVE),
                         histogram=preferred.get(Histogram, CUMULATIVE))


# Per stream (metric name, labels): its start time, last exported value(s), and when.
_Key = tuple[str, tuple[tuple[str, str], ...]]
_State = tuple[int, Any, int]


@dataclass
class Translation:
    """One translation: the metrics, and the delta state to commit if their export succeeds."""

    metrics: list[Metric]
    time_unix_nano: int
    pending: dict[_Key, _State] = field(default_factory=dict)


class Translator:
    """Builds OTel metrics from registry families, keeping the delta state between exports.

    Not thread-safe: one exporter calls it, under its export lock.
    """

    def __init__(self, temporalities: Temporalities) -> None:
        self.temporalities = temporalities
        self._state: dict[_Key, _State] = {}
        self._created = time.time_ns()  # start of streams whose sample has no start time

    def translate(self, families: Iterable[MetricFamily], now: int | None = None
                  ) -> Translation:
        """Translate ``families``; a family that cannot be translated is counted as an
        internal error and left out (the others still go)."""
        out = Translation([], time.time_ns() if now is None else now)
        for family in families:
            try:
                out.metrics.extend(self._family(family, out))
            except Exception as exc:  # noqa: BLE001 - one family must not cost the export
                report_internal_error("otel.translate", exc)
        return out

    def commit(self, translation: Translation) -> None:
        """Advance the delta baselines to ``translation`` (its export succeeded)."""
        self._state.update(translation.pending)

    def reset(self) -> None:
        """Forget every baseline (a fork child starts its own streams)."""
        self._state = {}
        self._created = time.time_ns()

    # -- per family ------------------------------------------------------------------------

    def _family(self, family: MetricFamily, out: Translation) -> list[Metric]:
        spec = family.spec
        otel_type = spec.otel_type
        if otel_type == "histogram":
            points = [self._histogram_point(family.name, s, spec, out) for s in family.samples]
            data: Any = OtelHistogram(points, self.temporalities.histogram)
        elif otel_type == "sum" or otel_type == "updown_sum":
            temporality = getattr(self.temporalities, otel_type)
            points = [self._sum_point(family.name, s, spec, out, temporality)
                      for s in family.samples]
            data = Sum(points, temporality, is_monotonic=otel_type == "sum")
        elif otel_type == "gauge":
            points = [self._gauge_point(_sample(s, Sample), spec, out) for s in family.samples]
            data = OtelGauge(points)
        else:
            return _summary_gauges(family, spec, out.time_unix_nano)
        if not points:
            return []
        return [Metric(spec.otel_name, spec.description, spec.unit, data)]

    def _start(self, sample: Sample | HistogramSample | SummarySample) -> int:
        return sample.start_time_unix_nano or self._created

    def _gauge_point(self, sample: Sample, spec: MetricSpec, out: Translation
                     ) -> NumberDataPoint:
        return NumberDataPoint(spec.otel_attributes(sample.labels), self._start(sample),
                               out.time_unix_nano, float(sample.value))

    def _sum_point(self, name: str, sample: Any, spec: MetricSpec, out: Translation,
                   temporality: AggregationTemporality) -> NumberDataPoint:
        sample = _sample(sample, Sample)
        value = _number(sample.value)
        start = self._start(sample)
        point_start = start
        if temporality is DELTA:
            key = (name, sample.labels)
            previous = self._state.get(key)
            if spec.otel_type == "updown_sum":  # may go down: only a new start is a reset
                fresh = previous is None or previous[0] != start
            else:
                fresh = previous is None or previous[0] != start or value < previous[1]
            out.pending[key] = (start, value, out.time_unix_nano)
            if not fresh:
                assert previous is not None
                point_start, value = previous[2], value - previous[1]
        return NumberDataPoint(spec.otel_attributes(sample.labels), point_start,
                               out.time_unix_nano, value)

    def _histogram_point(self, name: str, sample: Any, spec: MetricSpec, out: Translation
                         ) -> HistogramDataPoint:
        sample = _sample(sample, HistogramSample)
        if len(sample.bucket_counts) != len(sample.bounds) + 1:
            raise ValueError(f"{name}: a histogram needs one count per bound plus +Inf")
        counts = [int(c) for c in sample.bucket_counts]
        total = float(sample.sum)
        start = self._start(sample)
        point_start = start
        if self.temporalities.histogram is DELTA:
            key = (name, sample.labels)
            previous = self._state.get(key)
            out.pending[key] = (start, (counts, total), out.time_unix_nano)
            if previous is not None and previous[0] == start:
                old_counts, old_total = previous[1]
                diff = [c - o for c, o in zip(counts, old_counts)]
                if len(old_counts) == len(counts) and min(diff) >= 0:
                    point_start, counts, total = previous[2], diff, total - old_total
        return HistogramDataPoint(
            attributes=spec.otel_attributes(sample.labels), start_time_unix_nano=point_start,
            time_unix_nano=out.time_unix_nano, count=sum(counts), sum=total,
            bucket_counts=counts, explicit_bounds=[float(b) for b in sample.bounds],
            min=None, max=None)  # type: ignore[arg-type]  # unknown: left unset in OTLP


def _summary_gauges(family: MetricFamily, spec: MetricSpec, now: int) -> list[Metric]:
    quantiles, counts, sums = [], [], []
    for s in family.samples:
        sample = _sample(s, SummarySample)
        attributes = spec.otel_attributes(sample.labels)
        start = sample.start_time_unix_nano
        for q, value in sample.quantiles:
            quantiles.append(NumberDataPoint({**attributes, "quantile": repr(float(q))}, start,
                                             now, float(value)))
        counts.append(NumberDataPoint(attributes, start, now, int(sample.count)))
        sums.append(NumberDataPoint(attributes, start, now, float(sample.sum)))
    if not counts:
        return []
    name, unit, description = spec.otel_name, spec.unit, spec.description
    return [Metric(name, description, unit, OtelGauge(quantiles)),
            Metric(name + ".count", "Values in the window the quantiles of "
                   f"{name} describe.", "{value}", OtelGauge(counts)),
            Metric(name + ".sum", f"Sum of the values in the window the quantiles of {name} "
                   "describe.", unit, OtelGauge(sums))]


def _sample(sample: object, kind: type) -> Any:
    if type(sample) is not kind:
        raise TypeError(f"expected a {kind.__name__}, got {type(sample).__name__}")
    return sample


def _number(value: float) -> int | float:
    # Counts are integers: OTLP carries them as ints (as_int), exactly.
    value = float(value)
    return int(value) if value.is_integer() else value

