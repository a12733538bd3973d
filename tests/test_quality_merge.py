"""Issue 9's contract for quality state: traffic split at random over k monitors, each
serialised to plain data (JSON) and merged, exports exactly what one monitor of all of it
exports, for every family the exposition shows; the shadow's counters likewise."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlprobe._quality import QualityMonitor
from mlprobe._quality_metrics import collect_quality, quality_view
from mlprobe._quality_spec import QualitySpec
from mlprobe._quality_task import resolve_task
from mlprobe._registry import FamilyBuilder
from mlprobe._shadow_counts import ShadowCounters

START = 1_700_000_000.0 - 1_700_000_000.0 % 60
BASE = (("model", "m"), ("model_version", "1"))
REFERENCE = {"accuracy": 0.8, "roc_auc": 0.85, "rmse": 1.0}


class Clock:
    def __init__(self) -> None:
        self.t = START

    def __call__(self) -> float:
        return self.t


def monitor(task: str, clock: Clock) -> QualityMonitor:
    spec = QualitySpec(task=task, window_seconds=600, window_buckets=10, history_buckets=20,
                       min_count=5, labels=["a", "b", "c"] if task == "multiclass" else None,
                       classes=["a", "b", "c"] if task == "multiclass" else None)
    return QualityMonitor(resolve_task(spec), clock=clock)


def exported(m: QualityMonitor) -> dict[str, list[Any]]:
    builder = FamilyBuilder()
    collect_quality(builder, BASE, m, quality_view(m, None, REFERENCE))
    return {f.name: sorted(map(repr, f.samples)) for f in builder.families()}


def event(task: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """(seconds later, kind, prediction, outcome, delay)."""
    later = st.sampled_from([0, 0, 1, 30, 61, 250, 700])
    if task == "binary":
        prediction = st.floats(0, 1)
        outcome = st.sampled_from([0, 1, 1, "x", None])
    elif task == "regression":
        prediction = st.floats(-100, 100)
        outcome = st.floats(-100, 100) | st.none()
    else:
        prediction = st.lists(st.floats(0, 1), min_size=3, max_size=3).map(
            lambda v: np.asarray([v]))
        outcome = st.sampled_from(["a", "b", "c", "zz"])
    kind = st.sampled_from(["pair", "matched", "prediction"])
    return st.tuples(later, kind, prediction, outcome, st.floats(0, 1e5))


def replay(m: QualityMonitor, clock: Clock, events: list[tuple[Any, ...]]) -> None:
    for _, kind, prediction, outcome, delay in events:
        payload = m.task.payload(prediction)
        if kind == "prediction":
            if payload is not None and not isinstance(payload, list):
                m.observe_prediction(payload, clock.t, True)
        elif kind == "matched":
            m.add_outcome(payload, outcome, delay)
        else:
            m.add_pairs(payload, outcome)


@given(st.sampled_from(["binary", "multiclass", "regression"]).flatmap(
    lambda task: st.tuples(st.just(task), st.lists(event(task), max_size=60))),
    st.integers(1, 4), st.integers(0, 2**32 - 1))
@settings(max_examples=60, deadline=None)
def test_split_serialised_and_merged_equals_one_monitor(case, k, seed):
    """Every exported quality family (window metrics, statuses, estimate, counters, outcome
    sums, delay histogram, concept-drift signal) is identical, sample for sample."""
    task, events = case
    clock = Clock()
    single = monitor(task, clock)
    parts = [monitor(task, clock) for _ in range(k)]
    owner = np.random.default_rng(seed).integers(0, k, len(events))
    for i, e in enumerate(events):
        clock.t += e[0]
        replay(single, clock, [e])
        replay(parts[owner[i]], clock, [e])
        if i % 7 == 3:  # flushes at different moments in different monitors
            parts[owner[i]].flush()
    serialised = [json.loads(json.dumps(part.to_dict())) for part in parts]
    merged = QualityMonitor.from_dict(serialised[0], single.task, clock=clock)
    for data in serialised[1:]:
        merged.merge_dict(data)
    assert exported(merged) == exported(single)


def test_shadow_counters_merge_from_plain_data():
    """Shadow agreement counts, drops and score differences merged from their serialised
    forms equal one counter fed everything."""
    labels = BASE + (("primary_version", "0"),)
    single = ShadowCounters(labels, (0.1, 0.5))
    parts = [ShadowCounters(labels, (0.1, 0.5)) for _ in range(3)]
    g = np.random.default_rng(0)
    for i in range(30):
        differences = g.random(int(g.integers(1, 5)))
        agree = int(g.integers(0, 3))
        for c in (single, parts[i % 3]):
            c.compared(agree, 2, differences)
            if i % 4 == 0:
                c.drop()
    merged = ShadowCounters.from_dict(json.loads(json.dumps(parts[0].to_dict())), labels,
                                      (0.1, 0.5))
    for part in parts[1:]:
        merged.merge_dict(json.loads(json.dumps(part.to_dict())))
    a, b = FamilyBuilder(), FamilyBuilder()
    merged.collect_into(a)
    single.collect_into(b)
    assert [f.samples for f in a.families()] == [f.samples for f in b.families()]


@given(st.sampled_from(["binary", "multiclass", "regression"]).flatmap(
    lambda task: st.tuples(st.just(task), st.lists(event(task), max_size=40),
                           st.lists(event(task), max_size=20))))
@settings(max_examples=30, deadline=None)
def test_copy_and_merge_equal_the_plain_data_round_trip(case):
    """``copy()`` exports what ``from_dict(to_dict())`` exports and stays as it was when the
    original records more; ``merge()`` of a live monitor equals ``merge_dict`` of its plain
    data and leaves that monitor unchanged."""
    task, events, more = case
    clock = Clock()
    a, b = monitor(task, clock), monitor(task, clock)
    for i, e in enumerate(events):
        clock.t += e[0]
        replay(a if i % 2 else b, clock, [e])
    copied = a.copy()
    assert exported(copied) == exported(QualityMonitor.from_dict(a.to_dict(), a.task,
                                                                 clock=clock))
    before = exported(copied)
    replay(a, clock, more)
    assert exported(copied) == before
    b_before = exported(b)
    merged = a.copy().merge(b)
    assert exported(b) == b_before
    assert exported(merged) == exported(QualityMonitor.from_dict(
        a.to_dict(), a.task, clock=clock).merge_dict(json.loads(json.dumps(b.to_dict()))))


def test_a_merged_monitor_shares_no_counts_with_the_monitors_merged_into_it():
    """``merge()`` leaves the other monitor unchanged even when the merged one goes on merging
    and recording into the same buckets (it holds copies of the other's counts)."""
    clock = Clock()
    a, b, c = (monitor("binary", clock) for _ in range(3))
    for m in (b, c):
        replay(m, clock, [(0, "pair", 0.9, 1, 0.0), (0, "matched", 0.2, 1, 5.0)])
    b_before = exported(b)
    merged = a.merge(b)
    merged.merge(c)
    replay(merged, clock, [(0, "pair", 0.1, 1, 0.0)])
    assert exported(merged) != b_before
    assert exported(b) == b_before


def test_states_of_other_buckets_are_refused():
    """Plain data or a monitor with another bucket length, or a delay histogram of other
    buckets, raises ValueError (which the merger counts as an unreadable state)."""
    clock = Clock()
    a = monitor("binary", clock)
    replay(a, clock, [(0, "matched", 0.9, 1, 5.0)])
    data = a.to_dict()
    other = QualityMonitor(resolve_task(QualitySpec(task="binary", window_seconds=1200,
                                                    window_buckets=10)), clock=clock)
    for spoiled in ({**data, "bucket_seconds": data["bucket_seconds"] * 2},
                    {**data, "delay_counts": data["delay_counts"][:-1]}):
        with pytest.raises(ValueError):
            QualityMonitor.from_dict(spoiled, a.task, clock=clock)
    with pytest.raises(ValueError):
        monitor("binary", clock).merge(other)
