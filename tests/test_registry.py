"""The registry's read side: start times per stream, and a collect that readers share."""

from __future__ import annotations

import os
import sys
import threading
import time

import pytest

import mlprobe
from mlprobe._registry import IMPORT_TIME_UNIX_NANO, FamilyBuilder
from mlprobe.snapshot import HistogramSample, Sample, SummarySample


class _FixedSource:
    """A source reporting one counter sample, optionally with its own start time."""

    def __init__(self, start: int = 0) -> None:
        self.start = start
        self.resets = 0

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report one schema-violation counter sample."""
        builder.add("mlprobe_schema_violations",
                    [Sample((("model", "s"), ("model_version", ""), ("kind", "x")), 1.0,
                            self.start)])

    def reset(self) -> None:
        """Count resets."""
        self.resets += 1


def _starts(registry: mlprobe.Registry, model: str) -> set[int]:
    return {s.start_time_unix_nano for f in registry.collect() for s in f.samples
            if ("model", model) in s.labels}


def test_every_sample_of_a_source_carries_the_time_the_source_was_created(registry):
    """Counters, gauges, histograms and summaries of one probe all carry the wall-clock time
    its state was created, and a probe created later carries a later time."""
    before = time.time_ns()
    probe = mlprobe.Probe("first", registry=registry)
    after = time.time_ns()
    probe.track(lambda x: 0.25)([1.0])
    time.sleep(0.002)
    mlprobe.Probe("second", registry=registry).observe(outputs=[0.5])
    kinds = {type(s) for f in registry.collect() for s in f.samples}
    assert {Sample, HistogramSample} <= kinds
    (first,) = _starts(registry, "first")
    (second,) = _starts(registry, "second")
    assert before <= first <= after < second


def test_start_times_do_not_change_between_collects(registry):
    """The start of a stream is fixed: two collects report the same one (no reset)."""
    probe = mlprobe.Probe("stable", registry=registry)
    probe.observe(outputs=[0.5])
    first = _starts(registry, "stable")
    probe.observe(outputs=[0.7])
    assert _starts(registry, "stable") == first


def test_a_source_that_stamps_its_own_samples_keeps_its_start_time(registry):
    """A sample that already carries a start time is not re-stamped by the registry."""
    registry.get_or_create("own", lambda: _FixedSource(start=123))
    assert _starts(registry, "s") == {123}


def test_unstamped_samples_of_a_custom_source_get_the_registry_start(registry):
    """A custom source that knows nothing about start times gets its creation time."""
    before = time.time_ns()
    registry.get_or_create("own", _FixedSource)
    (start,) = _starts(registry, "s")
    assert before <= start <= time.time_ns()


def test_internal_errors_start_when_mlprobe_was_imported(registry):
    """mlprobe_internal_errors is a process-wide count: it starts at mlprobe's import."""
    (family,) = [f for f in registry.collect() if f.name == "mlprobe_internal_errors"]
    assert family.samples[0].start_time_unix_nano == IMPORT_TIME_UNIX_NANO > 0


def test_reset_after_fork_gives_every_source_a_new_start_time(registry):
    """Resetting after fork resets each source and starts new streams at the reset time."""
    source = registry.get_or_create("own", _FixedSource)
    (old,) = _starts(registry, "s")
    time.sleep(0.002)
    registry._reset_after_fork()
    (new,) = _starts(registry, "s")
    assert source.resets == 1
    assert new > old


def test_samples_built_outside_a_registry_have_an_unknown_start():
    """The default start time is 0, which the snapshot documents as unknown."""
    assert Sample((), 1.0).start_time_unix_nano == 0
    assert HistogramSample((), (1.0,), (0, 0), 0.0).start_time_unix_nano == 0
    assert SummarySample((), (), 0, 0.0).start_time_unix_nano == 0


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_a_forked_child_reports_new_start_times(registry):
    """In a real fork child the probe's streams start after the fork, not at the parent's
    creation time (an OTLP backend sees the reset)."""
    probe = mlprobe.Probe("forked", registry=registry)
    probe.observe(outputs=[0.5])
    (parent_start,) = _starts(registry, "forked")
    time.sleep(0.002)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            starts = _starts(registry, "forked")
            ok = len(starts) == 1 and starts.pop() > parent_start
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"1"
    assert _starts(registry, "forked") == {parent_start}


# -- single-flight collect ---------------------------------------------------------------------

class _GatedSource:
    """A source that counts its collects and holds the first one until released."""

    def __init__(self) -> None:
        self.computations = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Count the computation, signal it, and wait for the test to release it."""
        self.computations += 1
        self.entered.set()
        assert self.release.wait(10)
        builder.add("mlprobe_schema_violations",
                    [Sample((("model", "g"), ("model_version", ""), ("kind", "x")),
                            float(self.computations))])

    def reset(self) -> None:
        """Nothing to forget."""


def _wait_for_followers(registry: mlprobe.Registry, n: int) -> None:
    deadline = time.monotonic() + 10
    while registry._flight is None or registry._flight.followers < n:
        assert time.monotonic() < deadline, "followers never joined the collect"
        time.sleep(0.001)


def test_concurrent_collects_share_one_computation(registry):
    """Callers arriving while a collect runs wait for it and get its result: the sources (and
    so drift) are computed once for all of them."""
    source = registry.get_or_create("gated", _GatedSource)
    results: list[list] = []
    threads = [threading.Thread(target=lambda: results.append(registry.collect()))
               for _ in range(5)]
    threads[0].start()
    assert source.entered.wait(10)
    for t in threads[1:]:
        t.start()
    _wait_for_followers(registry, 4)
    source.release.set()
    for t in threads:
        t.join(10)
    assert source.computations == 1
    assert len(results) == 5 and all(r == results[0] for r in results)
    assert registry.collect() is not results[0]  # a later call computes afresh
    assert source.computations == 2


def test_a_failed_collect_poisons_neither_its_waiters_nor_later_collects(registry, monkeypatch):
    """When the shared collect raises, the leader gets the exception, each waiter computes its
    own result, and the next collect works."""
    source = registry.get_or_create("gated", _GatedSource)
    real = registry._collect_now
    calls = {"n": 0}

    def first_fails():
        calls["n"] += 1
        result = real()
        if calls["n"] == 1:
            raise RuntimeError("collect failed")
        return result

    monkeypatch.setattr(registry, "_collect_now", first_fails)
    errors: list[BaseException] = []
    results: list[list] = []

    def lead():
        try:
            registry.collect()
        except RuntimeError as exc:
            errors.append(exc)

    leader = threading.Thread(target=lead)
    leader.start()
    assert source.entered.wait(10)
    follower = threading.Thread(target=lambda: results.append(registry.collect()))
    follower.start()
    _wait_for_followers(registry, 1)
    source.release.set()
    leader.join(10)
    follower.join(10)
    assert [str(e) for e in errors] == ["collect failed"]
    assert len(results) == 1 and any(f.name == "mlprobe_schema_violations" for f in results[0])
    assert registry._flight is None
    assert any(f.name == "mlprobe_schema_violations" for f in registry.collect())


class _ReentrantSource:
    """A source that reads its own registry while it reports."""

    def __init__(self, registry: mlprobe.Registry) -> None:
        self.registry = registry
        self.inner: list = []
        self.depth = 0

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Collect the registry from inside its collect (once: the inner call does not)."""
        self.depth += 1
        try:
            if self.depth == 1:
                self.inner.append(self.registry.collect())
        finally:
            self.depth -= 1

    def reset(self) -> None:
        """Nothing to forget."""


def test_a_collect_from_inside_a_collect_does_not_deadlock(registry):
    """A source that calls collect() on its own registry gets a result instead of waiting
    for the collect it is part of."""
    source = registry.get_or_create("reentrant", lambda: _ReentrantSource(registry))
    worker = threading.Thread(target=registry.collect, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "collect deadlocked on itself"
    assert any(f.name == "mlprobe_internal_errors" for f in source.inner[0])


def test_a_fork_child_does_not_wait_for_a_collect_of_its_parent(registry):
    """After fork, a collect that was in flight in the parent (its thread is gone in the
    child) is forgotten, so the child's first collect does not hang."""
    from mlprobe._registry import _Flight

    registry._flight = _Flight(thread=-1)
    registry._reset_after_fork()
    worker = threading.Thread(target=registry.collect, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive()
