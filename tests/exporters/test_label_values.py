"""Whatever the user passes, every exported label value is valid UTF-8 of bounded length.

Each test feeds one kind of label value (a predicted class, a category level, a level of a
loaded profile, an error type, a route, a model name, an output name, a feature name) and
checks the three ways out: ``generate_latest()``, the OpenMetrics encoder and the
middleware's ``/metrics`` endpoint all answer, the application's own metrics are still there,
and the value is exported under its escaped form.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from expositions import app_metrics_present, openmetrics, parse, reference_profile, target_for, text
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from test_asgi_helpers import get

import mlprobe
from mlprobe.asgi import ProbeMiddleware
from mlprobe.stats._labels import MAX_LABEL_CHARS

CAFE = b"caf\xe9".decode("utf-8", "surrogateescape")
CAFE_LABEL = "caf\\udce9"


def exported_values(exposition: str, family: str, label: str) -> set[str]:
    return {s.labels[label] for s in parse(exposition)[family].samples if label in s.labels}


def assert_exported(registry: mlprobe.Registry, family: str, label: str, value: str) -> None:
    """The text and OpenMetrics encoders and /metrics all serve ``value``, app metrics too."""
    target = target_for(registry)
    exposition = text(target)
    assert value in exported_values(exposition, family, label)
    assert app_metrics_present(exposition)
    om = {f.name: f for f in parse_om(openmetrics(target))}
    assert value in {s.labels.get(label) for s in om[family].samples}
    assert "app_logins" in om

    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", ok)])
    app.add_middleware(ProbeMiddleware, registry=registry, metrics_path="/metrics",
                       prometheus_registry=target)
    response = get(app, "/metrics")
    assert response.status_code == 200
    assert app_metrics_present(response.text)
    assert value in exported_values(response.text, family, label)


def test_a_class_with_a_lone_surrogate_is_exported_escaped(registry):
    """The issue's class b"caf\\xe9" decoded with surrogateescape no longer kills scrapes."""
    probe = mlprobe.Probe("m", registry=registry)
    probe.observe(outputs=[CAFE])
    probe.observe(outputs=np.array([CAFE, "ok"], dtype=object))
    assert_exported(registry, "mlprobe_predicted_class", "class", CAFE_LABEL)


def test_a_categorical_value_with_a_lone_surrogate_counts_under_its_level(registry):
    """A category level with a surrogate, from data and live, is one escaped bin."""
    rng = np.random.default_rng(0)
    profile = mlprobe.ReferenceProfile.from_data(
        {"x": rng.normal(size=200), "plan": rng.choice([CAFE, "pro"], 200).astype(object)},
        categorical=["plan"])
    probe = mlprobe.Probe("m", registry=registry, reference=profile)
    probe.observe(inputs={"x": [0.1, 0.2, 0.3], "plan": [CAFE, CAFE, "pro"]})
    assert_exported(registry, "mlprobe_feature_bin", "bin", CAFE_LABEL)
    bins = {dict(s.labels)["bin"]: s.value for f in registry.collect()
            if f.name == "mlprobe_feature_bin" for s in f.samples}
    assert bins[CAFE_LABEL] == 2 and bins["pro"] == 1 and bins["__other__"] == 0


def loaded_profile_with_level(level: str, tmp_path: Any) -> mlprobe.ReferenceProfile:
    """A profile document whose categorical level is ``level``, saved and loaded as JSON."""
    document = reference_profile().to_dict()
    plan = next(f for f in document["features"] if f["name"] == "plan")
    plan["levels"][0] = level
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(document))  # JSON writes the surrogate as \udc80
    return mlprobe.ReferenceProfile.load(path)


def test_a_loaded_profile_level_with_a_lone_surrogate_is_exported_escaped(registry, tmp_path):
    """The issue's "\\udc80bad" level in a loaded profile: scrapes work, live values match."""
    profile = loaded_profile_with_level("\udc80bad", tmp_path)
    probe = mlprobe.Probe("m", registry=registry, reference=profile)
    probe.observe(inputs={"age": [30.0], "income": [1.0], "plan": ["\udc80bad"]})
    assert_exported(registry, "mlprobe_feature_bin", "bin", "\\udc80bad")
    assert_exported(registry, "mlprobe_feature_reference_ratio", "bin", "\\udc80bad")
    bins = {dict(s.labels)["bin"]: s.value for f in registry.collect()
            if f.name == "mlprobe_feature_bin" for s in f.samples}
    assert bins["\\udc80bad"] == 1


def test_an_error_type_with_any_qualname_is_exported_escaped(registry):
    """An exception class may carry any __qualname__ (even a str subclass); it exports."""
    probe = mlprobe.Probe("m", registry=registry)

    class Odd(str):
        def __hash__(self) -> int:
            raise RuntimeError("unhashable qualname")

    weird = type("Weird", (Exception,), {"__qualname__": CAFE})
    hostile = type("Hostile", (Exception,), {"__qualname__": Odd("Hostile")})

    @probe.track
    def predict(exc: type[Exception]) -> None:
        raise exc("model failure")

    for exc in (weird, hostile):
        with pytest.raises(exc):
            predict(exc)
    assert_exported(registry, "mlprobe_prediction_errors", "error_type", CAFE_LABEL)
    assert_exported(registry, "mlprobe_prediction_errors", "error_type", "Hostile")


def test_a_route_template_or_resolver_result_with_a_surrogate_is_exported(registry):
    """A route template from the framework and a route_resolver's answer are label values."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/template":
            scope["route"] = SimpleNamespace(path="/t/" + CAFE)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    wrapped = ProbeMiddleware(app, registry=registry,
                              route_resolver=lambda scope: "/r/" + "\udc80" + "x" * 10_000)
    get(wrapped, "/template")
    get(wrapped, "/resolved")
    routes = exported_values(text(target_for(registry)), "http_server_request_duration_seconds",
                             "http_route")
    assert "/t/" + CAFE_LABEL in routes
    (resolved,) = [r for r in routes if r.startswith("/r/")]
    assert resolved.startswith("/r/\\udc80xxx") and len(resolved) == MAX_LABEL_CHARS
    assert_exported(registry, "http_server_request_duration_seconds", "http_route",
                    "/t/" + CAFE_LABEL)


def test_a_model_name_and_version_with_surrogates_are_exported_escaped(registry):
    """A model name made from a non-UTF-8 file name exports under its escaped form."""
    probe = mlprobe.Probe(CAFE, version="v" + CAFE, registry=registry)
    probe.observe(outputs=0.5)
    assert probe.name == CAFE_LABEL
    assert_exported(registry, "mlprobe_predictions", "model", CAFE_LABEL)
    assert_exported(registry, "mlprobe_predictions", "model_version", "v" + CAFE_LABEL)


def test_output_names_with_surrogates_are_exported_escaped(registry):
    """Names of a mapping of outputs are label values."""
    probe = mlprobe.Probe("m", registry=registry)
    probe.observe(outputs={CAFE: 0.5, "o" * 1000: 0.25})
    assert_exported(registry, "mlprobe_prediction_score", "output", CAFE_LABEL)
    outputs = exported_values(text(target_for(registry)), "mlprobe_prediction_score", "output")
    assert max(len(o) for o in outputs) == MAX_LABEL_CHARS


def unchecked_profile(columns: dict[str, Any], predictions: Any = None
                      ) -> mlprobe.ReferenceProfile:
    """A numeric profile built without from_data's name checks (which refuse surrogates), as
    a profile made by other code could be: the exporter's own defence is what is tested."""
    from mlprobe._feature_profile import NumericProfile

    pred = NumericProfile.build("prediction", predictions, 100) if predictions is not None else None
    return mlprobe.ReferenceProfile([NumericProfile.build(n, c, 100) for n, c in columns.items()],
                                    prediction=pred, n_rows=len(next(iter(columns.values()))))


def test_feature_names_with_surrogates_are_exported_escaped(registry):
    """A feature named by a surrogate-escaped column name exports under its escaped form."""
    rng = np.random.default_rng(1)
    # Positive values: prometheus_client's OpenMetrics parser rejects negative quantiles of a
    # summary (OpenMetrics 1.0), which Prometheus itself accepts (test_promtool.py).
    with pytest.raises(mlprobe.ConfigurationError, match="not valid Unicode"):
        mlprobe.ReferenceProfile.from_data({CAFE: rng.random(300)})  # refused when built...
    profile = unchecked_profile({CAFE: rng.random(300)})  # ...but the exporter holds anyway
    probe = mlprobe.Probe("m", registry=registry, reference=profile)
    probe.observe(inputs={CAFE: rng.random(50)})
    assert_exported(registry, "mlprobe_feature_mean", "feature", CAFE_LABEL)
    assert_exported(registry, "mlprobe_feature_quantile", "feature", CAFE_LABEL)


def test_fifty_100kb_classes_export_fifty_bounded_distinct_labels(registry):
    """Long class strings become capped labels that stay distinct: no 5 MB exposition."""
    probe = mlprobe.Probe("m", registry=registry)
    classes = [f"{i:02d}" + "c" * 100_000 for i in range(50)]
    probe.observe(outputs=np.array(classes, dtype=object))
    probe.observe(outputs=np.array(classes[:1], dtype=object))  # the same label again
    exposition = text(target_for(registry))
    labels = exported_values(exposition, "mlprobe_predicted_class", "class")
    assert len(labels) == 50 and max(len(v) for v in labels) == MAX_LABEL_CHARS
    assert len(exposition) < 50 * 1024
    first = next(v for v in labels if v.startswith("00"))
    values = {s.labels["class"]: s.value
              for s in parse(exposition)["mlprobe_predicted_class"].samples}
    assert values[first] == 2


def test_features_whose_names_render_alike_stay_distinct_series(registry):
    """Names that render alike, or a feature named __prediction__, never merge two series."""
    rng = np.random.default_rng(2)
    names = ["x" + "\udc80", "x\\udc80", "__prediction__"]
    profile = unchecked_profile({n: rng.random(300) for n in names},
                                predictions=rng.random(300))
    probe = mlprobe.Probe("m", registry=registry, reference=profile)

    @probe.track
    def predict(rows: Any) -> Any:
        return np.full(len(rows[names[0]]), 0.5)

    predict({n: rng.random(1200) for n in names})
    exposition = text(target_for(registry))
    for family in ("mlprobe_feature_mean", "mlprobe_feature_missing", "mlprobe_feature_drift_status"):
        samples = parse(exposition)[family].samples
        keys = [tuple(sorted(s.labels.items())) for s in samples]
        assert len(keys) == len(set(keys)), family
    features = exported_values(exposition, "mlprobe_feature_drift_status", "feature")
    assert len(features) == 4 and "__prediction__" in features  # 3 features + the prediction
    assert "x\\udc80" in features


def test_an_app_exception_with_any_qualname_is_recorded_by_the_middleware(registry):
    """The middleware records an exception whose __qualname__ is odd (the server gets a 500)."""

    class Odd(str):
        def __hash__(self) -> int:
            raise RuntimeError("unhashable qualname")

    hostile = type("Hostile", (Exception,), {"__qualname__": Odd("Host" + CAFE)})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise hostile("app failure")

    wrapped = ProbeMiddleware(app, registry=registry)
    assert get(wrapped, "/x").status_code == 500  # httpx turns the re-raised error into a 500
    assert_exported(registry, "http_server_request_duration_seconds", "error_type",
                    "Host" + CAFE_LABEL)
