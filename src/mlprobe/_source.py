"""What a registry source is: the :class:`Source` protocol and the state protocol.

Mergeable sources
-----------------
A source that records anything worth merging across worker processes (every source of
mlprobe's does) implements the *state protocol* on top of :class:`Source`:

``source.state() -> state``
    A consistent, independent snapshot of its raw counts (copied under its locks, with every
    buffered value applied first). Later recording never changes it.
``source.fingerprint() -> str``
    A digest of the settings that shape those counts (bucket bounds, caps, the profile):
    states merge only when their sources' fingerprints are equal.
``source.state_from_dict(data, parts=None) -> state``
    Rebuild a state of *this* source from ``state.to_dict()`` output written by another
    process (the receiving source supplies the settings and the profile). Raises
    ``ValueError``/``KeyError``/``TypeError`` on malformed data; the caller counts it.
``source.part_from_dict(data)`` (optional)
    Rebuild one frozen part (below).

and the state it returns implements :class:`SourceState`:

``state.merge(other) -> state``
    Add ``other`` (a state of a source with the same key and fingerprint) in place, exactly:
    counts and histograms add, label tables unite (and are capped again), windows merge
    sub-bucket by sub-bucket on wall-clock indices. Returns ``state``.
``state.to_dict(parts=None) -> dict``
    Plain data: dicts, lists, str, int, float, None and numpy arrays. A state with large
    parts that never change (closed window sub-buckets) may, when given a ``parts`` dict, put
    them there by a uid that names their content for good and write only the uid; readers
    then rebuild each such part once (``part_from_dict``) and pass it back by uid.
``state.archived() -> state``
    The state as a *dead* process leaves it: gauges that describe a live process (calls in
    flight, active requests) are dropped; counts stay. Returns ``state``.
``state.collect_into(builder)``
    Report the families the source would: ``source.collect_into(b)`` and
    ``source.state().collect_into(b)`` add the same samples (the sources implement the first
    as the second). Drift, quantiles and statuses are computed here, once, on the merged
    state.

In multi-process mode (:mod:`mlprobe.multiprocess`) the registry collects
``own.state().merge(<the other workers' states>)`` for each source instead of the source
alone. A source without the protocol (a third-party one) is still reported, from this
process only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._registry import FamilyBuilder

__all__ = ["MergeableSource", "Source", "SourceState", "is_mergeable"]


class Source(Protocol):
    """Anything that reports samples at collect time.

    A source that should merge across worker processes also implements the state protocol
    (:class:`MergeableSource`; see "Mergeable sources" in the module docstring).
    """

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Add this source's current samples to ``builder`` (new sample objects each time)."""

    def reset(self) -> None:
        """Forget everything (called in a child process after fork)."""


@runtime_checkable
class SourceState(Protocol):
    """A raw, mergeable snapshot of a source (see "Mergeable sources")."""

    def merge(self, other: Any) -> Any:
        """Add ``other`` in place, exactly; return ``self``."""

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data (numpy arrays allowed); frozen parts into ``parts`` by uid if given."""

    def archived(self) -> Any:
        """Drop what describes a live process (in-flight gauges); return ``self``."""

    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report this state's families, as its source would."""


@runtime_checkable
class MergeableSource(Source, Protocol):
    """A :class:`Source` with the state protocol (see "Mergeable sources")."""

    def state(self) -> SourceState:
        """A consistent, independent snapshot of the raw counts."""

    def fingerprint(self) -> str:
        """Digest of the settings that shape the counts (states merge only when equal)."""

    def state_from_dict(self, data: Mapping[str, Any],
                        parts: Mapping[str, Any] | None = None) -> SourceState:
        """Rebuild a state of this source from ``SourceState.to_dict`` output."""


def is_mergeable(key: object, source: object) -> bool:
    """True for a source with the state protocol under a key made of plain values (str, int,
    float, bool, None and tuples of them: what a state file can carry)."""
    return isinstance(source, MergeableSource) and _plain(key)


def _plain(key: object) -> bool:
    if isinstance(key, tuple):
        return all(_plain(k) for k in key)
    return key is None or isinstance(key, (str, int, float, bool))
