"""Exporters: leaves that read :meth:`mlprobe.Registry.collect` snapshots.

- :mod:`mlprobe.exporters.prometheus`: a prometheus_client collector, ``register``, and
  ``start_http_server``.
- :mod:`mlprobe.exporters.otel`: OpenTelemetry: ``push`` (OTLP over HTTP or gRPC, or any SDK
  ``MetricExporter``, on an interval) and ``bridge`` (into an app's own ``MeterProvider``).

Core never imports an exporter: exporters only read the public read side
(:mod:`mlprobe.registry`, :mod:`mlprobe.snapshot`, :mod:`mlprobe.errors`). Import the one you
use. Two modules of mlprobe import :mod:`~mlprobe.exporters.prometheus`, lazily and nothing
else: the composition root (``mlprobe/_wiring.py``, which attaches the default registry to
prometheus_client's when its first probe is created) and the ASGI middleware's
``metrics_path`` endpoint (which serves the exporter's exposition). ``pyproject.toml``'s
import-linter contract allows exactly these two; nothing in mlprobe imports
:mod:`~mlprobe.exporters.otel`.
"""
