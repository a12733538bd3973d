"""Defaults, validation helpers and the only place mlprobe's core reads environment variables.

(The OpenTelemetry exporter reads the standard ``OTEL_*`` variables itself, in
``mlprobe/exporters/_otel_env.py``: core never knows an exporter's settings.)

Environment variables are fallbacks: an explicit argument always wins. An invalid value warns
and falls back to the default instead of failing at import.

``MLPROBE_DISABLED``  -- ``1``/``true``/``yes``: ``track`` returns functions unwrapped.
``MLPROBE_PROMETHEUS_AUTO`` -- ``0``/``false``/``no``: do not attach the default registry to
prometheus_client's default registry when the first probe is created.
``MLPROBE_MULTIPROCESS_DIR`` -- a directory: turn multi-process mode on for the default
registry (read when it gets its first source; see :mod:`mlprobe.multiprocess`).
``MLPROBE_MULTIPROCESS_INTERVAL`` -- seconds between two publications of a worker's state.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterable, Sequence

from .errors import ConfigurationError

__all__ = [
    "DEFAULT_BYTES_BUCKETS",
    "DEFAULT_LATENCY_BUCKETS",
    "DEFAULT_ROWS_BUCKETS",
    "DEFAULT_SCORE_BUCKETS",
    "check_buckets",
    "check_positive_int",
    "env_flag",
    "env_seconds",
    "multiprocess_dir",
]

# Model latencies span a cached lookup (~100 µs) to a large batch or LLM call (tens of s).
DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)
# Batch sizes from single-row online calls to large offline batches.
DEFAULT_ROWS_BUCKETS: tuple[float, ...] = (
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 50000, 100000,
)
# Powers of four from 64 B to 256 MiB: 12 buckets cover every realistic payload.
DEFAULT_BYTES_BUCKETS: tuple[float, ...] = tuple(float(64 * 4**i) for i in range(12))
# Scores are usually probabilities; 0.05 steps resolve calibration drift without many series.
DEFAULT_SCORE_BUCKETS: tuple[float, ...] = tuple(round(0.05 * i, 2) for i in range(1, 21))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_flag(name: str, default: bool) -> bool:
    """Read a boolean environment variable; warn and use ``default`` on an unknown value."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    warnings.warn(f"{name}={raw!r} is not a boolean (use 1/0, true/false); using {default}",
                  RuntimeWarning, stacklevel=3)
    return default


def env_seconds(name: str, default: float) -> float:
    """Read a positive number of seconds; warn and use ``default`` on an invalid value."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        warnings.warn(f"{name}={raw!r} is not a positive number of seconds; using {default}",
                      RuntimeWarning, stacklevel=3)
        return default
    return value


def multiprocess_dir() -> str | None:
    """``MLPROBE_MULTIPROCESS_DIR``, or None when unset or empty."""
    raw = os.environ.get("MLPROBE_MULTIPROCESS_DIR", "").strip()
    return raw or None


def check_buckets(arg: str, buckets: Iterable[float] | None,
                  default: Sequence[float]) -> tuple[float, ...]:
    """Validate histogram upper bounds: finite, strictly increasing, at least one.

    ``+Inf`` at the end is accepted and dropped (it is always implied).
    """
    if buckets is None:
        return tuple(float(b) for b in default)
    try:
        bounds = [float(b) for b in buckets]
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{arg} must be a sequence of numbers (histogram upper bounds), got {buckets!r}"
        ) from None
    if bounds and bounds[-1] == math.inf:
        bounds.pop()
    if not bounds:
        raise ConfigurationError(f"{arg} needs at least one finite upper bound")
    if any(not math.isfinite(b) for b in bounds):
        raise ConfigurationError(f"{arg} must be finite numbers (+Inf is implied), got {bounds}")
    if any(a >= b for a, b in zip(bounds, bounds[1:])):
        raise ConfigurationError(f"{arg} must be strictly increasing, got {bounds}; sort them "
                                 "and remove duplicates")
    return tuple(bounds)


def check_positive_int(arg: str, value: object) -> int:
    """Validate a positive integer option (a cardinality cap, a size)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{arg} must be a positive integer, got {value!r}")
    return value
