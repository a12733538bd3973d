"""Composition root: connects the default registry to the Prometheus exporter.

Core never imports an exporter (``pyproject.toml``'s import-linter contract enforces it). The
user-facing default, "a probe's metrics are in prometheus_client's default registry with no
set-up", is wired here instead: ``mlprobe/__init__.py`` calls :func:`wire` once, and the
callback it sets imports :mod:`mlprobe.exporters.prometheus` only when the default registry
gets its first probe, so ``import mlprobe`` does not import prometheus_client.

Which prometheus_client registry that is stays the exporter's choice
(:func:`mlprobe.exporters.prometheus.register` with no target: prometheus_client's
``REGISTRY``).
"""

from __future__ import annotations

import logging

from ._config import env_flag
from ._registry import Registry, default_registry

__all__ = ["attach_to_prometheus", "wire"]

_log = logging.getLogger("mlprobe")


def attach_to_prometheus(registry: Registry) -> None:
    """Expose ``registry`` through the Prometheus exporter's default prometheus registry."""
    try:
        from .exporters import prometheus
    except ImportError:  # pragma: no cover - prometheus-client is a declared dependency
        _log.debug("prometheus_client is not importable; the default registry is not attached")
        return
    prometheus.register(registry)


def wire() -> None:
    """Attach :data:`mlprobe.default_registry` to prometheus_client's default registry when its
    first probe is created, unless ``MLPROBE_PROMETHEUS_AUTO=0``."""
    if env_flag("MLPROBE_PROMETHEUS_AUTO", True):
        default_registry.on_first_source(attach_to_prometheus)
