"""Settings of the OpenTelemetry push exporter: arguments first, then the standard variables.

The one place mlprobe reads ``OTEL_*`` variables (``mlprobe._config`` reads the ``MLPROBE_*``
ones; core never knows an exporter's settings). An explicit argument always wins; an invalid
variable warns (``RuntimeWarning``) and falls back to the default; an invalid argument raises
:class:`~mlprobe.errors.ConfigurationError` at construction.

Read here:

- ``OTEL_METRIC_EXPORT_INTERVAL`` / ``OTEL_METRIC_EXPORT_TIMEOUT`` (milliseconds; 60000 and
  30000 by default, as the SDK's periodic reader);
- ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``: ``grpc`` or
  ``http/protobuf`` (the default; ``http/json`` has no Python exporter);
- ``OTEL_EXPORTER_OTLP[_METRICS]_COMPRESSION`` and ``_TIMEOUT`` are only *checked*: valid values
  are left to the OTLP exporter, which reads them itself (the Python SDK reads the timeout in
  seconds); an invalid one, which would make the gRPC exporter raise, warns and is replaced
  by the default (no compression; 10 s, at most the push timeout);
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``, through the SDK's
  ``Resource.create`` (it logs and skips a malformed pair).

The OTLP exporter reads the rest itself (``OTEL_EXPORTER_OTLP[_METRICS]_ENDPOINT``,
``_HEADERS``, ``_CERTIFICATE``, ``_INSECURE``, ``_TEMPORALITY_PREFERENCE``), with the SDK's
meaning, so mlprobe behaves like any OpenTelemetry application configured the same way.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

from opentelemetry.sdk.resources import OTELResourceDetector, Resource

from ..errors import ConfigurationError

__all__ = ["DEFAULT_INTERVAL_S", "DEFAULT_TIMEOUT_S", "build_resource", "otlp_exporter",
           "protocol", "seconds"]

DEFAULT_INTERVAL_S = 60.0
DEFAULT_TIMEOUT_S = 30.0
PROTOCOLS = ("http/protobuf", "grpc")
SERVICE_INSTANCE_ID = "service.instance.id"

_EXTRAS = {"http/protobuf": ("otlp-http", "opentelemetry-exporter-otlp-proto-http"),
           "grpc": ("otlp-grpc", "opentelemetry-exporter-otlp-proto-grpc")}


def _warn(name: str, raw: str, fallback: object) -> None:
    warnings.warn(f"{name}={raw!r} is not valid; using {fallback}", RuntimeWarning,
                  stacklevel=4)


def seconds(arg_name: str, value: float | None, env: str, default: float) -> float:
    """A positive duration in seconds: ``value``, else ``env`` (milliseconds), else default."""
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not 0 < value < math.inf:
            raise ConfigurationError(f"{arg_name} must be a positive number of seconds, got "
                                     f"{value!r}")
        return float(value)
    raw = os.environ.get(env)
    if raw is None or not raw.strip():
        return default
    try:
        millis = float(raw)
    except ValueError:
        millis = -1.0
    if not 0 < millis < math.inf:
        _warn(env, raw, f"{default:g} s")
        return default
    return millis / 1000.0


def protocol(value: str | None) -> str:
    """The OTLP protocol: ``value``, else the metrics or general variable, else http/protobuf."""
    if value is not None:
        if value not in PROTOCOLS:
            raise ConfigurationError(f"protocol must be one of {', '.join(PROTOCOLS)}, got "
                                     f"{value!r}")
        return value
    for env in ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        raw = os.environ.get(env)
        if raw is None or not raw.strip():
            continue
        if raw.strip().lower() in PROTOCOLS:
            return raw.strip().lower()
        _warn(env, raw, "http/protobuf")
        return "http/protobuf"
    return "http/protobuf"


def _checked_env(names: tuple[str, ...], valid: Any) -> bool:
    """False (after a warning) when the first set variable of ``names`` is invalid."""
    for env in names:
        raw = os.environ.get(env)
        if raw is None or not raw.strip():
            continue
        if valid(raw.strip().lower()):
            return True
        _warn(env, raw, "the default")
        return False
    return True


def _is_number(raw: str) -> bool:
    try:
        return math.isfinite(float(raw)) and float(raw) > 0
    except ValueError:
        return False


def otlp_exporter(proto: str, *, endpoint: str | None, headers: Mapping[str, str] | None,
                  compression: str | None, push_timeout: float) -> Any:
    """Build the SDK's OTLP metric exporter for ``proto`` (its optional extra must be
    installed); unset arguments are left to the exporter's own variables (module docstring).

    Its request timeout (retries included) is ``OTEL_EXPORTER_OTLP[_METRICS]_TIMEOUT`` when
    set, else the SDK's 10 s capped at ``push_timeout``: the HTTP exporter ignores the timeout
    an export call passes, so this is what bounds one push.

    Raises:
        ConfigurationError: the extra is not installed, or the exporter refuses a setting.
    """
    kwargs: dict[str, Any] = {}
    if compression is not None:
        if compression not in ("gzip", "none"):
            raise ConfigurationError(f"compression must be 'gzip' or 'none', got "
                                     f"{compression!r}")
    elif not _checked_env(("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION",
                           "OTEL_EXPORTER_OTLP_COMPRESSION"), {"gzip", "none"}.__contains__):
        compression = "none"
    timeout: float | None = None
    configured = any((os.environ.get(env) or "").strip() for env in (
        "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"))
    if not configured or not (
            _checked_env(("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",), _is_number)
            and _checked_env(("OTEL_EXPORTER_OTLP_TIMEOUT",), _is_number)):
        timeout = min(10.0, push_timeout)
    extra, package = _EXTRAS[proto]
    try:
        if proto == "grpc":
            from grpc import Compression as GrpcCompression
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter,
            )

            if compression is not None:
                kwargs["compression"] = (GrpcCompression.Gzip if compression == "gzip"
                                         else GrpcCompression.NoCompression)
        else:
            from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )

            if compression is not None:
                kwargs["compression"] = (HttpCompression.Gzip if compression == "gzip"
                                         else HttpCompression.NoCompression)
    except ImportError as exc:
        raise ConfigurationError(f"OTLP over {proto} needs {package}: pip install "
                                 f"'mlprobe[{extra}]' (or pass exporter=...)") from exc
    if endpoint is not None:
        kwargs["endpoint"] = endpoint
    if headers is not None:
        kwargs["headers"] = dict(headers)
    if timeout is not None:
        kwargs["timeout"] = timeout
    try:
        return OTLPMetricExporter(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the SDK raises assorted errors for bad settings
        raise ConfigurationError(f"the OTLP {proto} exporter refused its settings: {exc}"
                                 ) from exc


def build_resource(resource: Resource | None, service_name: str | None,
                   attributes: Mapping[str, Any] | None) -> tuple[Resource, bool]:
    """The resource mlprobe's metrics are sent with, and whether mlprobe made its instance id.

    ``resource`` is used as given; otherwise the SDK's ``Resource.create`` merges its defaults
    (``telemetry.sdk.*``, ``service.name=unknown_service``), ``OTEL_RESOURCE_ATTRIBUTES``,
    ``OTEL_SERVICE_NAME``, then ``attributes`` and ``service_name`` (the arguments win).

    ``service.instance.id``: one you configure (in ``attributes``, in
    ``OTEL_RESOURCE_ATTRIBUTES`` or in ``resource``) is kept, in every process. Otherwise
    mlprobe sets a random UUID and makes a new one in each fork child (see
    :func:`with_new_instance_id`), so workers never share one. (SDK 1.45 and later add a
    per-process UUID in ``Resource.create`` themselves; such a value counts as not configured.)
    """
    if resource is not None and (service_name is not None or attributes):
        raise ConfigurationError("pass either resource= or service_name=/resource_attributes=, "
                                 "not both")
    if resource is None:
        given = dict(attributes or {})
        if service_name is not None:
            if not isinstance(service_name, str) or not service_name:
                raise ConfigurationError(f"service_name must be a non-empty string, got "
                                         f"{service_name!r}")
            given["service.name"] = service_name
        resource = Resource.create(given)
    elif not isinstance(resource, Resource):
        raise ConfigurationError(f"resource must be an opentelemetry.sdk.resources.Resource, got "
                                 f"{type(resource).__name__}")
    configured = (SERVICE_INSTANCE_ID in (attributes or {})
                  or SERVICE_INSTANCE_ID in OTELResourceDetector().detect().attributes
                  or resource.attributes.get(SERVICE_INSTANCE_ID) not in (None, _sdk_made_id()))
    if configured:
        return resource, False
    return with_new_instance_id(resource), True


def _sdk_made_id() -> Any:
    """The ``service.instance.id`` the SDK makes for this process (1.45+), else None."""
    try:
        from opentelemetry.sdk.resources import ServiceInstanceIdResourceDetector
    except ImportError:  # older SDKs make none
        return None
    return ServiceInstanceIdResourceDetector().detect().attributes.get(SERVICE_INSTANCE_ID)


def with_new_instance_id(resource: Resource) -> Resource:
    """``resource`` with a fresh random ``service.instance.id``."""
    return with_instance_id(resource, str(uuid.uuid4()))


def with_instance_id(resource: Resource, instance_id: str) -> Resource:
    """``resource`` with ``service.instance.id`` set to ``instance_id``."""
    return resource.merge(Resource({SERVICE_INSTANCE_ID: instance_id}))
