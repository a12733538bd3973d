"""The status page endpoint without a browser: answers, headers, formats, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_asgi_helpers import get, request, run

import mlprobe
from mlprobe import _guard, _status_page
from mlprobe._html_report import render_page
from mlprobe.asgi import ProbeMiddleware
from mlprobe.errors import ConfigurationError


def app_for(probe: mlprobe.Probe | None, **options) -> Starlette:
    app = Starlette(routes=[Route("/ok", lambda r: PlainTextResponse("ok"))])
    app.add_middleware(ProbeMiddleware, probe=probe, status_page_path="/mlprobe", **options)
    return app


def drifted_probe(registry: mlprobe.Registry) -> mlprobe.Probe:
    g = np.random.default_rng(0)
    reference = mlprobe.ReferenceProfile.from_data(
        {"a": g.normal(size=2000), "secret": g.choice(["k1", "k2"], 2000)},
        sensitive=["secret"])
    probe = mlprobe.Probe("m", version="2", registry=registry, reference=reference)
    probe.observe(inputs={"a": g.normal(3, 1, 2000), "secret": ["k1"] * 2000})
    return probe


def test_status_page_serves_page_fragment_and_json(registry):
    """GET answers the page with a strict CSP, ?fragment=1 its content, ?format=json the
    content as JSON (statuses, bins; the sensitive feature's bins by index, no edges)."""
    app = app_for(drifted_probe(registry))
    page = get(app, "/mlprobe")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert '<div id="content">' in page.text and "setInterval" in page.text
    fragment = get(app, "/mlprobe", params={"fragment": "1"})
    assert fragment.text.startswith("<header>") and "<script" not in fragment.text
    model = get(app, "/mlprobe", params={"format": "json"}).json()
    columns = {c["name"]: c for c in model["columns"]}
    assert columns["a"]["status"] == "critical" and model["model_version"] == "2"
    assert columns["secret"]["bins"] == {**columns["secret"]["bins"], "labels": [
        "0", "1", "__other__"], "edges": None}
    assert "k1" not in json.dumps(model) and "k1" not in page.text
    assert model["profile"] and len(model["profile"]) == 8


def test_status_page_methods_and_missing_reference(registry):
    """HEAD has no body, POST is 405, a probe without reference (or none) gets a 404 text;
    requests to the page are not recorded as HTTP traffic."""
    app = app_for(drifted_probe(registry))
    head = run(lambda: request(app, "HEAD", "/mlprobe"))
    assert head.status_code == 200 and head.content == b""
    assert run(lambda: request(app, "POST", "/mlprobe")).status_code == 405
    bare = app_for(mlprobe.Probe("bare", registry=mlprobe.Registry()))
    missing = get(bare, "/mlprobe")
    assert missing.status_code == 404 and "no reference profile" in missing.text
    assert get(app_for(None), "/mlprobe").status_code == 404
    assert not any(f.name.startswith("http_server") and f.samples
                   for f in registry.collect())


@pytest.mark.allow_internal_errors
def test_status_page_failure_is_a_500_and_counted(registry, monkeypatch):
    """A failure while building the page answers 500 and counts an internal error; the app's
    own routes keep working."""
    app = app_for(drifted_probe(registry))

    def broken(probe):
        raise RuntimeError("boom")

    monkeypatch.setattr(_status_page, "probe_view_model", broken)
    before = _guard.internal_error_count()
    response = get(app, "/mlprobe")
    assert response.status_code == 500 and b"boom" not in response.content
    assert _guard.internal_error_count() == before + 1
    assert get(app, "/ok").text == "ok"


@pytest.mark.parametrize("refresh", [0, 0.5, 7200, "5", True])
def test_status_page_refresh_is_checked(refresh):
    """status_page_refresh outside 1..3600 seconds fails at construction, naming the option."""
    with pytest.raises(ConfigurationError, match="status_page_refresh"):
        ProbeMiddleware(Starlette(), status_page_path="/mlprobe", status_page_refresh=refresh)


def test_rendered_pages_refer_to_nothing_outside():
    """No URL, stylesheet, font or image of another origin in a rendered page."""
    g = np.random.default_rng(1)
    reference = mlprobe.ReferenceProfile.from_data({"a": g.normal(size=500)})
    probe = mlprobe.Probe("m", registry=mlprobe.Registry(), reference=reference)
    probe.observe(inputs={"a": g.normal(size=500)})
    html = render_page(_status_page.probe_view_model(probe), refresh_seconds=5,
                       fragment_url="?fragment=1")
    for needle in ("http:", "https:", "//", "@import", "url("):
        assert needle not in html.replace("http://www.w3.org", ""), needle


def test_status_page_shows_model_quality(registry):
    """A probe with quality: the page's JSON has the model-quality section (metrics beside the
    reference and the estimate, statuses, outcome counts), its HTML a #model-quality section
    with the status, and the page's overall status includes it; the labels' drift is a
    target column."""
    g = np.random.default_rng(1)
    X = g.normal(size=(3000, 2))
    p = 1 / (1 + np.exp(-2 * X[:, 0]))
    y = (g.random(3000) < p).astype(int)
    reference = mlprobe.ReferenceProfile.from_data(X, y, p)
    probe = mlprobe.Probe("m", version="1", registry=registry, reference=reference,
                          quality=mlprobe.QualitySpec(min_count=100))
    tracked = probe.track(lambda rows: 1 / (1 + np.exp(-2 * rows[:, 0])))
    tracked(X[:1000])
    wrong = 1 - y[:1000]  # every label flipped: accuracy far below the reference
    probe.record_outcome(mlprobe.current_prediction_id(), wrong)
    app = app_for(probe)
    model = get(app, "/mlprobe", params={"format": "json"}).json()
    quality = model["model_quality"]
    rows = {r["metric"]: r for r in quality["rows"]}
    assert quality["status"] == "critical" and model["status"] == "critical"
    assert rows["accuracy"]["status"] == "critical"
    assert rows["accuracy"]["reference"] == pytest.approx(reference.quality.metrics["accuracy"])
    assert rows["accuracy"]["estimate"] is not None
    assert quality["outcomes"]["matched"] == 1000
    assert any(c["role"] == "target" for c in model["columns"])
    page = get(app, "/mlprobe").text
    assert 'id="model-quality" data-status="critical"' in page
    assert 'data-metric="accuracy" data-status="critical"' in page
