"""OpenTelemetry test helpers: an in-memory exporter, and OTLP read the way a collector's
Prometheus exporter reads it, so tests compare pushed data with mlprobe's own exposition.

(Not a test module: it holds no tests.)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from prometheus_client.parser import text_string_to_metric_families

COLLECTOR_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "KiBy": "kibibytes",
                   "1": "", "%": "percent"}


class RecordingExporter(MetricExporter):
    """An in-memory SDK exporter: keeps every batch; can fail, or block until released."""

    def __init__(self, temporality: AggregationTemporality | None = None) -> None:
        preferred = None
        if temporality is not None:
            from opentelemetry.sdk.metrics import Counter, Histogram, UpDownCounter

            preferred = {Counter: temporality, Histogram: temporality,
                         UpDownCounter: AggregationTemporality.CUMULATIVE}
        super().__init__(preferred_temporality=preferred)
        self.batches: list[MetricsData] = []
        self.fail = False
        self.raise_error: BaseException | None = None
        self.gate: threading.Event | None = None  # when set: export waits for it
        self.calls = 0
        self.shutdowns = 0
        self.exported = threading.Event()

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        """Record the batch (or fail, or wait for the gate first)."""
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(30)
        if self.raise_error is not None:
            raise self.raise_error
        if self.fail:
            return MetricExportResult.FAILURE
        self.batches.append(metrics_data)
        self.exported.set()
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing buffered."""
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Count shutdowns."""
        self.shutdowns += 1


def otlp_json(data: MetricsData) -> dict[str, Any]:
    """``data`` as the OTLP exporters encode it, in OTLP/JSON form (what the sink writes)."""
    return json_format.MessageToDict(encode_metrics(data))


def otlp_metrics(request: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{OTel name: metric} of an OTLP/JSON export request."""
    return {m["name"]: m for rm in request.get("resourceMetrics", [])
            for sm in rm.get("scopeMetrics", []) for m in sm.get("metrics", [])}


def attribute_values(attributes: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """OTLP/JSON attributes as {key: Python value} (ints as int)."""
    out: dict[str, Any] = {}
    for a in attributes:
        (kind, value), = a["value"].items()
        out[a["key"]] = int(value) if kind == "intValue" else value
    return out


def collector_name(name: str, unit: str, kind: str) -> str:
    """The Prometheus name a collector's translator builds (see tests/test_catalog.py)."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", name) if t]
    main = unit.split("/", 1)[0].strip()
    if main and "{" not in main and "}" not in main:
        word = COLLECTOR_UNITS.get(main, main)
        if word and word not in tokens:
            tokens.append(word)
    if kind == "sum":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind == "gauge":
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    return "_".join(tokens)


Series = tuple[str, frozenset[tuple[str, Any]]]


def _labels(attributes: dict[str, Any]) -> dict[str, Any]:
    return {re.sub(r"[^A-Za-z0-9]+", "_", k): str(v) for k, v in attributes.items()}


def as_prometheus(request: dict[str, Any]) -> dict[Series, float]:
    """Cumulative OTLP/JSON read as a collector's Prometheus exporter shows it: {(sample name,
    labels): value}, ``le`` as a float, empty labels absent."""
    out: dict[Series, float] = {}
    for name, m in otlp_metrics(request).items():
        unit = m.get("unit", "")
        if "sum" in m:
            kind = "sum" if m["sum"].get("isMonotonic") else "gauge"
            points, prom = m["sum"].get("dataPoints", []), None
        elif "gauge" in m:
            kind, points = "gauge", m["gauge"].get("dataPoints", [])
        else:
            kind, points = "histogram", m["histogram"].get("dataPoints", [])
        prom = collector_name(name, unit, kind)
        for p in points:
            labels = _labels(attribute_values(p.get("attributes", [])))
            if kind != "histogram":
                value = float(p["asInt"]) if "asInt" in p else float(p.get("asDouble", 0.0))
                out[(prom, frozenset(labels.items()))] = value
                continue
            cumulative = 0
            bounds = [float(b) for b in p.get("explicitBounds", [])] + [float("inf")]
            for bound, count in zip(bounds, p.get("bucketCounts", [])):
                cumulative += int(count)
                out[(prom + "_bucket", frozenset({**labels, "le": bound}.items()))] = cumulative
            out[(prom + "_count", frozenset(labels.items()))] = float(p.get("count", 0))
            out[(prom + "_sum", frozenset(labels.items()))] = float(p.get("sum", 0.0))
    return out


def exposition_samples(exposition: str, prefixes: tuple[str, ...] = ("mlprobe_", "http_server_")
                       ) -> dict[Series, float]:
    """mlprobe's samples of a Prometheus text exposition in the same form as as_prometheus."""
    out: dict[Series, float] = {}
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if not s.name.startswith(prefixes):
                continue
            labels: dict[str, Any] = {k: v for k, v in s.labels.items() if v != ""}
            if "le" in labels:
                labels["le"] = float(labels["le"])
            out[(s.name, frozenset(labels.items()))] = float(s.value)
    return out
