"""The push exporter: a thread that hands mlprobe's metrics to an OTel SDK exporter.

Nothing here runs on the request path. Every ``interval`` the thread collects the registry
(the same single-flight collect a scrape uses), translates the families (``_otel_data``) and
calls the SDK exporter's ``export``; the request path only ever sees the instruments' short
locks, which a collect takes as a scrape does.

Failures (collector down, slow or refusing): the export call is bounded by the SDK exporter's
own timeout; a failed push is counted in ``mlprobe_export_failures_total{exporter}``, logged at
most once a minute, and retried after a backoff (1 s, 2 s, 4 s, ... up to the interval, with
jitter). Nothing is queued: the next push carries the cumulative totals (or, for delta
temporality, the delta since the last push that succeeded), so memory stays bounded however
long the collector is away.

Processes: the thread is per process. After ``fork`` the child resets its state (delta
baselines, failure streak, a new ``service.instance.id`` unless one was configured), starts
its own thread if the parent's was running, and builds its OTLP exporter anew at its first
push (a connection must not be shared with the parent). ``exports_here`` is a predicate asked
before every push, so that only the process it names exports. In multi-process mode
(:mod:`mlprobe.multiprocess`) the default predicate names the one worker holding the
directory's exporter lock, which pushes the merged view of every worker, under one
``service.instance.id`` shared by the server's workers (unless one was configured): what
reaches the collector is what one scrape shows, counted once, whichever worker pushes.
"""

from __future__ import annotations

import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from .. import multiprocess
from ..errors import report_internal_error
from ..registry import FamilyBuilder, Registry
from ..snapshot import Sample, label_value
from . import _otel_env
from ._otel_data import Translation, Translator, temporalities_of

__all__ = ["ExportFailures", "PushExporter", "default_name", "mlprobe_scope"]

_log = logging.getLogger("mlprobe")

LOG_INTERVAL_S = 60.0
"""Minimum seconds between two log lines about failed pushes of one exporter."""

FIRST_RETRY_S = 1.0
"""Delay before the first retry of a failed push (doubling up to the interval)."""


def mlprobe_scope() -> InstrumentationScope:
    """The instrumentation scope of mlprobe's metrics: ``mlprobe`` and its version."""
    try:
        version: str | None = metadata.version("mlprobe")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        version = None
    return InstrumentationScope("mlprobe", version)


class ExportFailures:
    """Registry source counting one exporter's failed pushes (``mlprobe_export_failures``).

    Mergeable across worker processes (the state protocol of :mod:`mlprobe.registry`): in
    multi-process mode the count shown is every worker's, whichever worker pushes.
    """

    def __init__(self, exporter: str) -> None:
        self.exporter = exporter
        self._count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        """Count one failed push."""
        with self._lock:
            self._count += 1

    @property
    def count(self) -> int:
        """Failed pushes since this process started (or forked)."""
        return self._count

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report the count."""
        self.state().collect_into(builder)

    def reset(self) -> None:
        """Start from zero (a fork child)."""
        self._lock = threading.Lock()
        self._count = 0

    def fingerprint(self) -> str:
        """The exporter's name: the only setting."""
        return self.exporter

    def state(self) -> FailureCount:
        """The count, as a mergeable state."""
        with self._lock:
            return FailureCount(self.exporter, self._count)

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, Any] | None = None) -> FailureCount:
        """Rebuild a state from :meth:`FailureCount.to_dict` output."""
        return FailureCount(self.exporter, int(data["count"]))


class FailureCount:
    """The raw state of :class:`ExportFailures`: one count."""

    __slots__ = ("count", "exporter")

    def __init__(self, exporter: str, count: int) -> None:
        self.exporter, self.count = exporter, count

    def merge(self, other: FailureCount) -> FailureCount:
        """Add ``other``'s count; returns ``self``."""
        self.count += other.count
        return self

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data."""
        return {"count": self.count}

    def archived(self) -> FailureCount:
        """Nothing here describes a live process."""
        return self

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report the count."""
        builder.add("mlprobe_export_failures",
                    [Sample((("exporter", self.exporter),), float(self.count))])


class PushExporter:
    """Pushes a registry's metrics to an OpenTelemetry ``MetricExporter`` on an interval.

    Built by :func:`mlprobe.exporters.otel.push`; see there for the arguments. Starts its
    thread when built; :meth:`shutdown` (also run at interpreter exit) pushes once more and
    stops it.
    """

    def __init__(self, exporter: MetricExporter, *, registry: Registry, interval: float,
                 timeout: float, resource: Any, own_instance_id: bool, name: str,
                 exports_here: Callable[[], bool] | None,
                 rebuild: Callable[[], MetricExporter] | None) -> None:
        self.registry = registry
        self.exporter = exporter
        self.interval = interval
        self.timeout = timeout
        self.resource = resource
        self.name = name
        self._own_instance_id = own_instance_id
        self._shared: tuple[str, Any] | None = None  # (server's instance id, its resource)
        self._exports_here = exports_here or (lambda: multiprocess.exports_here(registry))
        self._rebuild = rebuild  # after fork: a fresh OTLP exporter (None: the user's own)
        self._scope = mlprobe_scope()
        self._translator = Translator(temporalities_of(exporter))
        self.failures: ExportFailures = registry.get_or_create(
            ("export_failures", name), lambda: ExportFailures(name))
        self._shut_down = False
        self._stale_exporter = False
        self._new_process_state()
        _live.add(self)
        self._start_thread()

    def _new_process_state(self) -> None:
        # Everything a fork child must not inherit from its parent.
        self._lock = threading.Lock()  # start/stop of the thread
        self._export_lock = threading.Lock()  # the SDK exporter must not export concurrently
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failed_in_a_row = 0
        self._next_log = 0.0

    # -- thread -------------------------------------------------------------------------------

    def _start_thread(self) -> None:
        with self._lock:
            if self._shut_down or self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="mlprobe-otel-push",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        delay = self.interval
        while not self._stop.wait(delay):
            ok = True
            if self._asks_to_export():
                ok = self._push(self.timeout)
            delay = self.interval if ok else self._retry_delay()

    def _asks_to_export(self) -> bool:
        try:
            return bool(self._exports_here())
        except Exception as exc:  # noqa: BLE001 - a broken predicate must not stop the thread
            report_internal_error("otel.exports_here", exc)
            return False

    def _retry_delay(self) -> float:
        base = min(FIRST_RETRY_S, self.interval)
        delay = min(self.interval, base * 2.0 ** min(self._failed_in_a_row - 1, 30))
        return delay * random.uniform(0.5, 1.0)  # workers of one fleet do not retry in step

    # -- one push -----------------------------------------------------------------------------

    def _push(self, timeout: float) -> bool:
        """Collect, translate and export once; True unless the export failed."""
        with self._export_lock:
            if self._stale_exporter and self._rebuild is not None:
                self._stale_exporter = False
                self.exporter = self._rebuild()
            try:
                translation = self._translator.translate(self.registry.collect())
                data = self.metrics_data(translation)
            except Exception as exc:  # noqa: BLE001 - our bug: counted, never raised
                report_internal_error("otel.collect", exc)
                return True
            error: BaseException | None = None
            try:
                result = self.exporter.export(data, timeout_millis=timeout * 1000.0)
            except Exception as exc:  # noqa: BLE001 - the SDK exporter's failure is a failed push
                result, error = MetricExportResult.FAILURE, exc
            if result is MetricExportResult.SUCCESS:
                self._translator.commit(translation)
                self._failed_in_a_row = 0
                return True
            self._failed(error)
            return False

    def metrics_data(self, translation: Translation) -> MetricsData:
        """The ``MetricsData`` of one translation, with this exporter's resource and scope."""
        scope = ScopeMetrics(self._scope, translation.metrics, "")
        return MetricsData([ResourceMetrics(self.current_resource(), [scope], "")])

    def current_resource(self) -> Any:
        """The resource of the next push: in multi-process mode, with the server's shared
        ``service.instance.id`` (unless one was configured)."""
        if self._own_instance_id:
            shared = multiprocess.instance_id(self.registry)
            if shared is not None:
                if self._shared is None or self._shared[0] != shared:
                    self._shared = (shared, _otel_env.with_instance_id(self.resource, shared))
                return self._shared[1]
        return self.resource

    def _failed(self, error: BaseException | None) -> None:
        self.failures.add()
        self._failed_in_a_row += 1
        now = time.monotonic()
        if now >= self._next_log:
            self._next_log = now + LOG_INTERVAL_S
            _log.warning("mlprobe: pushing metrics with the %s exporter failed (%d in a row, "
                         "%d in all); retrying with backoff, logged at most once a minute%s",
                         self.name, self._failed_in_a_row, self.failures.count,
                         f": {error!r}" if error is not None else "")

    # -- control ------------------------------------------------------------------------------

    def force_flush(self, timeout: float | None = None) -> bool:
        """Push now, on the calling thread; True if the export succeeded (or nothing to do).

        Skipped (True) when ``exports_here`` says this process does not export; False after
        :meth:`shutdown`.
        """
        if self._shut_down:
            return False
        if not self._asks_to_export():
            return True
        return self._push(self.timeout if timeout is None else timeout)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Stop the thread, push once more and shut the SDK exporter down, all within
        ``timeout`` seconds (a push still running then is abandoned: its thread is a daemon).
        Idempotent; also run at interpreter exit."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            thread = self._thread
        deadline = time.monotonic() + timeout
        self._stop.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self._asks_to_export():
            final = threading.Thread(target=self._push, args=(max(0.1, deadline -
                                                                  time.monotonic()),),
                                     name="mlprobe-otel-flush", daemon=True)
            final.start()
            final.join(max(0.0, deadline - time.monotonic()))
        try:
            self.exporter.shutdown(timeout_millis=max(0.0, deadline - time.monotonic()) * 1e3)
        except Exception as exc:  # noqa: BLE001 - shutting down must not raise at exit
            report_internal_error("otel.shutdown", exc)

    def _after_fork_in_child(self) -> None:
        was_running = self._thread is not None
        self._new_process_state()
        self._translator.reset()
        if self._own_instance_id:
            self.resource = _otel_env.with_new_instance_id(self.resource)
        self._stale_exporter = True  # rebuilt at the first push, on the export thread
        if was_running:
            self._start_thread()


def default_name(exporter: Any) -> str:
    """The ``exporter`` label of a user-given SDK exporter: its class name, lower case."""
    return label_value(type(exporter).__name__.lower())


_live: weakref.WeakSet[PushExporter] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for pusher in list(_live):
        pusher._after_fork_in_child()


def _at_exit() -> None:
    for pusher in list(_live):
        pusher.shutdown()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
