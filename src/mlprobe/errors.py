"""Exceptions mlprobe raises, all at construction or setup time, never while recording.

Hierarchy::

    MlprobeError
     +-- ConfigurationError   (also a ValueError: a bad argument or environment value)
     +-- ProfileError         (also a ValueError: a reference profile that cannot be read or used)
     +-- ExporterError        (an exporter could not be set up)

After construction mlprobe raises nothing into user code: a failure of its own is counted
(``mlprobe_internal_errors_total``), logged at a bounded rate and dropped.
:func:`report_internal_error` is that one swallow point, for exporters and custom sources too;
:func:`internal_error_count` reads the count.
"""

from __future__ import annotations

from ._guard import internal_error_count, report_internal_error

__all__ = ["ConfigurationError", "ExporterError", "MlprobeError", "ProfileError",
           "internal_error_count", "report_internal_error"]


class MlprobeError(Exception):
    """Base class of every exception mlprobe raises on purpose."""


class ConfigurationError(MlprobeError, ValueError):
    """A constructor argument or setting is invalid; the message names it and says what to change."""


class ProfileError(MlprobeError, ValueError):
    """A reference profile is corrupt, of an unknown version, or does not fit the data."""


class ExporterError(MlprobeError):
    """An exporter could not be set up (missing package, port in use, bad endpoint)."""
