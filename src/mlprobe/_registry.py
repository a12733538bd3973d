"""Registry: owns the state of every probe and builds snapshots at collect time.

A registry maps ``(model, version)`` to one shared state, so creating the same probe twice
reuses its instruments instead of failing with "duplicated timeseries". Other sources (the
ASGI middleware's HTTP metrics) register under a key the same way. ``collect()`` asks every
source for its samples and groups them into one :class:`~mlprobe.snapshot.MetricFamily` per
metric name, which is what every exporter reads.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol, TypeVar

from . import _guard
from ._catalog import spec
from ._config import env_flag
from .snapshot import HistogramSample, MetricFamily, Sample

__all__ = ["FamilyBuilder", "Registry", "Source", "default_registry"]

_log = logging.getLogger("mlprobe")


class FamilyBuilder:
    """Collects samples by metric name while sources report, then freezes them."""

    def __init__(self) -> None:
        self._samples: dict[str, list[Sample | HistogramSample]] = {}

    def add(self, name: str, samples: list[Sample] | list[HistogramSample]) -> None:
        """Add samples of catalogue metric ``name``."""
        self._samples.setdefault(name, []).extend(samples)

    def families(self) -> list[MetricFamily]:
        """Return one family per metric name, in catalogue-name order."""
        out = []
        for name in sorted(self._samples):
            s = spec(name)
            out.append(MetricFamily(name, s.kind, s.description, s.unit,
                                    tuple(self._samples[name])))
        return out


class Source(Protocol):
    """Anything that reports samples at collect time."""

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Add this source's current samples to ``builder``."""

    def reset(self) -> None:
        """Forget everything (called in a child process after fork)."""


S = TypeVar("S", bound=Source)


class Registry:
    """A set of probes and other sources that are collected together.

    Args:
        prometheus_auto: attach this registry to prometheus_client's default registry when its
            first source is added. Only the module-level :data:`default_registry` does this by
            default; registries you create are attached explicitly with
            ``mlprobe.exporters.prometheus.register(registry, ...)``.

    Example:
        >>> registry = mlprobe.Registry()
        >>> probe = mlprobe.Probe("churn", registry=registry)
    """

    def __init__(self, *, prometheus_auto: bool = False) -> None:
        self._prometheus_auto = prometheus_auto
        # Copy-on-write: readers (collect, get_or_create fast path) never lock; writers replace.
        self._sources: dict[object, Source] = {}
        self._lock = threading.Lock()
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
            created = factory()
            first = not self._sources
            self._sources = {**self._sources, key: created}
        if first and self._prometheus_auto:
            self._attach_to_prometheus_default()
        return created

    def collect(self) -> list[MetricFamily]:
        """Snapshot every source into metric families (runs on the scraper's thread)."""
        builder = FamilyBuilder()
        for source in list(self._sources.values()):
            try:
                source.collect_into(builder)
            except Exception as exc:  # noqa: BLE001 - one broken source must not hide the rest
                _guard.report_internal_error("registry.collect", exc)
        builder.add("mlprobe_internal_errors",
                    [Sample((), float(_guard.internal_error_count()))])
        return builder.families()

    def _reset_after_fork(self) -> None:
        # A forked worker must not report its parent's counts as its own: that double counts
        # when a fleet is summed. Locks held by other threads at fork time are replaced too
        # (every source's reset() makes new ones). One source failing to reset must not leave
        # the others with their parent's state.
        self._lock = threading.Lock()
        for source in self._sources.values():
            try:
                source.reset()
            except Exception as exc:  # noqa: BLE001 - an at-fork hook must not raise
                _guard.report_internal_error("registry.fork_reset", exc)

    def _attach_to_prometheus_default(self) -> None:
        # The one place core touches an exporter, by name and at run time only, so the import
        # direction (exporters are leaves) holds and prometheus_client stays optional here.
        try:
            module = importlib.import_module("mlprobe.exporters.prometheus")
            module.register(self)
        except ImportError:
            _log.debug("prometheus_client is not importable; default registry not attached")
        except Exception as exc:  # noqa: BLE001
            _guard.report_internal_error("registry.prometheus_auto", exc)


_live_registries: weakref.WeakSet[Registry] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for registry in list(_live_registries):
        registry._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

default_registry = Registry(prometheus_auto=env_flag("MLPROBE_PROMETHEUS_AUTO", True))
"""The registry probes use when none is given; attached to prometheus_client's default
registry when its first probe is created (unless ``MLPROBE_PROMETHEUS_AUTO=0``)."""
