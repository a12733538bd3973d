"""The shadow helper never changes or delays what the primary returns, counts what it drops,
records the candidate as another version and compares the two; Split is sticky and fair."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pytest

import mlprobe
from mlprobe import QualitySpec, Shadow, Split, current_prediction_id
from mlprobe.errors import ConfigurationError
from mlprobe.testing import sample_value


def primary_probe(registry: mlprobe.Registry, task: str = "binary") -> mlprobe.Probe:
    return mlprobe.Probe("m", version="1", registry=registry, quality=QualitySpec(task=task))


# Where the candidate runs changes nothing the tests below can see (test_shadow_process.py
# compares the two on the same traffic, and tests what only a process can do).
isolations = pytest.mark.parametrize("isolation", ["thread", "process"])


@pytest.fixture
def shadows():
    """Shadows made by a test, closed after it (a process-mode shadow owns a process)."""
    made: list[Shadow] = []

    def make(*args, **kwargs) -> Shadow:
        made.append(Shadow(*args, **kwargs))
        return made[-1]

    yield make
    for shadow in made:
        shadow.close()


@isolations
def test_result_and_exceptions_pass_through_unchanged(registry, shadows, isolation):
    """The decorated function returns the primary's own object and raises its exceptions; the
    candidate's failure or slowness never reaches the caller."""
    probe = primary_probe(registry)

    def candidate(x: float) -> float:
        if x < 0:
            raise ValueError("candidate fails")
        time.sleep(0.001)
        return 0.5

    shadow = shadows(probe, candidate, version="2", isolation=isolation)
    sentinel = np.array([0.9])

    @shadow.track
    def predict(x: float) -> np.ndarray:
        if x > 100:
            raise KeyError("primary fails")
        return sentinel

    assert predict(1.0) is sentinel
    assert predict(-1.0) is sentinel
    with pytest.raises(KeyError) as raised:
        predict(1000.0)
    assert raised.value.args == ("primary fails",)
    assert shadow.join()
    v2 = {"model": "m", "model_version": "2"}
    assert sample_value(registry, "mlprobe_predictions", {**v2, "outcome": "ok"}) == 1
    assert sample_value(registry, "mlprobe_predictions", {**v2, "outcome": "error"}) == 1
    assert sample_value(registry, "mlprobe_prediction_errors", {**v2,
                                                                 "error_type": "ValueError"}) == 1


class NumberNamed(type):
    """A metaclass whose classes answer ``__qualname__`` with a number."""

    def __getattribute__(cls, name: str) -> Any:
        if name == "__qualname__":
            return 42
        return super().__getattribute__(name)


class OddlyNamedError(Exception, metaclass=NumberNamed):
    pass


def raise_oddly_named(x: Any) -> float:
    raise OddlyNamedError("no")


@isolations
def test_a_candidate_error_gets_the_label_a_primary_error_gets(registry, shadows, isolation):
    """An error whose class names itself with a non-string is labelled ``__other__`` for the
    candidate, exactly as for a tracked call (one rule for both)."""
    probe = primary_probe(registry)
    shadow = shadows(probe, raise_oddly_named, version="2", isolation=isolation)
    shadow.track(lambda x: 0.9)(1.0)
    with pytest.raises(OddlyNamedError):
        probe.track(raise_oddly_named)(1.0)
    assert shadow.join(10)
    labels = {(dict(s.labels)["model_version"], dict(s.labels)["error_type"])
              for f in registry.collect() if f.name == "mlprobe_prediction_errors"
              for s in f.samples if s.value}
    assert labels == {("1", "__other__"), ("2", "__other__")}


@isolations
def test_full_queue_drops_and_counts(registry, shadows, isolation):
    """With a slow candidate, calls past queue_size are dropped and counted; the primary
    keeps answering at once."""
    probe = primary_probe(registry)
    shadow = shadows(probe, lambda x: time.sleep(0.1) or 0.5, version="2", queue_size=5,
                     isolation=isolation)
    predict = shadow.track(lambda x: 0.9)
    start = time.perf_counter()
    for _ in range(50):
        assert predict(1) == 0.9
    assert time.perf_counter() - start < 0.5
    assert shadow.join(10)
    dropped = sample_value(registry, "mlprobe_shadow_dropped",
                           {"model": "m", "model_version": "2", "primary_version": "1"})
    ran = sample_value(registry, "mlprobe_predictions",
                       {"model": "m", "model_version": "2", "outcome": "ok"})
    assert dropped + ran == 50 and dropped >= 44


@isolations
def test_agreement_score_differences_and_shared_outcomes(registry, shadows, isolation):
    """Agreement counts per row (threshold 0.5), absolute score differences, and one outcome
    per id measuring both versions."""
    probe = primary_probe(registry)
    shadow = shadows(probe, lambda rows: np.asarray(rows) * 0.5, version="2",
                     isolation=isolation)
    predict = shadow.track(lambda rows: np.asarray(rows, dtype=float))
    ids = []
    for rows in ([0.9, 0.2, 0.6], [1.0, 0.4, 0.1]):
        predict(rows)
        ids.append(current_prediction_id())
    assert shadow.join()
    labels = {"model": "m", "model_version": "2", "primary_version": "1"}
    # primary > 0.5: 0.9, 0.6, 1.0; candidate > 0.5: none (0.45, 0.3, 0.5 ...)
    assert sample_value(registry, "mlprobe_shadow_comparisons",
                        {**labels, "result": "agree"}) == 3
    assert sample_value(registry, "mlprobe_shadow_comparisons",
                        {**labels, "result": "disagree"}) == 3
    assert sample_value(registry, "mlprobe_shadow_score_difference", labels,
                        suffix="sum") == pytest.approx(0.5 * (0.9 + 0.2 + 0.6 + 1.0 + 0.4 + 0.1))
    probe.record_outcome(ids[0], [1, 0, 1])
    probe.record_outcome(ids[1], [1, 0, 0])
    for version, accuracy in (("1", 1.0), ("2", 3 / 6)):
        assert sample_value(registry, "mlprobe_model_quality",
                            {"model": "m", "model_version": version, "metric": "accuracy"}) \
            == pytest.approx(accuracy)


@isolations
def test_regression_agreement_uses_the_relative_tolerance(registry, shadows, isolation):
    """Regression outputs agree when within the relative tolerance."""
    probe = primary_probe(registry, "regression")
    shadow = shadows(probe, lambda x: x * 1.005 if x < 10 else x * 1.1, version="2",
                     tolerance=0.01, isolation=isolation)
    predict = shadow.track(lambda x: float(x))
    for x in (1.0, 5.0, 20.0):
        predict(x)
    assert shadow.join()
    labels = {"model": "m", "model_version": "2", "primary_version": "1"}
    assert sample_value(registry, "mlprobe_shadow_comparisons",
                        {**labels, "result": "agree"}) == 2


@isolations
def test_async_primary_and_sampling(registry, shadows, isolation):
    """An async primary is shadowed too; sample=0.25 runs a quarter of the calls."""
    import asyncio

    probe = primary_probe(registry)
    shadow = shadows(probe, lambda x: 0.4, version="2", sample=0.25, isolation=isolation)

    @shadow.track
    async def predict(x: float) -> float:
        return 0.6

    async def run() -> None:
        for _ in range(100):
            assert await predict(1) == 0.6

    asyncio.run(run())
    assert shadow.join()
    assert sample_value(registry, "mlprobe_predictions",
                        {"model": "m", "model_version": "2", "outcome": "ok"}) == 25


def test_shadow_configuration_errors(registry):
    """Same version, async candidate, bad queue size or sample, missing task: clear errors."""
    probe = primary_probe(registry)
    plain = mlprobe.Probe("n", registry=registry)

    async def later(x: float) -> float:
        return x

    for kwargs, match in (({"version": "1"}, "differ"), ({"version": "2", "queue_size": 0},
                                                         "queue_size"),
                          ({"version": "2", "sample": 0}, "sample")):
        with pytest.raises(ConfigurationError, match=match):
            Shadow(probe, lambda x: x, **kwargs)
    with pytest.raises(ConfigurationError, match="sync"):
        Shadow(probe, later, version="2")
    with pytest.raises(ConfigurationError, match="task"):
        Shadow(plain, lambda x: x, version="2")
    Shadow(plain, lambda x: x, version="2", task="regression")  # explicit task: fine


def test_split_is_sticky_and_fair():
    """The same key always gets the same version; shares over 20,000 keys are within 1.5
    points of the weights; raising the canary's weight only moves keys into it."""
    split = Split({"4": 10, "3": 90}, salt="exp")
    keys = [f"user{i}" for i in range(20_000)]
    first = [split.choose(k) for k in keys]
    assert first == [split.choose(k) for k in keys]
    assert abs(first.count("4") / len(keys) - 0.10) < 0.015
    wider = Split({"4": 20, "3": 80}, salt="exp")
    moved = [(a, wider.choose(k)) for a, k in zip(first, keys) if a != wider.choose(k)]
    assert moved and all(a == "3" and b == "4" for a, b in moved)
    other = Split({"4": 10, "3": 90}, salt="another")
    same = sum(a == other.choose(k) for a, k in zip(first, keys)) / len(keys)
    assert same < 0.85  # independent: 0.1*0.1 + 0.9*0.9 = 0.82 expected


def test_split_zero_weight_and_errors():
    """A zero-weight version never gets a key; bad weights fail at construction."""
    split = Split({"a": 1, "b": 0, "c": 1})
    assert {split.choose(i) for i in range(2000)} == {"a", "c"}
    for weights in ({}, {"a": -1}, {"a": 0}, {"a": float("nan")}, {1.5: 1}):
        with pytest.raises(ConfigurationError):
            Split(weights)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_forked_child_runs_only_its_own_calls(registry):
    """A child forked while calls wait for the candidate starts its own thread and runs only
    the calls it made itself (the parent's queued calls are the parent's)."""
    import os

    probe = primary_probe(registry)
    release = threading.Event()
    seen: list[float] = []

    def candidate(x: float) -> float:
        release.wait(5)
        seen.append(x)
        return 0.5

    shadow = Shadow(probe, candidate, version="2")
    predict = shadow.track(lambda x: 0.9)
    for x in (1.0, 2.0, 3.0):
        predict(x)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what its candidate ran, then leave at once
        try:
            release.set()
            predict(42.0)
            shadow.join(5)
            os.write(write, repr(seen).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        child_seen = fh.read()
    os.waitpid(pid, 0)
    release.set()
    shadow.join(5)
    assert child_seen == "[42.0]"
    assert sorted(seen) == [1.0, 2.0, 3.0]


def one_by_one(task: Any, tolerance: float, pairs: list[tuple[Any, Any]]
               ) -> tuple[int, int, list[float]]:
    """The reference: each pair compared alone, row by row, in plain Python."""
    agree = disagree = 0
    differences: list[float] = []
    for primary_out, candidate_out in pairs:
        a, b = task.payload(primary_out), task.payload(candidate_out)
        if a is None or b is None:
            continue
        a = [a] if isinstance(a, float) else a
        b = [b] if isinstance(b, float) else b
        if len(a) != len(b):
            continue
        if isinstance(a, list) and isinstance(a[0], str) or isinstance(b, list) and \
                isinstance(b[0], str):
            continue  # (no class labels in this test's outputs)
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a.ndim == 2 or b.ndim == 2:
            if a.ndim == 2 and b.ndim == 2 and a.shape[1] == b.shape[1]:
                for x, y in zip(a, b):
                    same = int(np.argmax(x)) == int(np.argmax(y))
                    agree, disagree = agree + same, disagree + (not same)
            continue
        for x, y in zip(a.tolist(), b.tolist()):
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            differences.append(abs(x - y))
            if task.task == "regression":
                same = abs(x - y) <= tolerance * max(abs(x), abs(y))
            else:
                same = (x > task.threshold) == (y > task.threshold)
            agree, disagree = agree + same, disagree + (not same)
    return agree, disagree, differences


@pytest.mark.parametrize("task", ["binary", "regression", "multiclass"])
def test_batched_comparison_equals_one_by_one(registry, task):
    """Comparing a batch of mixed outputs in one pass (scores, arrays of any length, NaN and
    infinite rows, probability matrices, mismatched lengths) counts exactly what comparing
    each pair alone does: agreement, and every difference in its bucket with an exact sum."""
    from mlprobe._shadow_compare import Comparer

    probe = mlprobe.Probe("m", version="1", registry=registry, quality=QualitySpec(task=task))
    resolved = probe._state.quality.task
    g = np.random.default_rng(1)
    pairs: list[tuple[Any, Any]] = []
    for i in range(300):
        n = int(g.integers(1, 6))
        if task == "multiclass":
            a, b = g.random((n, 3)), g.random((n if i % 17 else n + 1, 3))
        else:
            a, b = g.random(n) * 2, g.random(n if i % 13 else n + 1) * 2
            if i % 7 == 0:
                a[0] = np.nan
            if i % 11 == 0:
                b[-1] = np.inf
            if i % 5 == 0:
                a, b = float(a[0]), float(b[0])
        pairs.append((a, b))
    bounds = (0.01, 0.1, 0.5, 1.0)
    comparer = Comparer(resolved, 0.05, bounds)
    agree, disagree, differences = one_by_one(resolved, 0.05, pairs)
    got = comparer.compare(pairs)
    assert got is not None
    assert got[:2] == (agree, disagree)
    if task == "multiclass":
        assert got[2] is None
        return
    expected = np.bincount(np.searchsorted(bounds, differences, side="left"),
                           minlength=len(bounds) + 1).tolist()
    assert got[2] == expected
    from mlprobe.stats._exact import exact_sum, exact_to_float

    assert got[3] == exact_sum(np.asarray(differences))
    assert exact_to_float(got[3]) == pytest.approx(math.fsum(differences), rel=1e-15)
