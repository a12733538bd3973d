"""A failure in mlprobe's part of a scrape costs only that part, and is counted.

One test per layer: a source, ``Registry.collect``, the translation of one family, the
collector itself, and the two HTTP endpoints (the middleware's ``/metrics`` and
``start_http_server``). Each asserts that the application's own metrics in the same
``CollectorRegistry`` still come out and that ``mlprobe_internal_errors_total`` counted the
failure in the same scrape.
"""

from __future__ import annotations

import logging
import urllib.request
from typing import Any

import pytest
from expositions import app_metrics_present, bare_probe, parse, target_for, text
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_asgi_helpers import get

import mlprobe
from mlprobe import _guard
from mlprobe.asgi import ProbeMiddleware
from mlprobe.exporters import prometheus as prom_export
from mlprobe.snapshot import HistogramSample, Sample

from realservers import free_port

pytestmark = pytest.mark.allow_internal_errors


def internal_errors(exposition: str) -> float:
    return parse(exposition)["mlprobe_internal_errors"].samples[0].value


class FailingSource:
    """A registry source that reports some samples, then fails."""

    def collect_into(self, builder: Any) -> None:
        builder.add("mlprobe_predicted_class",
                    [Sample((("model", "half"), ("model_version", ""), ("class", "x")), 1.0)])
        raise RuntimeError("source failed half-way")

    def reset(self) -> None:
        """Nothing to forget."""


class MisreportingSource:
    """A registry source that reports a family outside the catalogue, or the wrong sample type."""

    def __init__(self, name: str, sample: Any) -> None:
        self.name, self.sample = name, sample

    def collect_into(self, builder: Any) -> None:
        builder.add(self.name, [self.sample])

    def reset(self) -> None:
        """Nothing to forget."""


def test_a_failing_source_costs_only_its_own_samples(registry):
    """A source that raises half-way reports nothing; the other probes and the app report."""
    bare_probe(registry)
    registry.get_or_create("failing", FailingSource)
    before = _guard.internal_error_count()
    exposition = text(target_for(registry))
    assert app_metrics_present(exposition)
    classes = {s.labels["model"] for s in parse(exposition)["mlprobe_predicted_class"].samples}
    assert classes == {"bare"}  # the failing source's half-report is not exported
    assert internal_errors(exposition) == before + 1


@pytest.mark.parametrize("source", [
    MisreportingSource("mlprobe_not_in_catalogue", Sample((), 1.0)),
    MisreportingSource("mlprobe_predicted_class", HistogramSample((), (1.0,), (1, 0), 1.0)),
], ids=["unknown family", "wrong sample type"])
def test_a_source_reporting_outside_the_contract_is_dropped_and_counted(registry, source):
    """Families outside the catalogue and samples of the wrong type are refused at the source."""
    bare_probe(registry)
    registry.get_or_create("misreporting", lambda: source)
    before = _guard.internal_error_count()
    exposition = text(target_for(registry))
    assert "mlprobe_not_in_catalogue" not in exposition
    assert {s.labels["model"] for s in parse(exposition)["mlprobe_predicted_class"].samples
            } == {"bare"}
    assert internal_errors(exposition) == before + 1


def test_a_failing_registry_collect_leaves_the_internal_error_counter(registry, monkeypatch):
    """If Registry.collect raises, the scrape still has the app's metrics and the counter."""
    bare_probe(registry)

    def broken() -> list[Any]:
        raise RuntimeError("collect failed")

    monkeypatch.setattr(registry, "collect", broken)
    before = _guard.internal_error_count()
    exposition = text(target_for(registry))
    assert app_metrics_present(exposition)
    mlprobe_families = {n for n in parse(exposition) if n.startswith("mlprobe_")}
    assert mlprobe_families == {"mlprobe_internal_errors"}
    assert internal_errors(exposition) == before + 1


def test_a_family_that_cannot_be_translated_costs_only_that_family(registry, monkeypatch):
    """A translation failure drops one family; the others and the app's metrics remain."""
    bare_probe(registry)
    original = prom_export.to_prometheus

    def translate(family: Any) -> Any:
        if family.name == "mlprobe_predicted_class":
            raise ValueError("cannot translate")
        return original(family)

    monkeypatch.setattr(prom_export, "to_prometheus", translate)
    before = _guard.internal_error_count()
    exposition = text(target_for(registry))
    families = parse(exposition)
    assert app_metrics_present(exposition)
    assert "mlprobe_predicted_class" not in families
    assert "mlprobe_predictions" in families and "mlprobe_prediction_score" in families
    assert internal_errors(exposition) == before + 1


def test_a_malformed_histogram_is_refused_by_the_translation(registry):
    """A histogram whose counts do not match its bounds is left out rather than mis-exported."""
    registry.get_or_create("bad-histogram", lambda: MisreportingSource(
        "mlprobe_batch_rows", HistogramSample((("model", "m"), ("model_version", "")),
                                              (1.0, 2.0), (1,), 1.0)))
    before = _guard.internal_error_count()
    exposition = text(target_for(registry))
    assert "mlprobe_batch_rows" not in parse(exposition)
    assert internal_errors(exposition) == before + 1


def test_a_failing_collector_leaves_the_app_metrics_and_the_counter(registry, monkeypatch):
    """Whatever fails inside MlprobeCollector.collect, the scrape answers and counts it."""
    bare_probe(registry)
    target = target_for(registry)

    def broken(self: Any) -> list[Any]:
        raise MemoryError("collector failed")

    monkeypatch.setattr(prom_export.MlprobeCollector, "_families", broken)
    before = _guard.internal_error_count()
    exposition = text(target)
    assert app_metrics_present(exposition)
    assert {n for n in parse(exposition) if n.startswith("mlprobe_")} == {
        "mlprobe_internal_errors"}
    assert internal_errors(exposition) == before + 1


def test_scrape_failures_are_logged_at_a_bounded_rate(registry, monkeypatch, caplog):
    """Ten failing scrapes log one warning for the site, and count ten errors."""
    registry.get_or_create("failing", FailingSource)
    monkeypatch.setattr(_guard, "_last_logged", {})
    target = target_for(registry)
    before = _guard.internal_error_count()
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        for _ in range(10):
            text(target)
    assert _guard.internal_error_count() == before + 10
    logged = [r for r in caplog.records if "registry.collect" in r.getMessage()]
    assert len(logged) == 1


class BrokenAppCollector:
    """An application collector that raises: the one failure mlprobe's collector cannot stop."""

    def collect(self) -> list[Any]:
        raise RuntimeError("the application's collector failed")


def metrics_app(registry: mlprobe.Registry, target: CollectorRegistry) -> Starlette:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/ok", ok)])
    app.add_middleware(ProbeMiddleware, registry=registry, metrics_path="/metrics",
                       prometheus_registry=target)
    return app


def test_the_metrics_endpoint_answers_500_when_the_exposition_cannot_be_built(registry):
    """/metrics answers a short 500, counts it, and the app keeps serving and scraping."""
    target = target_for(registry)
    app = metrics_app(registry, target)
    assert get(app, "/metrics").status_code == 200
    broken = BrokenAppCollector()
    target.register(broken)  # type: ignore[arg-type]
    before = _guard.internal_error_count()
    response = get(app, "/metrics")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert "mlprobe" in response.text and len(response.content) < 200
    assert _guard.internal_error_count() == before + 1
    assert get(app, "/ok").status_code == 200
    target.unregister(broken)  # type: ignore[arg-type]
    response = get(app, "/metrics")
    assert response.status_code == 200 and app_metrics_present(response.text)
    assert internal_errors(response.text) == before + 1


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=abc",
                                    "text/plain; version=x.y"])
def test_the_metrics_endpoint_serves_text_for_an_accept_header_it_cannot_parse(registry, accept):
    """An Accept header prometheus_client's negotiation raises on gets the text format."""
    bare_probe(registry)
    app = metrics_app(registry, target_for(registry))
    before = _guard.internal_error_count()
    response = get(app, "/metrics", headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert app_metrics_present(response.text)
    assert _guard.internal_error_count() == before


def scrape(port: int, accept: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if accept:
        request.add_header("Accept", accept)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_start_http_server_answers_500_and_keeps_serving(registry):
    """The standalone server answers 500 for a failing exposition, then 200 again."""
    bare_probe(registry)
    target = target_for(registry)
    port = free_port()
    server, thread = prom_export.start_http_server(port, addr="127.0.0.1", registry=registry,
                                                   prometheus_registry=target)
    try:
        status, body = scrape(port, "application/openmetrics-text; version=abc")
        assert status == 200 and app_metrics_present(body)
        broken = BrokenAppCollector()
        target.register(broken)  # type: ignore[arg-type]
        before = _guard.internal_error_count()
        status, body = scrape(port)
        assert status == 500 and body == prom_export.FAILURE_BODY.decode()
        assert _guard.internal_error_count() == before + 1
        target.unregister(broken)  # type: ignore[arg-type]
        status, body = scrape(port)
        assert status == 200 and 'model="bare"' in body
    finally:
        server.shutdown()
        server.server_close()
    thread.join(5)
    assert not thread.is_alive()
