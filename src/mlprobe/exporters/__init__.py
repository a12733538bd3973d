"""Exporters: leaves that read :meth:`mlprobe.Registry.collect` snapshots.

- :mod:`mlprobe.exporters.prometheus`: a prometheus_client collector, ``register``, and
  ``start_http_server``.

Nothing in mlprobe imports an exporter; import the one you use.
"""
