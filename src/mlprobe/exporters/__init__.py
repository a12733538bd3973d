"""Exporters: leaves that read :meth:`mlprobe.Registry.collect` snapshots.

- :mod:`mlprobe.exporters.prometheus`: a prometheus_client collector, ``register``, and
  ``start_http_server``.

Import the one you use. Core touches the Prometheus exporter in two places only, at run time:
the default registry attaches itself to prometheus_client's default registry when its first
source appears, and the ASGI middleware's ``metrics_path`` imports it on its first scrape.
"""
