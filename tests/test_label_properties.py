"""Property campaign over label values: all of Unicode, surrogates and controls, any length.

Strings are fed in everywhere a user or a client's value becomes a label (predicted classes,
error types, output names, model names, category values and profile levels, HTTP routes and
error types). After each example ``generate_latest()`` has not raised, prometheus_client's
parser reads the exposition back, every value is exported exactly as
:func:`mlprobe.stats._labels.label_value` renders it, and for a sample of the examples promtool
accepts the exposition. Examples are deterministic (``tests/conftest.py`` loads the ``ci``
hypothesis profile): 3,000 of them per run.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np
import pytest
from expositions import parse, promtool_problems, target_for, text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlprobe
from mlprobe._http_metrics import HttpConfig, HttpMetrics
from mlprobe.stats._categorical import level_key
from mlprobe.stats._labels import MAX_LABEL_CHARS, label_value

ANY_CHAR = st.characters(exclude_categories=())  # every code point, lone surrogates included
TRICKY = st.sampled_from(["\\", '"', "\n", "\r", "\t", "\x00", "\x7f", "\udc80", "\ud800",
                          "\udfff", "é", "😀", "\u2028", "\ufeff", "{", "}", "=", ",", " ", "a"])
# Values around the length cap, built by repetition (generating 200 random code points per
# value would cost hypothesis more than the whole check).
LONG_TEXT = st.builds(lambda unit, n: (unit * (MAX_LABEL_CHARS + 60))[: MAX_LABEL_CHARS - 10 + n],
                      st.text(ANY_CHAR, min_size=1, max_size=6), st.integers(0, 70))
SHORT_TEXT = st.text(ANY_CHAR, max_size=12) | st.text(TRICKY, max_size=12)
LABEL_TEXT = st.one_of(SHORT_TEXT, SHORT_TEXT, LONG_TEXT)  # one value in six is long

# promtool is a subprocess (~20 ms): it checks every PROMTOOL_EVERY-th example of each test.
PROMTOOL_EVERY = 40
_promtool_turn = itertools.count()



def cases(n: int) -> settings:
    """``n`` examples, no per-example deadline (a shared CI machine is noisy)."""
    return settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def check_exposition(registry: mlprobe.Registry) -> dict[str, Any]:
    """Render, parse back and (sometimes) lint the registry's exposition; return the families."""
    exposition = text(target_for(registry))  # generate_latest must not raise
    families = parse(exposition)
    if next(_promtool_turn) % PROMTOOL_EVERY == 0:
        assert promtool_problems(exposition) == ""
    return families


def exported(families: dict[str, Any], family: str, label: str) -> set[str]:
    return {s.labels[label] for s in families[family].samples if label in s.labels}


@cases(2200)
@given(LABEL_TEXT)
def test_the_label_rule_gives_valid_bounded_idempotent_values(value):
    """Any text maps to valid UTF-8 of at most the cap, itself when already such a value."""
    label = label_value(value)
    label.encode("utf-8")
    assert len(label) <= MAX_LABEL_CHARS
    assert label_value(label) == label and level_key(label) == label
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        assert label != value
    else:
        assert (label == value) == (len(value) <= MAX_LABEL_CHARS)


# One bucket per histogram keeps each example's exposition small (and the parser quick).
ONE_BUCKET = {"latency_buckets": (1.0,), "rows_buckets": (1.0,), "bytes_buckets": (1.0,),
              "score_buckets": (0.5,)}


def http_metrics(registry: mlprobe.Registry) -> Any:
    config = HttpConfig(duration_buckets=(1.0,), size_buckets=(100.0,),
                        known_methods=("GET",), max_routes=200, max_status_codes=40,
                        max_error_types=20)
    return registry.get_or_create(("asgi", "http"), lambda: HttpMetrics(config))


@cases(500)
@given(st.lists(LABEL_TEXT, min_size=1, max_size=4))
def test_classes_errors_outputs_models_and_routes_export_as_label_values(values):
    """Every place a probe or the middleware turns a value into a label gives a label value."""
    registry = mlprobe.Registry()
    # Every sample carries the model label: keep it short, so the parser's time goes to the
    # values under test (long model names are in tests/exporters/test_label_values.py).
    model = "m" + values[0][:12]
    probe = mlprobe.Probe(model, registry=registry, **ONE_BUCKET)

    @probe.track
    def predict(error: type[Exception] | None) -> Any:
        if error is not None:
            raise error("model failure")
        return np.array(values, dtype=object)  # classes

    for value in values:
        with pytest.raises(Exception) as raised:
            predict(type("E", (Exception,), {"__qualname__": value}))
        assert raised.type.__qualname__ == value  # the user's exception passed unchanged
        probe.observe(outputs=value)  # one class
    assert list(predict(None)) == values  # the result passed unchanged
    probe.observe(outputs={value: 0.5 for value in values})  # named outputs
    record = http_metrics(registry).record
    for value in values:  # the value as route and as error type of one series
        record(0, value, 500, value, 0.0, 0.01, -1.0, 0, 0)  # no body: no ttfb series

    # The snapshots themselves hold label values (an OTLP exporter reads them, not ours).
    for family in registry.collect():
        for sample in family.samples:
            assert all(label_value(v) == v for _, v in sample.labels)
    families = check_exposition(registry)
    labels = {label_value(v) for v in values}
    assert exported(families, "mlprobe_predicted_class", "class") == labels
    assert exported(families, "mlprobe_prediction_errors", "error_type") == labels
    assert exported(families, "mlprobe_prediction_score", "output") == labels
    assert exported(families, "mlprobe_predictions", "model") == {label_value(model)}
    assert exported(families, "http_server_request_duration_seconds", "http_route") == labels
    assert exported(families, "http_server_request_duration_seconds", "error_type") == labels
    assert families["mlprobe_internal_errors"].samples[0].value == (
        mlprobe._guard.internal_error_count())


BASE_DOCUMENT = mlprobe.ReferenceProfile.from_data(
    {"plan": ["basic", "pro"] * 50}, categorical=["plan"]).to_dict()
# Levels a profile can hold: not the reserved overflow name, not blank (a missing value).
_LEVELS = st.lists(LABEL_TEXT.filter(lambda v: level_key(v) != "__other__" and v.strip()),
                   min_size=1, max_size=5, unique_by=level_key)


@cases(300)
@given(levels=_LEVELS, live=st.lists(LABEL_TEXT, max_size=6))
def test_profile_levels_and_live_category_values_export_as_label_values(levels, live):
    """Levels of a loaded profile document and live category values key alike and export."""
    document = copy.deepcopy(BASE_DOCUMENT)
    plan = next(f for f in document["features"] if f["name"] == "plan")
    plan["levels"] = levels
    # A consistent document (the loader checks that counts add up): the plan's count is spread
    # over the generated levels, none in __other__.
    share, rest = divmod(plan["count"], len(levels))
    plan["counts"] = [share + rest] + [share] * (len(levels) - 1) + [0]
    plan["n_distinct"] = len(levels)
    profile = mlprobe.ReferenceProfile.from_dict(document)
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("p", registry=registry, reference=profile, **ONE_BUCKET)
    rows = live + levels  # every level seen at least once
    probe.observe(inputs={"plan": rows})

    families = check_exposition(registry)
    bins = {s.labels["bin"]: s.value for s in families["mlprobe_feature_bin"].samples
            if s.labels["feature"] == "plan"}
    assert set(bins) == {level_key(v) for v in levels} | {"__other__"}
    known = {level_key(v) for v in levels}
    for value in set(rows):
        if value.strip():  # blank strings are missing values, not levels
            key = level_key(value)
            expected = rows.count(value) if key in known else None
            if expected is not None:
                assert bins[key] >= expected
    assert sum(bins.values()) == sum(1 for v in rows if v.strip())
