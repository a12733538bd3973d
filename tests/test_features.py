"""Serving-side feature monitoring: window statistics, drift, data quality, export."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from scipy import stats as sps

import mlprobe
from mlprobe._features import FeatureMonitor
from mlprobe.exporters import prometheus as prom_export
from mlprobe.testing import sample_value

N_REF = 20000
_REF_RNG = np.random.default_rng(7)
REFERENCE = {  # the training sample; tests use it as the oracle's reference side
    "age": _REF_RNG.normal(40, 10, N_REF),
    "income": _REF_RNG.lognormal(10, 0.5, N_REF),
    "plan": _REF_RNG.choice(["basic", "pro", "team"], N_REF, p=[0.5, 0.3, 0.2]).astype(object),
}
REFERENCE_PREDICTIONS = _REF_RNG.random(N_REF)
RNG = np.random.default_rng(8)  # current windows


@pytest.fixture(scope="module")
def profile() -> mlprobe.ReferenceProfile:
    return mlprobe.ReferenceProfile.from_data(REFERENCE, predictions=REFERENCE_PREDICTIONS,
                                              categorical=["plan"])


def families(registry):
    return {f.name: f for f in registry.collect()}


def samples_by(registry, name, key):
    return {dict(s.labels)[key]: s.value for s in families(registry)[name].samples}


def test_window_statistics_equal_numpy(profile, registry):
    """Window mean, std, min, max equal numpy on the same rows; quantiles within 1%."""
    probe = mlprobe.Probe("stats", registry=registry, reference=profile)
    age = RNG.normal(40, 10, 3000)
    income = RNG.lognormal(10, 0.5, 3000)
    plan = RNG.choice(["basic", "pro"], 3000).astype(object)
    for i in range(0, 3000, 500):  # batches
        probe.observe(inputs={"age": age[i:i + 500], "income": income[i:i + 500],
                              "plan": plan[i:i + 500]})
    means = {k: v for k, v in samples_by(registry, "mlprobe_feature_mean", "feature").items()}
    assert means["age"] == pytest.approx(age.mean(), rel=1e-12)
    stds = samples_by(registry, "mlprobe_feature_stddev", "feature")
    assert stds["income"] == pytest.approx(income.std(), rel=1e-9)
    assert samples_by(registry, "mlprobe_feature_min", "feature")["age"] == age.min()
    assert samples_by(registry, "mlprobe_feature_max", "feature")["age"] == age.max()
    summaries = {dict(s.labels)["feature"]: s
                 for s in families(registry)["mlprobe_feature_quantile"].samples}
    quantiles = dict(summaries["income"].quantiles)
    for q in (0.05, 0.5, 0.95):
        exact = np.quantile(income, q, method="lower")
        assert quantiles[q] == pytest.approx(exact, rel=0.0101)
    # the summary's count and sum are those of the same window
    assert summaries["income"].count == income.size
    assert summaries["income"].sum == pytest.approx(income.sum(), rel=1e-12)


def test_single_rows_and_batches_give_the_same_window(profile, registry):
    """Dict rows sent one by one (buffered) and the same rows as one DataFrame agree exactly."""
    rows = [{"age": float(a), "income": float(b), "plan": p}
            for a, b, p in zip(RNG.normal(40, 10, 300), RNG.lognormal(10, 0.5, 300),
                               RNG.choice(["basic", "team"], 300))]
    one = mlprobe.Probe("rows", registry=registry, reference=profile)

    @one.track
    def predict(row):
        return 0.5

    for row in rows:
        predict(row)
    other = mlprobe.Registry()
    batch = mlprobe.Probe("rows", registry=other, reference=profile)
    batch.observe(inputs=pd.DataFrame(rows))
    a, b = one._state.features.window(), batch._state.features.window()
    for name in ("age", "income"):
        assert a.features[name].bins.counts.tolist() == b.features[name].bins.counts.tolist()
        assert a.features[name].moments.mean == pytest.approx(b.features[name].moments.mean)
    assert a.features["plan"].categories.counts.tolist() == \
        b.features["plan"].categories.counts.tolist()
    assert a.rows == b.rows == 300


def test_drift_status_flags_shift_and_not_noise(profile, registry):
    """A +0.5 sigma shift is critical; an unshifted feature is ok; the document is JSON."""
    probe = mlprobe.Probe("drift", registry=registry, reference=profile)
    n = 5000
    probe.observe(inputs={"age": RNG.normal(45, 10, n), "income": RNG.lognormal(10, 0.5, n),
                          "plan": RNG.choice(["basic", "pro", "team"], n,
                                             p=[0.5, 0.3, 0.2]).astype(object)})
    status = probe.drift_status()
    json.dumps(status)
    assert status["features"]["age"]["status"] == "critical"
    assert status["features"]["income"]["status"] == "ok"
    assert status["features"]["plan"]["status"] == "ok"
    assert samples_by(registry, "mlprobe_feature_drift_status", "feature")["age"] == 2
    assert sample_value(registry, "mlprobe_dataset_drift_share") == pytest.approx(1 / 3)
    drift = {(dict(s.labels)["feature"], dict(s.labels)["method"]): s.value
             for s in families(registry)["mlprobe_feature_drift"].samples}
    assert drift[("age", "psi")] > 0.2


def test_exported_bin_counters_reproduce_decile_psi(profile, registry):
    """PSI computed from the exported bin counters and reference ratios equals decile PSI."""
    probe = mlprobe.Probe("psi", registry=registry, reference=profile)
    age = RNG.normal(43, 10, 8000)
    probe.observe(inputs={"age": age, "income": RNG.lognormal(10, 0.5, 8000),
                          "plan": np.array(["pro"] * 8000, dtype=object)})
    fams = families(registry)
    counts = {dict(s.labels)["bin"]: s.value for s in fams["mlprobe_feature_bin"].samples
              if dict(s.labels)["feature"] == "age"}
    ratios = {dict(s.labels)["bin"]: s.value
              for s in fams["mlprobe_feature_reference_ratio"].samples
              if dict(s.labels)["feature"] == "age"}
    assert len(counts) == 10
    total = sum(counts.values())
    c = np.clip(np.array([counts[k] / total for k in sorted(counts, key=int)]), 1e-4, None)
    r = np.clip(np.array([ratios[k] for k in sorted(ratios, key=int)]), 1e-4, None)
    psi_from_metrics = float(np.sum((c - r) * np.log(c / r)))
    # independent oracle: the raw reference and current samples binned by numpy on the
    # profile's decile edges
    ref = profile.features["age"]
    edges = ref.edges[list(ref.psi_edge_index)]
    cur = np.bincount(np.searchsorted(edges, age, side="right"), minlength=10) / age.size
    ref_age = REFERENCE["age"]
    ref_share = np.bincount(np.searchsorted(edges, ref_age, side="right"),
                            minlength=10) / ref_age.size
    assert ref_share == pytest.approx(np.array([ratios[str(i)] for i in range(10)]), abs=1e-12)
    oracle = float(np.sum((np.clip(cur, 1e-4, None) - np.clip(ref_share, 1e-4, None))
                          * np.log(np.clip(cur, 1e-4, None) / np.clip(ref_share, 1e-4, None))))
    assert psi_from_metrics == pytest.approx(oracle, rel=1e-12)
    window_psi = probe.drift_status()["features"]["age"]["statistics"]["psi"]
    assert window_psi == pytest.approx(oracle, rel=1e-9)


def test_ks_within_stated_bound_of_scipy(profile, registry):
    """The window's binned KS statistic is within its stated bound of scipy's exact one."""
    probe = mlprobe.Probe("ks", registry=registry, reference=profile)
    age = RNG.normal(42, 11, 6000)
    probe.observe(inputs={"age": age, "income": RNG.lognormal(10, 0.5, 6000),
                          "plan": np.array(["basic"] * 6000, dtype=object)})
    feature = probe.drift_status()["features"]["age"]
    exact = sps.ks_2samp(REFERENCE["age"], age).statistic
    bound = feature["definitions"]["ks"]["error_bound"]
    assert abs(feature["statistics"]["ks"] - exact) <= bound + 1e-12


def test_bad_input_is_counted_and_never_raised(profile, registry):
    """NaN, None, inf, strings, unseen categories, ragged rows and extra/missing columns count."""
    probe = mlprobe.Probe("dirty", registry=registry, reference=profile)

    @probe.track
    def predict(rows):
        return 0.5

    predict({"age": None, "income": float("nan"), "plan": "basic"})
    predict({"age": "old", "income": float("inf"), "plan": "enterprise"})
    predict({"age": 30.0, "plan": "pro", "colour": "red"})
    predict([[1.0, 2.0], [1.0, 2.0, "team"]])
    predict(np.zeros((4, 7)))
    predict([])
    predict("not rows")
    predict(pd.DataFrame({"age": [1.0], "income": [2.0]}))
    probe._state.features.flush()
    missing = samples_by(registry, "mlprobe_feature_missing", "feature")
    # rows that cannot be aligned (1 of the wrong width, 4 of the array, "not rows") count
    # as rows in which every feature is missing
    unaligned = 1 + 4 + 1
    assert missing["age"] == 1 + unaligned  # the None
    assert missing["income"] == 2 + unaligned  # the NaN, and its absence from the "colour" row
    assert missing["plan"] == 1 + unaligned  # absent from the DataFrame
    violations = samples_by(registry, "mlprobe_schema_violations", "kind")
    assert violations["wrong_type"] == 1  # "old" (inf is a number: invalid, not a wrong type)
    assert violations["unreadable_input"] == 1  # "not rows"
    income = probe._state.features.totals().features["income"]
    assert income.invalid == 1  # the inf
    assert violations["unexpected_feature"] == 1
    assert violations["wrong_width"] == 1 + 4
    assert violations["missing_feature"] == 1 + 1
    assert samples_by(registry, "mlprobe_feature_unseen_category", "feature")["plan"] == 1
    status = probe.drift_status()
    assert status["features"]["age"]["status"] == "insufficient_data"
    for family in registry.collect():
        for sample in family.samples:
            value = getattr(sample, "value", 0.0)
            assert np.isfinite(value), family.name


def test_window_rolls_over_time(profile):
    """Rows older than the window leave the window statistics but stay in the counters."""
    now = [0.0]
    monitor = FeatureMonitor(profile, window_seconds=60, sub_buckets=6, clock=lambda: now[0])
    monitor.observe({"age": np.full(100, 20.0), "income": np.full(100, 1.0),
                     "plan": np.array(["pro"] * 100, dtype=object)})
    now[0] = 30.0
    monitor.observe({"age": np.full(100, 60.0), "income": np.full(100, 1.0),
                     "plan": np.array(["pro"] * 100, dtype=object)})
    assert monitor.window().features["age"].moments.mean == pytest.approx(40.0)
    now[0] = 65.0
    assert monitor.window().features["age"].moments.mean == pytest.approx(60.0)
    now[0] = 200.0
    assert monitor.window().features["age"].moments.count == 0
    assert monitor.totals().features["age"].moments.count == 200


def test_prediction_drift_is_reported(profile, registry):
    """Scores drifting from the reference prediction distribution make __prediction__ drift."""
    probe = mlprobe.Probe("preds", registry=registry, reference=profile)

    @probe.track
    def predict(batch):
        return np.clip(RNG.normal(0.9, 0.05, len(batch["age"])), 0, 1)

    predict({"age": RNG.normal(40, 10, 2000), "income": RNG.lognormal(10, 0.5, 2000),
             "plan": RNG.choice(["basic", "pro", "team"], 2000).astype(object)})
    status = probe.drift_status()
    assert status["prediction"]["status"] == "critical"
    statuses = samples_by(registry, "mlprobe_feature_drift_status", "feature")
    assert statuses["__prediction__"] == 2


def test_feature_metrics_pass_through_prometheus(profile, registry):
    """The feature families render in the Prometheus exposition with the contract's labels."""
    probe = mlprobe.Probe("expo", registry=registry, reference=profile)
    n = 2000  # above DriftSpec.min_count, so statuses are given
    probe.observe(inputs={"age": RNG.normal(40, 10, n), "income": RNG.lognormal(10, 0.5, n),
                          "plan": RNG.choice(["basic", "zzz"], n).astype(object)})
    target = CollectorRegistry()
    prom_export.register(registry, target)
    text = generate_latest(target).decode()
    assert 'mlprobe_feature_bin_total{bin="__other__",feature="plan"' in text
    assert 'mlprobe_feature_drift_status{feature="age",model="expo",model_version=""} 0.0' in text
    assert "mlprobe_dataset_drift_share" in text


def test_probe_without_reference_reports_no_reference(registry):
    """drift_status() without a profile says so instead of failing."""
    assert mlprobe.Probe("plain", registry=registry).drift_status()["status"] == "no_reference"


def test_reference_must_be_a_profile(registry):
    """A reference that is not a ReferenceProfile fails at construction."""
    with pytest.raises(mlprobe.ConfigurationError, match="ReferenceProfile"):
        mlprobe.Probe("bad", registry=registry, reference={"age": [1, 2]})
    with pytest.raises(mlprobe.ConfigurationError, match="window_seconds"):
        mlprobe.Probe("bad2", registry=registry, window_seconds=0)


def test_buffer_is_bounded_and_drops_are_counted_when_nothing_flushes(profile, registry):
    """With the flusher held off, the buffer stops at its bound: rows and predictions past it
    are dropped and exported as mlprobe_feature_dropped_rows_total, never waited for."""
    probe = mlprobe.Probe("bounded", registry=registry, reference=profile)
    monitor = probe._state.features
    monitor.flush_rows, monitor.max_rows = 50, 100  # max_buffer_bytes=100 * row_bytes
    with monitor._flush_lock:  # the flusher skips a monitor whose lock is taken
        for _ in range(1000):
            monitor.observe_predictions(0.5)
            monitor.observe({"age": 40.0, "income": 1.0, "plan": "pro"})
            assert len(monitor._scores) <= 100
            assert len(monitor._rows) + monitor._block_rows <= 100
        for _ in range(10):  # blocks (small batches) share the bound
            monitor.observe([{"age": 40.0, "income": 1.0, "plan": "pro"}] * 5)
    assert monitor.dropped_rows == 900 + 900 + 50
    totals = monitor.totals()
    assert totals.rows == 100
    assert totals.prediction.count == 100
    assert sample_value(registry, "mlprobe_feature_dropped_rows", {"model": "bounded"}) == 1850


def test_buffer_retains_no_caller_object(profile):
    """Buffered rows are encoded bytes: nothing the caller passed (a category value, an extra
    field) is kept alive by the buffer."""
    import gc
    import weakref

    class Level(str):
        pass

    class Payload:
        pass

    monitor = FeatureMonitor(profile)
    level, payload = Level("pro"), Payload()
    refs = [weakref.ref(level), weakref.ref(payload)]
    with monitor._flush_lock:
        monitor.observe({"age": 40.0, "income": 1.0, "plan": level})  # the packed path
        monitor.observe({"age": None, "income": 1.0, "plan": level, "x": payload})  # general
        monitor.observe([{"age": 1.0, "income": 1.0, "plan": level, "x": payload}] * 3)
        del level, payload
        gc.collect()
        assert [r() for r in refs] == [None, None]
        assert len(monitor._rows) == 1 and monitor._block_rows == 4
    assert monitor.totals().features["plan"].categories.counts[1] == 5  # "pro"


def test_concurrent_rows_are_all_counted(profile):
    """Rows queued from eight threads while flushes swap the buffers are all ingested."""
    import threading

    monitor = FeatureMonitor(profile, flush_rows=50)
    row = {"age": 40.0, "income": 1.0, "plan": "pro"}

    def work():
        for _ in range(2000):
            monitor.observe(row)
            monitor.observe_predictions(0.5)

    import sys

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so a race has a chance to show
    try:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    totals = monitor.totals()
    assert totals.rows == 16000
    assert totals.prediction.count == 16000


def test_packed_rows_accept_numeric_types_and_route_the_rest_to_counting(profile):
    """The packed single-row path takes ints, bools and numpy scalars as numbers; a None, a
    string or an int too large for a double take the general path, where they are counted
    (missing / wrong_type / invalid) and never raised."""
    from decimal import Decimal

    monitor = FeatureMonitor(profile)
    numbers = [40, True, np.float32(41.5), np.int64(42), Decimal("43.25"), 44.0]
    for value in numbers:
        monitor.observe({"age": value, "income": 1.0, "plan": "pro"})
    assert len(monitor._rows) == len(numbers)  # all took the packed path
    monitor.observe({"age": None, "income": 1.0, "plan": "pro"})
    monitor.observe({"age": "forty", "income": 1.0, "plan": "pro"})
    monitor.observe({"age": 10**400, "income": 1.0, "plan": "pro"})
    assert len(monitor._rows) == len(numbers)  # none of these did
    age = monitor.window().features["age"]
    assert age.count == len(numbers)
    assert age.moments.mean == pytest.approx(np.mean([40, 1, 41.5, 42, 43.25, 44.0]))
    assert age.missing == 1 and age.invalid == 2
    assert monitor.window().features["income"].count == len(numbers) + 3
