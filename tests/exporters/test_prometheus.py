"""Prometheus export: exposition content, registration, HTTP scrape, promtool, real Prometheus."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import mlprobe
from mlprobe.exporters import prometheus as prom_export

from realservers import free_port, prom_query, prometheus_server, require_binary


def exercised_probe(registry: mlprobe.Registry) -> mlprobe.Probe:
    """A probe with every metric family populated."""
    probe = mlprobe.Probe("churn", version="3", registry=registry)

    @probe.track
    def predict(features):
        if features is None:
            raise ValueError("no input")
        return np.array([[0.2, 0.8], [0.6, 0.4]])[: len(features)]

    predict(np.zeros((2, 4)))
    with pytest.raises(ValueError):
        predict(None)
    probe.observe(outputs=np.array(["yes", "no", "yes"]))
    return probe


def exposition(registry: mlprobe.Registry) -> str:
    target = CollectorRegistry()
    prom_export.register(registry, target)
    return generate_latest(target).decode()


def test_exposition_has_contract_names_and_values(registry):
    """Counters, histograms and gauges appear under the contract's names with right values."""
    exercised_probe(registry)
    families = {f.name: f for f in text_string_to_metric_families(exposition(registry))}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in families.values() for s in f.samples}
    base = (("model", "churn"), ("model_version", "3"))
    assert samples[("mlprobe_predictions_total", tuple(sorted(base + (("outcome", "ok"),))))] == 1
    assert samples[("mlprobe_prediction_errors_total",
                    tuple(sorted(base + (("error_type", "ValueError"),))))] == 1
    assert samples[("mlprobe_prediction_duration_seconds_count", base)] == 2
    assert samples[("mlprobe_batch_rows_sum", base)] == 2
    assert samples[("mlprobe_input_bytes_sum", base)] == 64
    assert samples[("mlprobe_predicted_class_total",
                    tuple(sorted(base + (("class", "yes"),))))] == 2
    assert samples[("mlprobe_predicted_class_total",
                    tuple(sorted(base + (("class", "1"),))))] == 1
    assert families["mlprobe_prediction_duration_seconds"].type == "histogram"
    assert families["mlprobe_predictions_in_flight"].type == "gauge"
    assert "mlprobe_internal_errors" in families


def test_histogram_buckets_are_cumulative_with_inf(registry):
    """Exposed buckets are cumulative, end with +Inf, and +Inf equals _count."""
    exercised_probe(registry)
    family = next(f for f in text_string_to_metric_families(exposition(registry))
                  if f.name == "mlprobe_prediction_score")
    buckets = [s for s in family.samples if s.name.endswith("_bucket")
               and s.labels["output"] == "1"]
    values = [s.value for s in buckets]
    assert values == sorted(values)
    assert buckets[-1].labels["le"] == "+Inf"
    count = next(s.value for s in family.samples if s.name.endswith("_count")
                 and s.labels["output"] == "1")
    assert buckets[-1].value == count == 2  # two rows of probabilities


def test_register_is_idempotent(registry):
    """Registering the same pair twice adds one collector, so no duplicated series appear."""
    target = CollectorRegistry()
    assert prom_export.register(registry, target) is not None
    assert prom_export.register(registry, target) is None
    exercised_probe(registry)
    text = generate_latest(target).decode()
    assert text.count("# TYPE mlprobe_predictions_total counter") == 1


def test_default_registry_appears_in_prometheus_default_registry():
    """With no configuration, a probe's metrics show in prometheus_client's REGISTRY."""
    code = textwrap.dedent("""
        import mlprobe, prometheus_client
        probe = mlprobe.Probe("auto", version="1")
        @probe.track
        def predict(x):
            return 0.5
        predict([1, 2])
        text = prometheus_client.generate_latest().decode()
        assert 'mlprobe_predictions_total{model="auto",model_version="1",outcome="ok"} 1.0' in text, text
        mlprobe.Probe("auto", version="1")  # creating it again must not raise duplicated series
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_auto_attach_can_be_turned_off():
    """MLPROBE_PROMETHEUS_AUTO=0 keeps the default registry out of prometheus_client's."""
    code = ("import mlprobe, prometheus_client; mlprobe.Probe('off'); "
            "print('mlprobe_predictions' in prometheus_client.generate_latest().decode())")
    src = str(Path(mlprobe.__file__).resolve().parents[1])  # the mlprobe under test
    env = {"MLPROBE_PROMETHEUS_AUTO": "0", "PATH": "", "PYTHONPATH": src}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.stdout.strip() == "False", out.stderr


def test_start_http_server_serves_a_real_scrape(registry):
    """start_http_server answers a real HTTP GET /metrics with the probe's samples."""
    exercised_probe(registry)
    port = free_port()
    server, thread = prom_export.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.status == 200
    finally:
        server.shutdown()
        server.server_close()
    assert 'mlprobe_predictions_total{model="churn",model_version="3",outcome="ok"} 1.0' in body


def test_start_http_server_on_a_busy_port_raises_exporter_error(registry):
    """A port that is taken gives ExporterError saying to choose a free port."""
    port = free_port()
    server, _ = prom_export.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with pytest.raises(mlprobe.ExporterError, match="free port"):
            prom_export.start_http_server(port, addr="127.0.0.1", registry=mlprobe.Registry())
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.real_prometheus
def test_promtool_check_metrics_passes(registry, tmp_path):
    """promtool check metrics finds no problem in the exposition."""
    promtool = require_binary("promtool")
    exercised_probe(registry)
    text = exposition(registry)
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.real_prometheus
def test_real_prometheus_scrapes_and_queries(registry, tmp_path):
    """A real Prometheus scrapes start_http_server and answers rate and quantile queries."""
    probe = exercised_probe(registry)
    port = free_port()
    server, _ = prom_export.start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        with prometheus_server(tmp_path, [f"127.0.0.1:{port}"]) as prom_port:
            result = prom_query(prom_port, 'mlprobe_predictions_total{outcome="ok"}')
            assert float(result[0]["value"][1]) >= 1
            assert result[0]["metric"]["model"] == "churn"
            probe.observe(outputs=np.array([0.9] * 50))
            p50 = prom_query(prom_port, 'histogram_quantile(0.5, sum by (le) '
                                        '(mlprobe_prediction_score_bucket{output="score"})) > 0')
            assert 0.85 <= float(p50[0]["value"][1]) <= 0.9
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.real_prometheus
def test_real_prometheus_ingests_the_feature_summary_with_negative_values(registry, tmp_path):
    """Prometheus (which negotiates OpenMetrics) ingests quantiles and sums below zero.

    OpenMetrics 1.0 says summary quantiles and sums must not be negative, and
    prometheus_client's OpenMetrics parser enforces it; Prometheus does not, so a feature
    whose values go below zero is still scraped whole.
    """
    rng = np.random.default_rng(3)
    profile = mlprobe.ReferenceProfile.from_data({"z": rng.normal(-5, 1, 2000)})
    probe = mlprobe.Probe("neg", registry=registry, reference=profile)
    probe.observe(inputs={"z": rng.normal(-5, 1, 500)})
    seen_accept: list[str] = []
    port = free_port()
    server, _ = prom_export.start_http_server(port, addr="127.0.0.1", registry=registry)
    inner = server.get_app()

    def spy(environ, start_response):
        seen_accept.append(environ.get("HTTP_ACCEPT", ""))
        return inner(environ, start_response)

    server.set_app(spy)
    try:
        with prometheus_server(tmp_path, [f"127.0.0.1:{port}"]) as prom_port:
            low = prom_query(prom_port, 'mlprobe_feature_quantile{quantile="0.05"}')
            assert float(low[0]["value"][1]) < -5
            total = prom_query(prom_port, "mlprobe_feature_quantile_sum")
            assert float(total[0]["value"][1]) < 0
    finally:
        server.shutdown()
        server.server_close()
    assert any("application/openmetrics-text" in accept for accept in seen_accept)
