"""Composition root: connects the default registry to the Prometheus exporter.

Core never imports an exporter (``pyproject.toml``'s import-linter contract enforces it). The
user-facing default, "a probe's metrics are in prometheus_client's default registry with no
set-up", is wired here instead: ``mlprobe/__init__.py`` calls :func:`wire` once, and the
callback it sets imports :mod:`mlprobe.exporters.prometheus` only when the default registry
gets its first probe, so ``import mlprobe`` does not import prometheus_client.

Which prometheus_client registry that is stays the exporter's choice
(:func:`mlprobe.exporters.prometheus.register` with no target: prometheus_client's
``REGISTRY``).

The environment's multi-process switch (``MLPROBE_MULTIPROCESS_DIR``) is wired here too: it is
read just before the default registry creates its first source, and a bad setting fails that
creation (:mod:`mlprobe.multiprocess`).
"""

from __future__ import annotations

import logging

from . import _config
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
    default_registry.before_first_source(multiprocess_from_environment)


def multiprocess_from_environment(registry: Registry) -> None:
    """Turn multi-process mode on for ``registry`` if ``MLPROBE_MULTIPROCESS_DIR`` is set
    (imported only then: a single process never loads the multi-process modules)."""
    if _config.multiprocess_dir() is None:
        return
    from . import multiprocess

    multiprocess.enable_from_environment(registry)
