"""The raw, mergeable state of a feature monitor: sub-buckets on wall-clock boundaries.

A :class:`FeatureState` holds, for one model, the sub-buckets of its rolling window keyed by
their wall-clock index (``floor(unix time / bucket seconds)``), the totals of everything that
has left the window, and the count of dropped rows. Because the index is the same in every
process, states of several processes merge sub-bucket by sub-bucket, and the merged window is
the window of the union of their traffic (a sub-bucket one process has already expired and
another still holds ends up in the totals either way).

Merging is lazy and exact: a merged sub-bucket is the list of its parts (one per process),
added up only when a window is asked for. A part that can no longer change (a closed
sub-bucket, the expired totals of one generation) carries a ``uid``; the monitor that builds
windows caches the sum of such parts, so a scrape merging many processes re-adds only the parts
that changed since the last one (in practice the open sub-bucket of each process).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ._window import DatasetWindow

if TYPE_CHECKING:
    from ._features import FeatureMonitor

__all__ = ["FeatureState", "FrozenWindow", "Part"]

Part = tuple["str | None", DatasetWindow]
"""``(uid, window)``: ``uid`` names a part that never changes again (None: a fresh copy)."""

_EXPIRED = "expired"  # cache slot of the expired parts' sum
_WINDOW_AND_TOTALS = "window+totals"  # cache slot of the stable sub-buckets' window and totals


class FrozenWindow:
    """A frozen part as ``FeatureState.to_dict(parts)`` hands it out: ``to_dict()`` is what
    the monitor's ``part_from_dict`` reads back."""

    __slots__ = ("window",)

    def __init__(self, window: DatasetWindow) -> None:
        self.window = window

    def to_dict(self) -> dict[str, Any]:
        """The window's compact plain data (count arrays as numpy arrays)."""
        return self.window.to_dict(arrays=True)


class FeatureState:
    """Raw state of one :class:`~mlprobe._features.FeatureMonitor` (see the module docstring).

    Built by ``monitor.state()`` or ``monitor.state_from_dict(...)``; the monitor supplies the
    profile, the window settings and the clock, and caches sums of unchanging parts.
    """

    __slots__ = ("buckets", "dropped", "expired", "monitor")

    def __init__(self, monitor: FeatureMonitor, buckets: dict[int, list[Part]],
                 expired: list[Part], dropped: int) -> None:
        self.monitor = monitor
        self.buckets = buckets
        self.expired = expired
        self.dropped = dropped

    def merge(self, other: FeatureState) -> FeatureState:
        """Add ``other``'s sub-buckets, expired totals and dropped rows; returns ``self``."""
        for index, parts in other.buckets.items():
            self.buckets.setdefault(index, []).extend(parts)
        self.expired.extend(other.expired)
        self.dropped += other.dropped
        return self

    def to_dict(self, parts: dict[str, Any] | None = None) -> dict[str, Any]:
        """Plain data (count arrays as numpy arrays).

        With ``parts``, every part with a uid is put there (uid -> window) and referenced by
        its uid instead of being written inline (see "Mergeable sources" in
        :mod:`mlprobe._source`).
        """
        def part(uid: str | None, window: DatasetWindow) -> list[Any]:
            if uid is not None and parts is not None:
                parts[uid] = FrozenWindow(window)
                return [uid, None]
            return [uid, window.to_dict(arrays=True)]

        return {"buckets": [[index, [part(*p) for p in ps]]
                            for index, ps in sorted(self.buckets.items())],
                "expired": [part(*p) for p in self.expired],
                "dropped": self.dropped}

    @classmethod
    def from_dict(cls, monitor: FeatureMonitor, data: Mapping[str, Any],
                  parts: Mapping[str, DatasetWindow] | None = None) -> FeatureState:
        """Rebuild a state of ``monitor``'s model from :meth:`to_dict` output.

        Raises:
            ValueError, KeyError, TypeError: malformed data, or windows of another profile.
        """
        template = monitor.template

        def part(uid: str | None, inline: Any) -> Part:
            if inline is None:
                if parts is None or uid not in parts:
                    raise ValueError(f"part {uid!r} is referenced but not given")
                return uid, parts[uid]
            return None, DatasetWindow.from_dict(inline, template)

        buckets: dict[int, list[Part]] = {}
        for index, ps in data["buckets"]:
            buckets.setdefault(int(index), []).extend(part(*p) for p in ps)
        return cls(monitor, buckets, [part(*p) for p in data["expired"]], int(data["dropped"]))

    def compacted(self, uid_prefix: str) -> FeatureState:
        """A state of one part per sub-bucket and one expired part (sums of the parts), with
        new uids starting with ``uid_prefix``; sub-buckets that have left the window at the
        monitor's current time move into the expired totals. (What an archive of dead
        workers keeps: bounded by the window, whatever number of workers it folded.)"""
        monitor = self.monitor
        first_live = monitor.index_now() - monitor.sub_buckets + 1
        expired = monitor.template.copy()
        buckets: dict[int, list[Part]] = {}
        with np.errstate(over="ignore", invalid="ignore"):
            for _, window in self.expired:
                expired.merge(window)
            for index, parts in sorted(self.buckets.items()):
                total = monitor.template.copy()
                for _, window in parts:
                    total.merge(window)
                if index < first_live:
                    expired.merge(total)
                else:
                    buckets[index] = [(f"{uid_prefix}b{index}", total)]
        return FeatureState(monitor, buckets, [(f"{uid_prefix}e", expired)], self.dropped)

    def archived(self) -> FeatureState:
        """The state as a dead process leaves it (nothing here describes a live process)."""
        return self

    def window_and_totals(self) -> tuple[DatasetWindow, DatasetWindow]:
        """(rolling window at the monitor's current time, totals of everything recorded)."""
        monitor = self.monitor
        first_live = monitor.index_now() - monitor.sub_buckets + 1
        cache = monitor.merge_cache
        used: set[object] = {_WINDOW_AND_TOTALS}
        # Sums of sub-buckets whose parts never change (same objects from collect to collect,
        # by the cache of _sum) and sums of the others, in the window or before it.
        stable_live: list[DatasetWindow] = []
        stable_old: list[DatasetWindow] = []
        fresh_live: list[DatasetWindow] = []
        fresh_old: list[DatasetWindow] = []
        # (errstate: windows holding values near 1e308 overflow their sums; see _features)
        with np.errstate(over="ignore", invalid="ignore"):
            sums = [(index >= first_live, parts, _sum(parts, index, cache, used,
                                                      monitor.template.copy))
                    for index, parts in sorted(self.buckets.items())]
            if self.expired:
                sums.append((False, self.expired, _sum(self.expired, _EXPIRED, cache, used,
                                                       monitor.template.copy)))
            for live, parts, total in sums:
                stable = all(uid is not None for uid, _ in parts)
                ((stable_live if stable else fresh_live) if live else
                 (stable_old if stable else fresh_old)).append(total)
            # The window and totals of the stable sums are added up once and cached, keyed by
            # the identities of the sums (the entry keeps them alive, so an identity cannot be
            # reused meanwhile): a scrape re-adds only what changed since the last one, in
            # practice the open sub-bucket of each process.
            key = (tuple(map(id, stable_live)), tuple(map(id, stable_old)))
            cached = cache.get(_WINDOW_AND_TOTALS)
            if cached is None or cached[0] != key:
                window = monitor.template.copy()
                for total in stable_live:
                    window.merge(total)
                totals = window.copy()
                for total in stable_old:
                    totals.merge(total)
                cached = cache[_WINDOW_AND_TOTALS] = (key, window, totals,
                                                      stable_live + stable_old)
            window, totals = cached[1].copy(), cached[2].copy()
            for total in fresh_live:
                window.merge(total)
                totals.merge(total)
            for total in fresh_old:
                totals.merge(total)
        for slot in [s for s in cache if s not in used]:
            cache.pop(slot, None)  # sub-buckets that left: forget their sums
        return window, totals


def _sum(parts: list[Part], slot: object, cache: dict[object, Any], used: set[object],
         empty: Callable[[], DatasetWindow]) -> DatasetWindow:
    """The sum of ``parts`` (never modified; the result may be one of them: read it only).

    The parts that never change are summed once and cached under ``slot``, keyed by their
    identities (the cache keeps them alive, so an identity cannot be reused meanwhile).
    """
    if len(parts) == 1:
        return parts[0][1]
    frozen = [w for uid, w in parts if uid is not None]
    fresh = [w for uid, w in parts if uid is None]
    if len(frozen) > 1:
        key = tuple(id(w) for w in frozen)
        used.add(slot)
        cached = cache.get(slot)
        if cached is not None and cached[0] == key:
            base = cached[1]
        else:
            base = empty()
            for w in frozen:
                base.merge(w)
            cache[slot] = (key, base, frozen)
    elif frozen:
        base = frozen[0]
    else:
        base = fresh.pop()
    if not fresh:
        return base
    out = base.copy()
    for w in fresh:
        out.merge(w)
    return out
