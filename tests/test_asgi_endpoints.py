"""The endpoints ProbeMiddleware can serve: Prometheus exposition and drift status JSON."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from test_asgi_helpers import counts, get, request, run

import mlprobe
from mlprobe.asgi import ProbeMiddleware


async def ok(request: Any) -> Response:
    return PlainTextResponse("ok")


def make_app(**options: Any) -> Starlette:
    app = Starlette(routes=[Route("/ok", ok), Route("/items/{item_id}", ok)])
    app.add_middleware(ProbeMiddleware, **options)
    return app


def parse(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_metrics_endpoint_serves_parseable_exposition(registry):
    """/metrics answers the Prometheus text format with the HTTP families and their labels."""
    app = make_app(registry=registry, metrics_path="/metrics")
    for _ in range(3):
        get(app, "/items/9")
    response = get(app, "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    metrics = parse(response.text)
    duration = metrics["http_server_request_duration_seconds"]
    assert duration.type == "histogram"
    count = [s for s in duration.samples if s.name.endswith("_count")]
    assert [(s.labels, s.value) for s in count] == [(
        {"http_request_method": "GET", "http_route": "/items/{item_id}",
         "http_response_status_code": "200", "error_type": ""}, 3.0)]
    for name in ("http_server_request_body_size_bytes", "http_server_response_body_size_bytes",
                 "http_server_time_to_first_byte_seconds"):
        assert metrics[name].type == "histogram"
    assert metrics["http_server_active_requests"].type == "gauge"
    # the scrape itself is not a recorded request
    assert set(counts(registry)) == {("GET", "/items/{item_id}", "200", "")}


def test_metrics_endpoint_negotiates_openmetrics(registry):
    """An OpenMetrics Accept header gets the OpenMetrics format, ending in # EOF."""
    app = make_app(registry=registry, metrics_path="/metrics")
    get(app, "/ok")
    response = get(app, "/metrics", headers={
        "accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_metrics_endpoint_is_built_off_the_event_loop(registry, monkeypatch):
    """The exposition is generated in a worker thread, not on the loop's thread."""
    from mlprobe.exporters import prometheus

    threads: list[str] = []
    original = prometheus.MlprobeCollector.collect

    def spy(self):
        threads.append(threading.current_thread().name)
        yield from original(self)

    monkeypatch.setattr(prometheus.MlprobeCollector, "collect", spy)
    app = make_app(registry=registry, metrics_path="/metrics")

    async def body():
        threads.append(threading.current_thread().name)
        return await request(app, "GET", "/metrics")

    assert run(body).status_code == 200
    assert len(threads) == 2 and threads[0] != threads[1]


def test_metrics_endpoint_compresses_when_the_client_accepts_gzip(registry):
    """Accept-Encoding: gzip gets a gzip body (Content-Encoding, Vary) that decompresses to the
    same exposition; without it, or with gzip;q=0, the body is plain."""
    import gzip

    from test_asgi_helpers import drive, http_scope

    app = make_app(registry=registry, metrics_path="/metrics")
    for _ in range(3):
        get(app, "/items/1")

    def scrape(accept_encoding: bytes | None) -> tuple[dict[bytes, bytes], bytes]:
        headers = [(b"host", b"testserver")]
        if accept_encoding is not None:
            headers.append((b"accept-encoding", accept_encoding))
        sent = run(lambda: drive(app, http_scope("/metrics", headers=headers), []))
        start, body = sent
        return dict(start["headers"]), body["body"]

    plain_headers, plain = scrape(None)
    zipped_headers, zipped = scrape(b"deflate, gzip;q=0.8")
    refused_headers, refused = scrape(b"gzip;q=0, identity")
    assert b"content-encoding" not in plain_headers and plain.startswith(b"# HELP")
    assert b"accept-encoding" in plain_headers[b"vary"].lower()
    assert zipped_headers[b"content-encoding"] == b"gzip"
    assert b"accept-encoding" in zipped_headers[b"vary"].lower()
    assert int(zipped_headers[b"content-length"]) == len(zipped) < len(plain)
    assert gzip.decompress(zipped) == plain
    assert b"content-encoding" not in refused_headers and refused == plain
    # a real client that decompresses (httpx sends Accept-Encoding: gzip by default)
    response = get(app, "/metrics")
    assert response.headers["content-encoding"] == "gzip"
    assert parse(response.text)["http_server_request_duration_seconds"].samples


def test_gzip_accepted_follows_accept_encoding_syntax():
    """Codings are compared case-insensitively, and quality zero means "not acceptable"."""
    from mlprobe._asgi_endpoints import gzip_accepted

    assert gzip_accepted("gzip") and gzip_accepted("br, GZIP ;q=0.5")
    assert not gzip_accepted(None) and not gzip_accepted("") and not gzip_accepted("deflate")
    assert not gzip_accepted("gzip;q=0") and not gzip_accepted("gzip;q=0.0")
    assert not gzip_accepted("gzip;q=abc") and not gzip_accepted("x-gzip")


def test_metrics_endpoint_serves_a_given_prometheus_registry(registry):
    """prometheus_registry= exposes the app's own prometheus_client metrics next to mlprobe's."""
    prom = CollectorRegistry()
    Counter("app_logins", "Logins.", registry=prom).inc(2)
    app = make_app(registry=registry, metrics_path="/metrics", prometheus_registry=prom)
    get(app, "/ok")
    metrics = parse(get(app, "/metrics").text)
    assert metrics["app_logins"].samples[0].value == 2.0
    assert "http_server_request_duration_seconds" in metrics


def test_metrics_endpoint_path_is_configurable_and_head_and_post(registry):
    """metrics_path moves the endpoint; HEAD has no body, POST is refused with 405."""
    app = make_app(registry=registry, metrics_path="/internal/prom")
    assert "mlprobe_internal_errors_total" in get(app, "/internal/prom").text
    head = run(lambda: request(app, "HEAD", "/internal/prom"))
    assert head.status_code == 200 and head.content == b""
    assert run(lambda: request(app, "POST", "/internal/prom")).status_code == 405
    assert get(app, "/metrics").status_code == 404  # not served there, and not recorded
    assert counts(registry) == {}


def test_metrics_not_served_unless_asked(registry):
    """Without metrics_path, /metrics goes to the app (a 404 here)."""
    app = make_app(registry=registry)
    assert get(app, "/metrics").status_code == 404


def test_drift_endpoint_without_reference_answers_404(registry):
    """A probe without a reference profile gets its no_reference document with a 404."""
    probe = mlprobe.Probe("m", registry=registry)
    app = make_app(probe=probe, drift_path="/drift")
    response = get(app, "/drift")
    assert response.status_code == 404
    assert response.json()["status"] == "no_reference"
    assert response.json()["model"] == "m"


def test_drift_endpoint_with_reference_reports_drift(registry):
    """With a reference, the endpoint serves the probe's live drift document."""
    rng = np.random.default_rng(0)
    reference = mlprobe.ReferenceProfile.from_data(rng.normal(size=(2000, 2)),
                                                   feature_names=["a", "b"])
    probe = mlprobe.Probe("m", registry=registry, reference=reference)

    @probe.track
    def predict(rows):
        return np.full(len(rows), 0.5)

    predict(rng.normal(loc=3.0, size=(2000, 2)))  # far from the reference
    app = make_app(probe=probe, drift_path="/drift")
    response = get(app, "/drift")
    assert response.status_code == 200
    document = response.json()
    assert document["status"] == "critical"
    assert set(document) >= {"drift_share", "window_seconds"}
    assert document["model"] == "m"


def test_drift_endpoint_without_probe_answers_404(registry):
    """A drift endpoint configured without a probe explains itself with a 404."""
    app = make_app(registry=registry, drift_path="/drift")
    response = get(app, "/drift")
    assert response.status_code == 404
    assert response.json() == {"status": "no_reference",
                               "detail": "no probe given to the middleware"}


def test_drift_endpoint_serves_status_json_off_the_loop(registry):
    """drift_status() runs in a worker thread and its dict is served as JSON (NaN as null)."""
    probe = mlprobe.Probe("m", registry=registry)
    calls: list[str] = []

    def drift_status() -> dict[str, Any]:
        calls.append(threading.current_thread().name)
        return {"status": "warning", "features": {"age": {"psi": 0.15, "ks": float("nan")}}}

    probe.drift_status = drift_status  # type: ignore[attr-defined]
    app = make_app(probe=probe, drift_path="/drift")
    response = get(app, "/drift")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"status": "warning",
                               "features": {"age": {"psi": 0.15, "ks": None}}}
    assert calls and calls[0] != threading.main_thread().name
    assert counts(registry) == {}


@pytest.mark.allow_internal_errors
def test_drift_endpoint_failure_is_a_500_not_a_crash(registry):
    """A failing drift_status() answers 500 JSON and counts an internal error."""
    probe = mlprobe.Probe("m", registry=registry)

    def drift_status() -> dict[str, Any]:
        raise ZeroDivisionError

    probe.drift_status = drift_status  # type: ignore[attr-defined]
    app = make_app(probe=probe, drift_path="/drift")
    before = mlprobe._guard.internal_error_count()
    response = get(app, "/drift")
    assert response.status_code == 500
    assert response.json() == {"status": "error", "detail": "ZeroDivisionError"}
    assert mlprobe._guard.internal_error_count() == before + 1
