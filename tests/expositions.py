"""Builders of busy mlprobe registries and their Prometheus expositions, shared by export tests.

(Not a test module: it holds no tests.)
"""

from __future__ import annotations

import subprocess
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

import mlprobe
from mlprobe.exporters import prometheus as prom_export

from realservers import require_binary

RNG_SEED = 7


def bare_probe(registry: mlprobe.Registry) -> mlprobe.Probe:
    """A probe without a profile: calls, an error, scores of two outputs and classes."""
    probe = mlprobe.Probe("bare", version="1", registry=registry)

    @probe.track
    def predict(features: Any) -> Any:
        if features is None:
            raise ValueError("no input")
        return np.array([[0.2, 0.8], [0.6, 0.4]])[: len(features)]

    predict(np.zeros((2, 4)))
    try:
        predict(None)
    except ValueError:
        pass
    probe.observe(outputs=np.array(["yes", "no", "yes"]))
    probe.observe(outputs=0.25)
    return probe


def reference_profile() -> mlprobe.ReferenceProfile:
    """Two numeric and one categorical feature, with a prediction-score profile."""
    rng = np.random.default_rng(RNG_SEED)
    n = 2000
    data = {"age": rng.normal(40, 10, n), "income": rng.lognormal(10, 0.5, n),
            "plan": rng.choice(["basic", "pro", "team"], n).astype(object)}
    return mlprobe.ReferenceProfile.from_data(data, predictions=rng.random(n),
                                              categorical=["plan"])


def profiled_probe(registry: mlprobe.Registry,
                   profile: mlprobe.ReferenceProfile | None = None) -> mlprobe.Probe:
    """A probe with a numeric + categorical + prediction profile after drifted traffic.

    The traffic leaves every feature family populated: drift statistics and statuses, the
    dataset drift share, missing, out-of-range and unseen values, schema violations.
    """
    profile = reference_profile() if profile is None else profile
    probe = mlprobe.Probe("profiled", version="2", registry=registry, reference=profile)
    rng = np.random.default_rng(RNG_SEED + 1)

    @probe.track
    def predict(rows: Any) -> Any:
        return np.full(len(rows["age"]), 0.9)

    n = 1200  # over DriftSpec's default min_count, so statuses and the share are defined
    predict({"age": rng.normal(60, 10, n), "income": rng.lognormal(10, 0.5, n),
             "plan": rng.choice(["basic", "pro", "enterprise"], n).astype(object)})
    probe.observe(inputs={"age": [None, 1e9], "income": [1.0, 2.0], "plan": ["basic", None],
                          "surprise": [1, 2]})
    return probe


def quality_probe(registry: mlprobe.Registry) -> mlprobe.Probe:
    """A probe with model quality and a shadow after an hour of labelled traffic (a fake wall
    clock): window metrics, estimate, reference and statuses, outcome counters of every
    result, the delay histogram, the concept-drift signal, store gauges, shadow families."""
    probe = mlprobe.Probe("quality", version="3", registry=registry, quality=mlprobe.QualitySpec(
        task="binary", min_count=50, reference={"accuracy": 0.95, "roc_auc": 0.9},
        unknown_grace_seconds=0, window_seconds=600, window_buckets=10, history_buckets=12))
    clock = [1_700_000_000.0]
    probe._state.quality._clock = probe._state.store._clock = lambda: clock[0]
    shadow = mlprobe.Shadow(probe, lambda x: np.asarray(x) * 0.9, version="4")
    predict = shadow.track(lambda x: np.asarray(x, dtype=float))
    rng = np.random.default_rng(RNG_SEED + 2)
    for _ in range(12):  # an hour in 5-minute steps: the detector has a history
        for _ in range(20):
            scores = rng.random(5)
            predict(scores)
            probe.record_outcome(mlprobe.current_prediction_id(),
                                 (rng.random(5) < scores).astype(int))
        clock[0] += 300
    shadow.join()
    probe.record_outcome("unknown-id", 1)
    probe.record_outcome(mlprobe.current_prediction_id(), [1, 0, 1, 0, 1])  # a duplicate
    probe.record_outcome("late", 1)
    probe.record_pairs([0.3], ["not a label"])
    return probe


def asgi_traffic(registry: mlprobe.Registry) -> None:
    """Requests through the ASGI middleware: ok, 404, a 500 from an exception, two methods."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from test_asgi_helpers import request, run

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    async def boom(request: Any) -> PlainTextResponse:
        raise RuntimeError("boom")

    app = Starlette(routes=[Route("/items/{item_id}", ok, methods=["GET", "POST"]),
                            Route("/boom", boom)])
    app.add_middleware(mlprobe.asgi.ProbeMiddleware, registry=registry)

    async def traffic() -> None:
        await request(app, "GET", "/items/1")
        await request(app, "POST", "/items/2", content=b"x" * 100)
        await request(app, "GET", "/nowhere")
        await request(app, "GET", "/boom")

    run(traffic)


def target_for(*registries: mlprobe.Registry, app_metrics: bool = True) -> CollectorRegistry:
    """A prometheus_client registry with the app's own counter and the given mlprobe ones."""
    target = CollectorRegistry()
    if app_metrics:
        Counter("app_logins", "Logins of the application.", registry=target).inc(2)
    for registry in registries:
        prom_export.register(registry, target)
    return target


def text(target: CollectorRegistry) -> str:
    """The classic text exposition (what generate_latest serves)."""
    return generate_latest(target).decode("utf-8")


def openmetrics(target: CollectorRegistry) -> str:
    """The OpenMetrics exposition."""
    return generate_openmetrics(target).decode("utf-8")


def parse(exposition: str) -> dict[str, Any]:
    """{family name: family} as prometheus_client's parser reads the text format."""
    return {f.name: f for f in text_string_to_metric_families(exposition)}


def app_metrics_present(exposition: str) -> bool:
    """True when the application's own counter made it into the exposition."""
    return 'app_logins_total 2.0' in exposition


def promtool_problems(exposition: str) -> str:
    """Everything ``promtool check metrics`` prints about ``exposition`` (empty when clean),
    with its exit status when it is not 0."""
    promtool = require_binary("promtool")
    out = subprocess.run([promtool, "check", "metrics"], input=exposition.encode("utf-8"),
                         capture_output=True, timeout=60)
    problems = (out.stdout + out.stderr).decode("utf-8", "replace").strip()
    if out.returncode != 0:
        problems = f"exit {out.returncode}: {problems}"
    return problems
