"""Helpers for testing code that uses mlprobe (and for mlprobe's own tests).

Example:
    >>> from mlprobe.testing import raise_internal_errors, sample_value
    >>> registry = mlprobe.Registry()
    >>> probe = mlprobe.Probe("m", registry=registry)
    >>> with raise_internal_errors():
    ...     probe.observe(outputs=[0.5])
    >>> sample_value(registry, "mlprobe_prediction_score", {"model": "m"}, suffix="count")
    1.0
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from . import _guard
from ._registry import Registry
from .snapshot import HistogramSample, Sample, SummarySample

__all__ = ["raise_internal_errors", "sample_value"]


@contextmanager
def raise_internal_errors(enabled: bool = True) -> Iterator[None]:
    """Make mlprobe re-raise the internal errors it would otherwise swallow (tests only)."""
    previous = _guard.raise_errors
    _guard.raise_errors = enabled
    try:
        yield
    finally:
        _guard.raise_errors = previous


def sample_value(registry: Registry, name: str, labels: Mapping[str, str] | None = None, *,
                 suffix: str | None = None) -> float | None:
    """Return the value of the first sample of ``name`` whose labels include ``labels``.

    For histograms and summaries pass ``suffix="count"`` or ``"sum"``. Returns None when
    nothing matches.
    """
    wanted = set((labels or {}).items())
    for family in registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if not wanted <= set(sample.labels):
                continue
            if isinstance(sample, (HistogramSample, SummarySample)):
                if suffix == "sum":
                    return sample.sum
                return float(sample.count)
            assert isinstance(sample, Sample)
            return sample.value
    return None
