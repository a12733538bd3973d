"""Prometheus export: a prometheus_client collector that reads mlprobe snapshots at scrape time.

Nothing here runs on the request path: every scrape calls ``Registry.collect()`` and translates
the snapshots into ``*MetricFamily`` objects.

Example:
    >>> from mlprobe.exporters import prometheus
    >>> prometheus.start_http_server(8000, addr="127.0.0.1")      # default registries
    >>> prometheus.register(my_mlprobe_registry, my_collector_registry)   # explicit ones
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from typing import Any

try:
    import prometheus_client
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import CollectorRegistry
except ImportError as exc:  # pragma: no cover - prometheus-client is a declared dependency
    raise ImportError("mlprobe.exporters.prometheus needs prometheus-client: "
                      "pip install prometheus-client") from exc

from .._registry import Registry, default_registry
from ..errors import ExporterError
from ..snapshot import HistogramSample, MetricFamily, Sample

__all__ = ["MlprobeCollector", "register", "start_http_server", "to_prometheus"]


class MlprobeCollector:
    """A prometheus_client collector over one mlprobe :class:`~mlprobe.Registry`."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def describe(self) -> list[Metric]:
        # Returning nothing tells prometheus_client not to call collect() at registration
        # (mlprobe's names are validated by its own catalogue and tests).
        return []

    def collect(self) -> Iterator[Metric]:
        """Yield one prometheus_client family per mlprobe metric family."""
        for family in self.registry.collect():
            yield to_prometheus(family)


def to_prometheus(family: MetricFamily) -> Metric:
    """Translate one snapshot family into a prometheus_client ``Metric``."""
    if family.kind == "histogram":
        hist = HistogramMetricFamily(family.name, family.description, labels=_label_names(family))
        for sample in family.samples:
            assert isinstance(sample, HistogramSample)
            cumulative = sample.cumulative_counts()
            buckets = [(_bound(b), float(c)) for b, c in zip(sample.bounds, cumulative)]
            buckets.append(("+Inf", float(cumulative[-1])))
            hist.add_metric([v for _, v in sample.labels], buckets, sample.sum)
        return hist
    cls: Any = CounterMetricFamily if family.kind == "counter" else GaugeMetricFamily
    metric = cls(family.name, family.description, labels=_label_names(family))
    for sample in family.samples:
        assert isinstance(sample, Sample)
        metric.add_metric([v for _, v in sample.labels], sample.value)
    return metric


def _label_names(family: MetricFamily) -> list[str]:
    return [k for k, _ in family.samples[0].labels] if family.samples else []


def _bound(value: float) -> str:
    return prometheus_client.utils.floatToGoString(value)


# One collector per (mlprobe registry, prometheus registry) pair: registering twice is a no-op.
_attached: weakref.WeakKeyDictionary[Any, set[int]] = weakref.WeakKeyDictionary()
_attach_lock = threading.Lock()


def _new_lock_after_fork() -> None:
    # A thread of the parent may hold the lock at the moment of a fork; in the child nobody
    # would release it. The attachments themselves stay true in the child.
    global _attach_lock
    _attach_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def register(registry: Registry | None = None,
             prometheus_registry: CollectorRegistry | None = None) -> MlprobeCollector | None:
    """Expose ``registry`` (default: mlprobe's) through ``prometheus_registry`` (default: REGISTRY).

    Idempotent: registering the same pair again returns None and changes nothing.
    """
    registry = default_registry if registry is None else registry
    target = prometheus_client.REGISTRY if prometheus_registry is None else prometheus_registry
    with _attach_lock:
        seen = _attached.setdefault(target, set())
        if id(registry) in seen:
            return None
        collector = MlprobeCollector(registry)
        target.register(collector)  # type: ignore[arg-type]
        seen.add(id(registry))
    return collector


def start_http_server(port: int, addr: str = "0.0.0.0", *, registry: Registry | None = None,
                      prometheus_registry: CollectorRegistry | None = None) -> Any:
    """Serve ``/metrics`` on ``addr:port`` in a daemon thread; returns prometheus_client's
    ``(server, thread)`` pair.

    With no registries given it serves prometheus_client's default registry, to which
    mlprobe's default registry is attached. With ``registry`` alone it serves a fresh
    prometheus registry holding only that mlprobe registry.

    Raises:
        ExporterError: the port cannot be bound.
    """
    if prometheus_registry is None:
        prometheus_registry = prometheus_client.REGISTRY if registry is None else CollectorRegistry()
    register(registry, prometheus_registry)
    try:
        return prometheus_client.start_http_server(port, addr=addr, registry=prometheus_registry)
    except OSError as exc:
        raise ExporterError(f"cannot serve /metrics on {addr}:{port}: {exc}; choose a free port"
                            ) from exc
