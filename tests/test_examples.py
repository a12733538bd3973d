"""Every example runs: the demo service in-process, the demo end to end, the plain ASGI one."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_asgi_helpers import counts, get, run


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture
def examples_on_path(monkeypatch):
    """Make the examples folder importable the way run_demo.py does."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_demo_service_predicts_and_reports(examples_on_path, registry):
    """The demo app answers /predict with scores and exposes HTTP, model and drift metrics."""
    from demo import model_service

    trained = model_service.train()
    assert trained.accuracy > 0.9
    app = model_service.create_app(trained, registry=registry)
    rows = trained.X_test[:3].tolist()

    async def body():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            predicted = await client.post("/predict", json={"rows": rows})
            bad = await client.post("/predict", json={"rows": [[1.0]]})
            metrics = await client.get("/metrics")
            drift = await client.get("/drift")
        return predicted, bad, metrics, drift

    predicted, bad, metrics, drift = run(body)
    scores = predicted.json()["scores"]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert bad.status_code == 422
    names = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert {"http_server_request_duration_seconds", "mlprobe_predictions",
            "mlprobe_prediction_duration_seconds"} <= names
    assert drift.status_code == 200 and drift.json()["status"] == "insufficient_data"
    assert counts(registry) == {("POST", "/predict", "200", ""): 1,
                                ("POST", "/predict", "422", ""): 1}


def test_run_demo_quick_end_to_end():
    """python examples/run_demo.py --quick exits 0 and shows drift going ok -> critical."""
    result = subprocess.run([sys.executable, str(EXAMPLES / "run_demo.py"), "--quick"],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "/predict" in out and "p95" in out
    assert "done: drift status ok (normal) -> warning (drifting) -> critical (drifted)" in out


def test_traffic_generator_has_a_cli():
    """examples/demo/traffic.py runs as a script (its --help at least)."""
    result = subprocess.run([sys.executable, str(EXAMPLES / "demo" / "traffic.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "base_url" in result.stdout


def test_plain_asgi_example_labels_by_resolver(examples_on_path):
    """The framework-less example labels requests by its resolver and serves /metrics."""
    import plain_asgi

    wrapped = plain_asgi.instrumented
    assert counts(plain_asgi.registry) == {}
    assert get(wrapped, "/users/1").status_code == 200
    assert get(wrapped, "/users/2").status_code == 200
    assert get(wrapped, "/other").status_code == 404
    assert counts(plain_asgi.registry) == {("GET", "/users/{user_id}", "200", ""): 2,
                                           ("GET", "__unmatched__", "404", ""): 1}
    assert "http_server_active_requests" in get(wrapped, "/metrics").text
