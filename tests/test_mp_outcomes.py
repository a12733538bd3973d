"""Outcomes joined across workers (multi-process mode): each counted once, where its
prediction is.

Simulated workers share one directory in one process (as in ``test_multiprocess.py``): each
is a registry attached under its own worker identity, with a quality probe whose prediction
store reads a fake clock, and a liveness function the test controls. ``cycle()`` is what the
publisher thread does every interval (the outcome exchange, then the publish). Races are
staged by running one worker's exchange at the moment another is about to take the directory
lock. The real servers are in ``test_workers_servers.py``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlprobe
from mlprobe import multiprocess
from mlprobe._mp_files import OUTCOMES_PREFIX, Directory, decode
from mlprobe._mp_outcome_files import plain_label
from mlprobe._mp_process import WorkerId
from mlprobe.errors import ConfigurationError
from mlprobe.testing import sample_value

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX only")

GRACE_S = 10.0
RESULTS = ("matched", "paired", "late", "duplicate", "unknown", "invalid")


class Clock:
    """The stores' wall clock, moved by the test (it starts now: predictions are stamped with
    the monitor's real clock)."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t


class Server:
    """Simulated workers of one server: a directory, a clock and the live worker identities."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.clock = Clock()
        self.live: set[WorkerId] = set()
        self.next_pid = 50_000

    def worker(self, **spec: Any) -> Worker:
        self.next_pid += 1
        return Worker(self, WorkerId(self.next_pid, 9), **spec)

    def outcome_files(self) -> list[str]:
        return sorted(n for n in os.listdir(self.path) if n.startswith(OUTCOMES_PREFIX))


class Worker:
    """One simulated worker with a binary quality probe; predictions under explicit ids."""

    def __init__(self, server: Server, ident: WorkerId, **spec: Any) -> None:
        self.server, self.ident = server, ident
        server.live.add(ident)
        self.registry = mlprobe.Registry()
        self.merger = multiprocess.attach(self.registry, server.path, interval=1.0,
                                          background=False, worker=lambda: ident,
                                          alive=lambda w: w in server.live)
        spec = {"task": "binary", "unknown_grace_seconds": GRACE_S, **spec}
        self.probe = mlprobe.Probe("m", version="1", registry=self.registry,
                                   quality=mlprobe.QualitySpec(**spec))
        self.store = self.probe._state.store
        self.store._clock = server.clock  # the grace and the TTL run on the test's clock

        @self.probe.track(prediction_id="pid")
        def predict(row: Any, pid: str) -> float:
            return row

        self.predict = predict

    def outcome(self, pid: str, actual: Any) -> None:
        self.probe.record_outcome(pid, actual)

    def cycle(self) -> None:
        """One publisher cycle: the outcome exchange, then the state's publish."""
        self.merger.exchange_outcomes()
        self.merger.publish()

    def results(self) -> dict[str, float]:
        """``mlprobe_outcomes_total`` by result, as a scrape of this worker shows it."""
        values = {r: 0.0 for r in RESULTS}
        for family in self.registry.collect():
            if family.name == "mlprobe_outcomes":
                for s in family.samples:
                    values[dict(s.labels)["result"]] += s.value
        return {r: v for r, v in values.items() if v}

    def own(self, result: str) -> int:
        """This worker's own count of ``result`` (its live monitor, nothing merged)."""
        monitor = self.probe._state.quality
        monitor.flush()
        return monitor.counters[result]

    def die(self) -> None:
        self.server.live.discard(self.ident)


@pytest.fixture
def server(tmp_path: Path) -> Server:
    return Server(tmp_path)


def rounds(workers: list[Worker], n: int = 3) -> None:
    for _ in range(n):
        for w in workers:
            if w.ident in w.server.live:
                w.cycle()


def past_grace(server: Server, workers: list[Worker]) -> None:
    """Every exchange done, then the grace over, then every exchange again."""
    rounds(workers)
    server.clock.t += GRACE_S + 1
    rounds(workers)


def test_an_outcome_reaching_another_worker_is_matched_where_its_prediction_is(server):
    """The prediction at A, its label at B: after B's cycle and A's, A has counted it matched
    with the right pair, B forgets it, nobody counts unknown even past the grace, and every
    worker's scrape shows one matched outcome and accuracy 1."""
    a, b = server.worker(), server.worker()
    a.predict(0.9, "p1")
    b.outcome("p1", 1)
    assert b.store.waiting_outcomes == 1
    b.cycle()  # publishes the waiting outcome
    assert server.outcome_files() == [f"{OUTCOMES_PREFIX}{b.ident.name}.state"]
    a.cycle()  # claims and joins it
    assert a.own("matched") == 1 and b.own("matched") == 0
    b.cycle()  # sees the claim: forgets it
    assert b.store.waiting_outcomes == 0
    past_grace(server, [a, b])
    for w in (a, b):
        assert w.results() == {"matched": 1}
        assert sample_value(w.registry, "mlprobe_model_quality", {"metric": "accuracy"}) == 1
    assert server.outcome_files() == []  # settled: no file left


def test_an_outcome_for_an_id_no_worker_holds_counts_unknown_once_after_the_grace(server):
    """An id nobody predicted: it waits the grace (published, claimed by nobody), then its
    receiver counts it unknown, once; the other workers count nothing."""
    a, b, c = server.worker(), server.worker(), server.worker()
    b.outcome("nobody", 0)
    rounds([a, b, c])
    assert b.store.waiting_outcomes == 1 and a.results() == {}
    server.clock.t += GRACE_S + 1
    rounds([a, b, c])
    assert (a.own("unknown"), b.own("unknown"), c.own("unknown")) == (0, 1, 0)
    for w in (a, b, c):
        assert w.results() == {"unknown": 1}


def test_outcome_before_its_prediction_in_the_same_worker_is_joined_by_the_exchange(server):
    """In multi-process mode the receiver's own late prediction joins its waiting outcome at
    the next exchange (not at once: a waiting outcome may be published already)."""
    a, b = server.worker(), server.worker()
    a.outcome("early", 1)
    a.cycle()
    a.predict(0.2, "early")
    assert a.own("matched") == 0 and a.store.waiting_outcomes == 1
    a.cycle()
    assert a.own("matched") == 1 and a.store.waiting_outcomes == 0
    past_grace(server, [a, b])
    assert b.results() == {"matched": 1}
    assert sample_value(b.registry, "mlprobe_model_quality", {"metric": "accuracy"}) == 0


def test_a_holder_does_not_claim_what_its_receiver_counted_unknown(server):
    """The race one way: the holder has read the receiver's file (the outcome still listed)
    when the receiver, past the grace, counts it unknown; the holder, deciding afresh under
    the lock, does not claim it: counted once, unknown."""
    a, b = server.worker(), server.worker()
    b.outcome("p", 1)
    b.cycle()
    a.predict(0.7, "p")  # the prediction arrives at A after the grace is nearly over
    server.clock.t += GRACE_S + 1
    staged = stage_before_lock(a, b)
    a.cycle()
    assert staged == ["ran"]
    assert (a.own("matched"), b.own("unknown")) == (0, 1)
    assert a.store.entries == 1  # A's prediction waits on (it may still get an outcome)
    rounds([a, b])
    for w in (a, b):
        assert w.results() == {"unknown": 1}


def test_a_receiver_does_not_count_unknown_what_a_holder_claimed(server):
    """The race the other way: the receiver has seen its outcome past the grace when the
    holder claims it; the receiver, deciding afresh under the lock, sees the claim and
    forgets it: counted once, matched."""
    a, b = server.worker(), server.worker()
    b.outcome("p", 0)
    b.cycle()
    a.predict(0.3, "p")
    server.clock.t += GRACE_S + 1
    staged = stage_before_lock(b, a)
    b.cycle()
    assert staged == ["ran"]
    assert (a.own("matched"), b.own("unknown")) == (1, 0)
    assert b.store.waiting_outcomes == 0
    rounds([a, b])
    for w in (a, b):
        assert w.results() == {"matched": 1}


def stage_before_lock(first: Worker, other: Worker) -> list[str]:
    """Run ``other``'s cycle just before ``first`` takes the directory lock (once)."""
    directory = first.merger.directory
    locked = directory.locked
    staged: list[str] = []

    def locked_after_the_other(*args: Any, **kwargs: Any) -> Any:
        if not staged:
            staged.append("ran")
            other.cycle()
        return locked(*args, **kwargs)

    directory.locked = locked_after_the_other  # type: ignore[method-assign]
    return staged


def test_a_duplicate_outcome_sent_to_two_workers_counts_matched_and_duplicate(server):
    """One label posted twice, to two other workers: the holder claims both, one matched and
    one duplicate, as one process would count them; nothing unknown."""
    a, b, c = server.worker(), server.worker(), server.worker()
    a.predict(0.9, "p")
    b.outcome("p", 1)
    c.outcome("p", 1)
    past_grace(server, [b, c, a])
    assert (a.own("matched"), a.own("duplicate")) == (1, 1)
    for w in (a, b, c):
        assert w.results() == {"matched": 1, "duplicate": 1}


def test_a_late_outcome_reaching_another_worker_counts_late_at_the_holder(server):
    """The prediction expired (TTL) at the holder before its label reached another worker:
    the holder still knows the id (its tombstone) and claims it as late."""
    a, b = server.worker(ttl_seconds=5.0), server.worker(ttl_seconds=5.0)
    a.predict(0.9, "p")
    server.clock.t += 6
    a.cycle()  # expires the prediction (a tombstone)
    b.outcome("p", 1)
    past_grace(server, [b, a])
    for w in (a, b):
        assert w.results() == {"late": 1}


def test_a_receiver_that_dies_has_its_waiting_outcomes_adopted(server):
    """A worker dies with published waiting outcomes: one whose prediction another worker
    holds is still claimed (matched), one nobody holds is adopted by a live worker and
    counted unknown after the grace, once; the dead worker's file is removed."""
    a, b, c = server.worker(), server.worker(), server.worker()
    a.predict(0.9, "held")
    b.outcome("held", 1)
    b.outcome("nobody", 1)
    b.cycle()
    b.die()
    c.cycle()  # adopts B's unclaimed outcomes (both), deletes B's file
    assert f"{OUTCOMES_PREFIX}{b.ident.name}.state" not in server.outcome_files()
    a.cycle()  # claims "held" from C's file
    past_grace(server, [a, c])
    assert (a.own("matched"), c.own("unknown")) == (1, 1)
    for w in (a, c):
        assert w.results() == {"matched": 1, "unknown": 1}
    assert server.outcome_files() == []


def test_an_adopted_outcome_joins_a_prediction_that_arrives_at_its_adopter(server):
    """An outcome adopted from a dead worker waits on at the adopter like its own: when its
    prediction arrives there, it is joined at the adopter's next interval (matched)."""
    a, b = server.worker(), server.worker()
    b.outcome("later", 0)
    b.cycle()
    b.die()
    a.cycle()  # adopts it
    assert f"{OUTCOMES_PREFIX}{b.ident.name}.state" not in server.outcome_files()
    a.predict(0.3, "later")
    a.cycle()  # joined at the next interval, not at the end of the grace
    assert a.own("matched") == 1 and not a.merger.outcomes._orphans
    past_grace(server, [a])
    assert a.results() == {"matched": 1}


@pytest.mark.parametrize("adopter", ["third worker", "the receiver"])
def test_a_holder_that_dies_after_claiming_keeps_its_claims(server, adopter):
    """A worker claims an outcome, counts it, publishes its state and dies before the
    receiver has seen the claim: whoever adopts its file (a third worker, or the receiver
    itself), the receiver still forgets the outcome and never counts it unknown."""
    a, b, c = server.worker(), server.worker(), server.worker()
    a.predict(0.9, "p")
    b.outcome("p", 1)
    b.cycle()
    a.cycle()  # claims and counts; its state file has the match
    a.die()
    first = c if adopter == "third worker" else b
    first.cycle()  # adopts A's file: its claim with it
    assert f"{OUTCOMES_PREFIX}{a.ident.name}.state" not in server.outcome_files()
    past_grace(server, [b, c])
    assert b.own("unknown") == 0 and b.store.waiting_outcomes == 0
    for w in (b, c):
        assert w.results() == {"matched": 1}


def test_an_adopter_that_dies_before_deleting_the_file_is_not_adopted_twice(server):
    """An adopter writes its file (naming the dead worker as adopted) and dies before it
    deletes the dead worker's file: the next adopter takes the outcomes from the first
    adopter's file only, and deletes both files: counted once."""
    a, b, c = server.worker(), server.worker(), server.worker()
    b.outcome("nobody", 1)
    b.cycle()
    b.die()
    dead_file = f"{OUTCOMES_PREFIX}{b.ident.name}.state"
    remove = a.merger.directory.remove
    a.merger.directory.remove = lambda name: None if name == dead_file else remove(name)
    a.cycle()  # adopts, then "dies" before the deletion
    assert dead_file in server.outcome_files()
    a.die()
    past_grace(server, [c])
    assert c.own("unknown") == 1
    assert c.results() == {"unknown": 1}
    assert server.outcome_files() == []


def test_claims_name_one_wait_of_a_key(server):
    """A key that waits at a receiver, is claimed and forgotten, then waits there again
    (the label posted again later): the old claim does not make the new wait disappear;
    the second is claimed on its own (duplicate)."""
    a, b = server.worker(), server.worker()
    a.predict(0.9, "p")
    b.outcome("p", 1)
    b.cycle()
    a.cycle()  # claimed, A keeps the claim until B drops the outcome
    b.outcome("p", 1)  # not forgotten yet: the key already waits, so this one is unknown
    b.cycle()  # forgets the claimed one
    b.outcome("p", 0)  # waits again, under a new serial
    assert b.store.waiting_outcomes == 1
    b.cycle()
    assert b.store.waiting_outcomes == 1  # A's old claim names the first wait only
    past_grace(server, [a, b])
    assert a.results() == {"matched": 1, "duplicate": 1, "unknown": 1}


def test_files_stay_bounded_by_max_unmatched(server):
    """Outcomes beyond max_unmatched count unknown at once and are never published; a
    worker's file holds at most max_unmatched outcomes."""
    a, b = server.worker(max_unmatched=50), server.worker(max_unmatched=50)
    for i in range(120):
        b.outcome(f"x{i}", 1)
    b.cycle()
    data = decode(Path(server.path, f"{OUTCOMES_PREFIX}{b.ident.name}.state").read_bytes())
    assert len(data["waiting"]) == 50
    assert b.own("unknown") == 70
    past_grace(server, [a, b])
    assert a.results() == {"unknown": 120}


def test_adopted_outcomes_stay_bounded_by_max_unmatched(server):
    """A worker adopting a dead worker's waiting outcomes keeps at most its own
    max_unmatched of them (its file stays bounded); the rest count unknown at once, and
    every outcome is counted once in the end."""
    a, b = server.worker(max_unmatched=20), server.worker(max_unmatched=50)
    for i in range(50):
        b.outcome(f"x{i}", 1)
    b.cycle()
    b.die()
    a.cycle()  # adopts B's file
    assert len(a.merger.outcomes._orphans) == 20
    assert a.own("unknown") == 30
    data = decode(Path(server.path, f"{OUTCOMES_PREFIX}{a.ident.name}.state").read_bytes())
    assert len(data["waiting"]) == 20
    past_grace(server, [a])
    assert a.results() == {"unknown": 50}


def test_labels_of_every_kind_travel_as_the_monitor_reads_them():
    """numpy scalars, arrays, pandas, tuples and other objects become plain data that a
    monitor reads as it reads the original."""
    import pandas as pd

    assert plain_label(np.int64(3)) == 3 and type(plain_label(np.int64(3))) is int
    assert plain_label(np.array([1, 0])) == [1, 0]
    assert plain_label(pd.Series([1.5, 2.0])) == [1.5, 2.0]
    assert plain_label((1, "a", None)) == [1, "a", None]
    assert plain_label(np.bool_(True)) is True
    assert plain_label(object.__new__(type("Label", (), {"__str__": lambda s: "yes"}))) == "yes"


def test_a_grace_shorter_than_two_intervals_fails_at_construction(tmp_path):
    """In multi-process mode a probe whose unknown_grace_seconds is under two publish
    intervals is refused with a message saying what to set; two intervals are accepted."""
    registry = mlprobe.Registry()
    multiprocess.attach(registry, str(tmp_path), interval=1.5, background=False)
    with pytest.raises(ConfigurationError, match=r"at least 3 .*MLPROBE_MULTIPROCESS_INTERVAL"):
        mlprobe.Probe("short", registry=registry,
                      quality=mlprobe.QualitySpec(task="binary", unknown_grace_seconds=2.9))
    probe = mlprobe.Probe("ok", registry=registry,
                          quality=mlprobe.QualitySpec(task="binary", unknown_grace_seconds=3))
    assert probe._state.store.coordinated
    assert not mlprobe.Probe("alone", registry=mlprobe.Registry(), quality=mlprobe.QualitySpec(
        task="binary", unknown_grace_seconds=0))._state.store.coordinated


def test_store_gauges_are_summed_over_live_workers(server):
    """Predictions and outcomes waiting are the sum over live workers; a dead worker's
    store is gone with it."""
    a, b = server.worker(), server.worker()
    for i in range(3):
        a.predict(0.5, f"a{i}")
    b.predict(0.5, "b0")
    b.outcome("elsewhere", 1)
    for w in (a, b):
        w.merger.publish()
    for w in (a, b):
        assert sample_value(w.registry, "mlprobe_prediction_store_entries") == 4
        assert sample_value(w.registry, "mlprobe_waiting_outcomes") == 1
    b.die()
    assert sample_value(a.registry, "mlprobe_prediction_store_entries") == 3
    assert sample_value(a.registry, "mlprobe_waiting_outcomes") == 0


def test_quality_counts_merge_across_workers(server):
    """Confusion counts, regression-free binary metrics and the delay histogram of pairs
    matched in different workers merge: every worker shows the quality of the union
    (accuracy, precision, recall and the delay count equal to scikit-learn / the count)."""
    from sklearn.metrics import accuracy_score, precision_score, recall_score

    workers = [server.worker() for _ in range(3)]
    rng = np.random.default_rng(4)
    scores = rng.random(60)
    labels = rng.integers(0, 2, 60)
    for i in range(60):
        workers[i % 3].predict(float(scores[i]), f"q{i}")
        workers[(i + int(rng.integers(0, 3))) % 3].outcome(f"q{i}", int(labels[i]))
    past_grace(server, workers)
    predicted = (scores > 0.5).astype(int)
    for w in workers:
        assert w.results() == {"matched": 60}
        for metric, oracle in (("accuracy", accuracy_score), ("precision", precision_score),
                               ("recall", recall_score)):
            value = sample_value(w.registry, "mlprobe_model_quality", {"metric": metric})
            assert value == pytest.approx(oracle(labels, predicted), abs=1e-12), metric
        delays = [f for f in w.registry.collect() if f.name == "mlprobe_outcome_delay_seconds"]
        assert sum(delays[0].samples[0].bucket_counts) == 60


event = st.one_of(
    st.tuples(st.just("predict"), st.integers(0, 3), st.integers(0, 11)),
    st.tuples(st.just("outcome"), st.integers(0, 3), st.integers(0, 15)),
    st.tuples(st.just("cycle"), st.integers(0, 3)),
    st.tuples(st.just("tick"), st.sampled_from([1.0, 4.0, 11.0])),
    st.tuples(st.just("replace"), st.integers(0, 3)),  # dies after a cycle; a new worker
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=st.lists(event, max_size=60), deaths=st.booleans())
def test_every_outcome_is_counted_exactly_once(tmp_path_factory, events, deaths):
    """Random predictions, labels (ids 12-15 never predicted; ids labelled again, at other
    workers), cycles in any order, clock jumps past the grace and, optionally, workers
    replaced: once everything settles, every scrape shows each label counted exactly once;
    without deaths, exactly as one process would count them (the first label of a predicted
    id matched, later ones duplicate, labels of unknown ids unknown)."""
    server = Server(tmp_path_factory.mktemp("mp"))
    workers = [server.worker() for _ in range(4)]
    everyone = list(workers)
    sent: dict[int, list[int]] = {}  # id -> workers its labels went to
    predicted: set[int] = set()
    for e in events:
        kind = e[0]
        if kind == "predict" and e[2] not in predicted:  # ids are unique, as new_id() makes
            predicted.add(e[2])
            workers[e[1]].predict(0.75, f"id{e[2]}")
        elif kind == "outcome" and e[1] not in sent.get(e[2], []):
            sent.setdefault(e[2], []).append(e[1])  # (one label per id and worker)
            workers[e[1]].outcome(f"id{e[2]}", 1)
        elif kind == "cycle":
            workers[e[1]].cycle()
        elif kind == "tick" and not deaths:
            server.clock.t += e[1]
        elif kind == "replace" and deaths:
            workers[e[1]].cycle()
            workers[e[1]].die()
            workers[e[1]] = server.worker()
            everyone.append(workers[e[1]])
    past_grace(server, workers)
    rounds(workers)
    total = sum(len(v) for v in sent.values())
    for w in workers:
        results = w.results()
        assert sum(results.values()) == total, (results, sent)
    if not deaths and not any(e[0] == "tick" for e in events):
        expected = {"matched": 0.0, "duplicate": 0.0, "unknown": 0.0}
        for key, receivers in sent.items():
            if key in predicted:
                expected["matched"] += 1
                expected["duplicate"] += len(receivers) - 1
            else:
                expected["unknown"] += len(receivers)
        assert workers[0].results() == {k: v for k, v in expected.items() if v}
    assert server.outcome_files() == []
    assert all(w.store.waiting_outcomes == 0 for w in workers)


def test_a_worker_publishes_its_last_waiting_outcomes_at_exit(server):
    """A worker that exits (final) first runs an exchange, so outcomes it received since its
    last cycle are in its file; after it is gone a live worker adopts them."""
    a, b = server.worker(), server.worker()
    a.predict(0.9, "p")
    b.outcome("p", 1)  # after B's last cycle
    b.merger.final()
    assert f"{OUTCOMES_PREFIX}{b.ident.name}.state" in server.outcome_files()
    b.die()
    past_grace(server, [a])
    assert a.results() == {"matched": 1}
    assert Directory.worker_file(b.ident.name) not in os.listdir(server.path)


def test_a_shadow_version_is_joined_and_its_counters_merge_across_workers(server):
    """A shadow candidate in every worker: a label that reaches another worker joins both the
    primary's and the candidate's prediction where they are, and the shadow's agreement
    counters are the sum over workers in every scrape."""
    workers = [server.worker(), server.worker()]
    shadows, ids = [], []
    for w in workers:
        shadow = mlprobe.Shadow(w.probe, lambda row: 0.8, version="2")

        @shadow.track
        def predict(row: Any) -> float:
            return row

        for j in range(3):
            predict(0.9 if j else 0.1)
            ids.append(mlprobe.current_prediction_id())
        assert shadow.join()
        shadows.append(shadow)
    for i, prediction_id in enumerate(ids):
        workers[1 - i // 3].outcome(prediction_id, 1)  # every label at the other worker
    past_grace(server, workers)
    for w in workers:
        for version in ("1", "2"):
            assert sample_value(w.registry, "mlprobe_outcomes",
                                {"model_version": version, "result": "matched"}) == 6
        agree = sample_value(w.registry, "mlprobe_shadow_comparisons", {"result": "agree"})
        disagree = sample_value(w.registry, "mlprobe_shadow_comparisons",
                                {"result": "disagree"})
        assert (agree, disagree) == (4, 2)
    for shadow in shadows:
        shadow.close()


FORKED_WORKERS = r"""
import json, os, random, sys, time, multiprocessing as mp
import mlprobe
from mlprobe import multiprocess
from mlprobe.testing import sample_value

directory, racing = sys.argv[1], sys.argv[2] == "racing"
workers, per_worker, grace = 4, 150, 0.1 if racing else 1.0
multiprocess.enable(directory, interval=0.05)  # in the "master", before the workers exist
ready, labelled, settled = (mp.Barrier(workers) for _ in range(3))
rng = random.Random(3)
ids = [[f"w{w}-{j}" for j in range(per_worker)] for w in range(workers)]
plan = {w: [] for w in range(workers)}  # worker -> [(id, label)]: labels land anywhere
for w in range(workers):
    for prediction_id in ids[w]:
        first = rng.randrange(workers)
        plan[first].append((prediction_id, rng.randrange(2)))
        if not racing and rng.random() < 0.1:  # posted again, to another worker: duplicate
            plan[(first + rng.randrange(1, workers)) % workers].append((prediction_id, 1))
for k in range(20):
    plan[k % workers].append((f"nobody-{k}", 1))
children = []
for w in range(workers):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            probe = mlprobe.Probe("m", quality=mlprobe.QualitySpec(
                task="binary", unknown_grace_seconds=grace))
            predict = probe.track(lambda row, pid: 0.75, prediction_id="pid")
            mine = random.Random(w)

            def predictions():
                for prediction_id in ids[w]:
                    predict([1.0], prediction_id)
                    if racing:  # spread over about 2.5 graces: around each one's expiry
                        time.sleep(mine.uniform(0, 0.0035))

            if not racing:
                predictions()
            ready.wait(30)
            for prediction_id, label in plan[w]:
                probe.record_outcome(prediction_id, label)
                time.sleep(0.0005)
            if racing:  # the labels first, their predictions during their grace
                predictions()
            labelled.wait(30)
            time.sleep(1.5)  # the grace and many intervals
            settled.wait(30)
            results = {r: sample_value(mlprobe.default_registry, "mlprobe_outcomes",
                                       {"result": r}) or 0
                       for r in ("matched", "duplicate", "unknown", "late", "invalid")}
            os.write(1, (json.dumps(results) + "\n").encode())  # one write: lines never mix
            code = 0
        finally:
            os._exit(code)
    children.append(pid)
statuses = [os.waitpid(pid, 0)[1] for pid in children]
sent = sum(len(v) for v in plan.values())
print(json.dumps({"statuses": statuses, "sent": sent,
                  "predicted": workers * per_worker, "unknown": 20}), flush=True)
"""


def forked_workers(tmp_path: Path, mode: str) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Run FORKED_WORKERS; return its summary and every worker's outcome counts."""
    import json
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPROBE_", "OTEL_"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    env["MLPROBE_PROMETHEUS_AUTO"] = "0"
    done = subprocess.run([sys.executable, "-c", FORKED_WORKERS, str(tmp_path), mode],
                          capture_output=True, text=True, timeout=120, env=env,
                          start_new_session=True)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1]["statuses"] == [0, 0, 0, 0] and len(lines) == 5, done.stderr
    return lines[-1], lines[:-1]


def test_forked_workers_settle_every_label_exactly_once_under_contention(tmp_path):
    """Four forked worker processes publishing every 50 ms, each predicting 150 ids and
    posting labels for ids of any worker (some twice, to two workers; 20 for ids nobody
    holds) while the others do the same: once settled, every worker's scrape shows each
    label counted exactly once: every predicted id matched, the second labels duplicate, the
    20 unknown."""
    summary, scrapes = forked_workers(tmp_path, "steady")
    duplicates = summary["sent"] - summary["predicted"] - summary["unknown"]
    expected = {"matched": summary["predicted"], "duplicate": duplicates,
                "unknown": summary["unknown"], "late": 0, "invalid": 0}
    for results in scrapes:
        assert results == expected, (results, expected)


def test_forked_workers_racing_the_grace_count_each_label_once(tmp_path):
    """The same four processes with a grace of 0.1 s (two intervals), the labels posted
    first and their predictions made during the labels' grace, so holders claim while
    receivers expire: some labels are matched, some unknown, none counted twice or lost."""
    summary, scrapes = forked_workers(tmp_path, "racing")
    for results in scrapes:
        assert results["matched"] + results["unknown"] == summary["sent"], results
        assert results["duplicate"] == results["late"] == results["invalid"] == 0, results
        assert results["matched"] > 0 and results["unknown"] > summary["unknown"], results
