"""The demo model service: a real scikit-learn model behind FastAPI, instrumented by mlprobe.

The model is a logistic regression trained on scikit-learn's bundled breast cancer data set
(569 rows, 30 numeric features; shipped with scikit-learn, so nothing is downloaded). The
training rows are profiled into a :class:`mlprobe.ReferenceProfile`, which the probe compares
live traffic against.

Run it on its own with ``uvicorn examples.demo.model_service:app`` (from the repository root;
the app is built, and the model trained, when uvicorn first asks for ``app``), or let
``examples/run_demo.py`` start it and send traffic.

Model quality: the probe keeps each prediction under a prediction id (returned in the body
and in the ``x-prediction-id`` response header) until its label is posted to ``/outcome``;
the rolling accuracy, its status against the accuracy on the training rows (stored in the
profile) and a label-free estimate are in ``/metrics`` and ``/drift``. A candidate model
(a shallow decision tree, version ``2-candidate``) runs as a shadow of every call, off the
request path, and its agreement with the primary is exported.

Endpoints:
    ``POST /predict``   ``{"rows": [[30 numbers], ...]}`` -> ``{"scores": [...],
                        "prediction_id": "..."}``
    ``POST /outcome``   ``{"prediction_id": "...", "labels": [0 or 1 per row]}``
    ``GET /metrics``    Prometheus exposition (served by the middleware)
    ``GET /drift``      drift and model-quality status JSON (served by the middleware)
    ``GET /health``     liveness (excluded from the HTTP metrics)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

import mlprobe
from mlprobe.asgi import ProbeMiddleware

MODEL_NAME = "breast-cancer"
MODEL_VERSION = "1"
CANDIDATE_VERSION = "2-candidate"
ID_HEADER = "x-prediction-id"


@dataclass
class TrainedModel:
    """The fitted pipeline and candidate, feature names, and rows to replay as traffic."""

    pipeline: Any
    feature_names: list[str]
    X_train: np.ndarray
    X_test: np.ndarray
    accuracy: float
    y_train: np.ndarray
    candidate: Any


def train(seed: int = 0) -> TrainedModel:
    """Fit the model on the bundled data set (a fraction of a second)."""
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=seed, stratify=data.target)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    pipeline.fit(X_train, y_train)
    candidate = DecisionTreeClassifier(max_depth=3, random_state=seed).fit(X_train, y_train)
    return TrainedModel(pipeline, [str(n) for n in data.feature_names], X_train, X_test,
                        float(pipeline.score(X_test, y_test)), y_train, candidate)


class PredictRequest(BaseModel):
    """A batch of rows, each with the 30 features in the data set's order."""

    rows: list[list[float]]


class OutcomeRequest(BaseModel):
    """The labels of a prediction's rows (0 malignant, 1 benign), known later."""

    prediction_id: str
    labels: list[int]


def create_app(trained: TrainedModel | None = None, *, registry: mlprobe.Registry | None = None,
               window_seconds: float = 30.0) -> FastAPI:
    """Build the instrumented app.

    Args:
        trained: the model (trained here when None).
        registry: where metrics live (mlprobe's default registry when None).
        window_seconds: the rolling window drift is computed over; short for the demo so
            that drifting traffic shows within seconds.
    """
    trained = trained or train()
    pipeline = trained.pipeline
    # With the labels too, the profile records the model's quality on the training rows:
    # the reference the live accuracy is judged against (a 2% / 5% drop).
    reference = mlprobe.ReferenceProfile.from_data(
        trained.X_train, trained.y_train,
        predictions=pipeline.predict_proba(trained.X_train)[:, 1],
        feature_names=trained.feature_names)
    quality = mlprobe.QualitySpec(window_seconds=window_seconds, window_buckets=6,
                                  history_buckets=24, min_count=200, ttl_seconds=600)
    probe = mlprobe.Probe(MODEL_NAME, version=MODEL_VERSION, registry=registry,
                          reference=reference, window_seconds=window_seconds, quality=quality)
    candidate = trained.candidate
    shadow = mlprobe.Shadow(probe, lambda rows: candidate.predict_proba(rows)[:, 1],
                            version=CANDIDATE_VERSION)

    @shadow.track
    def predict(rows: np.ndarray) -> np.ndarray:
        """Probability of the benign class for each row."""
        return pipeline.predict_proba(rows)[:, 1]

    app = FastAPI(title="mlprobe demo model service")

    @app.post("/predict")
    def predict_endpoint(request: PredictRequest) -> dict[str, Any]:
        rows = np.asarray(request.rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(trained.feature_names):
            raise HTTPException(422, f"each row needs {len(trained.feature_names)} features")
        scores = predict(rows).tolist()
        return {"scores": scores, "prediction_id": mlprobe.current_prediction_id()}

    @app.post("/outcome")
    def outcome_endpoint(request: OutcomeRequest) -> dict[str, str]:
        probe.record_outcome(request.prediction_id, request.labels)
        return {"status": "recorded"}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "up"}

    app.add_middleware(ProbeMiddleware, probe=probe, metrics_path="/metrics",
                       drift_path="/drift", prediction_id_header=ID_HEADER)
    app.state.probe = probe
    app.state.shadow = shadow
    app.state.trained = trained
    return app


def __getattr__(name: str) -> Any:
    """Build the module-level ``app`` on first access (what ``uvicorn ...:app`` reads).

    Lazily, so that importing this module (the demo, the tests) trains nothing and registers
    no probe in mlprobe's default registry.
    """
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
