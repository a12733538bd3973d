"""Test helpers: a small valid profile document, and a check that a profile works end to end."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import mlprobe
from mlprobe._profile import ReferenceProfile
from mlprobe.exporters.prometheus import register


def small_profile(**kwargs: Any) -> ReferenceProfile:
    """A two-feature profile (numeric ``a``, categorical ``c``) with a numeric prediction."""
    g = np.random.default_rng(0)
    return ReferenceProfile.from_data(
        {"a": g.normal(0, 1, 500), "c": g.choice(["x", "y", "z"], 500)},
        predictions=g.random(500), n_bins=10, **kwargs)


def age_plan_profile() -> ReferenceProfile:
    """A numeric ``age`` and a categorical ``plan`` (basic/pro), 2,000 rows, with a numeric
    prediction: the profile of the tests that hammer one probe (flusher, fork, hostile
    values)."""
    rng = np.random.default_rng(0)
    return ReferenceProfile.from_data(
        {"age": rng.normal(40, 10, 2000),
         "plan": rng.choice(["basic", "pro"], 2000).astype(object)},
        predictions=rng.random(2000), categorical=["plan"])


def small_document() -> dict[str, Any]:
    """The JSON document of :func:`small_profile`, freshly built (safe to mutate)."""
    return json.loads(json.dumps(small_profile().to_dict()))


def traffic(profile: ReferenceProfile, rows: int, seed: int = 0) -> dict[str, Any]:
    """A dict of columns that covers every bin, missing values and unseen levels."""
    g = np.random.default_rng(seed)
    batch: dict[str, Any] = {}
    for name, f in profile.features.items():
        if f.kind == "numeric":
            # Live values stay within 1e100: squares of larger ones overflow the window's
            # moments (a serving-side limit, not the profile's).
            lo, hi = (float(f.edges[0]), float(f.edges[-1])) if f.edges.size else (-1.0, 1.0)
            lo, hi = max(lo, -1e100), min(hi, 1e100)
            span = max(hi - lo, 1.0)
            values = g.uniform(lo - span, hi + span, rows)
            column = values.astype(object)
            column[::7] = None
            batch[name] = column
        else:
            levels = [*f.levels, "never-seen-level"]
            column = np.array([levels[i % len(levels)] for i in range(rows)], dtype=object)
            column[::11] = None
            batch[name] = column
    return batch


def outputs(profile: ReferenceProfile, rows: int) -> Any:
    """Model outputs of the kind the profile's prediction expects."""
    if profile.prediction is not None and profile.prediction.kind == "categorical":
        levels = [*profile.prediction.levels, "other-class"]
        return np.array([levels[i % len(levels)] for i in range(rows)], dtype=object)
    return np.linspace(0.0, 1.0, rows)


def exercise(profile: ReferenceProfile, rows: int = 64, *, parse: bool = True,
             **probe_kwargs: Any) -> tuple[str, dict[str, Any]]:
    """Serve traffic through a probe on ``profile``, scrape it and read its drift document.

    Fails (the suite's fixture turns swallowed internal errors into exceptions) when any step
    breaks; returns the exposition text and the drift document for further checks.
    ``parse=False`` skips re-parsing the exposition (half the cost), not rendering it.
    """
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("exercise", registry=registry, reference=profile, **probe_kwargs)
    batch = traffic(profile, rows)
    probe.observe(inputs=batch, outputs=outputs(profile, rows))
    for i in range(3):  # single dict rows take the buffered path
        probe.observe(inputs={name: column[i] for name, column in batch.items()})
    prometheus = CollectorRegistry()
    register(registry, prometheus)
    text = generate_latest(prometheus).decode("utf-8")  # collects; encodes every label
    assert "mlprobe_feature_bin_total{" in text, text[:500]
    if parse:
        families = list(text_string_to_metric_families(text))
        assert any(f.name == "mlprobe_feature_bin" for f in families), text[:500]
    document = probe.drift_status()
    assert document["status"] not in ("error", "no_reference"), document
    json.dumps(document, allow_nan=False)
    return text, document
