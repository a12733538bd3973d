"""Registry: owns the state of every probe and builds snapshots at collect time.

A registry maps ``(model, version)`` to one shared state, so creating the same probe twice
reuses its instruments instead of failing with "duplicated timeseries". Other sources (the
ASGI middleware's HTTP metrics) register under a key the same way. ``collect()`` asks every
source for its samples and groups them into one :class:`~mlprobe.snapshot.MetricFamily` per
metric name, which is what every exporter reads.

Start times: the registry records when each source was created (and when it was reset after
``fork``) and stamps every sample that source reports with it, so sources never deal with
clocks for this; see "Start times" in :mod:`mlprobe.snapshot`.

Core, not an exporter: nothing here imports ``mlprobe.exporters`` or a metrics backend. The
default registry reaches prometheus_client's default registry through
:meth:`Registry.on_first_source`, a hook the composition root (``mlprobe/_wiring.py``) sets.

Sources implement :class:`~mlprobe._source.Source`, and, to be merged across worker
processes, the state protocol described in :mod:`mlprobe._source` ("Mergeable sources").
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import _guard
from ._catalog import spec
from ._source import MergeableSource, Source, SourceState
from .snapshot import HistogramSample, MetricFamily, Sample, SummarySample

__all__ = ["FamilyBuilder", "MergeableSource", "Registry", "Source", "SourceState",
           "default_registry"]


_set_field = object.__setattr__  # bypasses the frozen dataclass's guard; see FamilyBuilder.add

_SAMPLE_TYPES = {"counter": Sample, "gauge": Sample, "histogram": HistogramSample,
                 "summary": SummarySample}


class FamilyBuilder:
    """Collects samples by metric name while sources report, then freezes them.

    ``start_time_unix_nano``: the start time given to every added sample that has none (the
    registry passes the reporting source's; see "Start times" in :mod:`mlprobe.snapshot`).
    """

    def __init__(self, start_time_unix_nano: int = 0) -> None:
        self._samples: dict[str, list[Sample | HistogramSample | SummarySample]] = {}
        self.start_time_unix_nano = start_time_unix_nano

    def add(self, name: str,
            samples: list[Sample] | list[HistogramSample] | list[SummarySample]) -> None:
        """Add samples of catalogue metric ``name``.

        Samples are new objects built for this collect (a source never reports the same sample
        object twice): one without a start time gets the builder's, set in place. That is the
        one write to a frozen sample, made before anyone else can see it, and it costs a
        quarter of building a copy (collect of a 100-feature model builds thousands).

        Raises:
            KeyError: ``name`` is not in the catalogue.
            TypeError: a sample is not of the type the catalogue's kind for ``name`` needs.
        """
        expected = _SAMPLE_TYPES[spec(name).kind]
        start = self.start_time_unix_nano
        for sample in samples:
            if type(sample) is not expected:
                raise TypeError(f"{name} takes {expected.__name__} samples, got "
                                f"{type(sample).__name__}")
            if start and not sample.start_time_unix_nano:
                _set_field(sample, "start_time_unix_nano", start)
        self._samples.setdefault(name, []).extend(samples)

    def update(self, other: FamilyBuilder) -> None:
        """Add every sample ``other`` has collected."""
        for name, samples in other._samples.items():
            self._samples.setdefault(name, []).extend(samples)


    def families(self) -> list[MetricFamily]:
        """Return one family per metric name, in catalogue-name order."""
        out = []
        for name in sorted(self._samples):
            s = spec(name)
            out.append(MetricFamily(name, s.kind, s.description, s.unit,
                                    tuple(self._samples[name])))
        return out


IMPORT_TIME_UNIX_NANO = time.time_ns()
"""When mlprobe was imported: the start of ``mlprobe_internal_errors``, a process-wide count."""


S = TypeVar("S", bound=Source)


class Registry:
    """A set of probes and other sources that are collected together.

    Only the module-level :data:`default_registry` is exported without set-up; registries you
    create are attached explicitly, e.g. with ``mlprobe.exporters.prometheus.register(registry,
    ...)``.

    Example:
        >>> registry = mlprobe.Registry()
        >>> probe = mlprobe.Probe("churn", registry=registry)
    """

    def __init__(self) -> None:
        # Copy-on-write: readers (collect, get_or_create fast path) never lock; writers replace.
        # Each source with the wall-clock time its streams started (see the module docstring).
        self._sources: dict[object, Source] = {}
        self._started: dict[object, int] = {}
        self._lock = threading.Lock()
        # Emptied, under the lock, by whichever call adds the first source.
        self._first_source_callbacks: tuple[Callable[[Registry], object], ...] = ()
        # Multi-process mode: what merges this process's states with the other workers'
        # (mlprobe._mp_merge.Merger), set by mlprobe.multiprocess; None: this process alone.
        self.merger: Any = None
        # Called (under the lock) before the first source is created; may raise to refuse it.
        self._before_first_source: Callable[[Registry], object] | None = None
        # The collect in progress, if any (see collect()); read and replaced under its lock.
        self._flight: _Flight | None = None
        self._flight_lock = threading.Lock()
        _live_registries.add(self)

    def get_or_create(self, key: object, factory: Callable[[], S]) -> S:
        """Return the source registered under ``key``, creating it with ``factory`` if absent."""
        existing = self._sources.get(key)
        if existing is not None:
            return existing  # type: ignore[return-value]
        with self._lock:
            existing = self._sources.get(key)
            if existing is not None:
                return existing  # type: ignore[return-value]
            if not self._sources and self._before_first_source is not None:
                # e.g. the multi-process switch from the environment: a bad setting fails the
                # construction of the first probe, loudly, and is checked again next time
                self._before_first_source(self)
                self._before_first_source = None
            created = factory()
            callbacks: tuple[Callable[[Registry], object], ...] = ()
            if not self._sources:
                callbacks, self._first_source_callbacks = self._first_source_callbacks, ()
            # The start time first: a collect that sees the source also sees its start. In
            # multi-process mode it is the start of the key's stream in the directory.
            merger = self.merger
            start = time.time_ns() if merger is None else merger.stream_start(key, created)
            self._started = {**self._started, key: start}
            self._sources = {**self._sources, key: created}
        for callback in callbacks:  # outside the lock: a callback may create sources itself
            self._run_callback(callback)
        return created

    def before_first_source(self, callback: Callable[[Registry], object] | None) -> None:
        """Call ``callback(self)`` just before this registry creates its first source (once).

        Unlike :meth:`on_first_source` its exceptions propagate: they fail the creation of that
        source (a ``ConfigurationError`` in the ``Probe`` constructor), and it is called again
        at the next attempt. The composition root uses it for settings read from the
        environment (``MLPROBE_MULTIPROCESS_DIR``).
        """
        with self._lock:
            self._before_first_source = callback

    @property
    def sources(self) -> Mapping[object, Source]:
        """The registered sources by key (a copy of the current table)."""
        return dict(self._sources)

    def source_state(self, key: object) -> Any:
        """The raw state of the source under ``key`` as a collect sees it: merged with the
        other workers' in multi-process mode.

        Raises:
            KeyError: no source under ``key``. AttributeError: it has no ``state()`` (it is
            not a MergeableSource).
        """
        source = self._sources[key]
        merger = self.merger
        if merger is not None:
            return merger.merged_state(key, source)
        return source.state()  # type: ignore[attr-defined]

    def on_first_source(self, callback: Callable[[Registry], object]) -> None:
        """Call ``callback(self)`` once, when this registry gets its first source.

        If it already has one, the callback runs at once. It runs on the thread that adds the
        source, after the source is registered; a failure is counted in
        ``mlprobe_internal_errors_total`` and logged, never raised into the code creating the
        probe. This is how the composition root attaches :data:`default_registry` to
        prometheus_client's default registry without core importing an exporter.
        """
        with self._lock:
            if not self._sources:
                self._first_source_callbacks = (*self._first_source_callbacks, callback)
                return
        self._run_callback(callback)

    def _run_callback(self, callback: Callable[[Registry], object]) -> None:
        try:
            callback(self)
        except Exception as exc:  # noqa: BLE001 - wiring must not fail the probe's creation
            _guard.report_internal_error("registry.on_first_source", exc)

    def collect(self) -> list[MetricFamily]:
        """Snapshot every source into metric families (runs on the reader's thread).

        Single-flight: callers that arrive while a collect is running (a scrape and an OTLP
        push in the same instant) wait for it and share its result, so the window merge and
        drift are computed once. A caller gets a result computed after it asked or at most
        one collect earlier. If that shared collect fails, each waiting caller computes its
        own; nothing of a failed collect is kept. A collect started from inside a collect on
        the same thread (a source that reads its own registry) computes on its own instead of
        waiting for itself.
        """
        me = threading.get_ident()
        with self._flight_lock:
            flight = self._flight
            if flight is None:
                flight = self._flight = _Flight(me)
                leading = True
            else:
                leading = False
                flight.followers += 1
        if not leading:
            if flight.thread == me:  # re-entered from a source: waiting would deadlock
                return self._collect_now()
            flight.done.wait()
            result = flight.result
            return self._collect_now() if result is None else list(result)
        try:
            result = self._collect_now()
            flight.result = result
        finally:
            # Cleared before waiters wake, so the next caller starts a fresh collect.
            with self._flight_lock:
                self._flight = None
            flight.done.set()
        return list(result)

    def _collect_now(self) -> list[MetricFamily]:
        builder = FamilyBuilder()
        sources, started = self._sources, self._started
        merger = self.merger
        # Multi-process mode: one pass over the other workers' published states, then each
        # source reports its own state merged with theirs.
        view = merger.view(sources) if merger is not None else None
        for key, source in list(sources.items()):
            # Each source reports into its own builder, merged only when it succeeded: a
            # source that fails half-way costs its own samples, never an inconsistent half.
            part = FamilyBuilder(started.get(key, 0))
            try:
                if view is None:
                    source.collect_into(part)
                else:
                    view.collect_into(key, source, part)
            except Exception as exc:  # noqa: BLE001 - one broken source must not hide the rest
                _guard.report_internal_error("registry.collect", exc)
                continue
            builder.update(part)
        if view is not None:
            view.report(builder, sources)
        # Counted after the sources, so a source that failed in this collect is included. In
        # multi-process mode the count is every worker's (see _guard.set_elsewhere), a stream
        # that started when the server claimed its directory.
        start = IMPORT_TIME_UNIX_NANO if merger is None else merger.ledger.claimed_ns
        builder.add("mlprobe_internal_errors",
                    [Sample((), float(_guard.internal_error_count()), start)])
        return builder.families()

    def _reset_after_fork(self) -> None:
        # A forked worker must not report its parent's counts as its own: that double counts
        # when a fleet is summed. Locks held by other threads at fork time are replaced too
        # (every source's reset() makes new ones). One source failing to reset must not leave
        # the others with their parent's state.
        self._lock = threading.Lock()
        # A collect in flight in the parent has no thread here: nobody would finish it.
        self._flight = None
        self._flight_lock = threading.Lock()
        now = time.time_ns()
        for source in self._sources.values():
            try:
                source.reset()
            except Exception as exc:  # noqa: BLE001 - an at-fork hook must not raise
                _guard.report_internal_error("registry.fork_reset", exc)
        merger = self.merger
        if merger is not None:  # the worker joins the streams of its server's directory
            self._started = {key: merger.stream_start(key, source, cached_only=True)
                             for key, source in self._sources.items()}
        else:
            self._started = dict.fromkeys(self._sources, now)


class _Flight:
    """One collect in progress: its leader thread, and its result once done (None: failed)."""

    __slots__ = ("done", "followers", "result", "thread")

    def __init__(self, thread: int) -> None:
        self.thread = thread
        self.done = threading.Event()
        self.result: list[MetricFamily] | None = None
        self.followers = 0  # callers waiting for it (read by tests)


_live_registries: weakref.WeakSet[Registry] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for registry in list(_live_registries):
        registry._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

default_registry = Registry()
"""The registry probes use when none is given; attached to prometheus_client's default
registry when its first probe is created (unless ``MLPROBE_PROMETHEUS_AUTO=0``), by the
composition root (``mlprobe/_wiring.py``)."""
