"""A forked child never hangs on a lock its parent's threads held, and starts from zero.

Each test forks while another thread of the parent holds one of mlprobe's locks (acquired in
that thread and kept across the fork), or while threads hammer every path that takes a lock.
In the child a tracked call, a collect, a Prometheus exposition and an internal error must
complete, every count must start at zero, every lock mlprobe can reach must be free, and the
background flusher must run again. A child that does not finish in time fails the test (it is
killed), instead of blocking the run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

import mlprobe
import mlprobe._shadow
from mlprobe import _flusher, _guard, _mp_files, multiprocess
from mlprobe._mp_publisher import publisher
from mlprobe.asgi import ProbeMiddleware
from mlprobe.exporters import prometheus as prom_export
from mlprobe.testing import raise_internal_errors, sample_value
from profiles import age_plan_profile

pytestmark = pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32",
                                reason="needs os.fork")

CHILD_TIMEOUT_S = 20.0
ROW = {"age": 40.0, "plan": "pro"}
LOCK_TYPES = (type(threading.Lock()), type(threading.RLock()))


def fork() -> int:
    """os.fork(), with Python 3.12+'s warning about forking a multi-threaded process silenced:
    forking while other threads run is exactly what these tests do on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*use of fork\(\) may lead to deadlocks",
                                category=DeprecationWarning)
        return os.fork()


def wait_child(pid: int, read_fd: int) -> str:
    """Wait for a child (polling, bounded); return what it wrote. A hung child is killed."""
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            os.close(read_fd)
            pytest.fail(f"forked child {pid} hung for {CHILD_TIMEOUT_S} s")
        time.sleep(0.005)
    chunks = []
    while chunk := os.read(read_fd, 65536):
        chunks.append(chunk)
    os.close(read_fd)
    report = b"".join(chunks).decode()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report
    return report


class Service:
    """One of everything that owns a lock: a profiled probe, HTTP metrics, an exporter."""

    def __init__(self) -> None:
        profile = age_plan_profile()
        self.registry = mlprobe.Registry()
        self.probe = mlprobe.Probe("forked", registry=self.registry, reference=profile)
        self.state = self.probe._state
        self.monitor = self.state.features

        @self.probe.track
        def predict(row: Any) -> float:
            return 0.25

        self.predict = predict

        @self.probe.track
        def failing(row: Any) -> float:
            raise KeyError("the model's own error")

        self.failing = failing
        # a shadow (in a thread): its start lock, comparison counters and wake-up event
        self.shadow = mlprobe.Shadow(mlprobe.Probe("forked-primary", registry=self.registry),
                                     lambda row: 0.5, version="candidate", task="binary")
        self.shadowed = self.shadow.track(lambda row: 0.25)
        self.shadowed(ROW)
        self.shadow.join(10)
        self.middleware = ProbeMiddleware(lambda *a: None, registry=self.registry)
        self.http = self.middleware._metrics
        self.prometheus = CollectorRegistry()
        prom_export.register(self.registry, self.prometheus)
        # state the child must not inherit
        for _ in range(5):
            predict(ROW)
        self.probe.observe(outputs=np.array([0.1, 0.9]))  # a score histogram child
        self.probe.observe(outputs=np.array([1, 2]))  # predicted classes
        self.http.record(0, "/items", 200, "", 0.0, 0.001, 0.001, 0, 10)
        self.registry.collect()
        # A registry in multi-process mode: its publisher, directory and merger locks too.
        # (publishing only when the test collects: no background thread writes to the
        # directory, which is removed with the service)
        self.mp_dir = tempfile.mkdtemp(prefix="mlprobe-fork-")
        weakref.finalize(self, shutil.rmtree, self.mp_dir, True)
        self.mp_registry = mlprobe.Registry()
        self.merger = multiprocess.attach(self.mp_registry, self.mp_dir, interval=1.0,
                                          background=False)
        self.mp_predict = mlprobe.Probe("forked-mp", registry=self.mp_registry).track(
            lambda row: 0.25)
        for _ in range(3):
            self.mp_predict(ROW)
        # model quality: an outcome waiting for a prediction no worker holds (the child must
        # not inherit it), published by the outcome exchange
        self.quality = mlprobe.Probe("forked-q", registry=self.mp_registry,
                                     quality=mlprobe.QualitySpec(task="binary"))
        self.quality.record_outcome("parent-only", 1)
        self.merger.exchange_outcomes()
        self.mp_registry.collect()  # published
        with raise_internal_errors(False):
            _guard.report_internal_error("test.parent", RuntimeError("parent's error"))

    def locks(self) -> dict[str, Any]:
        """Every lock mlprobe owns, by name (each test holds one of them across a fork)."""
        calls = self.state.calls
        score = self.state.scores.child("score")
        return {
            "guard": _guard._lock,
            "exporter attach": prom_export._attach_lock,
            "registry": self.registry._lock,
            "registry collect": self.registry._flight_lock,
            "default registry": mlprobe.default_registry._lock,
            "call recorder": calls._lock,
            "error types": calls.error_types._lock,
            "score histograms": self.state.scores._lock,
            "score histogram": score._lock,
            "score histogram flush": score._flush_lock,
            "predicted classes": self.state.classes._lock,
            "feature pending": self.monitor._pending_lock,
            "feature flush": self.monitor._flush_lock,
            "feature ingest": self.monitor.ring.lock,
            "http series": self.http._lock,
            "http started": self.http._started._lock,
            "http route cap": self.http._routes._lock,
            "http status cap": self.http._statuses._lock,
            "http error cap": self.http._errors._lock,
            "flusher": _flusher.flusher._lock,
            "flusher event": _flusher.flusher._thread.wake._cond,
            "thread start": _flusher.flusher._thread._lock,
            "multiprocess publish": self.merger._publish_lock,
            "outcome exchange": self.merger.outcomes._lock,
            "quality counters": self.quality._state.quality._lock,
            "quality flush": self.quality._state.quality._flush_lock,
            "quality window": self.quality._state.quality._window_lock,
            "prediction store": self.quality._state.store._lock,
            "publisher": publisher._lock,
            "publisher stop": publisher._thread.wake._cond,
            "mp directories": _mp_files._thread_locks_guard,
            "mp directory": _mp_files._thread_locks[self.mp_dir],
            "shadow start": mlprobe._shadow._start_lock,
            "shadow counters": self.shadow.counters._lock,
            "shadow wake": self.shadow._runner._thread.wake._cond,
        }


def reachable_locks(roots: list[Any]) -> Iterator[tuple[str, str, Any]]:
    """``(kind, path, lock)`` for every lock reachable from ``roots`` through mlprobe objects,
    modules and containers; ``kind`` names where such a lock lives (``Class.attribute`` or
    ``module.global``), whatever instance holds it."""
    seen: set[int] = set()
    stack: list[tuple[str, str, Any]] = [("", type(r).__name__, r) for r in roots]
    while stack:
        kind, path, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, LOCK_TYPES):
            yield kind, path, obj
            continue
        if isinstance(obj, (threading.Condition, threading.Event)):
            condition = isinstance(obj, threading.Condition)
            inner = obj._lock if condition else obj._cond  # type: ignore[attr-defined]
            stack.append((kind, path + ".<inner>", inner))
            continue
        if isinstance(obj, dict):
            stack.extend((kind, f"{path}[{k!r}]", v) for k, v in list(obj.items()))
            continue
        if isinstance(obj, (list, tuple, set, frozenset)) or type(obj).__name__ == "deque":
            stack.extend((kind, f"{path}[]", v) for v in list(obj))
            continue
        if isinstance(obj, ModuleType):
            stack.extend((f"{obj.__name__}.{k}", f"{obj.__name__}.{k}", v)
                         for k, v in list(vars(obj).items()) if not isinstance(v, ModuleType))
            continue
        if not (getattr(type(obj), "__module__", "") or "").startswith("mlprobe"):
            continue
        attrs = dict(getattr(obj, "__dict__", {}))
        for klass in type(obj).__mro__:
            for slot in getattr(klass, "__slots__", ()):
                if hasattr(obj, slot):
                    attrs[slot] = getattr(obj, slot)
        owner = type(obj).__qualname__
        stack.extend((f"{owner}.{k}", f"{path}.{k}", v) for k, v in attrs.items())


def is_held(lock: Any) -> bool:
    if lock.acquire(blocking=False):
        lock.release()
        return False
    return True


def child_checks(service: Service) -> None:
    """What a forked worker must be able to do, from zero (raises AssertionError otherwise)."""
    _guard.raise_errors = False  # the child counts internal errors like production does
    assert _guard.internal_error_count() == 0, "the child inherited its parent's error count"
    assert service.predict(ROW) == 0.25
    labels = {"model": "forked"}
    assert sample_value(service.registry, "mlprobe_predictions", {**labels, "outcome": "ok"}) == 1
    assert sample_value(service.registry, "mlprobe_predicted_class", labels) is None
    assert service.monitor.totals().rows == 1
    assert generate_latest(service.prometheus)  # a full exposition, through the exporter
    _guard.report_internal_error("test.child", RuntimeError("child's error"))
    assert _guard.internal_error_count() == 1
    # every other lock, taken once: new sources, series, labels and an attachment
    mlprobe.Probe("child-new", registry=service.registry)
    mlprobe.Probe("child-default")  # the default registry
    prom_export.register(service.registry, CollectorRegistry())
    service.probe.observe(outputs=np.array([[0.2, 0.8]]))  # score histograms and classes
    try:
        service.failing(ROW)
    except KeyError:
        pass
    assert sample_value(service.registry, "mlprobe_prediction_errors", labels) == 1
    # the shadow starts its own thread here and runs only the child's call
    assert service.shadowed(ROW) == 0.25
    assert service.shadow.join(10)
    assert sample_value(service.registry, "mlprobe_predictions",
                        {"model": "forked-primary", "model_version": "candidate"}) == 1
    service.http.record(0, "/other", 200, "", 0.0, 0.001, 0.001, 0, 10)
    routes = {dict(s.labels)["http_route"] for f in service.registry.collect()
              if f.name == "http_server_request_duration_seconds" for s in f.samples}
    assert routes == {"/other"}, routes
    # multi-process mode: the child is a new worker, publishing and merging from zero
    before = sample_value(service.mp_registry, "mlprobe_predictions", {"outcome": "ok"})
    assert before is not None and before >= 3  # the parent's (and earlier children's)
    service.mp_predict(ROW)
    assert sample_value(service.mp_registry, "mlprobe_predictions",
                        {"outcome": "ok"}) == before + 1
    store = service.quality._state.store
    assert store.waiting_outcomes == 0, "the child inherited its parent's waiting outcomes"
    service.quality.record_outcome("child-only", 0)
    service.merger.exchange_outcomes()  # the child's own outcomes file, from zero
    assert [k for k, *_ in store.waiting()] == ["child-only"]
    assert service.merger.outcomes._written["waiting"][0][1] == "child-only"
    modules = [m for name, m in sys.modules.items() if name.startswith("mlprobe")]
    held = [path for _, path, lock in reachable_locks([vars(service), *modules]) if is_held(lock)]
    assert not held, f"locks still held in the child: {held}"
    # the flusher runs again: rows buffered in the child are ingested without a collect
    service.predict(ROW)
    _flusher.flusher.wake()
    deadline = time.monotonic() + 5
    while service.monitor._rows and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not service.monitor._rows, "the flusher did not run in the child"
    assert _flusher.flusher._thread is not None and _flusher.flusher._thread.is_alive()


def fork_and_check(service: Service, forks: int) -> None:
    for _ in range(forks):
        read_fd, write_fd = os.pipe()
        pid = fork()
        if pid == 0:  # child: never return into pytest
            code = 0
            try:
                os.close(read_fd)
                child_checks(service)
            except BaseException:  # noqa: BLE001 - report anything to the parent
                code = 1
                os.write(write_fd, traceback.format_exc().encode())
            finally:
                os._exit(code)
        os.close(write_fd)
        wait_child(pid, read_fd)


def hold(lock: Any) -> Callable[[], None]:
    """Acquire ``lock`` in another thread and keep it until the returned function is called."""
    acquired, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock:
            acquired.set()
            release.wait(60)

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert acquired.wait(10)

    def let_go() -> None:
        release.set()
        thread.join(10)

    return let_go


LOCK_NAMES = ("guard", "exporter attach", "registry", "registry collect", "default registry", "call recorder",
              "error types", "score histograms", "score histogram", "score histogram flush",
              "predicted classes", "feature pending", "feature flush", "feature ingest",
              "http series", "http started", "http route cap", "http status cap", "http error cap", "flusher",
              "flusher event", "thread start", "multiprocess publish", "outcome exchange", "quality counters",
              "quality flush", "quality window", "prediction store", "publisher",
              "publisher stop",
              "mp directories", "mp directory", "shadow start", "shadow counters", "shadow wake")


@pytest.mark.parametrize("name", LOCK_NAMES)
def test_child_runs_while_the_parent_holds_a_lock(name):
    """Forked while another thread holds this lock, the child records, scrapes, counts an
    internal error and flushes, from zero (5 forks per lock)."""
    service = Service()
    let_go = hold(service.locks()[name])
    try:
        fork_and_check(service, forks=5)
    finally:
        let_go()


def test_lock_list_covers_every_lock_mlprobe_owns():
    """The parametrised list above holds every kind of lock reachable from a service and
    mlprobe's modules, so a new lock cannot be forgotten by the fork tests."""
    service = Service()
    assert tuple(service.locks()) == LOCK_NAMES
    modules = [m for name, m in sys.modules.items() if name.startswith("mlprobe")]
    found = {id(lock): kind for kind, _, lock in reachable_locks([vars(service), *modules])}
    named = {found.get(id(lock)) for lock in service.locks().values()}
    named |= {found.get(id(c._lock)) for c in service.locks().values()  # a Condition's lock
              if isinstance(c, threading.Condition)}
    assert set(found.values()) - named == set()


@pytest.mark.allow_internal_errors
def test_child_runs_while_threads_hammer_every_lock():
    """Forked 30 times while four threads hammer tracked calls (clean and dirty rows), scrapes,
    internal errors and new HTTP routes, every child completes its checks from zero."""
    service = Service()
    stop = threading.Event()
    rng = np.random.default_rng(3)
    dirty = [{"age": None, "plan": "pro"}, {"age": "x", "plan": object()}, [ROW] * 3]

    def calls() -> None:
        i = 0
        while not stop.is_set():
            service.predict(ROW if i % 3 else dirty[i % len(dirty)])
            i += 1

    def scrapes() -> None:
        while not stop.is_set():
            generate_latest(service.prometheus)

    def errors() -> None:
        while not stop.is_set():
            _guard.report_internal_error("test.hammer", RuntimeError("hammer"))

    def http() -> None:
        i = 0
        while not stop.is_set():
            service.http.record(0, f"/r{i % 500}", 200 + i % 7, "", 0.0, 0.001, 0.001, 0,
                                int(rng.integers(0, 100)))
            i += 1

    threads = [threading.Thread(target=f, daemon=True) for f in (calls, scrapes, errors, http)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.2)
        fork_and_check(service, forks=30)
    finally:
        stop.set()
        for t in threads:
            t.join(10)
