"""End to end through a real OpenTelemetry collector (rotel on 127.0.0.1): what reaches the
collector's downstream equals what mlprobe's Prometheus exposition shows for the same traffic.

Chain: mlprobe push exporter --OTLP gRPC or HTTP--> rotel --OTLP/HTTP--> a receiver in this
process (``tests/collector.py``). The gunicorn multi-worker export test waits for the
multi-worker mode (issue 10).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector import OtlpSink, Rotel, collector, latest_points
from expositions import asgi_traffic, bare_probe, profiled_probe, target_for, text
from otlp import as_prometheus, attribute_values, exposition_samples, otlp_metrics

import mlprobe
from mlprobe._config import DEFAULT_LATENCY_BUCKETS
from mlprobe.exporters import otel
from mlprobe.snapshot import metric_spec
from mlprobe.testing import sample_value

pytestmark = pytest.mark.real_collector


@pytest.fixture
def rotel(tmp_path: Path) -> Iterator[tuple[Rotel, OtlpSink]]:
    """rotel with both OTLP receivers on free loopback ports, forwarding to a sink."""
    with collector(tmp_path) as pair:
        yield pair


def _has_final(requests: list[dict], name: str, count: float, **labels: str) -> bool:
    pushed = as_prometheus(latest_points(requests))
    return pushed.get((name, frozenset(labels.items()))) == count


def _starts(registry: mlprobe.Registry) -> dict[str, set[int]]:
    return {metric_spec(f.name).otel_name: {s.start_time_unix_nano for s in f.samples}
            for f in registry.collect()}


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_tracked_function_and_an_asgi_app_export_through_the_collector(rotel, protocol):
    """Calls, features, drift and HTTP server metrics pushed over OTLP (HTTP or gRPC) through
    the collector arrive with the catalogue's names, units, descriptions, attributes, bucket
    boundaries and start times, and read as a collector's Prometheus exporter reads them they
    equal mlprobe's Prometheus exposition sample for sample."""
    collector_proc, sink = rotel
    registry = mlprobe.Registry()
    endpoint = collector_proc.grpc_endpoint if protocol == "grpc" else \
        collector_proc.http_endpoint
    pusher = otel.push(registry=registry, endpoint=endpoint, protocol=protocol,
                       interval=3600, timeout=10, service_name="e2e")
    try:
        bare_probe(registry)
        profiled_probe(registry)
        asgi_traffic(registry)
    finally:
        pusher.shutdown(timeout=15)  # the final push carries everything
    requests = sink.wait_for(lambda r: _has_final(
        r, "http_server_request_duration_seconds_count", 1.0, http_request_method="GET",
        http_route="/boom", http_response_status_code="500", error_type="RuntimeError"))
    final = latest_points(requests)
    scraped = exposition_samples(text(target_for(registry)))
    assert as_prometheus(final) == scraped
    assert len(scraped) > 400

    metrics = otlp_metrics(final)
    for family in registry.collect():
        spec = metric_spec(family.name)
        names = [spec.otel_name] + ([spec.otel_name + ".count", spec.otel_name + ".sum"]
                                    if spec.otel_type == "summary_gauges" else [])
        for name in names:
            assert metrics[name].get("description"), name
        assert metrics[spec.otel_name].get("unit", "") == spec.unit, spec.name

    duration = metrics["mlprobe.prediction.duration"]["histogram"]
    assert duration["aggregationTemporality"] == "AGGREGATION_TEMPORALITY_CUMULATIVE"
    for point in duration["dataPoints"]:
        assert tuple(float(b) for b in point["explicitBounds"]) == DEFAULT_LATENCY_BUCKETS
        assert len(point["bucketCounts"]) == len(DEFAULT_LATENCY_BUCKETS) + 1

    starts = _starts(registry)
    for name in ("mlprobe.predictions", "http.server.request.duration", "mlprobe.feature.bin"):
        data = metrics[name].get("sum") or metrics[name].get("histogram")
        assert {int(p["startTimeUnixNano"]) for p in data["dataPoints"]} == starts[name]

    http_points = metrics["http.server.request.duration"]["histogram"]["dataPoints"]
    codes = {attribute_values(p["attributes"])["http.response.status_code"]
             for p in http_points}
    assert codes == {200, 404, 500}
    resource = attribute_values(final["resourceMetrics"][0]["resource"]["attributes"])
    assert resource["service.name"] == "e2e" and resource["service.instance.id"]


def test_gzip_is_sent_and_the_collector_accepts_it(rotel):
    """With compression="gzip" the OTLP/HTTP body is gzip-encoded (seen by a receiver), and
    the collector decodes it and forwards the data."""
    collector_proc, sink = rotel
    direct = OtlpSink()
    registry = mlprobe.Registry()
    bare_probe(registry)
    try:
        for endpoint in (direct.url + "/v1/metrics", collector_proc.http_endpoint):
            pusher = otel.push(registry=registry, endpoint=endpoint, compression="gzip",
                               interval=3600, timeout=10)
            assert pusher.force_flush()
            pusher.shutdown(timeout=10)
        assert direct.headers[0].get("Content-Encoding") == "gzip"
        sink.wait_for(lambda r: _has_final(r, "mlprobe_predictions_total", 1.0, model="bare",
                                           model_version="1", outcome="ok"))
    finally:
        direct.close()


def test_delta_temporality_through_the_collector(rotel, monkeypatch):
    """With OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=DELTA, counters and histograms
    arrive as deltas: each push holds the calls since the previous one, and its interval
    starts where the previous one ended."""
    collector_proc, sink = rotel
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "DELTA")
    registry = mlprobe.Registry()
    predict = mlprobe.Probe("delta", registry=registry).track(lambda x: 0.5)
    pusher = otel.push(registry=registry, endpoint=collector_proc.http_endpoint,
                       interval=3600, timeout=10)
    try:
        for calls in (3, 2):
            for _ in range(calls):
                predict([1.0])
            assert pusher.force_flush()
    finally:
        pusher.shutdown(timeout=10)

    def ok_points(requests):
        points = []  # rotel may merge several pushes into one request: read every metric
        for request in requests:
            for rm in request.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for metric in sm.get("metrics", []):
                        if metric["name"] != "mlprobe.predictions":
                            continue
                        assert metric["sum"]["aggregationTemporality"] == \
                            "AGGREGATION_TEMPORALITY_DELTA"
                        points += [p for p in metric["sum"]["dataPoints"]
                                   if attribute_values(p["attributes"])["outcome"] == "ok"]
        return sorted(points, key=lambda p: int(p["timeUnixNano"]))

    requests = sink.wait_for(lambda r: len(ok_points(r)) >= 3)
    first, second, final = ok_points(requests)[:3]
    assert [int(p["asInt"]) for p in (first, second, final)] == [3, 2, 0]
    assert second["startTimeUnixNano"] == first["timeUnixNano"]
    assert final["startTimeUnixNano"] == second["timeUnixNano"]


def test_the_collector_stopped_mid_run_and_restarted(rotel):
    """While the collector is down, serving goes on (calls counted, never slowed by the
    export), failed pushes are counted; once it is back, pushing resumes with the totals."""
    collector_proc, sink = rotel
    registry = mlprobe.Registry()
    predict = mlprobe.Probe("restart", registry=registry).track(lambda x: 0.5)
    pusher = otel.push(registry=registry, endpoint=collector_proc.http_endpoint,
                       interval=0.2, timeout=1, name="e2e")
    try:
        for _ in range(10):
            predict([1.0])
        sink.wait_for(lambda r: _has_final(r, "mlprobe_predictions_total", 10.0,
                                           model="restart", outcome="ok"))
        collector_proc.stop()
        deadline = time.monotonic() + 30
        calls, worst = 10, 0.0
        while (sample_value(registry, "mlprobe_export_failures", {"exporter": "e2e"}) or 0) < 2:
            assert time.monotonic() < deadline, "no failed push was counted"
            started = time.perf_counter()
            predict([1.0])
            worst = max(worst, time.perf_counter() - started)
            calls += 1
            time.sleep(0.01)
        assert worst < 0.5  # a call waiting for the failing push would take ~1 s
        collector_proc.start()
        sink.wait_for(lambda r: _has_final(r, "mlprobe_predictions_total", float(calls),
                                           model="restart", outcome="ok"), timeout=30)
        assert pusher._thread.is_alive()
    finally:
        pusher.shutdown(timeout=5)
    failures = sample_value(registry, "mlprobe_export_failures", {"exporter": "e2e"})
    assert failures >= 2
    pushed = as_prometheus(latest_points(sink.snapshot()))
    assert pushed[("mlprobe_export_failures_total", frozenset({"exporter": "e2e"}.items()))] \
        >= 2
