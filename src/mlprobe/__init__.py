"""mlprobe: serving-side instrumentation for ML models.

Add ``@probe.track`` to a predict function and its calls, latency, input sizes, scores and
predicted classes appear in Prometheus (``mlprobe.exporters.prometheus``) or go over OTLP to an
OpenTelemetry collector (``mlprobe.exporters.otel``); with a reference profile, drift and data
quality too, and with labels, model quality.

This module is the composition root: it re-exports the public API and, through
:func:`mlprobe._wiring.wire`, attaches :data:`default_registry` to prometheus_client's default
registry when its first probe is created. Core never imports an exporter; two modules
outside core do, lazily: ``_wiring`` (for that attachment) and the middleware's
``metrics_path`` endpoint (``_asgi_endpoints``, which serves the Prometheus exposition). The
import contract in ``pyproject.toml`` holds exactly these two edges.
"""

from . import _wiring
from ._drift_spec import DriftSpec
from ._prediction_ids import current_prediction_id
from ._probe import Probe
from ._profile import ReferenceProfile
from ._registry import Registry, default_registry
from ._shadow import Shadow
from ._split import Split
from ._version import __version__
from .asgi import ProbeMiddleware
from ._profile_format import ProfileLimits
from ._quality_spec import QualitySpec
from .errors import ConfigurationError, ExporterError, MlprobeError, ProfileError

__all__ = [
    "ConfigurationError",
    "DriftSpec",
    "ExporterError",
    "MlprobeError",
    "Probe",
    "ProbeMiddleware",
    "ProfileError",
    "ProfileLimits",
    "QualitySpec",
    "ReferenceProfile",
    "Registry",
    "Shadow",
    "Split",
    "__version__",
    "current_prediction_id",
    "default_registry",
]

for _name in ("ConfigurationError", "DriftSpec", "ExporterError", "MlprobeError", "Probe",
              "ProbeMiddleware", "ProfileError", "ProfileLimits", "QualitySpec", "ReferenceProfile",
              "Registry", "Shadow", "Split"):
    globals()[_name].__module__ = "mlprobe"
del _name

_wiring.wire()
