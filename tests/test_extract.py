"""Input sizes, scores and classes read from every supported type, and bad values dropped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import mlprobe
from mlprobe._extract import input_size, output_values
from mlprobe.testing import sample_value


@pytest.mark.parametrize(("batch", "expected"), [
    (np.zeros((7, 3)), (7, 7 * 3 * 8)),
    (np.zeros(4, dtype=np.float32), (4, 16)),
    (np.float64(1.0), (1, None)),
    ([[1, 2], [3, 4], [5, 6]], (3, None)),
    ([1.0, 2.0, 3.0], (1, None)),
    ([{"a": 1}, {"a": 2}], (2, None)),
    ({"a": [1, 2, 3], "b": [4, 5, 6]}, (3, None)),
    ({"a": 1, "b": 2}, (1, None)),
    ([], (0, None)),
    ({}, (0, None)),
    (b"abcd", (1, 4)),
    ("héllo", (1, 6)),
    (3.5, (1, None)),
    (None, (None, None)),
    (object(), (None, None)),
])
def test_input_size(batch, expected):
    """Rows and bytes are read from arrays, containers, payloads and scalars."""
    assert input_size(batch) == expected


def test_input_size_of_pandas_objects():
    """DataFrames and Series give their row count and buffer size without pandas being imported."""
    frame = pd.DataFrame({"a": np.arange(5, dtype=np.int64), "b": np.zeros(5)})
    assert input_size(frame) == (5, 80)
    assert input_size(frame["a"]) == (5, 40)


def test_scalar_and_array_outputs():
    """Floats are scores, ints/strings/bools are classes, 2-D floats are per-class scores."""
    assert output_values(0.3, 16).scores == {"score": 0.3}
    assert output_values("yes", 16).classes == ("yes",)
    assert output_values(True, 16).classes == ("true",)
    assert output_values(np.int64(2), 16).classes == ("2",)
    probs = output_values(np.array([[0.2, 0.8], [0.9, 0.1]]), 16)
    assert sorted(probs.scores) == ["0", "1"]
    assert probs.classes.tolist() == [1, 0]
    assert output_values(np.array([[0.1], [0.2]]), 16).scores["score"].tolist() == [0.1, 0.2]
    assert output_values([0.4], 16).scores == {"score": 0.4}
    assert output_values(np.array(["a", "b"]), 16).classes.tolist() == ["a", "b"]
    assert output_values(pd.Series([0.1, 0.2]), 16).scores["score"].tolist() == [0.1, 0.2]
    assert sorted(output_values({"churn": [0.1, 0.2], "label": "x"}, 16).scores) == ["churn"]


def test_unreadable_outputs_record_nothing():
    """Ragged lists, None, objects and 3-D arrays are ignored rather than raising."""
    for result in ([[1, 2], [3]], None, object(), np.zeros((2, 2, 2)), [], [{"a": 1}, {"b": 2}]):
        values = output_values(result, 16)
        assert values.scores == {} and not values.classes


def test_bad_scores_are_dropped_not_recorded(registry):
    """NaN and infinite scores never reach the histogram; finite ones in the same batch do."""
    probe = mlprobe.Probe("bad", registry=registry)
    probe.observe(outputs=np.array([0.5, np.nan, np.inf, -np.inf, 0.25]))
    probe.observe(outputs=float("nan"))
    probe.observe(outputs=[None, "x", 3])
    assert sample_value(registry, "mlprobe_prediction_score", {"output": "score"}) == 2
    assert sample_value(registry, "mlprobe_prediction_score", {"output": "score"},
                        suffix="sum") == 0.75
    assert sample_value(registry, "mlprobe_predicted_class", {"class": "x"}) == 1


def test_classes_are_bounded(registry):
    """Past max_classes distinct labels, the rest count as __other__ and the total is exact."""
    probe = mlprobe.Probe("classes", registry=registry, max_classes=5)
    probe.observe(outputs=np.array([f"c{i}" for i in range(100)]))
    family = next(f for f in registry.collect() if f.name == "mlprobe_predicted_class")
    counts = {dict(s.labels)["class"]: s.value for s in family.samples}
    assert len(counts) == 6
    assert sum(counts.values()) == 100


def test_outputs_beyond_max_outputs_are_not_recorded(registry):
    """A 40-column probability matrix records only the first max_outputs columns."""
    probe = mlprobe.Probe("wide", registry=registry, max_outputs=4)
    probe.observe(outputs=np.full((3, 40), 0.025))
    family = next(f for f in registry.collect() if f.name == "mlprobe_prediction_score")
    assert sorted(dict(s.labels)["output"] for s in family.samples) == ["0", "1", "2", "3"]


def test_score_histogram_matches_numpy(registry):
    """Bucket counts of a batch equal numpy's count of values <= each bound."""
    rng = np.random.default_rng(0)
    scores = rng.random(5000)
    probe = mlprobe.Probe("hist", registry=registry)
    probe.observe(outputs=scores)
    sample = next(s for f in registry.collect() if f.name == "mlprobe_prediction_score"
                  for s in f.samples)
    cumulative = sample.cumulative_counts()
    for bound, count in zip(sample.bounds, cumulative):
        assert count == int((scores <= bound).sum())
    assert sample.sum == pytest.approx(scores.sum(), rel=1e-12)
