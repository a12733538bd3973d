"""Model quality through a probe: ids, the join, metrics equal to scikit-learn's on the joined
pairs, statuses against the profile's reference, exports, label and concept drift."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

import mlprobe
from mlprobe import QualitySpec, current_prediction_id
from mlprobe.errors import ConfigurationError
from mlprobe.testing import sample_value


class Clock:
    """A settable wall clock for the quality window and the store."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def use_clock(probe: mlprobe.Probe, clock: Clock) -> None:
    probe._state.quality._clock = clock
    if probe._state.store is not None:
        probe._state.store._clock = clock


def binary_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and calibrated positive-class scores."""
    g = np.random.default_rng(seed)
    X = g.normal(size=(n, 3))
    p = 1 / (1 + np.exp(-2.5 * X[:, 0]))
    y = (g.random(n) < p).astype(int)
    return X, y, p


def families(registry: mlprobe.Registry) -> dict[str, Any]:
    return {f.name: f for f in registry.collect()}


def gauge(registry: mlprobe.Registry, name: str, **labels: str) -> float | None:
    return sample_value(registry, name, labels)


def test_metrics_through_the_probe_equal_sklearn_on_joined_pairs(registry):
    """Predictions with generated ids, outcomes for a random half of them (some twice, some
    for unknown ids): the exported window metrics equal scikit-learn's on exactly the matched
    pairs, and the counters say what happened to every outcome."""
    X, y, p = binary_data(4000)
    probe = mlprobe.Probe("m", version="1", registry=registry,
                          quality=QualitySpec(task="binary", unknown_grace_seconds=0))

    @probe.track
    def predict(row: np.ndarray) -> float:
        return float(1 / (1 + np.exp(-2.5 * row[0])))

    ids = []
    for row in X:
        predict(row)
        ids.append(current_prediction_id())
    assert len(set(ids)) == len(ids)
    g = np.random.default_rng(1)
    chosen = g.choice(len(ids), 2000, replace=False)
    for i in chosen[:1500]:
        probe.record_outcome(ids[i], int(y[i]))
    probe.record_outcomes([ids[i] for i in chosen[1500:]], y[chosen[1500:]])
    probe.record_outcome(ids[chosen[0]], 1)  # again: duplicate
    probe.record_outcome("never-seen", 0)
    yy, pp = y[chosen], p[chosen]
    labels = {"model": "m", "model_version": "1"}
    expected = {"accuracy": skm.accuracy_score(yy, pp > 0.5),
                "precision": skm.precision_score(yy, pp > 0.5),
                "recall": skm.recall_score(yy, pp > 0.5), "f1": skm.f1_score(yy, pp > 0.5),
                "log_loss": skm.log_loss(yy, pp)}
    for metric, value in expected.items():
        got = gauge(registry, "mlprobe_model_quality", **labels, metric=metric)
        assert got == pytest.approx(value, rel=1e-12), metric
    auc = gauge(registry, "mlprobe_model_quality", **labels, metric="roc_auc")
    bound = gauge(registry, "mlprobe_model_quality", **labels, metric="roc_auc_bound")
    assert abs(auc - skm.roc_auc_score(yy, pp)) <= bound
    counts = {r: gauge(registry, "mlprobe_outcomes", **labels, result=r)
              for r in ("matched", "duplicate", "unknown", "late", "invalid")}
    assert counts == {"matched": 2000, "duplicate": 1, "unknown": 1, "late": 0, "invalid": 0}
    assert gauge(registry, "mlprobe_prediction_ids", **labels, state="stored") == 4000
    assert gauge(registry, "mlprobe_prediction_store_entries", model="m") == 2000
    assert gauge(registry, "mlprobe_outcome_stats", **labels, metric="correct") == \
        int(np.sum(yy == (pp > 0.5)))


def test_ids_from_an_argument_and_one_per_row(registry):
    """track(prediction_id="request_id") stores under the caller's id; a list of ids stores
    one prediction per row of a batch; outcomes then join by those ids."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))

    @probe.track(prediction_id="request_id")
    def predict(rows: np.ndarray, request_id: Any = None) -> np.ndarray:
        return np.asarray(rows)[:, 0]

    predict(np.array([[0.9], [0.2]]), request_id="call-1")
    assert current_prediction_id() == "call-1"
    predict(np.array([[0.7], [0.4], [0.1]]), request_id=["r1", "r2", "r3"])
    probe.record_outcome("call-1", [1, 1])
    probe.record_outcomes(["r1", "r2", "r3"], [1, 1, 0])
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="matched") == 5
    assert gauge(registry, "mlprobe_model_quality", model="m", model_version="",
                 metric="accuracy") == pytest.approx(3 / 5)


def test_batch_outcome_of_the_wrong_length_is_invalid(registry):
    """An outcome for a 3-row prediction with 2 labels counts 3 invalid pairs, no metric."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    tracked = probe.track(lambda rows: np.asarray(rows, dtype=float))
    tracked([0.1, 0.9, 0.5])
    probe.record_outcome(current_prediction_id(), [1, 0])
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="invalid") == 3
    assert gauge(registry, "mlprobe_model_quality", model="m", model_version="",
                 metric="accuracy") is None


@pytest.mark.parametrize("actual", [None, float("nan"), "maybe", object(), [[1]]])
def test_unreadable_labels_count_invalid_and_never_raise(registry, actual):
    """A label that is missing, NaN, unknown to a binary model or not a label at all is one
    invalid pair; nothing raises."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    probe.track(lambda x: 0.3)(1)
    probe.record_outcome(current_prediction_id(), actual)
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="invalid") == 1


@pytest.mark.allow_internal_errors
def test_hostile_ids_never_raise(registry):
    """Ids that cannot be turned into text, or are huge, are counted or hashed, never raised."""
    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    probe.record_outcome(Hostile(), 1)
    probe.record_outcomes([Hostile()], [1])
    probe.record_outcomes([1, 2], [1])  # lengths differ
    long_id = "x" * 10_000
    tracked = probe.track(lambda x, rid: 0.9, prediction_id="rid")
    tracked(1, long_id)
    probe.record_outcome(long_id, 1)
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="matched") == 1
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="invalid") == 2


def test_prediction_id_false_keeps_no_prediction_but_estimates(registry):
    """track(prediction_id=False): nothing is stored, the label-free estimate still counts."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    tracked = probe.track(lambda x: 0.8, prediction_id=False)
    for _ in range(10):
        tracked(1)
    assert gauge(registry, "mlprobe_prediction_store_entries", model="m") == 0
    assert gauge(registry, "mlprobe_model_quality_estimate", model="m", model_version="",
                 metric="accuracy") == pytest.approx(0.8, abs=1e-9)


def test_configuration_errors_are_clear():
    """Bad quality settings fail at construction, naming what to change."""
    with pytest.raises(ConfigurationError, match="quality must be"):
        mlprobe.Probe("m", registry=mlprobe.Registry(), quality="yes")
    with pytest.raises(ConfigurationError, match="task="):
        mlprobe.Probe("m", registry=mlprobe.Registry(), quality=True)  # no profile target
    with pytest.raises(ConfigurationError, match="prediction_id"):
        mlprobe.Probe("m", registry=mlprobe.Registry()).track(lambda x: x, prediction_id="x")
    with pytest.raises(ConfigurationError, match="threshold"):
        QualitySpec(threshold=1.5)
    with pytest.raises(ConfigurationError, match="unknown metric"):
        QualitySpec(thresholds={"accuracyy": (0.1, 0.2)})
    with pytest.raises(ConfigurationError, match="two labels"):
        QualitySpec(task="binary", labels=["a", "b", "c"])


def test_outcomes_without_quality_are_ignored_with_one_warning(registry, caplog):
    """record_outcome on a probe created without quality= logs one warning and records
    nothing (never raises)."""
    probe = mlprobe.Probe("m", registry=registry)
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        probe.record_outcome("a", 1)
        probe.record_outcomes(["a"], [1])
        probe.record_pairs([0.5], [1])
    assert sum("without quality" in r.message for r in caplog.records) == 1
    assert "mlprobe_outcomes" not in families(registry)


def test_record_pairs_counts_paired(registry):
    """(prediction, actual) pairs joined elsewhere count as paired, with the same metrics."""
    _, y, p = binary_data(3000, 2)
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    probe.record_pairs(p, y)
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="paired") == 3000
    assert gauge(registry, "mlprobe_model_quality", model="m", model_version="",
                 metric="accuracy") == pytest.approx(skm.accuracy_score(y, p > 0.5), rel=1e-15)


def test_multiclass_probabilities_and_regression_through_probes(registry):
    """A 4-class probability matrix (with classes=) and a regressor: metrics equal
    scikit-learn's on the pairs."""
    g = np.random.default_rng(3)
    n, k = 2000, 4
    y = g.integers(0, k, n)
    logits = g.normal(size=(n, k))
    logits[np.arange(n), y] += 1.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    names = np.array(["a", "b", "c", "d"])
    clf = mlprobe.Probe("clf", registry=registry,
                        quality=QualitySpec(task="multiclass", classes=list(names)))
    clf.record_pairs(proba, names[y])
    for metric, value in (("f1_macro", skm.f1_score(y, proba.argmax(1), average="macro")),
                          ("log_loss", skm.log_loss(y, proba)),
                          ("accuracy", skm.accuracy_score(y, proba.argmax(1)))):
        assert gauge(registry, "mlprobe_model_quality", model="clf", model_version="",
                     metric=metric) == pytest.approx(value, rel=1e-12)
    actual = g.normal(5, 2, n)
    predicted = actual + g.normal(0.2, 0.5, n)
    reg = mlprobe.Probe("reg", registry=registry, quality=QualitySpec(task="regression"))
    tracked = reg.track(lambda x, i: float(x), prediction_id="i")
    for i, v in enumerate(predicted):
        tracked(v, i)
    reg.record_outcomes(list(range(n)), actual)
    for metric, value in (("rmse", skm.root_mean_squared_error(actual, predicted)),
                          ("mae", skm.mean_absolute_error(actual, predicted))):
        assert gauge(registry, "mlprobe_model_quality", model="reg", model_version="",
                     metric=metric) == pytest.approx(value, rel=1e-12)


def test_versions_share_the_store_and_judge_against_the_profile(registry):
    """Two versions of one model: an outcome recorded through either probe reaches the version
    that predicted; a version whose accuracy fell 10% below the profile's reference quality
    is critical (status gauge, dataset status, drift_status overall), the other ok."""
    X, y, p = binary_data(6000, 4)
    profile = mlprobe.ReferenceProfile.from_data(X, y, p)
    assert profile.quality is not None and profile.quality.task == "binary"
    spec = QualitySpec(min_count=500)
    good = mlprobe.Probe("m", version="1", registry=registry, reference=profile, quality=spec)
    bad = mlprobe.Probe("m", version="2", registry=registry, reference=profile, quality=spec)
    g = np.random.default_rng(5)
    good_predict = good.track(lambda row: float(1 / (1 + np.exp(-2.5 * row[0]))))
    noisy = bad.track(lambda row: float(g.random()) if g.random() < 0.3
                      else float(1 / (1 + np.exp(-2.5 * row[0]))))
    for row, label in zip(X[:2000], y[:2000]):
        good_predict(row)
        bad.record_outcome(current_prediction_id(), int(label))  # through the other probe
        noisy(row)
        good.record_outcome(current_prediction_id(), int(label))
    status = {v: gauge(registry, "mlprobe_model_quality_status", model="m", model_version=v,
                       metric="accuracy") for v in ("1", "2")}
    assert status == {"1": 0.0, "2": 2.0}
    reference = gauge(registry, "mlprobe_model_quality_reference", model="m",
                      model_version="2", metric="accuracy")
    assert reference == pytest.approx(profile.quality.metrics["accuracy"])
    assert gauge(registry, "mlprobe_dataset_status", model="m", model_version="2",
                 aspect="model_quality") == 2.0
    assert gauge(registry, "mlprobe_dataset_status", model="m", model_version="2",
                 aspect="overall") == 2.0
    doc = bad.drift_status()
    assert doc["status"] == "critical" and doc["model_quality"]["status"] == "critical"
    assert doc["model_quality"]["metric_status"]["accuracy"] == "critical"
    assert good.drift_status()["model_quality"]["status"] == "ok"


def test_label_drift_against_the_profile_target(registry):
    """Inputs like the reference, but labels arriving with a very different class balance than
    the profile's target: the target's drift is critical (feature __target__) and the drift
    verdict with it."""
    X, y, p = binary_data(6000, 6)
    profile = mlprobe.ReferenceProfile.from_data(X, y, p)
    probe = mlprobe.Probe("m", registry=registry, reference=profile, quality=True)
    tracked = probe.track(lambda rows: 1 / (1 + np.exp(-2.5 * rows[:, 0])))
    for rows in np.array_split(X[:3000], 30):
        tracked(rows)
        probe.record_outcome(current_prediction_id(), np.ones(len(rows), dtype=int))
    assert gauge(registry, "mlprobe_feature_drift_status", model="m", model_version="",
                 feature="__target__") == 2.0
    doc = probe.drift_status()
    assert doc["target"]["status"] == "critical" and doc["drift_verdict"] == "critical"


def test_concept_drift_signal_fires_when_errors_rise(registry):
    """Over 48 five-minute buckets an error rate going from 10% to 30% in the last 6 raises the
    concept-drift signal (a warning) while the stable start does not."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(
        task="binary", window_seconds=3600, window_buckets=12, history_buckets=48))
    clock = Clock(1_700_000_000.0 - 1_700_000_000.0 % 300)
    use_clock(probe, clock)
    g = np.random.default_rng(7)
    labels = {"model": "m", "model_version": ""}
    for bucket in range(48):
        rate = 0.1 if bucket < 42 else 0.3
        y = g.integers(0, 2, 400)
        wrong = g.random(400) < rate
        scores = np.where(y == 1, 0.9, 0.1)
        scores[wrong] = 1 - scores[wrong]
        probe.record_pairs(scores, y)
        if bucket == 30:
            assert gauge(registry, "mlprobe_concept_drift_status", **labels) == 0.0
        clock.t += 300
    clock.t -= 1
    assert gauge(registry, "mlprobe_concept_drift_status", **labels) == 1.0
    change = probe.drift_status()["model_quality"]["concept_drift"]
    assert change["detected"] and change["direction"] == "increase"
    assert change["mean_after"] > change["mean_before"]


def test_window_rolls_and_totals_keep_counting(registry):
    """Pairs leave the rolling window after window_seconds; the cumulative counters keep them."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(
        task="binary", window_seconds=600, window_buckets=10))
    clock = Clock()
    use_clock(probe, clock)
    probe.record_pairs(np.full(100, 0.9), np.ones(100, dtype=int))
    clock.t += 700
    probe.record_pairs(np.full(10, 0.9), np.zeros(10, dtype=int))
    labels = {"model": "m", "model_version": ""}
    assert gauge(registry, "mlprobe_model_quality", **labels, metric="accuracy") == 0.0
    assert gauge(registry, "mlprobe_outcome_stats", **labels, metric="count") == 110
    assert gauge(registry, "mlprobe_outcome_stats", **labels, metric="correct") == 100


def test_label_free_estimate_tracks_the_realised_accuracy_when_calibrated(registry):
    """With calibrated scores the estimate (from every prediction) is within 0.02 of the
    realised accuracy and AUC on the labelled ones."""
    X, y, p = binary_data(20_000, 8)
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    tracked = probe.track(lambda row: float(1 / (1 + np.exp(-2.5 * row[0]))))
    ids = []
    for row in X:
        tracked(row)
        ids.append(current_prediction_id())
    probe.record_outcomes(ids, y)
    doc = probe.drift_status()["model_quality"]
    assert abs(doc["estimate"]["accuracy"] - doc["metrics"]["accuracy"]) < 0.02
    assert abs(doc["estimate"]["roc_auc"] - doc["metrics"]["roc_auc"]) < 0.02
    assert "calibrated" in doc["estimate_assumptions"]


def test_no_reference_document_reports_model_quality(registry):
    """A probe with quality but no profile: drift_status has the model-quality section and its
    status (not "no_reference"), and the overall dataset status is the model quality's."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(
        task="binary", reference={"accuracy": 0.9}, min_count=10))
    probe.record_pairs(np.full(100, 0.9), np.r_[np.ones(80), np.zeros(20)].astype(int))
    doc = probe.drift_status()
    assert doc["status"] == "critical" and doc["model_quality"]["pairs"] == 100
    assert gauge(registry, "mlprobe_dataset_status", model="m", model_version="",
                 aspect="overall") == 2.0


def test_quality_state_resets_in_a_forked_child(registry):
    """reset() (what the registry runs after fork) empties the window, counters and store."""
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task="binary"))
    probe.track(lambda x: 0.9)(1)
    probe.record_pairs([0.9], [1])
    registry._reset_after_fork()
    assert gauge(registry, "mlprobe_outcomes", model="m", model_version="",
                 result="paired") == 0
    assert gauge(registry, "mlprobe_prediction_store_entries", model="m") == 0


def test_predictions_and_outcomes_from_many_threads(registry):
    """Four threads predict while four others record the outcomes of what was predicted
    (each outcome after its prediction): every pair is matched once, and the window's
    accuracy equals scikit-learn's on all of them."""
    import queue
    import threading

    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(
        task="binary", unknown_grace_seconds=600))
    tracked = probe.track(lambda x, rid: float(x), prediction_id="rid")
    g = np.random.default_rng(9)
    scores = g.random(4000)
    labels = (g.random(4000) < scores).astype(int)
    done: queue.Queue[int] = queue.Queue()

    def predictor(part: int) -> None:
        for i in range(part, 4000, 4):
            tracked(scores[i], f"r{i}")
            done.put(i)

    def labeller() -> None:
        while True:
            i = done.get()
            if i < 0:
                return
            probe.record_outcome(f"r{i}", int(labels[i]))

    workers = [threading.Thread(target=predictor, args=(k,)) for k in range(4)]
    labellers = [threading.Thread(target=labeller) for _ in range(4)]
    for t in workers + labellers:
        t.start()
    for t in workers:
        t.join()
    for _ in labellers:
        done.put(-1)
    for t in labellers:
        t.join()
    labels_ = {"model": "m", "model_version": ""}
    assert gauge(registry, "mlprobe_outcomes", **labels_, result="matched") == 4000
    assert gauge(registry, "mlprobe_model_quality", **labels_, metric="accuracy") == \
        pytest.approx(skm.accuracy_score(labels, scores > 0.5), rel=1e-15)
    assert gauge(registry, "mlprobe_prediction_store_entries", model="m") == 0


odd_values = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
    st.text(max_size=3), st.binary(max_size=3),
    st.lists(st.one_of(st.integers(0, 2), st.floats(0, 1), st.none()), max_size=4),
    st.dictionaries(st.text(max_size=2), st.floats(0, 1), max_size=2))


@given(st.sampled_from(["binary", "multiclass", "regression"]), odd_values, odd_values,
       odd_values)
@settings(max_examples=150, deadline=None)
def test_any_output_and_label_never_raises(task, output, label, pair_label):
    """Whatever a model returns and whatever comes back as its label, through a tracked
    call, record_outcome and record_pairs: nothing raises and nothing is swallowed as an
    internal error (the suite's fixture would fail the test)."""
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("m", registry=registry, quality=QualitySpec(task=task))
    probe.track(lambda x: output)(1)
    probe.record_outcome(current_prediction_id(), label)
    probe.record_pairs([output] if not isinstance(output, list) else output, pair_label)
    probe.record_outcomes([current_prediction_id(), None], [label, pair_label])
    registry.collect()
    probe.drift_status()
