"""The ``profile`` label on bin series: stable per profile, different when the bins differ."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from profiles import small_profile

import mlprobe
from mlprobe._feature_metrics import PREDICTION_FEATURE, feature_labels
from mlprobe._fingerprint import profile_fingerprint
from mlprobe._profile import ReferenceProfile

ROOT = Path(__file__).resolve().parent.parent


def fingerprint(profile: ReferenceProfile, sensitive: frozenset[str] = frozenset()) -> str:
    # what a probe passes: the profile's sensitive features plus its own
    return profile_fingerprint(profile, feature_labels(profile), profile.sensitive | sensitive,
                               PREDICTION_FEATURE)


def bin_samples(registry: mlprobe.Registry, family: str) -> list[dict[str, str]]:
    return [dict(s.labels) | {"value": s.value} for f in registry.collect() if f.name == family
            for s in f.samples]


def test_fingerprint_is_stable_across_builds_saves_and_processes(tmp_path):
    """The same data gives the same 8-hex fingerprint: rebuilt, reloaded, in another process."""
    first, again = small_profile(), small_profile()
    path = tmp_path / "p.json"
    first.save(path)
    value = fingerprint(first)
    assert len(value) == 8 and int(value, 16) >= 0
    assert fingerprint(again) == value
    assert fingerprint(ReferenceProfile.load(path)) == value
    code = ("import sys; sys.path[:0] = [sys.argv[1]]; "
            "from mlprobe._profile import ReferenceProfile as R; "
            "from mlprobe._feature_metrics import feature_labels, PREDICTION_FEATURE; "
            "from mlprobe._fingerprint import profile_fingerprint as f; "
            "p = R.load(sys.argv[2]); print(f(p, feature_labels(p), frozenset(), "
            "PREDICTION_FEATURE))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "src"), str(path)],
                         capture_output=True, text=True, timeout=60,
                         env={"PYTHONHASHSEED": "123", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == value


def test_fingerprint_changes_with_the_bins_meaning():
    """Other data, another sensitive set or another prediction give another fingerprint."""
    base = small_profile()
    g = np.random.default_rng(1)
    shifted = ReferenceProfile.from_data(
        {"a": g.normal(0.3, 1, 500), "c": g.choice(["x", "y", "z"], 500)},
        predictions=g.random(500), n_bins=10)
    values = {fingerprint(base), fingerprint(shifted), fingerprint(base, frozenset({"c"})),
              fingerprint(small_profile(sensitive=["c"]))}
    assert len(values) == 3  # the profile's own sensitive flag equals the probe's
    assert fingerprint(base, frozenset({"c"})) == fingerprint(small_profile(sensitive=["c"]))


def test_bin_series_carry_the_profile_and_the_prediction_bins(registry):
    """Every bin and reference-ratio series has profile=<fingerprint>; __prediction__ has
    bins whose counts are the scores' reference-decile counts and whose shares sum to 1."""
    profile = small_profile()
    probe = mlprobe.Probe("fp", reference=profile, registry=registry)
    scores = np.linspace(0.0, 1.0, 300)
    probe.observe(inputs={"a": np.zeros(300), "c": ["x"] * 300}, outputs=scores)
    bins = bin_samples(registry, "mlprobe_feature_bin")
    ratios = bin_samples(registry, "mlprobe_feature_reference_ratio")
    assert {s["profile"] for s in bins + ratios} == {fingerprint(profile)}
    pred = [s for s in bins if s["feature"] == PREDICTION_FEATURE]
    edges = profile.prediction.edges[list(profile.prediction.psi_edge_index)]
    expected = np.bincount(np.searchsorted(edges, scores, side="right"), minlength=len(edges) + 1)
    assert [s["value"] for s in sorted(pred, key=lambda s: int(s["bin"]))] == expected.tolist()
    shares = [s["value"] for s in ratios if s["feature"] == PREDICTION_FEATURE]
    assert abs(sum(shares) - 1.0) < 1e-12 and len(shares) == len(edges) + 1


def test_profile_document_digest_is_stable_and_sees_every_number(tmp_path):
    """The digest merged states are checked against (multi-process mode) is the same for a
    saved and reloaded profile and differs when any number of the document differs, even one
    the bin fingerprint ignores (a moment)."""
    from mlprobe._fingerprint import profile_document_digest

    profile = small_profile()
    path = tmp_path / "p.json"
    profile.save(str(path))
    assert profile_document_digest(ReferenceProfile.load(str(path))) == \
        profile_document_digest(profile)
    doc = profile.to_dict()
    [a] = [f for f in doc["features"] if f["name"] == "a"]
    a["mean"] += 0.001
    other = ReferenceProfile.from_dict(doc)
    assert fingerprint(other) == fingerprint(profile)  # same bins
    assert profile_document_digest(other) != profile_document_digest(profile)
