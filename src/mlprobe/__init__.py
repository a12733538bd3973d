"""mlprobe: serving-side instrumentation for ML models.

Add ``@probe.track`` to a predict function and its calls, latency, input sizes, scores and
predicted classes appear in Prometheus (``mlprobe.exporters.prometheus``; the only exporter
so far).
"""

from ._drift import DriftSpec
from ._probe import Probe
from ._profile import ReferenceProfile
from ._registry import Registry, default_registry
from ._version import __version__
from .asgi import ProbeMiddleware
from ._profile_format import ProfileLimits
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
    "ReferenceProfile",
    "Registry",
    "__version__",
    "default_registry",
]

for _name in ("ConfigurationError", "DriftSpec", "ExporterError", "MlprobeError", "Probe",
              "ProbeMiddleware", "ProfileError", "ProfileLimits", "ReferenceProfile", "Registry"):
    globals()[_name].__module__ = "mlprobe"
del _name
