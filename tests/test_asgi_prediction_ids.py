"""Prediction ids through the middleware, under a real uvicorn: the request's id is used,
a missing one is created and sent back, sync endpoints in worker threads included, and
outcomes posted later join them."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from test_asgi_helpers import uvicorn_server

import mlprobe
from mlprobe import QualitySpec, current_prediction_id
from mlprobe.asgi import ProbeMiddleware
from mlprobe.errors import ConfigurationError
from mlprobe.testing import sample_value

HEADER = "x-prediction-id"


def build_app(registry: mlprobe.Registry) -> tuple[FastAPI, mlprobe.Probe]:
    probe = mlprobe.Probe("m", version="1", registry=registry,
                          quality=QualitySpec(task="binary", unknown_grace_seconds=0))

    @probe.track
    def predict(x: float) -> float:
        return x

    app = FastAPI()

    @app.post("/sync")
    def sync_endpoint(body: dict[str, Any]) -> dict[str, Any]:  # runs in a worker thread
        return {"score": predict(float(body["x"])), "id": current_prediction_id()}

    @app.post("/async")
    async def async_endpoint(body: dict[str, Any]) -> dict[str, Any]:
        return {"score": predict(float(body["x"])), "id": current_prediction_id()}

    @app.get("/other")
    def other() -> dict[str, Any]:
        return {"id": current_prediction_id()}

    @app.post("/outcome")
    def outcome(body: dict[str, Any]) -> dict[str, str]:
        probe.record_outcome(body["id"], body["label"])
        return {"ok": "yes"}

    app.add_middleware(ProbeMiddleware, probe=probe, prediction_id_header=HEADER)
    return app, probe


def test_ids_in_and_out_through_a_real_server(registry):
    """A request's own id is the prediction's and is echoed; a request without one gets a
    new id in the response header (the same the endpoint saw), sync and async endpoints
    alike; ids never leak into the next request; outcomes by those ids all join."""
    app, probe = build_app(registry)
    with uvicorn_server(app) as base, httpx.Client(base_url=base, timeout=10) as client:
        given = client.post("/sync", json={"x": 0.9}, headers={HEADER: "req-1"})
        assert given.headers[HEADER] == "req-1" and given.json()["id"] == "req-1"
        seen = []
        for path in ("/sync", "/async") * 10:
            r = client.post(path, json={"x": 0.2})
            assert r.headers[HEADER] == r.json()["id"]
            seen.append(r.headers[HEADER])
        assert len(set(seen)) == 20
        # a request that makes no prediction has no id, whatever came before
        r = client.get("/other")
        assert HEADER not in r.headers and r.json()["id"] is None
        long_id = "L" * 500  # stored by its hash; the outcome by the same id finds it
        client.post("/sync", json={"x": 0.9}, headers={HEADER: long_id})
        client.post("/outcome", json={"id": long_id, "label": 1})
        client.post("/outcome", json={"id": "req-1", "label": 1})
        for i, pid in enumerate(seen):
            client.post("/outcome", json={"id": pid, "label": i % 2})
    labels = {"model": "m", "model_version": "1"}
    assert sample_value(registry, "mlprobe_outcomes", {**labels, "result": "matched"}) == 22
    assert sample_value(registry, "mlprobe_outcomes", {**labels, "result": "unknown"}) == 0
    assert sample_value(registry, "mlprobe_model_quality", {**labels, "metric": "accuracy"}) \
        == pytest.approx(12 / 22)
    del probe


def test_bad_header_name_is_a_configuration_error():
    """A header name that is not an HTTP token fails at construction."""
    with pytest.raises(ConfigurationError, match="prediction_id_header"):
        ProbeMiddleware(FastAPI(), prediction_id_header="bad header")


def test_without_the_option_nothing_changes(registry):
    """Without prediction_id_header, responses carry no id header (ids still go to the
    context variable)."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    tracked = probe.track(lambda x: 0.5)
    app = FastAPI()

    @app.get("/p")
    def p() -> dict[str, Any]:
        tracked(1)
        return {"id": current_prediction_id()}

    app.add_middleware(ProbeMiddleware, probe=probe)
    with uvicorn_server(app) as base, httpx.Client(base_url=base) as client:
        r = client.get("/p")
    assert HEADER not in r.headers and r.json()["id"]
    assert np.isfinite(sample_value(registry, "mlprobe_prediction_ids",
                                    {"state": "stored"}) or np.nan)
