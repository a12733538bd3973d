"""Immutable, read-side views of what mlprobe has recorded: what an exporter reads.

``Registry.collect()`` returns a list of :class:`MetricFamily`; an exporter translates them
(``mlprobe.exporters.prometheus`` into prometheus_client families, ``mlprobe.exporters.otel``
into OpenTelemetry ``MetricsData``). Nothing here is touched on the request path. A family's
kind says which sample type it holds: :class:`Sample` for counters and gauges,
:class:`HistogramSample` for histograms, :class:`SummarySample` for summaries.

Names are the Prometheus base names of the metric catalogue (the README's metric table;
``mlprobe_predictions`` for the counter exposed as ``mlprobe_predictions_total``); ``unit`` is
the UCUM unit, as OpenTelemetry names it. :func:`metric_spec` gives the rest of a family's
catalogue entry: its OpenTelemetry name and attribute keys, chosen so that the usual
OTel-to-Prometheus conversion gives back the Prometheus name and label names exactly.

Start times
-----------
Every sample carries ``start_time_unix_nano``: the wall-clock time (nanoseconds since the Unix
epoch, from ``time.time_ns()``) at which the *stream* it belongs to started counting from zero.
The registry records one start time per source (a probe, the HTTP metrics of an ASGI app) when
the source is created, and a new one when the source is reset in a child process after
``fork``; it stamps every sample the source reports with it. A source may stamp its own samples
instead; the registry keeps a start time that is already set. ``mlprobe_internal_errors`` counts
since mlprobe was imported, so its samples carry that time.

What it means for readers:

- counters and histograms only grow between two samples with the same start time. A sample
  whose start time differs from the previous one's (or whose value went down) belongs to a new
  stream: the counts restarted from zero at that time. That is how an exporter computes deltas
  and detects resets, and what an OTLP cumulative point's ``start_time_unix_nano`` is;
- gauges and summaries carry it too, as the time since which the series exists (OTLP ignores it
  for gauges);
- ``0`` means unknown: a sample built outside a registry, e.g. in a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from ._catalog import CATALOG, MetricKind, MetricSpec, exposed_name
from .stats._labels import MAX_LABEL_CHARS, label_value

__all__ = ["HistogramSample", "LabelSet", "MAX_LABEL_CHARS", "MetricFamily", "MetricKind",
           "MetricSpec", "Sample", "SummarySample", "exposed_name", "label_value", "metric_spec",
           "metric_specs"]

LabelSet = tuple[tuple[str, str], ...]
"""Label pairs in a fixed order, e.g. ``(("model", "churn"), ("model_version", "3"))``.

Every value is a label value by :func:`label_value`'s rule (valid UTF-8, at most
:data:`MAX_LABEL_CHARS` characters), applied where the value was created; an exporter may
apply it once more as a last resort (it is idempotent)."""



@dataclass(frozen=True, slots=True)
class Sample:
    """One counter or gauge value for one label set (start time: see the module docstring)."""

    labels: LabelSet
    value: float
    start_time_unix_nano: int = 0


@dataclass(frozen=True, slots=True)
class HistogramSample:
    """One histogram for one label set.

    ``bucket_counts`` are *non-cumulative*: ``bucket_counts[i]`` counts values ``v`` with
    ``bounds[i-1] < v <= bounds[i]``, and the last entry counts values above ``bounds[-1]``
    (the ``+Inf`` bucket), so ``len(bucket_counts) == len(bounds) + 1``.
    """

    labels: LabelSet
    bounds: tuple[float, ...]
    bucket_counts: tuple[int, ...]
    sum: float
    start_time_unix_nano: int = 0

    @property
    def count(self) -> int:
        """Total number of observations."""
        return sum(self.bucket_counts)

    def cumulative_counts(self) -> list[int]:
        """Cumulative counts per upper bound, ending with the ``+Inf`` bucket (Prometheus ``le``)."""
        total = 0
        out = []
        for c in self.bucket_counts:
            total += c
            out.append(total)
        return out


@dataclass(frozen=True, slots=True)
class SummarySample:
    """Quantiles of one population for one label set, with its count and sum.

    The shape of a Prometheus summary and of an OTLP ``SummaryDataPoint``: ``quantiles`` holds
    ``(q, value)`` pairs with ``q`` in [0, 1], in increasing ``q``; a quantile that is not
    defined (an empty population) is left out rather than reported as NaN. ``count`` and
    ``sum`` describe the same population as the quantiles. For mlprobe's rolling-window
    summaries that population is the window, so unlike a prometheus_client ``Summary`` they
    can go down as old values leave it: read them as gauges, not with ``rate()``.
    """

    labels: LabelSet
    quantiles: tuple[tuple[float, float], ...]
    count: int
    sum: float
    start_time_unix_nano: int = 0


@dataclass(frozen=True, slots=True)
class MetricFamily:
    """All samples of one metric across every probe of a registry."""

    name: str
    kind: MetricKind
    description: str
    unit: str
    samples: tuple[Union[Sample, HistogramSample, SummarySample], ...]

    @property
    def exposed_name(self) -> str:
        """The name as Prometheus shows it (counters gain ``_total``)."""
        return exposed_name(self.name, self.kind)

    @property
    def spec(self) -> MetricSpec:
        """This family's catalogue entry (OpenTelemetry name, attribute keys, ...)."""
        return CATALOG[self.name]


def metric_spec(name: str) -> MetricSpec:
    """The catalogue entry of metric ``name`` (a Prometheus base name, e.g. a family's name):
    its kind, unit, labels, description, OpenTelemetry name and attribute keys.

    Raises:
        KeyError: ``name`` is not one of mlprobe's metrics.
    """
    return CATALOG[name]


def metric_specs() -> tuple[MetricSpec, ...]:
    """Every metric mlprobe can export, in name order (the README's metric table)."""
    return tuple(CATALOG[name] for name in sorted(CATALOG))

