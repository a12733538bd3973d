"""The registry as exporters and custom sources see it.

An exporter reads a :class:`Registry` through :meth:`Registry.collect`, which returns
:mod:`mlprobe.snapshot` families; :data:`default_registry` is the one probes use when none is
given. A custom source (anything with ``collect_into(builder)`` and ``reset()``, the
:class:`Source` protocol) is added with :meth:`Registry.get_or_create` and reports catalogue
metrics into the :class:`FamilyBuilder` it is given. A source that implements the state
protocol (:class:`MergeableSource` and :class:`SourceState`, described under "Mergeable
sources" in ``mlprobe._registry`` and in ``docs/operating.md``) is merged across worker
processes in multi-process mode (:mod:`mlprobe.multiprocess`).

Together with :mod:`mlprobe.snapshot` (the families, samples and the metric catalogue) and
the error accounting in :mod:`mlprobe.errors`, this is the public read side: what
``mlprobe.exporters.prometheus`` and ``mlprobe.exporters.otel`` use, and all a third-party
exporter needs.

Example:
    >>> from mlprobe.registry import default_registry
    >>> for family in default_registry.collect():
    ...     print(family.name, family.spec.otel_name, len(family.samples))
"""

from __future__ import annotations

from ._registry import (
    FamilyBuilder,
    MergeableSource,
    Registry,
    Source,
    SourceState,
    default_registry,
)

__all__ = ["FamilyBuilder", "MergeableSource", "Registry", "Source", "SourceState",
           "default_registry"]
