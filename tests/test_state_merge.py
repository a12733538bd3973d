"""Every recorded state serialises and merges exactly: k recorders equal one (issue 9).

Random traffic (calls, errors, calls left in flight, scores, classes, feature rows and batches
with missing and unseen values, predictions, HTTP requests of every shape and requests left
active, failed pushes, and model quality: predictions, matched outcomes with their delays,
pairs, outcome results; a shadow's comparisons and drops) is split at random across k = 1..4 recorders sharing one fake wall
clock that moves across sub-buckets and past the window. Each recorder's state goes through
``to_dict`` and pickle (with frozen parts passed by uid, or inline) into the state of a
receiving source; the merged state's exposition must equal that of one recorder that saw all
the traffic: every counter, bucket and histogram sum exactly (durations, sizes and scores are
dyadic, so their sums are exact in any order), floats computed from moments (feature mean,
stddev, the summary's sum and the statistics built on them) to a relative 1e-9.
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlprobe
from mlprobe._config import DEFAULT_BYTES_BUCKETS
from mlprobe._drift_spec import DriftSpec
from mlprobe._http_metrics import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_KNOWN_METHODS,
    HttpConfig,
    HttpMetrics,
)
from mlprobe._label_table import OVERFLOW
from mlprobe._probe_source import ProbeSource
from mlprobe._probe_state import ProbeConfig
from mlprobe._quality_task import resolve_task
from mlprobe._registry import FamilyBuilder
from mlprobe._shadow_counts import DIFFERENCE_BUCKETS, ShadowCounters
from mlprobe.exporters._otel_push import ExportFailures

WINDOW_S, SUB_BUCKETS = 30.0, 3
CONFIG = ProbeConfig(latency_buckets=(0.001, 0.01, 0.1, 1.0), rows_buckets=(1, 10, 100),
                     bytes_buckets=(64, 4096), score_buckets=(0.25, 0.5, 0.75, 1.0),
                     max_classes=5, max_error_types=4, max_outputs=3)
QUALITY = mlprobe.QualitySpec(task="binary", window_seconds=60, window_buckets=3,
                              history_buckets=6, min_count=3, reference={"accuracy": 0.7})
QUALITY_CONFIG = ProbeConfig(**{**{f: getattr(CONFIG, f) for f in CONFIG.__dataclass_fields__},
                                "quality": QUALITY})
HTTP = HttpConfig(duration_buckets=DEFAULT_DURATION_BUCKETS, size_buckets=DEFAULT_BYTES_BUCKETS,
                  known_methods=DEFAULT_KNOWN_METHODS, max_routes=6, max_status_codes=5,
                  max_error_types=4)
ROUNDED = {"mlprobe_feature_mean", "mlprobe_feature_stddev", "mlprobe_feature_drift",
           "mlprobe_feature_quantile"}  # built on moments: compared to a relative 1e-9


def make_profile() -> mlprobe.ReferenceProfile:
    g = np.random.default_rng(3)
    n = 3000
    return mlprobe.ReferenceProfile.from_data(
        {"x": g.normal(0, 1, n), "y": g.exponential(2, n), "c": g.choice(["a", "b", "c"], n)},
        predictions=g.random(n), categorical=["c"])


PROFILE = make_profile()

dyadic = st.integers(0, 4096).map(lambda k: k / 1024)  # exact sums in any order
row_value = st.one_of(st.integers(-3000, 3000).map(lambda k: k / 512), st.none())
category = st.sampled_from(["a", "b", "c", "zz", None])

event = st.one_of(
    st.tuples(st.just("ok"), dyadic, st.integers(0, 200), st.integers(0, 9000)),
    st.tuples(st.just("error"), dyadic, st.sampled_from(["KeyError", "ValueError", "E3"])),
    st.tuples(st.just("enter")),
    st.tuples(st.just("score"), st.sampled_from(["score", "p1", "p2"]), dyadic),
    st.tuples(st.just("class"), st.sampled_from(["yes", "no", "maybe"]), st.integers(1, 3)),
    st.tuples(st.just("row"), row_value, row_value, category),
    st.tuples(st.just("batch"), st.integers(1, 90), st.integers(0, 2**16)),
    st.tuples(st.just("prediction"), dyadic),
    st.tuples(st.just("http"), st.sampled_from([3, 4, 99]),
              st.sampled_from(["/a", "/b/{id}", "/c", "__unmatched__"]),
              st.sampled_from([200, 404, 500]), st.sampled_from(["", "KeyError"]),
              dyadic, st.sampled_from(["one", "streamed", "none"]),
              st.sampled_from([0, 10, 5000]), st.sampled_from([0, 300, 70_000])),
    st.tuples(st.just("http_enter"), st.sampled_from([3, 4, 99])),
    st.tuples(st.just("push_failed")),
    st.tuples(st.just("q_prediction"), dyadic.map(lambda v: v / 4)),
    st.tuples(st.just("q_matched"), dyadic.map(lambda v: v / 4), st.sampled_from([0, 1, 1, "x"]),
              st.sampled_from([0.5, 3.0, 400.0, 90_000.0])),
    st.tuples(st.just("q_pair"), dyadic.map(lambda v: v / 4), st.sampled_from([0, 1])),
    st.tuples(st.just("shadow"), st.booleans(), st.one_of(st.none(), dyadic.map(lambda v: v / 8))),
    st.tuples(st.just("shadow_drop")),
    st.tuples(st.just("q_result"), st.sampled_from(["late", "duplicate", "unknown", "stored",
                                                     "expired"])),
    st.tuples(st.just("tick"), st.integers(1, 45)),
)


class Recorder:
    """One process's sources: a profiled probe, the HTTP series and an exporter's failures."""

    def __init__(self, clock: list[float]) -> None:
        self.probe = ProbeSource("m", "1", QUALITY_CONFIG, PROFILE, DriftSpec(), WINDOW_S,
                                 SUB_BUCKETS, clock=lambda: clock[0],
                                 quality=resolve_task(QUALITY))
        self.quality = self.probe.quality
        assert self.quality is not None
        self.quality._clock = lambda: clock[0]  # quality buckets on the test's clock too
        self.http = HttpMetrics(HTTP)
        self.failures = ExportFailures("otlp_http")
        self.shadow = ShadowCounters((("model", "m"), ("model_version", "2"),
                                      ("primary_version", "1")), DIFFERENCE_BUCKETS)

    def sources(self) -> list[Any]:
        return [self.probe, self.http, self.failures, self.shadow]

    def apply(self, e: tuple[Any, ...]) -> None:
        probe, kind = self.probe, e[0]
        if kind == "ok":
            probe.calls.enter()
            probe.calls.exit_ok(e[1], e[2], e[3])
        elif kind == "error":
            probe.calls.enter()
            probe.calls.exit_error(e[1], e[2])
        elif kind == "enter":
            probe.calls.enter()
        elif kind == "score":
            probe.scores.child(e[1]).observe(e[2])
        elif kind == "class":
            probe.classes.add(e[1], e[2])
        elif kind == "row":
            probe.see_inputs({"x": e[1], "y": e[2], "c": e[3]}, None)
        elif kind == "batch":
            g = np.random.default_rng(e[2])
            probe.see_inputs({"x": g.normal(0.3, 1, e[1]), "y": g.exponential(2, e[1]),
                              "c": g.choice(["a", "b", "q"], e[1]).astype(object)}, None)
        elif kind == "prediction":
            probe.observe_outputs(np.array([e[1]]), None)
        elif kind == "http":
            _, method, route, status, error, duration, shape, received, sent = e
            start = 100.0
            end = start + duration
            first = {"one": end, "streamed": start + duration / 2, "none": -1.0}[shape]
            self.http.enter(min(method, len(DEFAULT_KNOWN_METHODS)))
            self.http.record(min(method, len(DEFAULT_KNOWN_METHODS)), route, status, error,
                             start, end, first, received, 0 if shape == "none" else sent)
        elif kind == "http_enter":
            self.http.enter(min(e[1], len(DEFAULT_KNOWN_METHODS)))
        elif kind == "push_failed":
            self.failures.add()
        elif kind == "q_prediction":
            self.quality.observe_prediction(e[1], self.quality.clock(), True)
        elif kind == "q_matched":
            self.quality.add_outcome(e[1], e[2], e[3])
        elif kind == "q_pair":
            self.quality.add_pairs(e[1], e[2])
        elif kind == "q_result":
            self.quality.count(e[1])
        elif kind == "shadow":
            agree = int(e[1])
            self.shadow.compared(agree, 1 - agree,
                                 None if e[2] is None else np.array([e[2]], dtype=np.float64))
        elif kind == "shadow_drop":
            self.shadow.drop()

    def flush(self) -> None:
        """Ingest buffered rows now, so they land in the current sub-bucket."""
        assert self.probe.features is not None
        self.probe.features.flush()


def exposition(states: list[Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    builder = FamilyBuilder()
    for state in states:
        state.collect_into(builder)
    out = {}
    for family in builder.families():
        for s in family.samples:
            if family.kind == "histogram":
                value: Any = (s.bucket_counts, s.sum)
            elif family.kind == "summary":
                value = (s.quantiles, s.count, s.sum)
            else:
                value = s.value
            out[(family.name, s.labels)] = value
    return out


def assert_same(merged: dict, single: dict) -> None:
    assert merged.keys() == single.keys()
    for key, value in single.items():
        got = merged[key]
        if key[0] in ROUNDED:
            assert _close(got, value), (key, got, value)
        else:
            assert got == value, (key, got, value)


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and (math.isnan(a) or math.isnan(b)):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def roundtrip(source: Any, state: Any, receiver: Any, by_parts: bool) -> Any:
    """``state`` as another process reads it: to_dict, pickle, then the receiver's
    ``state_from_dict`` (frozen parts by uid, each rebuilt with ``part_from_dict``)."""
    if not by_parts:
        return receiver.state_from_dict(pickle.loads(pickle.dumps(state.to_dict(), 5)))
    parts: dict[str, Any] = {}
    data = pickle.loads(pickle.dumps(state.to_dict(parts), 5))
    rebuilt = {uid: receiver.part_from_dict(pickle.loads(pickle.dumps(p.to_dict())))
               for uid, p in parts.items()}
    return receiver.state_from_dict(data, rebuilt)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(st.tuples(event, st.integers(0, 3)), min_size=10, max_size=80),
       k=st.integers(1, 4), by_parts=st.booleans())
def test_k_recorders_merged_equal_one(events, k, by_parts):
    """Merging the serialised states of k recorders gives one recorder's exposition."""
    clock = [1_000_000.0]
    single = Recorder(clock)
    split = [Recorder(clock) for _ in range(k)]
    receiver = Recorder(clock)
    for e, who in events:
        if e[0] == "tick":
            for r in [single, *split]:
                r.flush()
            clock[0] += e[1]
            continue
        single.apply(e)
        split[who % k].apply(e)
    merged = []
    for i, own in enumerate(receiver.sources()):
        state = own.state()
        for r in split:
            other = r.sources()[i]
            state.merge(roundtrip(other, other.state(), own, by_parts))
        merged.append(state)
    assert_same(exposition(merged), exposition([s.state() for s in single.sources()]))


def test_a_state_is_independent_of_later_recording():
    """A state taken, then more traffic in the same sub-bucket and after it: the state's
    exposition is unchanged (the open sub-bucket was copied, closed ones never change)."""
    clock = [7_000.0]
    r = Recorder(clock)
    r.apply(("batch", 80, 1))
    r.apply(("ok", 0.5, 3, 100))
    clock[0] += 15
    r.apply(("batch", 70, 2))
    states = [s.state() for s in r.sources()]
    before = exposition(states)
    taken = clock[0]
    r.apply(("batch", 75, 3))  # the same (open) sub-bucket
    r.apply(("http", 3, "/a", 200, "", 0.5, "one", 10, 300))
    clock[0] += 15
    r.apply(("batch", 65, 4))
    r.apply(("ok", 0.25, 3, 100))
    clock[0] = taken  # the window is read at a time: the same one
    assert exposition(states) == before


def test_collect_into_equals_state_collect_into():
    """A source's collect_into and its state's collect_into report the same samples."""
    clock = [5_000.0]
    r = Recorder(clock)
    for e in [("ok", 0.5, 3, 100), ("error", 0.25, "KeyError"), ("enter",),
              ("row", 1.0, 2.0, "a"), ("batch", 80, 1), ("prediction", 0.5),
              ("http", 3, "/a", 200, "", 0.5, "one", 10, 300), ("http_enter", 4),
              ("push_failed",)]:
        r.apply(e)
    for source in r.sources():
        a, b = FamilyBuilder(), FamilyBuilder()
        source.collect_into(a)
        source.state().collect_into(b)
        assert a.families() == b.families()


def test_archived_state_drops_live_gauges_only():
    """A dead process's state keeps its counts but no call in flight or active request."""
    clock = [5_000.0]
    r = Recorder(clock)
    for e in [("ok", 0.5, 3, 100), ("enter",), ("enter",), ("http_enter", 3),
              ("http", 3, "/a", 200, "", 0.5, "one", 10, 300)]:
        r.apply(e)
    live = exposition([s.state() for s in r.sources()])
    dead = exposition([s.state().archived() for s in r.sources()])
    base = (("model", "m"), ("model_version", "1"))
    assert live[("mlprobe_predictions_in_flight", base)] == 2
    assert dead[("mlprobe_predictions_in_flight", base)] == 0
    head = (("http_request_method", "HEAD"),)
    assert live[("http_server_active_requests", head)] == 1
    assert dead[("http_server_active_requests", head)] == 0
    for key, value in live.items():
        if key[0] not in ("mlprobe_predictions_in_flight", "http_server_active_requests"):
            assert dead[key] == value, key


def test_merged_label_tables_stay_bounded_and_keep_totals():
    """Recorders that each stay under a cap may together pass it: the merged table keeps the
    values seen first, counts the rest in __other__, and the total is unchanged."""
    ticks = iter(range(10**6))
    recorders = [Recorder([0.0]) for _ in range(3)]
    for i, r in enumerate(recorders):
        r.probe.classes.table._clock = lambda: next(ticks)
        for j in range(4):  # 4 distinct classes each, 12 in all; the cap is 5
            r.probe.classes.add(f"class-{i}-{j}", 1 + j)
    state = recorders[0].probe.state()
    for r in recorders[1:]:
        state.merge(roundtrip(r.probe, r.probe.state(), recorders[0].probe, False))
    assert set(state.classes) == {"class-0-0", "class-0-1", "class-0-2", "class-0-3",
                                  "class-1-0", OVERFLOW}
    assert sum(state.classes.values()) == 3 * (1 + 2 + 3 + 4)
    assert len(state.classes_seen) == 5


def test_a_union_one_value_past_the_cap_is_capped():
    """Two recorders whose label values together pass a cap by exactly one (adding
    __other__ then keeps the table's length): the value seen last counts as __other__, and
    only the kept values' first-seen times remain, for HTTP routes and for classes."""
    ticks = iter(range(10**6))
    config = HttpConfig(duration_buckets=(0.1, 1.0), size_buckets=(100.0,),
                        known_methods=("GET",), max_routes=2, max_status_codes=5,
                        max_error_types=5)
    first, second = HttpMetrics(config), HttpMetrics(config)
    for metrics, routes in ((first, ("/a", "/b")), (second, ("/c",))):
        metrics._routes._clock = lambda: next(ticks)
        for route in routes:
            metrics.record(0, route, 200, "", 0.0, 0.05, 0.05, 0, 1)
    http = first.state().merge(second.state())
    requests = 2 * http.layout.d  # the duration buckets: one count per request
    routes = {key[1]: sum(values[:requests]) for key, values in http.series.items()}
    assert routes == {"/a": 1, "/b": 1, OVERFLOW: 1}
    assert set(http.routes_seen) == {"/a", "/b"}
    recorders = [Recorder([0.0]) for _ in range(2)]
    for i, r in enumerate(recorders):
        r.probe.classes.table._clock = lambda: next(ticks)
        for j in range(3):  # 3 distinct classes each, 6 in all; the cap is 5
            r.probe.classes.add(f"class-{i}-{j}", 1)
    probe = recorders[0].probe.state().merge(recorders[1].probe.state())
    assert set(probe.classes) == {"class-0-0", "class-0-1", "class-0-2", "class-1-0",
                                  "class-1-1", OVERFLOW}
    assert len(probe.classes_seen) == 5


def test_a_state_of_other_settings_is_refused():
    """Rebuilding a state written with other buckets raises ValueError (the caller counts it),
    and sources of other settings have other fingerprints."""
    a = ProbeSource("m", "1", CONFIG, None, DriftSpec(), WINDOW_S, SUB_BUCKETS)
    wider = ProbeConfig(**{**{f: getattr(CONFIG, f) for f in CONFIG.__dataclass_fields__},
                           "latency_buckets": (0.5, 1.0)})
    b = ProbeSource("m", "1", wider, None, DriftSpec(), WINDOW_S, SUB_BUCKETS)
    assert a.fingerprint() != b.fingerprint()
    with pytest.raises(ValueError):
        b.state_from_dict(a.state().to_dict())
    with_profile = ProbeSource("m", "1", CONFIG, PROFILE, DriftSpec(), WINDOW_S, SUB_BUCKETS)
    assert with_profile.fingerprint() != a.fingerprint()
    with pytest.raises(ValueError):
        with_profile.state_from_dict(a.state().to_dict())
