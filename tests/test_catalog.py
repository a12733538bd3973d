"""One catalogue, two namings: the OpenTelemetry names, units and attribute keys convert to
exactly the Prometheus names and labels, under both conversions users meet.

The two conversions:
- the OpenTelemetry Collector's (its Prometheus and remote-write exporters; the Prometheus
  OTLP receiver uses the same rules): name split into alphanumeric tokens, the unit's
  Prometheus word appended unless the name already holds it (units in braces are dropped),
  ``total`` appended to monotonic sums, ``ratio`` appended to gauges whose unit is ``1``;
  reimplemented below (Go code, not importable) and checked on the conversions the
  collector's documentation gives;
- the OTel Python SDK's Prometheus reader: its own ``_mapping`` functions plus
  prometheus_client's family classes (which append the unit and ``_total``), imported as they
  are.
"""

from __future__ import annotations

import re

import pytest
from opentelemetry.exporter.prometheus._mapping import (
    map_unit,
    sanitize_attribute,
    sanitize_full_name,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from mlprobe.snapshot import MetricSpec, metric_spec, metric_specs

_COLLECTOR_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes", "KiBy": "kibibytes",
                    "1": "", "%": "percent"}


def collector_name(name: str, unit: str, otel_type: str) -> str:
    """The Prometheus name the collector's translator builds (with metric suffixes on)."""
    tokens = [t for t in re.split(r"[^A-Za-z0-9]+", name) if t]
    main = unit.split("/", 1)[0].strip()
    if main and "{" not in main and "}" not in main:
        word = _COLLECTOR_UNITS.get(main, main)
        if word and word not in tokens:
            tokens.append(word)
    if otel_type == "sum":
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and otel_type in ("gauge", "summary_gauges"):
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    return "_".join(tokens)


def sdk_reader_name(name: str, unit: str, otel_type: str) -> str:
    """The Prometheus sample name the OTel SDK's Prometheus reader exposes (counters with
    ``_total``)."""
    family_class = {"sum": CounterMetricFamily, "histogram": HistogramMetricFamily}.get(
        otel_type, GaugeMetricFamily)
    family = family_class(sanitize_full_name(name), "help", unit=map_unit(unit))
    return family.name + "_total" if otel_type == "sum" else family.name


def test_the_collector_rules_give_the_documented_conversions():
    """The reimplementation of the collector's translator reproduces its documented examples."""
    assert collector_name("http.server.request.duration", "s", "histogram") == \
        "http_server_request_duration_seconds"
    assert collector_name("system.cpu.utilization", "1", "gauge") == \
        "system_cpu_utilization_ratio"
    assert collector_name("http.server.active_requests", "{request}", "updown_sum") == \
        "http_server_active_requests"
    assert collector_name("system.network.io", "By", "sum") == "system_network_io_bytes_total"
    assert collector_name("requests.total", "{request}", "sum") == "requests_total"


def _streams(spec: MetricSpec) -> list[tuple[str, str, str, str]]:
    """(OTel name, unit, OTel type, expected Prometheus sample name) of each OTel stream."""
    if spec.otel_type == "summary_gauges":
        return [(spec.otel_name, spec.unit, "gauge", spec.name),
                (spec.otel_name + ".count", "{value}", "gauge", spec.name + "_count"),
                (spec.otel_name + ".sum", spec.unit, "gauge", spec.name + "_sum")]
    return [(spec.otel_name, spec.unit, spec.otel_type, spec.exposed_name)]


@pytest.mark.parametrize("spec", metric_specs(), ids=lambda s: s.name)
def test_otel_name_converts_to_the_prometheus_name_under_both_conversions(spec):
    """Collector and SDK reader both turn the OTel name and unit into the Prometheus name."""
    for name, unit, otel_type, expected in _streams(spec):
        assert collector_name(name, unit, otel_type) == expected, name
        assert sdk_reader_name(name, unit, otel_type) == expected, name


@pytest.mark.parametrize("spec", metric_specs(), ids=lambda s: s.name)
def test_attribute_keys_convert_to_the_label_names(spec):
    """Every attribute key sanitises (dots to underscores) to its label name."""
    assert len(spec.attributes) == len(spec.labels)
    for label, attribute in zip(spec.labels, spec.attributes):
        assert sanitize_attribute(attribute) == label
        assert "_".join(t for t in re.split(r"[^A-Za-z0-9]+", attribute) if t) == label


@pytest.mark.parametrize("spec", metric_specs(), ids=lambda s: s.name)
def test_otel_names_follow_the_otel_naming_rules(spec):
    """OTel names are dotted lower-case with no unit word or _total at the end; every metric
    has a description (the Prometheus and OTLP help text)."""
    assert re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+", spec.otel_name), spec.otel_name
    assert spec.otel_name.rsplit(".", 1)[-1] not in {"seconds", "bytes", "total", "ratio"}
    assert spec.description.strip()
    assert spec.name.startswith(("mlprobe_", "http_server_")) == \
        spec.otel_name.startswith(("mlprobe.", "http.server."))


def test_http_metrics_use_the_semantic_conventions():
    """HTTP server metrics carry semconv's names, units and attribute keys."""
    duration = metric_spec("http_server_request_duration_seconds")
    assert (duration.otel_name, duration.unit) == ("http.server.request.duration", "s")
    assert duration.attributes == ("http.request.method", "http.route",
                                   "http.response.status_code", "error.type")
    active = metric_spec("http_server_active_requests")
    assert (active.otel_name, active.unit, active.otel_type) == (
        "http.server.active_requests", "{request}", "updown_sum")
    for name in ("request", "response"):
        size = metric_spec(f"http_server_{name}_body_size_bytes")
        assert (size.otel_name, size.unit) == (f"http.server.{name}.body.size", "By")
    assert metric_spec("mlprobe_prediction_errors").attributes[-1] == "error.type"


def test_names_are_unique_in_both_namings():
    """No two metrics share a Prometheus or an OpenTelemetry name."""
    specs = metric_specs()
    assert len({s.name for s in specs}) == len({s.otel_name for s in specs}) == len(specs)
