"""The background flusher: buffered rows are ingested off the request path, exactly once.

A request never ingests other requests' rows (the defect: one tracked call in 4,096 paid the
flush inline, a 2.7 ms p99.99); a collect still sees every row recorded before it started;
the flusher is a daemon that never dies of a failing monitor and stops cleanly at exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import numpy as np
import pytest

import mlprobe
from mlprobe import _flusher
from mlprobe._features import FeatureMonitor
from mlprobe._flusher import flusher_pace
from mlprobe.testing import sample_value
from profiles import age_plan_profile
from waiting import wait_until

ROW = {"age": 40.0, "plan": "pro"}


@pytest.fixture(scope="module")
def profile() -> mlprobe.ReferenceProfile:
    return age_plan_profile()


def test_requests_never_ingest_other_requests_rows(profile, monkeypatch):
    """20,000 single-row calls from this thread: every ingestion runs on the flusher's thread
    (none on the calling one), and every row is counted."""
    ingest_threads: list[str] = []
    original = FeatureMonitor._ingest

    def recording(self: FeatureMonitor, *args: Any, **kwargs: Any) -> None:
        ingest_threads.append(threading.current_thread().name)
        original(self, *args, **kwargs)

    monkeypatch.setattr(FeatureMonitor, "_ingest", recording)
    probe = mlprobe.Probe("offpath", registry=mlprobe.Registry(), reference=profile)
    monitor = probe._state.features

    @probe.track
    def predict(row: Any) -> float:
        return 0.5

    for _ in range(20_000):
        predict(ROW)
    assert wait_until(lambda: not monitor._rows)  # ingested without any collect
    caller = threading.current_thread().name
    assert ingest_threads and caller not in ingest_threads
    assert set(ingest_threads) == {"mlprobe-flusher"}
    assert monitor.totals().rows == 20_000


def test_rows_below_the_threshold_are_ingested_within_the_interval(profile):
    """Ten buffered rows (far below flush_rows) reach the window within about
    FLUSH_INTERVAL_S, without a collect, so they land in the right time sub-bucket."""
    monitor = FeatureMonitor(profile)
    for _ in range(10):
        monitor.observe(ROW)
    def in_window() -> int:
        with monitor.ring.lock:
            return sum(bucket.rows for _, bucket in monitor.ring.buckets)

    start = time.monotonic()
    assert wait_until(lambda: in_window() == 10, timeout=5 * _flusher.FLUSH_INTERVAL_S + 2)
    assert time.monotonic() - start < 3 * _flusher.FLUSH_INTERVAL_S + 1


@pytest.mark.parametrize("scores", [0.5, np.array([0.5, 0.25])], ids=["scalar", "array"])
def test_predictions_alone_start_and_wake_the_flusher(profile, scores):
    """A model whose inputs are not monitored (inputs=False) buffers only its predictions:
    they too start the flusher and reach the window without a collect."""
    monitor = FeatureMonitor(profile, flush_rows=64)
    for _ in range(100):
        monitor.observe_predictions(scores)

    def in_window() -> int:
        with monitor.ring.lock:
            return sum(bucket.prediction.count for _, bucket in monitor.ring.buckets)

    assert wait_until(lambda: in_window() == 100 * np.size(scores))


def test_a_collect_sees_every_row_recorded_before_it(profile):
    """Four threads record rows while the flusher runs; each collect counts at least every row
    whose call had returned before the collect began, and the final count is exact."""
    monitor = FeatureMonitor(profile, flush_rows=256)
    done = [0] * 4
    stop = threading.Event()

    def produce(k: int) -> None:
        while not stop.is_set() and done[k] < 30_000:
            monitor.observe(ROW)
            done[k] += 1

    threads = [threading.Thread(target=produce, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            recorded = sum(done)
            assert monitor.totals().rows >= recorded
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert monitor.totals().rows == sum(done)
    assert monitor.dropped_rows == 0


@pytest.mark.allow_internal_errors
def test_a_failing_monitor_does_not_stop_the_flusher(profile, monkeypatch):
    """A monitor whose flush raises is counted as an internal error; the flusher thread
    survives and keeps flushing the other monitors."""
    broken = FeatureMonitor(profile)
    healthy = FeatureMonitor(profile)

    def explode(pause: Any) -> None:
        raise RuntimeError("broken monitor")

    monkeypatch.setattr(broken, "flush_in_background", explode)
    before = mlprobe._guard.internal_error_count()
    for _ in range(3):
        broken.observe(ROW)
        healthy.observe(ROW)
        _flusher.flusher.wake()
        assert wait_until(lambda: not healthy._rows)
    assert mlprobe._guard.internal_error_count() > before
    assert _flusher.flusher._thread.is_alive()
    assert all(t.daemon for t in threading.enumerate() if t.name == "mlprobe-flusher")


def test_the_flusher_stops_cleanly_at_exit():
    """A process that buffered rows exits promptly with status 0 and no error output: the
    daemon flusher is stopped by an atexit hook before the interpreter ends (a hook that runs
    after mlprobe's sees it stopped and its thread ended)."""
    code = textwrap.dedent("""
        import atexit

        def after_mlprobe_hooks():  # registered first, so it runs after mlprobe's hooks
            from mlprobe import _flusher
            thread = _flusher.flusher._thread
            stopped = thread.stopped
            thread.join(10)
            print("stopped" if stopped and not thread.is_alive() else "still running")

        atexit.register(after_mlprobe_hooks)
        import numpy as np, mlprobe
        rng = np.random.default_rng(0)
        profile = mlprobe.ReferenceProfile.from_data({"x": rng.normal(size=500)})
        probe = mlprobe.Probe("exit", registry=mlprobe.Registry(), reference=profile)
        track = probe.track(lambda row: 0.5)
        for i in range(50_000):
            track({"x": float(i)})
        from mlprobe import _flusher
        assert _flusher.flusher._thread.is_alive()
        print("ok")
    """)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "stopped"] and done.stderr == ""
    assert time.monotonic() - start < 30


def test_pace_grows_only_when_the_buffer_fills():
    """The step budget stays at 40 µs until the buffer is an eighth full, then grows to 1 ms
    at full (where rows start to be dropped), with larger cycles."""
    assert flusher_pace(0.0) == flusher_pace(0.125) == (40e-6, 4096)
    budget, rows = flusher_pace(0.5)
    assert 40e-6 < budget < 1e-3 and rows == 16384
    assert flusher_pace(1.0)[0] == pytest.approx(1e-3)


def test_score_histograms_are_binned_off_the_request_path(monkeypatch):
    """Batch calls returning 100 scores each: the call that fills the histogram's buffer asks
    the flusher, it does not bin the others' values itself; every score is counted."""
    from mlprobe._instruments import Histogram

    binned_on: list[str] = []
    original = Histogram.flush

    def recording(self: Histogram) -> None:
        if self._pending:
            binned_on.append(threading.current_thread().name)
        original(self)

    monkeypatch.setattr(Histogram, "flush", recording)
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("scores", registry=registry)
    scores = np.linspace(0, 1, 100)

    @probe.track
    def predict(batch: Any) -> np.ndarray:
        return scores

    for _ in range(200):  # 20,000 values: several flushes' worth
        predict(np.zeros((100, 3)))
    hist = probe._state.scores.child("score")
    assert wait_until(lambda: hist._pending_rows < 4096)
    assert binned_on and set(binned_on) == {"mlprobe-flusher"}
    assert sample_value(registry, "mlprobe_prediction_score", {"model": "scores"},
                        suffix="count") == 20_000


def test_a_starved_flusher_leaves_histograms_bounded_and_exact(monkeypatch):
    """When the flusher never comes, the call that passes MAX_PENDING_ROWS bins the buffer
    itself: memory stays bounded and the counts exact."""
    from mlprobe._instruments import MAX_PENDING_ROWS, Histogram

    monkeypatch.setattr(_flusher.flusher, "request", lambda buffer: None)
    hist = Histogram([0.5])
    for _ in range(2 * MAX_PENDING_ROWS // 1000):
        hist.observe_array(np.full(1000, 0.25))
        assert hist._pending_rows < MAX_PENDING_ROWS
    assert hist.snapshot(()).bucket_counts == (2 * MAX_PENDING_ROWS // 1000 * 1000, 0)


def test_a_snapshot_never_misses_values_a_background_flush_has_taken(monkeypatch):
    """While another thread is in the middle of binning a histogram's buffer, a snapshot waits
    for that flush and counts every value (the flush used to swap the buffer out and add the
    counts later, so a concurrent snapshot missed them)."""
    import numpy
    from mlprobe import _instruments

    entered, release = threading.Event(), threading.Event()

    class PausingNumpy:
        """numpy, except that searchsorted (inside a flush) waits until released."""

        def __getattr__(self, name: str) -> Any:
            return getattr(numpy, name)

        def searchsorted(self, *args: Any, **kwargs: Any) -> Any:
            entered.set()
            release.wait(10)
            return numpy.searchsorted(*args, **kwargs)

    hist = _instruments.Histogram([0.5])
    hist.observe_array(np.full(100, 0.25))
    monkeypatch.setattr(_instruments, "np", PausingNumpy())
    flushing = threading.Thread(target=hist.flush)
    flushing.start()
    assert entered.wait(10)  # the flush has taken the 100 values and is binning them
    counts: list[int] = []
    snapshot = threading.Thread(target=lambda: counts.append(hist.snapshot(()).count))
    snapshot.start()
    snapshot.join(0.2)
    assert snapshot.is_alive(), f"the snapshot did not wait for the flush: {counts}"
    release.set()
    flushing.join(10)
    snapshot.join(10)
    assert counts == [100]
