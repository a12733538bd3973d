"""OpenTelemetry export: push to a collector over OTLP, or ride an app's own OTel pipeline.

mlprobe records in its own structures (a few hundred nanoseconds a call) and builds
OpenTelemetry ``MetricsData`` from its snapshots at export time, so nothing of the OTel SDK
runs on the request path. Two ways out:

- :func:`push` starts a :class:`~mlprobe.exporters._otel_push.PushExporter`: every
  ``interval`` (``OTEL_METRIC_EXPORT_INTERVAL``, 60 s) and once at shutdown it hands mlprobe's
  metrics to an SDK ``MetricExporter``: OTLP over HTTP/protobuf (``pip install
  'mlprobe[otlp-http]'``, the default) or gRPC (``'mlprobe[otlp-grpc]'``), configured by
  arguments or the standard ``OTEL_EXPORTER_OTLP_*`` variables, or any exporter you pass
  (console, in-memory, a vendor's). It honours the exporter's preferred temporality
  (cumulative by default; delta computed from successive collects).
- :func:`bridge` wraps the ``MetricExporter`` of an app that runs its own ``MeterProvider``
  with a ``PeriodicExportingMetricReader``: each of the app's exports then carries mlprobe's
  metrics too, histograms included, under the app's resource and mlprobe's instrumentation
  scope. (The SDK has no public MetricProducer; wrapping the exporter uses only its public
  API.) An app whose provider has a *Prometheus* reader needs no bridge: mlprobe's own
  Prometheus collector serves the same prometheus_client registry (the default one
  automatically; ``mlprobe.exporters.prometheus.register(registry, that_registry)`` otherwise),
  under exactly the names the OTel reader would give mlprobe's OTel metrics.

Names, units and attributes are the catalogue's (README "Metric reference"), chosen so that a
collector's Prometheus exporter yields exactly the names and labels mlprobe's own Prometheus
exporter shows. The data model (sums, histograms with mlprobe's buckets, gauges, the summary
as three gauges) and the delta rules are described in ``_otel_data``.

Resource: ``service.name`` from ``service_name=`` or ``OTEL_SERVICE_NAME``; other attributes
from ``resource_attributes=`` or ``OTEL_RESOURCE_ATTRIBUTES``; ``service.instance.id`` is a
random UUID per process (new in each fork child) unless you set one. A Prometheus scrape labels
the same process ``instance="host:port"`` (the target's address, chosen by Prometheus); a
collector's Prometheus exporter and the Prometheus OTLP receiver turn ``service.instance.id``
into ``instance`` and ``service.name`` into ``job``. Set ``service.instance.id`` (for example
to the pod name) when both paths must agree on ``instance``; queries that aggregate by
``model`` work either way.

Processes: each process that runs a pusher exports its own metrics under its own
``service.instance.id``. In a pre-fork server (gunicorn) the pusher started in the master
restarts its thread in every worker after fork, and each worker's counts start at zero there,
so a backend summing over instances counts every request once. In multi-process mode
(:mod:`mlprobe.multiprocess`) only one worker pushes (``exports_here`` defaults to
:func:`mlprobe.multiprocess.exports_here`): the merged view of every worker, under one
``service.instance.id`` per server, so the collector gets what one scrape shows.

Example:
    >>> from mlprobe.exporters import otel
    >>> pusher = otel.push(service_name="churn-api")          # OTLP/HTTP per OTEL_* variables
    >>> pusher = otel.push(endpoint="http://127.0.0.1:4317", protocol="grpc", interval=10)
    >>> reader = PeriodicExportingMetricReader(otel.bridge(OTLPMetricExporter()))  # app's own
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

try:
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        MetricsData,
        ResourceMetrics,
        ScopeMetrics,
    )
    from opentelemetry.sdk.resources import Resource
except ImportError as exc:  # pragma: no cover - opentelemetry-sdk is a declared dependency
    raise ImportError("mlprobe.exporters.otel needs opentelemetry-sdk: "
                      "pip install opentelemetry-sdk") from exc

from .. import multiprocess
from ..errors import ConfigurationError, report_internal_error
from ..registry import Registry, default_registry
from ..snapshot import label_value
from . import _otel_env
from ._otel_data import Translator, temporalities_of
from ._otel_push import ExportFailures, PushExporter, default_name, mlprobe_scope

__all__ = ["PushExporter", "bridge", "metrics_data", "push"]


def push(exporter: MetricExporter | None = None, *, registry: Registry | None = None,
         interval: float | None = None, timeout: float | None = None,
         endpoint: str | None = None, protocol: str | None = None,
         headers: Mapping[str, str] | None = None, compression: str | None = None,
         service_name: str | None = None, resource_attributes: Mapping[str, Any] | None = None,
         resource: Resource | None = None, name: str | None = None,
         exports_here: Callable[[], bool] | None = None) -> PushExporter:
    """Push ``registry``'s metrics every ``interval`` seconds and at shutdown; return the pusher.

    Args:
        exporter: an OTel SDK ``MetricExporter``; by default mlprobe builds the OTLP one for
            ``protocol`` from the arguments below and the ``OTEL_EXPORTER_OTLP_*`` variables.
        registry: what to export (:data:`mlprobe.default_registry` by default).
        interval: seconds between pushes (``OTEL_METRIC_EXPORT_INTERVAL`` in ms, else 60).
        timeout: seconds one push may take (``OTEL_METRIC_EXPORT_TIMEOUT`` in ms, else 30).
        endpoint: OTLP endpoint (HTTP: the full ``.../v1/metrics`` URL; gRPC: ``host:port``
            or ``http://host:port``); else the exporter reads ``OTEL_EXPORTER_OTLP_*``.
        protocol: ``"http/protobuf"`` or ``"grpc"`` (``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``,
            else HTTP).
        headers: extra OTLP request headers (e.g. an API key).
        compression: ``"gzip"`` or ``"none"``.
        service_name: ``service.name`` of the resource (else ``OTEL_SERVICE_NAME``).
        resource_attributes: more resource attributes (merged over
            ``OTEL_RESOURCE_ATTRIBUTES``).
        resource: a complete ``Resource`` instead of the two above.
        name: the ``exporter`` label of ``mlprobe_export_failures_total`` (default
            ``otlp_http``, ``otlp_grpc``, or the given exporter's class name).
        exports_here: asked before every push; a process where it returns False does not
            push. Default: every process pushes, except in multi-process mode, where one
            worker pushes everyone's merged metrics (:func:`mlprobe.multiprocess.exports_here`).

    Raises:
        ConfigurationError: a bad argument, arguments for the OTLP exporter together with
            ``exporter=``, or the OTLP extra for ``protocol`` is not installed.
    """
    registry = default_registry if registry is None else registry
    if not isinstance(registry, Registry):
        raise ConfigurationError(f"registry must be a mlprobe.Registry, got "
                                 f"{type(registry).__name__}")
    interval_s = _otel_env.seconds("interval", interval, "OTEL_METRIC_EXPORT_INTERVAL",
                                   _otel_env.DEFAULT_INTERVAL_S)
    timeout_s = _otel_env.seconds("timeout", timeout, "OTEL_METRIC_EXPORT_TIMEOUT",
                                  _otel_env.DEFAULT_TIMEOUT_S)
    if exports_here is not None and not callable(exports_here):
        raise ConfigurationError("exports_here must be a callable returning a bool")
    rebuild: Callable[[], MetricExporter] | None = None
    if exporter is None:
        proto = _otel_env.protocol(protocol)

        def rebuild() -> MetricExporter:
            return _otel_env.otlp_exporter(proto, endpoint=endpoint, headers=headers,
                                           compression=compression, push_timeout=timeout_s)

        exporter = rebuild()
        label = "otlp_grpc" if proto == "grpc" else "otlp_http"
    else:
        given = [n for n, v in (("endpoint", endpoint), ("protocol", protocol),
                                ("headers", headers), ("compression", compression))
                 if v is not None]
        if given:
            raise ConfigurationError(f"{', '.join(given)} configure the OTLP exporter mlprobe "
                                     "builds; with exporter=... configure that exporter instead")
        if not isinstance(exporter, MetricExporter):
            raise ConfigurationError(f"exporter must be an OpenTelemetry SDK MetricExporter, "
                                     f"got {type(exporter).__name__}")
        label = default_name(exporter)
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"name must be a non-empty string, got {name!r}")
        label = label_value(name)
    own_resource, own_id = _otel_env.build_resource(resource, service_name, resource_attributes)
    return PushExporter(exporter, registry=registry, interval=interval_s, timeout=timeout_s,
                        resource=own_resource, own_instance_id=own_id, name=label,
                        exports_here=exports_here, rebuild=rebuild)


def metrics_data(registry: Registry | None = None, *, resource: Resource | None = None
                 ) -> MetricsData:
    """One cumulative snapshot of ``registry`` as OTel ``MetricsData`` (for custom pipelines
    and tests); ``resource`` defaults to an empty one."""
    registry = default_registry if registry is None else registry
    translation = Translator(temporalities_of(None)).translate(registry.collect())
    scope = ScopeMetrics(mlprobe_scope(), translation.metrics, "")
    return MetricsData([ResourceMetrics(resource or Resource.get_empty(), [scope], "")])


def bridge(exporter: MetricExporter, *, registry: Registry | None = None,
           name: str = "bridge") -> MetricExporter:
    """Wrap an app's SDK ``MetricExporter`` so that its exports carry mlprobe's metrics too.

    Pass the result where the exporter went, usually to a ``PeriodicExportingMetricReader``
    of the app's ``MeterProvider``::

        reader = PeriodicExportingMetricReader(otel.bridge(OTLPMetricExporter()))
        provider = MeterProvider(metric_readers=[reader], resource=resource)

    mlprobe's metrics join the app's first ``ResourceMetrics`` (so they share its resource)
    as one more scope, ``mlprobe``, in every export the reader makes, with the wrapped
    exporter's preferred temporality. The SDK skips exports when the app has recorded
    nothing yet, and so does the bridge. A failure to build mlprobe's part is counted and the
    app's data goes out alone; a failed export counts in
    ``mlprobe_export_failures_total{exporter="bridge"}``.

    Raises:
        ConfigurationError: ``exporter`` is not an SDK ``MetricExporter``.
    """
    if not isinstance(exporter, MetricExporter):
        raise ConfigurationError(f"bridge() wraps an OpenTelemetry SDK MetricExporter, got "
                                 f"{type(exporter).__name__}")
    registry = default_registry if registry is None else registry
    if not isinstance(registry, Registry):
        raise ConfigurationError(f"registry must be a mlprobe.Registry, got "
                                 f"{type(registry).__name__}")
    return _Bridge(exporter, registry, label_value(name))


class _Bridge(MetricExporter):
    """A ``MetricExporter`` that adds mlprobe's metrics to another one's exports."""

    def __init__(self, inner: MetricExporter, registry: Registry, name: str) -> None:
        # The reader takes its temporality and aggregation preferences from the exporter it
        # is given: pass the wrapped exporter's on, so the app's metrics keep them.
        super().__init__(preferred_temporality=getattr(inner, "_preferred_temporality", None),
                         preferred_aggregation=getattr(inner, "_preferred_aggregation", None))
        self.inner = inner
        self.registry = registry
        self._translator = Translator(temporalities_of(inner))
        self._scope = mlprobe_scope()
        self._lock = threading.Lock()  # readers never export concurrently; the state is ours
        self.failures: ExportFailures = registry.get_or_create(
            ("export_failures", name), lambda: ExportFailures(name))

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
               **kwargs: Any) -> MetricExportResult:
        """Export the app's metrics with mlprobe's added to its first resource."""
        with self._lock:
            translation = None
            data = metrics_data
            try:
                # multi-process mode: in a worker that does not export, the app's metrics go
                # alone (another worker's exports carry mlprobe's merged view)
                if multiprocess.exports_here(self.registry):
                    translation = self._translator.translate(self.registry.collect())
                    data = _with_scope(metrics_data,
                                       ScopeMetrics(self._scope, translation.metrics, ""))
            except Exception as exc:  # noqa: BLE001 - the app's own export must still go
                report_internal_error("otel.bridge", exc)
            result = self.inner.export(data, timeout_millis=timeout_millis, **kwargs)
            if result is MetricExportResult.SUCCESS:
                if translation is not None:
                    self._translator.commit(translation)
            else:
                self.failures.add()
            return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def _with_scope(data: MetricsData, scope: ScopeMetrics) -> MetricsData:
    if not data.resource_metrics or not scope.metrics:
        return data
    first, *rest = data.resource_metrics
    merged = ResourceMetrics(first.resource, [*first.scope_metrics, scope], first.schema_url)
    return MetricsData([merged, *rest])
