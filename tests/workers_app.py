"""A demo-style model service for the multi-worker tests: run by uvicorn/gunicorn workers.

Every worker imports this module and builds the same reference profile (from a fixed seed),
the same probe and the same FastAPI app with the middleware serving ``/metrics``, ``/drift``
and ``/status``. ``POST /predict`` takes one row ``{"x": .., "y": .., "c": ..}`` and answers
its score with the serving worker's pid (body and ``x-worker-pid`` header), so a test knows
which worker served each request; ``POST /batch`` takes ``{"batch": {column: [values]},
"scores": [...]}`` and records one tracked call of that batch returning those scores (the
fleet tests' replica); ``WORKERS_APP_SHADOW`` (``thread`` or ``process``) shadows the model
with a candidate, whose process ``GET /shadow`` names. ``MLPROBE_MULTIPROCESS_DIR`` turns
multi-process mode on;
``WORKERS_APP_PROFILE`` (a profile file) and ``WORKERS_APP_MODEL`` (``name:version``) replace
the built-in profile and model; ``WORKERS_APP_OTLP`` (an OTLP/HTTP metrics URL) starts the
OTLP push exporter (interval ``WORKERS_APP_OTLP_INTERVAL``, default 1 s).
``WORKERS_APP_QUALITY_GRACE`` (seconds) turns model quality on (a binary model: its score
above 0.5 predicts 1) with that ``unknown_grace_seconds``: ``/predict`` then answers the
prediction's id too, and ``POST /outcome`` takes ``{"id": .., "actual": ..}`` and records it
(on whichever worker answers). (Not a test module.)
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from fastapi import FastAPI

import mlprobe
from mlprobe.asgi import ProbeMiddleware

SEED = 11
N_REFERENCE = 3000
MODEL, VERSION = "workers", "1"


def reference_data() -> tuple[dict[str, Any], np.ndarray]:
    """The training data the profile is built from (the same in every process)."""
    g = np.random.default_rng(SEED)
    data = {"x": g.normal(0, 1, N_REFERENCE), "y": g.exponential(2.0, N_REFERENCE),
            "c": g.choice(["a", "b", "c"], N_REFERENCE).astype(object)}
    return data, g.random(N_REFERENCE)


def profile() -> mlprobe.ReferenceProfile:
    """The reference profile every worker serves with."""
    data, predictions = reference_data()
    return mlprobe.ReferenceProfile.from_data(data, predictions=predictions, categorical=["c"])


def score(row: dict[str, Any]) -> float:
    """The model: a deterministic function of the row (a probability)."""
    return float(1.0 / (1.0 + np.exp(-(row["x"] + 0.1 * row["y"]))))


if os.environ.get("WORKERS_APP_MODEL"):
    MODEL, VERSION = os.environ["WORKERS_APP_MODEL"].split(":")
REFERENCE = (mlprobe.ReferenceProfile.load(os.environ["WORKERS_APP_PROFILE"])
             if os.environ.get("WORKERS_APP_PROFILE") else profile())
GRACE = os.environ.get("WORKERS_APP_QUALITY_GRACE")
QUALITY = None if GRACE is None else mlprobe.QualitySpec(
    task="binary", labels=[0, 1], unknown_grace_seconds=float(GRACE))
probe = mlprobe.Probe(MODEL, version=VERSION, reference=REFERENCE, window_seconds=600,
                      quality=QUALITY)
# WORKERS_APP_SHADOW ("thread" or "process"): the model is shadowed by a candidate
shadow = (mlprobe.Shadow(probe, lambda row: 1.0 - score(row), version="candidate",
                         task="binary", isolation=os.environ["WORKERS_APP_SHADOW"])
          if os.environ.get("WORKERS_APP_SHADOW") else None)


def predict(row: dict[str, Any]) -> float:
    return score(row)


predict = probe.track(predict) if shadow is None else shadow.track(predict)


@probe.track
def predict_batch(batch: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    return scores


def create_app() -> FastAPI:
    app = FastAPI()

    @app.post("/predict")
    def predict_endpoint(row: dict[str, Any]) -> dict[str, Any]:
        return {"score": predict(row), "pid": os.getpid(),
                "id": mlprobe.current_prediction_id()}

    @app.post("/outcome")
    def outcome_endpoint(body: dict[str, Any]) -> dict[str, Any]:
        probe.record_outcome(body["id"], body["actual"])
        return {"pid": os.getpid()}

    @app.post("/batch")
    def batch_endpoint(body: dict[str, Any]) -> dict[str, int]:
        batch = {k: np.asarray(v, dtype=object if any(isinstance(x, str) for x in v)
                               else np.float64) for k, v in body["batch"].items()}
        predict_batch(batch, np.asarray(body["scores"], dtype=np.float64))
        return {"pid": os.getpid()}

    @app.get("/pid")
    def pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.get("/shadow")
    def shadow_status() -> dict[str, Any]:
        """This worker's candidate process, once its queued calls are recorded."""
        assert shadow is not None
        return {"pid": os.getpid(), "joined": shadow.join(10),
                "candidate_pid": shadow.candidate_pid}

    app.add_middleware(ProbeMiddleware, probe=probe, metrics_path="/metrics",
                       drift_path="/drift", status_page_path="/status")
    return app


class WorkerHeader:
    """Pure ASGI: every response says which worker sent it (``x-worker-pid``)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.header = (b"x-worker-pid", str(os.getpid()).encode())

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_with_pid(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_pid if scope["type"] == "http" else send)


app = WorkerHeader(create_app())

if os.environ.get("WORKERS_APP_OTLP"):
    from mlprobe.exporters import otel

    pusher = otel.push(endpoint=os.environ["WORKERS_APP_OTLP"], protocol="http/protobuf",
                       interval=float(os.environ.get("WORKERS_APP_OTLP_INTERVAL", "1")),
                       service_name="workers-app")
