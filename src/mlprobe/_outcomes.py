"""PredictionStore: predictions waiting for their outcomes, and the join.

One store per model and registry, shared by every version's probe: an outcome may be recorded
through any of them, and a candidate version running as a shadow stores its prediction under
the primary's id, so one outcome measures both. Entries are kept in insertion order
(``OrderedDict``), so expiring by age and evicting the oldest are O(1).

Bounds: ``max_entries`` predictions and ``max_bytes`` of estimated memory (per entry: the id,
the payload and a measured fixed overhead; ``benchmarks/bench_quality.py`` checks the estimate
against tracemalloc), each waiting at most ``ttl_seconds``. Every way an outcome or a
prediction can miss the join is counted on the version it concerns, never raised:

========================  =================================================================
``matched``               the outcome met its prediction (per pair)
``late``                  its prediction had already expired or been evicted (a tombstone)
``duplicate``             its prediction had already been matched (a tombstone)
``unknown``               no prediction with that id was seen (after ``unknown_grace_seconds``)
``invalid``               the outcome could not be read for the prediction (counted per pair)
``expired`` / ``evicted`` a prediction left the store unmatched: by age / by the bounds
========================  =================================================================

Tombstones (the ids of matched, expired and evicted predictions, with their version) are
bounded too (:data:`TOMBSTONES_PER_ENTRY`); past them a late or duplicate outcome counts as
unknown.

Outcome before prediction: an outcome whose id is not known waits up to
``unknown_grace_seconds`` (at most ``max_unmatched`` of them); a prediction stored meanwhile
joins it at once. This is also the multi-worker seam: under several worker processes an
outcome may reach another worker than its prediction. In multi-process mode the store is
*coordinated* (:attr:`PredictionStore.coordinated`): waiting outcomes are settled only by the
outcome exchange (:mod:`mlprobe._mp_outcomes`), which publishes them (:meth:`waiting`), joins
the other workers' against this store (:meth:`known`, :meth:`join_foreign`), drops those
another worker claimed (:meth:`forget`), and takes out those to join here or count unknown
(:meth:`take_waiting`), each decision under the directory lock, so that exactly one worker
counts each outcome.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import numpy as np

from ._quality_spec import QualitySpec

__all__ = ["ENTRY_OVERHEAD", "PUT_BATCH", "PredictionStore", "TOMBSTONES_PER_ENTRY",
           "payload_bytes"]

PUT_BATCH = 256
"""Predictions queued on the request path before they are moved into the store together."""

ENTRY_OVERHEAD = 360
"""Estimated bytes per stored prediction besides its id text and payload (the ordered-dict
node and table slot, the entry list, the id's string header, the time float), measured with
tracemalloc (``benchmarks/bench_quality.py``)."""

TOMBSTONES_PER_ENTRY = 0.25
"""Tombstones kept per allowed entry (at least 1,000)."""

_TOMBSTONE_OVERHEAD = 200


class Recipient(Protocol):
    """A version's quality monitor, as the store sees it."""

    def count(self, result: str, n: int = 1) -> None:
        """Count ``n`` outcomes (or predictions) as ``result``."""

    def add_outcome(self, payload: Any, actual: Any, delay: float) -> None:
        """Join an outcome with its stored prediction."""

    def add_outcomes(self, items: list[tuple[Any, Any, float]]) -> None:
        """Join a batch of ``(payload, actual, delay)``."""


def payload_bytes(payload: Any) -> int:
    """Estimated memory of a stored payload."""
    if type(payload) is float:
        return 24
    if isinstance(payload, np.ndarray):
        return 112 + int(payload.nbytes)
    return 56 + 8 * len(payload) + sum(49 + len(k) for k in payload)


class PredictionStore:
    """The predictions of one model (all versions) waiting for outcomes; see the module
    docstring.

    Args:
        spec: Bounds (``ttl_seconds``, ``max_entries``, ``max_bytes``,
            ``unknown_grace_seconds``, ``max_unmatched``).
        clock: Wall-clock time in seconds (tests pass a fake).
    """

    def __init__(self, spec: QualitySpec, clock: Callable[[], float] = time.time) -> None:
        self.ttl = float(spec.ttl_seconds)
        self.max_entries = spec.max_entries
        self.max_bytes = spec.max_bytes
        self.grace = float(spec.unknown_grace_seconds)
        self.max_unmatched = spec.max_unmatched
        self.max_tombstones = max(1000, int(spec.max_entries * TOMBSTONES_PER_ENTRY))
        self._clock = clock
        # Multi-process mode: waiting outcomes are settled by the outcome exchange alone (see
        # the module docstring). Kept across reset(): a forked worker is in the mode too.
        self.coordinated = False
        self.reset()

    def reset(self) -> None:
        """Forget everything (also in a forked child: its parent's predictions are not its
        own)."""
        self._lock = threading.Lock()
        # key -> [time, bytes, recipient, payload, more parts or None]
        self._entries: OrderedDict[str, list[Any]] = OrderedDict()
        # key -> (reason, recipient): "matched", "expired" or "evicted"
        self._tombstones: OrderedDict[str, tuple[str, Recipient]] = OrderedDict()
        # key -> (time, actual, recipient, serial): outcomes waiting for their prediction; the
        # serial tells two waits of one key apart (a claim names the one it claimed)
        self._unmatched: OrderedDict[str, tuple[float, Any, Recipient, int]] = OrderedDict()
        self._serials = itertools.count(1)
        # Read by the outcome exchange: how many times the waiting outcomes changed (it
        # republishes them only then), and whether a prediction they wait for has arrived.
        self.waiting_changes = getattr(self, "waiting_changes", 0) + 1
        self.arrived = False
        # predictions queued on the request path, not yet in the store: (key, recipient,
        # payload, time)
        self._queued: list[tuple[str, Recipient, Any, float]] = []
        self._bytes = 0

    @property
    def bytes(self) -> int:
        """Estimated memory of the waiting predictions."""
        self.ingest()
        return self._bytes

    @property
    def entries(self) -> int:
        """Predictions waiting."""
        self.ingest()
        return len(self._entries)

    @property
    def clock(self) -> Callable[[], float]:
        """The wall clock the store's times are read from."""
        return self._clock

    @property
    def waiting_outcomes(self) -> int:
        """Outcomes waiting for their prediction."""
        return len(self._unmatched)

    # -- predictions (request path) ------------------------------------------------------------

    def put(self, key: str, recipient: Recipient, payload: Any, now: float | None = None
            ) -> None:
        """Queue a prediction for storage under ``key`` (request path: one list append).

        Queued predictions enter the store in batches (:meth:`ingest`): when
        :data:`PUT_BATCH` are queued, and before any outcome is joined, any sweep and any
        read, so a join always sees every prediction made before it. A second version's
        prediction under the same id joins the entry. The caller counts the prediction as
        stored. ``now`` is the wall-clock time, when the caller has it already.
        """
        queue = self._queued  # no lock: an append is atomic; ingest() takes with a slice
        queue.append((key, recipient, payload, self._clock() if now is None else now))
        if len(queue) >= PUT_BATCH:
            self.ingest()

    def ingest(self) -> None:
        """Move every queued prediction into the store (one lock round trip for the batch)."""
        queue = self._queued
        if not queue:
            return
        replaced: list[Recipient] = []
        early = []
        with self._lock:
            n = len(queue)
            if not n:  # another thread ingested the queue while this one waited for the lock
                return
            batch = queue[:n]
            del queue[:n]
            entries, unmatched = self._entries, self._unmatched
            for key, recipient, payload, now in batch:
                size = ENTRY_OVERHEAD + len(key) + (
                    24 if type(payload) is float else payload_bytes(payload))
                entry = entries.get(key)
                if entry is None:
                    entries[key] = [now, size, recipient, payload, None]
                    self._bytes += size
                elif entry[2] is recipient:  # the same id twice from one version: last wins
                    self._bytes += size - entry[1]
                    entry[0], entry[1], entry[3], entry[4] = now, size, payload, None
                    replaced.append(recipient)
                else:  # another version (a shadow) predicted under the same id
                    more = [part for part in entry[4] or () if part[0] is not recipient]
                    entry[4] = [*more, (recipient, payload)]
                    entry[1] += size - ENTRY_OVERHEAD
                    self._bytes += size - ENTRY_OVERHEAD
                if unmatched and key in unmatched:
                    if self.coordinated:  # joined by the exchange (the outcome may be
                        self.arrived = True  # published already)
                    else:
                        early.append((key, unmatched.pop(key)))
                        self.waiting_changes += 1
            dropped = self._evict(batch[-1][3])
        # Counted outside the store's lock: a recipient takes its own lock.
        for recipient in replaced:
            recipient.count("replaced")
        self._count_dropped(dropped)
        for key, (_, actual, via, _) in early:
            self.resolve(key, actual, via)

    def _evict(self, now: float) -> list[tuple[str, list[Any]]]:
        """Drop expired entries and the oldest past the bounds (caller holds the lock)."""
        dropped = []
        entries = self._entries
        cutoff = now - self.ttl
        while entries:
            key, entry = next(iter(entries.items()))
            if entry[0] >= cutoff and len(entries) <= self.max_entries \
                    and self._bytes <= self.max_bytes:
                break
            entries.popitem(last=False)
            self._bytes -= entry[1]
            reason = "expired" if entry[0] < cutoff else "evicted"
            self._tombstone(key, reason, entry[2])
            dropped.append((reason, entry))
        return dropped

    def _tombstone(self, key: str, reason: str, recipient: Recipient) -> None:
        tombstones = self._tombstones
        tombstones[key] = (reason, recipient)
        tombstones.move_to_end(key)
        if len(tombstones) > self.max_tombstones:
            tombstones.popitem(last=False)

    @staticmethod
    def _count_dropped(dropped: Sequence[tuple[str, list[Any]]]) -> None:
        if not dropped:
            return
        tally: dict[tuple[int, str], list[Any]] = {}  # one count() per recipient and reason
        for reason, entry in dropped:
            for recipient in (entry[2], *(part[0] for part in entry[4] or ())):
                slot = tally.setdefault((id(recipient), reason), [recipient, 0])
                slot[1] += 1
        for (_, reason), (recipient, n) in tally.items():
            recipient.count(reason, n)

    # -- outcomes ------------------------------------------------------------------------------

    def resolve(self, key: str, actual: Any, via: Recipient, *, wait: bool = True) -> str:
        """Join an outcome with the prediction stored under ``key``.

        Returns the join's result: ``matched`` (the recipients then count matched or invalid
        per pair), ``late``, ``duplicate``, ``waiting`` (kept up to the grace for a prediction
        still to come; ``wait=False`` counts it unknown at once) or ``unknown``. Every result
        but ``matched`` and ``waiting`` is counted here, on the version of the prediction it
        concerns (on ``via``, the probe it was recorded through, when there is none).
        """
        self.ingest()
        now = self._clock()
        with self._lock:
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._bytes -= entry[1]
                if entry[0] < now - self.ttl:  # expired, not yet swept
                    self._tombstone(key, "expired", entry[2])
                    dropped: list[tuple[str, list[Any]]] = [("expired", entry)]
                    result = "late"
                else:
                    self._tombstone(key, "matched", entry[2])
                    dropped, result = [], "matched"
            else:
                dropped = []
                tombstone = self._tombstones.get(key)
                if tombstone is not None:
                    result = "duplicate" if tombstone[0] == "matched" else "late"
                    via = tombstone[1]
                elif wait and self.grace > 0 and len(self._unmatched) < self.max_unmatched \
                        and key not in self._unmatched:
                    self._unmatched[key] = (now, actual, via, next(self._serials))
                    self.waiting_changes += 1
                    result = "waiting"
                else:
                    result = "unknown"
        self._count_dropped(dropped)
        if result == "matched":
            assert entry is not None
            delay = max(now - entry[0], 0.0)
            entry[2].add_outcome(entry[3], actual, delay)
            for recipient, payload in entry[4] or ():
                recipient.add_outcome(payload, actual, delay)
        elif result == "late" and entry is not None:
            entry[2].count("late")
            for recipient, _ in entry[4] or ():
                recipient.count("late")
        elif result != "waiting":
            via.count(result)
        return result

    def resolve_many(self, keys: Sequence[str], actuals: Sequence[Any],
                     via: Recipient) -> None:
        """:meth:`resolve` for a batch, taking the lock once for the whole join."""
        self.ingest()
        join = _Join(self._clock(), self.ttl)
        with self._lock:
            for key, actual in zip(keys, actuals):
                if self._join_known(key, actual, join):
                    continue
                if self.grace > 0 and len(self._unmatched) < self.max_unmatched \
                        and key not in self._unmatched:
                    self._unmatched[key] = (join.now, actual, via, next(self._serials))
                    self.waiting_changes += 1
                else:
                    join.counted.append((via, "unknown"))
        self._count(join)

    def _join_known(self, key: str, actual: Any, join: _Join) -> bool:
        """Join one outcome if this store knows its key (caller holds the lock): with the
        prediction (matched, or late if it expired unswept) or against its tombstone (late,
        duplicate). False, untouched, for a key it does not know."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry[1]
            if entry[0] < join.cutoff:
                self._tombstone(key, "expired", entry[2])
                join.dropped.append(("expired", entry))
                join.counted.append((entry[2], "late"))
                join.counted += [(r, "late") for r, _ in entry[4] or ()]
                return True
            self._tombstone(key, "matched", entry[2])
            delay = max(join.now - entry[0], 0.0)
            for recipient, payload in [(entry[2], entry[3]), *(entry[4] or ())]:
                join.joined.setdefault(id(recipient), (recipient, []))[1].append(
                    (payload, actual, delay))
            return True
        tombstone = self._tombstones.get(key)
        if tombstone is None:
            return False
        join.counted.append((tombstone[1], "duplicate" if tombstone[0] == "matched" else "late"))
        return True

    def _count(self, join: _Join) -> None:
        # Outside the store's lock: a recipient takes its own lock.
        self._count_dropped(join.dropped)
        for recipient, result in join.counted:
            recipient.count(result)
        for recipient, items in join.joined.values():
            recipient.add_outcomes(items)

    def sweep(self) -> None:
        """Expire old predictions and count outcomes that waited past the grace as unknown
        (runs at collect time; a coordinated store leaves its waiting outcomes to the
        exchange)."""
        self.ingest()
        now = self._clock()
        unknown = []
        with self._lock:
            dropped = self._evict(now)
            waiting = self._unmatched
            cutoff = now - self.grace
            while waiting and not self.coordinated:
                key, (t, _, via, _) = next(iter(waiting.items()))
                if t >= cutoff:
                    break
                waiting.popitem(last=False)
                self.waiting_changes += 1
                unknown.append(via)
        self._count_dropped(dropped)
        for via in unknown:
            via.count("unknown")

    # -- the multi-worker seam (mlprobe._mp_outcomes) ------------------------------------------

    def waiting(self) -> list[tuple[str, int, float, Any, Recipient]]:
        """The outcomes waiting for a prediction: ``(key, serial, time, actual, recipient)``,
        oldest first (for publication to the other workers)."""
        with self._lock:
            return [(k, n, t, a, via) for k, (t, a, via, n) in self._unmatched.items()]

    def oldest_waiting(self) -> float | None:
        """When the oldest waiting outcome was recorded (None: none waits)."""
        with self._lock:
            for t, *_ in self._unmatched.values():
                return t
        return None

    def known(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` this store holds a prediction or a tombstone of (what it would
        join now as matched, late or duplicate)."""
        self.ingest()
        with self._lock:
            entries, tombstones = self._entries, self._tombstones
            return {k for k in keys if k in entries or k in tombstones}

    def join_foreign(self, outcomes: Sequence[tuple[str, Any]], via: Recipient, *,
                     claimed: bool = False) -> list[str]:
        """Join outcomes another worker received: each whose key this store knows is counted
        here (matched, late or duplicate, on the version of its prediction) and its key
        returned; the others are left alone, not counted. ``claimed``: the caller has claimed
        every one of them (:mod:`mlprobe._mp_outcomes`), so each is counted here, once: one
        whose key this store no longer knows (its tombstone just dropped) counts ``unknown``
        on ``via``."""
        self.ingest()
        join = _Join(self._clock(), self.ttl)
        out = []
        with self._lock:
            for key, actual in outcomes:
                if self._join_known(key, actual, join):
                    out.append(key)
                elif claimed:
                    join.counted.append((via, "unknown"))
        self._count(join)
        return out

    def forget(self, claims: Iterable[tuple[str, int]]) -> int:
        """Drop the waiting outcomes ``(key, serial)`` another worker has claimed (they are
        counted there); return how many were still waiting."""
        return len(self.take_waiting(claims))

    def take_waiting(self, claims: Iterable[tuple[str, int]]
                     ) -> list[tuple[str, float, Any, Recipient]]:
        """Remove the waiting outcomes ``(key, serial)`` still waiting and return them as
        ``(key, time, actual, recipient)``: the caller joins or counts each, once."""
        out = []
        with self._lock:
            unmatched = self._unmatched
            for key, serial in claims:
                waiting = unmatched.get(key)
                if waiting is not None and waiting[3] == serial:
                    del unmatched[key]
                    self.waiting_changes += 1
                    out.append((key, waiting[0], waiting[1], waiting[2]))
        return out


class _Join:
    """What one batch join found, counted after the store's lock is released."""

    __slots__ = ("counted", "cutoff", "dropped", "joined", "now")

    def __init__(self, now: float, ttl: float) -> None:
        self.now, self.cutoff = now, now - ttl
        self.joined: dict[int, tuple[Recipient, list[tuple[Any, Any, float]]]] = {}
        self.counted: list[tuple[Recipient, str]] = []
        self.dropped: list[tuple[str, list[Any]]] = []
