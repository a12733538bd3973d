"""mlprobe inside an app's own OpenTelemetry pipeline: the exporter bridge, and the
Prometheus reader next to mlprobe's own collector."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from expositions import bare_probe, profiled_probe, text
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from otlp import RecordingExporter, exposition_samples
from prometheus_client import CollectorRegistry

import mlprobe
from mlprobe import multiprocess
from mlprobe.errors import ConfigurationError
from mlprobe.exporters import otel
from mlprobe.exporters import prometheus as prom_export
from mlprobe.testing import raise_internal_errors, sample_value

RESOURCE = Resource({"service.name": "app", "service.instance.id": "app-1"})


@pytest.fixture
def app_pipeline(registry) -> Iterator[tuple[MeterProvider, RecordingExporter, mlprobe.Probe]]:
    """An app's MeterProvider exporting through a bridged in-memory exporter, with one app
    counter and histogram recorded, and an mlprobe probe with traffic."""
    inner = RecordingExporter()
    reader = PeriodicExportingMetricReader(otel.bridge(inner, registry=registry),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    meter = provider.get_meter("app")
    meter.create_counter("app.logins").add(2)
    meter.create_histogram("app.latency", unit="s").record(0.3)
    probe = bare_probe(registry)
    yield provider, inner, probe
    provider.shutdown()


def _scopes(data: MetricsData) -> dict[str, dict]:
    return {sm.scope.name: {m.name: m for m in sm.metrics}
            for rm in data.resource_metrics for sm in rm.scope_metrics}


def test_the_bridge_adds_mlprobes_metrics_to_the_apps_export_under_its_resource(app_pipeline):
    """One export of the app's reader carries the app's metrics and mlprobe's (histograms
    included, with mlprobe's buckets) in the app's one resource, as scope "mlprobe"."""
    provider, inner, _ = app_pipeline
    provider.force_flush()
    (batch,) = inner.batches
    (resource_metrics,) = batch.resource_metrics
    assert resource_metrics.resource.attributes["service.instance.id"] == "app-1"
    scopes = _scopes(batch)
    assert set(scopes) == {"app", "mlprobe"}
    assert {"app.logins", "app.latency"} <= set(scopes["app"])
    duration = scopes["mlprobe"]["mlprobe.prediction.duration"].data
    assert isinstance(duration, Histogram)
    assert list(duration.data_points[0].explicit_bounds)[:3] == [0.0001, 0.00025, 0.0005]
    assert duration.data_points[0].count == 2


def test_the_bridge_follows_the_wrapped_exporters_temporality(registry):
    """With a delta exporter, the reader makes the app's metrics delta (the preference is
    passed on) and mlprobe's second export holds only the new calls."""
    inner = RecordingExporter(AggregationTemporality.DELTA)
    reader = PeriodicExportingMetricReader(otel.bridge(inner, registry=registry),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    counter = provider.get_meter("app").create_counter("app.logins")
    predict = mlprobe.Probe("d", registry=registry).track(lambda x: 0.5)
    try:
        for logins, calls in ((1, 3), (1, 1)):
            counter.add(logins)
            for _ in range(calls):
                predict([1.0])
            provider.force_flush()
    finally:
        provider.shutdown()
    first, second = (_scopes(b) for b in inner.batches[:2])
    app_sum = second["app"]["app.logins"].data
    assert app_sum.aggregation_temporality == AggregationTemporality.DELTA
    assert app_sum.data_points[0].value == 1

    def ok_calls(scopes):
        return next(p.value for p in scopes["mlprobe"]["mlprobe.predictions"].data.data_points
                    if p.attributes["outcome"] == "ok")

    assert (ok_calls(first), ok_calls(second)) == (3, 1)


def test_a_failed_export_of_the_app_counts_as_a_bridge_failure(app_pipeline, registry):
    """When the wrapped exporter fails, the bridge returns the failure to the reader and
    counts it in mlprobe_export_failures_total{exporter="bridge"}."""
    provider, inner, _ = app_pipeline
    inner.fail = True
    provider.force_flush()
    assert sample_value(registry, "mlprobe_export_failures", {"exporter": "bridge"}) == 1


@pytest.mark.allow_internal_errors
def test_when_mlprobes_part_fails_the_apps_metrics_still_go(app_pipeline, registry,
                                                            monkeypatch):
    """A failure collecting mlprobe's metrics is counted; the app's export goes out alone."""
    provider, inner, _ = app_pipeline

    def broken():
        raise RuntimeError("collect failed")

    monkeypatch.setattr(registry, "collect", broken)
    before = mlprobe.errors.internal_error_count()
    provider.force_flush()
    (batch,) = inner.batches
    assert set(_scopes(batch)) == {"app"}
    assert mlprobe.errors.internal_error_count() == before + 1


def test_a_worker_that_does_not_export_sends_the_apps_metrics_alone(app_pipeline, registry,
                                                                    monkeypatch):
    """Multi-process mode, a worker other than the exporting one: the app's export goes out
    without mlprobe's scope, once; a failure is counted once; an error of the app's exporter
    reaches the reader unchanged (not swallowed, not retried)."""
    provider, inner, _ = app_pipeline
    monkeypatch.setattr(multiprocess, "exports_here", lambda registry=None: False)
    provider.force_flush()
    (batch,) = inner.batches
    assert set(_scopes(batch)) == {"app"}
    inner.fail = True
    provider.force_flush()
    assert sample_value(registry, "mlprobe_export_failures", {"exporter": "bridge"}) == 1
    bridged = otel.bridge(RecordingExporter(), registry=registry)
    bridged.inner.raise_error = RuntimeError("the app's exporter broke")
    before = mlprobe.errors.internal_error_count()
    with raise_internal_errors(False), pytest.raises(RuntimeError, match="exporter broke"):
        bridged.export(batch)
    assert (bridged.inner.calls, mlprobe.errors.internal_error_count()) == (1, before)
    # the raised error's traceback holds this frame, and so the app's MeterProvider, whose
    # at-fork hook can deadlock a later test's fork child: break the cycle now
    bridged.inner.raise_error = None


def test_shutdown_and_flush_reach_the_wrapped_exporter(registry):
    """The bridge passes force_flush and shutdown on; it refuses what is not an exporter."""
    inner = RecordingExporter()
    bridged = otel.bridge(inner, registry=registry)
    assert bridged.force_flush() is True
    bridged.shutdown()
    assert inner.shutdowns == 1
    assert bridged.export(MetricsData([])) is MetricExportResult.SUCCESS
    with pytest.raises(ConfigurationError, match="MetricExporter"):
        otel.bridge(object())  # type: ignore[arg-type]


class _InjectingReader(PrometheusMetricReader):
    """The SDK's Prometheus reader, fed mlprobe's OTel metrics instead of a MeterProvider's
    (through the hook the SDK documents for subclasses, ``_receive_metrics``)."""

    def __init__(self, registry: mlprobe.Registry, target: CollectorRegistry) -> None:
        super().__init__(registry=target, disable_target_info=True, scope_info_enabled=False)
        self.mlprobe_registry = registry
        self._collector._callback = self._feed

    def _feed(self) -> None:
        self._receive_metrics(otel.metrics_data(self.mlprobe_registry))


def test_the_sdks_prometheus_reader_renders_mlprobes_otel_metrics_as_mlprobe_does(registry):
    """mlprobe's OTel metrics scraped through the OTel SDK's own Prometheus reader give the
    same sample names, labels and values as mlprobe's Prometheus exporter: an app with a
    Prometheus reader loses nothing by letting mlprobe's collector serve its registry."""
    bare_probe(registry)
    profiled_probe(registry)
    via_otel = CollectorRegistry()
    _InjectingReader(registry, via_otel)
    ours = CollectorRegistry()
    prom_export.register(registry, ours)
    from_otel = exposition_samples(text(via_otel))
    from_mlprobe = exposition_samples(text(ours))
    assert len(from_mlprobe) > 300
    assert from_otel == from_mlprobe


def test_an_app_with_a_prometheus_reader_serves_mlprobes_metrics_in_the_same_scrape(registry):
    """The app's OTel Prometheus reader and mlprobe's collector share one prometheus_client
    registry: one scrape holds the app's metrics and mlprobe's."""
    target = CollectorRegistry()
    reader = PrometheusMetricReader(registry=target)
    provider = MeterProvider(metric_readers=[reader], resource=RESOURCE)
    provider.get_meter("app").create_counter("app.logins", description="Logins.").add(3)
    bare_probe(registry)
    prom_export.register(registry, target)
    try:
        exposition = text(target)
    finally:
        provider.shutdown()
    assert 'app_logins_total{otel_scope_name="app"' in exposition
    assert 'mlprobe_predictions_total{model="bare",model_version="1",outcome="ok"} 1.0' \
        in exposition
    assert 'target_info{service_instance_id="app-1"' in exposition
