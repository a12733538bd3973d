"""Reference quality in profiles (built, saved, loaded, validated) and model quality in
``mlprobe profile`` / ``mlprobe drift`` (metrics equal scikit-learn's, --fail-on)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn import metrics as skm

import mlprobe
from mlprobe import QualitySpec, ReferenceProfile
from mlprobe._cli import main
from mlprobe.errors import ConfigurationError, ProfileError


def data(n: int, seed: int, flip: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-2.5 * X[:, 0]))
    y = (g.random(n) < p).astype(int)
    if flip:
        y = np.where(g.random(n) < flip, 1 - y, y)
    return X, y, p


def write_csv(path: Path, X: np.ndarray, y: np.ndarray, p: np.ndarray) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["a", "b", "c", "label", "score"])
        for row, label, score in zip(X, y, p):
            w.writerow([*row.tolist(), int(label), repr(float(score))])


def test_from_data_records_reference_quality_and_it_round_trips(tmp_path):
    """Built with labels and scores, the profile holds the metrics scikit-learn computes on
    them; it saves and loads unchanged, as a version 1 document."""
    X, y, p = data(5000, 0)
    profile = ReferenceProfile.from_data(X, y, p)
    q = profile.quality
    assert q is not None and (q.task, q.positive_label, q.pairs) == ("binary", "1", 5000)
    assert q.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y, p > 0.5), rel=1e-15)
    assert q.metrics["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-12)
    profile.save(tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["version"] == 1 and doc["quality"]["metrics"]["accuracy"] == q.metrics["accuracy"]
    assert ReferenceProfile.load(tmp_path / "p.json").quality == q


def test_probability_matrix_and_regression_references():
    """A (n, k) probability matrix gives a multiclass reference (its prediction profiled as
    classes); numeric labels give a regression reference."""
    g = np.random.default_rng(1)
    X = g.normal(size=(3000, 2))
    y = g.integers(0, 3, 3000)
    proba = g.dirichlet(np.ones(3), 3000)
    profile = ReferenceProfile.from_data(X, y, proba)
    assert profile.quality.task == "multiclass" and profile.quality.classes == ("0", "1", "2")
    assert set(profile.prediction.levels) <= {"0", "1", "2"}
    assert profile.quality.metrics["log_loss"] == pytest.approx(skm.log_loss(y, proba),
                                                                rel=1e-12)
    values = X[:, 0] * 3
    regression = ReferenceProfile.from_data(X, values, values + 0.5)
    assert regression.quality.task == "regression"
    assert regression.quality.metrics["bias"] == pytest.approx(0.5)


def test_unmeasurable_quality_is_left_out_unless_asked_for():
    """Predictions that cannot be read for the task: no quality (implicit), a clear
    ConfigurationError when quality= asked for it."""
    X, y, _ = data(500, 2)
    words = np.array(["yes", "no"], dtype=object)[y]
    profile = ReferenceProfile.from_data(X, y, np.array(["?"] * 500, dtype=object))
    assert profile.quality is None
    with pytest.raises(ConfigurationError, match="no \\(prediction, label\\) pair"):
        ReferenceProfile.from_data(X, y, words, quality=QualitySpec(task="binary"))


@pytest.mark.parametrize("field,value,match", [
    ("task", "ranking", "quality.task"),
    ("threshold", 2, "quality.threshold"),
    ("metrics", {"accuracy": "high"}, "quality.metrics"),
    ("metrics", {"speed": 1.0}, "quality.metrics"),
    ("labels", "01", "quality.labels"),
])
def test_bad_quality_entries_are_refused_naming_the_field(field, value, match):
    """A profile document with a broken quality entry fails to load with one line naming it."""
    X, y, p = data(500, 3)
    doc = ReferenceProfile.from_data(X, y, p).to_dict()
    doc["quality"][field] = value
    with pytest.raises(ProfileError, match=match):
        ReferenceProfile.from_dict(doc)


def test_cli_profile_and_drift_judge_model_quality(tmp_path, capsys):
    """mlprobe profile stores the reference quality; mlprobe drift reports the current file's
    metrics (equal to scikit-learn's) against it; a file with 25% flipped labels is critical
    and fails --fail-on warning, the same model on fresh data passes."""
    X, y, p = data(6000, 4)
    write_csv(tmp_path / "train.csv", X, y, p)
    X2, y2, p2 = data(3000, 5)
    write_csv(tmp_path / "same.csv", X2, y2, p2)
    X3, y3, p3 = data(3000, 6, flip=0.25)
    write_csv(tmp_path / "worse.csv", X3, y3, p3)
    profile = str(tmp_path / "p.json")
    assert main(["profile", str(tmp_path / "train.csv"), "--target", "label", "--prediction",
                 "score", "-o", profile]) == 0
    assert "reference quality (binary, 6000 pairs)" in capsys.readouterr().err
    assert main(["drift", profile, str(tmp_path / "same.csv"), "--format", "json",
                 "--fail-on", "warning"]) == 0
    doc = json.loads(capsys.readouterr().out)
    mq = doc["model_quality"]
    assert mq["status"] == "ok" and mq["pairs"] == 3000
    assert mq["metrics"]["accuracy"] == pytest.approx(skm.accuracy_score(y2, p2 > 0.5),
                                                      abs=1e-12)
    assert mq["metrics"]["log_loss"] == pytest.approx(skm.log_loss(y2, p2), rel=1e-9)
    assert main(["drift", profile, str(tmp_path / "worse.csv"), "--fail-on", "warning"]) == 1
    out = capsys.readouterr().out
    assert "## Model quality: **critical**" in out and "| accuracy |" in out
    assert main(["drift", profile, str(tmp_path / "worse.csv"), "--fail-on", "critical",
                 "--quality-drop", "0.5", "0.9"]) in (0, 1)
    doc_html = tmp_path / "r.html"
    assert main(["drift", profile, str(tmp_path / "worse.csv"), "--format", "html"]) == 0
    doc_html.write_text(capsys.readouterr().out)
    assert 'id="model-quality"' in doc_html.read_text()


def test_cli_quality_options_are_checked(tmp_path, capsys):
    """--task without --target/--prediction, or a bad --threshold, is a one-line usage error."""
    X, y, p = data(200, 7)
    write_csv(tmp_path / "t.csv", X, y, p)
    out = str(tmp_path / "p.json")
    assert main(["profile", str(tmp_path / "t.csv"), "--task", "binary", "-o", out]) == 2
    assert "give --target and --prediction" in capsys.readouterr().err
    assert main(["profile", str(tmp_path / "t.csv"), "--target", "label", "--prediction",
                 "score", "--threshold", "1.5", "-o", out]) == 2
    assert "threshold" in capsys.readouterr().err


def test_probe_uses_the_profiles_reference_and_its_labels(tmp_path):
    """A probe given a profile with string labels measures against the profile's metrics and
    reads the same labels (positive class chosen when the profile was built)."""
    X, y, p = data(4000, 8)
    words = np.array(["no", "yes"], dtype=object)[y]
    profile = ReferenceProfile.from_data(X, words, p, quality=QualitySpec(positive_label="yes"))
    assert profile.quality.positive_label == "yes"
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("m", registry=registry, reference=profile, quality=True)
    probe.record_pairs(p, words)
    doc = probe.drift_status()["model_quality"]
    assert doc["positive_label"] == "yes"
    assert doc["metrics"]["accuracy"] == pytest.approx(profile.quality.metrics["accuracy"])
