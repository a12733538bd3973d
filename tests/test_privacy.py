"""Sensitive features: no raw level or value of theirs leaves the process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import mlprobe
from mlprobe._cli import main
from mlprobe._profile import ReferenceProfile
from mlprobe.errors import ConfigurationError
from mlprobe.exporters.prometheus import register

G = np.random.default_rng(11)
N = 3_000
SECRET_LEVELS = [f"SECRET-diagnosis-{i}" for i in range(6)]
PUBLIC_LEVELS = ["basic", "pro", "team"]
REFERENCE = {
    "diagnosis": G.choice(SECRET_LEVELS, N),
    "salary": np.round(G.normal(52_345.678, 9_000.0, N), 3),
    "plan": G.choice(PUBLIC_LEVELS, N),
    "age": np.round(G.normal(40.0, 10.0, N), 3),
}
# Live traffic holds values that can be searched for verbatim.
LIVE_SALARIES = [98_765.4321, 12_345.6789, 55_555.5551]


def _profile(**kwargs: object) -> ReferenceProfile:
    return ReferenceProfile.from_data(REFERENCE, **kwargs)


def _serve(profile: ReferenceProfile, **probe_kwargs: object) -> tuple[str, str, list]:
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("private", registry=registry, reference=profile, **probe_kwargs)
    for i in range(1_200):  # enough values for statistics and statuses
        probe.observe(inputs={"diagnosis": SECRET_LEVELS[i % 6] if i % 50 else "SECRET-new",
                              "salary": LIVE_SALARIES[i % 3], "plan": PUBLIC_LEVELS[i % 3],
                              "age": 30.0 + i % 20})
    prometheus = CollectorRegistry()
    register(registry, prometheus)
    exposition = generate_latest(prometheus).decode("utf-8")
    document = json.dumps(probe.drift_status(), allow_nan=False)
    return exposition, document, registry.collect()


def _feature_samples(exposition: str, feature: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.labels.get("feature") == feature:
                out.setdefault(family.name, []).append(sample)
    return out


def _raw_numbers(text: str) -> set[float]:
    return {float(x) for x in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", text)}


def _assert_no_raw_values(exposition: str, document: str) -> None:
    for text in (exposition, document):
        assert "SECRET" not in text  # no reference level, no live value
        numbers = _raw_numbers(text)
        for value in [*LIVE_SALARIES, float(REFERENCE["salary"].min()),
                      float(REFERENCE["salary"].max())]:
            assert not any(abs(value - x) <= 1e-6 * abs(value) for x in numbers), value
    salary = _feature_samples(exposition, "salary")
    assert set(salary) <= {"mlprobe_feature_bin", "mlprobe_feature_reference_ratio",
                           "mlprobe_feature_missing", "mlprobe_feature_out_of_range",
                           "mlprobe_feature_drift", "mlprobe_feature_drift_status",
                           "mlprobe_feature_quality_status"}, set(salary)
    bins = {s.labels["bin"] for s in _feature_samples(exposition, "diagnosis")[
        "mlprobe_feature_bin"]}
    assert bins == {"0", "1", "2", "3", "4", "5", "__other__"}


@pytest.mark.parametrize("where", ["profile", "probe"])
def test_sensitive_features_leave_no_raw_value(where: str) -> None:
    """Marked in the profile or on the probe: category bins go by index, no min, max, mean,
    stddev or quantile of the feature is exported, and neither the exposition nor the drift
    document holds a reference level or a live value; other features are unchanged."""
    if where == "profile":
        exposition, document, _ = _serve(_profile(sensitive=["diagnosis", "salary"]))
    else:
        exposition, document, _ = _serve(_profile(),
                                         sensitive_features=["diagnosis", "salary"])
    _assert_no_raw_values(exposition, document)
    doc = json.loads(document)
    assert doc["features"]["diagnosis"]["sensitive"] is True
    assert doc["features"]["salary"]["status"] in ("ok", "warning", "critical")
    # the control: public features still export levels and window values
    plan = _feature_samples(exposition, "plan")["mlprobe_feature_bin"]
    assert {s.labels["bin"] for s in plan} == {*PUBLIC_LEVELS, "__other__"}
    age = _feature_samples(exposition, "age")
    assert {"mlprobe_feature_min", "mlprobe_feature_max", "mlprobe_feature_mean"} <= set(age)


def test_without_marking_the_raw_values_do_show() -> None:
    """The control for the check itself: unmarked, levels and live values are exported."""
    exposition, _, _ = _serve(_profile())
    assert "SECRET-diagnosis-0" in exposition
    assert any(abs(x - 98_765.4321) < 1e-6 for x in _raw_numbers(exposition))


def test_index_labels_follow_the_profile_level_order() -> None:
    """Bin "i" counts the profile's i-th level: the mapping is the level order."""
    profile = _profile(sensitive=["diagnosis"])
    levels = profile.features["diagnosis"].levels
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("order", registry=registry, reference=profile)
    probe.observe(inputs={"diagnosis": [levels[2]] * 7, "salary": [1.0] * 7,
                          "plan": ["pro"] * 7, "age": [1.0] * 7})
    counts = {dict(s.labels)["bin"]: s.value for f in registry.collect()
              if f.name == "mlprobe_feature_bin" for s in f.samples
              if dict(s.labels)["feature"] == "diagnosis"}
    assert counts["2"] == 7 and sum(counts.values()) == 7


def test_sensitive_flag_is_stored_as_version_2(tmp_path: Path) -> None:
    """The flag round-trips through save/load in a version-2 document; without sensitive
    features the document stays version 1 (readable by older releases)."""
    path = tmp_path / "p.json"
    _profile(sensitive=["salary"]).save(path)
    doc = json.loads(path.read_text())
    assert doc["version"] == 2
    assert [f.get("sensitive", False) for f in doc["features"]] == [False, True, False, False]
    assert ReferenceProfile.load(path).sensitive == {"salary"}
    _profile().save(path)
    assert json.loads(path.read_text())["version"] == 1


def test_cli_sensitive_flag(tmp_path: Path) -> None:
    """`mlprobe profile --sensitive COL` marks the column sensitive in the profile."""
    path = tmp_path / "train.csv"
    lines = ["diagnosis,salary,plan"] + [f"{d},{s},{p}" for d, s, p in zip(
        REFERENCE["diagnosis"][:500], REFERENCE["salary"][:500], REFERENCE["plan"][:500])]
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.json"
    assert main(["profile", str(path), "--sensitive", "diagnosis", "salary",
                 "-o", str(out)]) == 0
    assert ReferenceProfile.load(out).sensitive == {"diagnosis", "salary"}
    assert main(["profile", str(path), "--sensitive", "nope", "-o", str(out)]) == 2


def test_bad_sensitive_settings_fail_at_construction() -> None:
    """Unknown names, a bare string or no reference: ConfigurationError naming the fix."""
    profile = _profile()
    with pytest.raises(ConfigurationError, match="not features of the reference"):
        mlprobe.Probe("x", registry=mlprobe.Registry(), reference=profile,
                      sensitive_features=["ssn"])
    with pytest.raises(ConfigurationError, match="list of feature names"):
        mlprobe.Probe("x", registry=mlprobe.Registry(), reference=profile,
                      sensitive_features="salary")
    with pytest.raises(ConfigurationError, match="needs a reference"):
        mlprobe.Probe("x", registry=mlprobe.Registry(), sensitive_features=["salary"])
    with pytest.raises(ConfigurationError, match="sensitive names"):
        ReferenceProfile.from_data(REFERENCE, sensitive=["ssn"])


def test_same_probe_with_other_sensitive_features_warns(caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """A second Probe with the same key but other sensitive features keeps the first
    settings and says so (a silent mismatch could leak)."""
    registry = mlprobe.Registry()
    profile = _profile()
    mlprobe.Probe("twice", registry=registry, reference=profile, sensitive_features=["salary"])
    mlprobe.Probe("twice", registry=registry, reference=profile)
    assert "already exists with other settings" in caplog.text
