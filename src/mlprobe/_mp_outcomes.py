"""The outcome exchange: every outcome counted once, in the worker holding its prediction.

Under several workers an outcome (``record_outcome(id, label)``) may reach another worker than
the one whose :class:`~mlprobe._outcomes.PredictionStore` holds the prediction. The receiving
worker keeps it waiting (up to ``unknown_grace_seconds``), and the workers settle it between
them through one small file each, ``mlprobe-outcomes-<worker>.state``, written atomically by
the publisher thread every interval (never on the request path)::

    waiting   [(model, key, serial, time, label, version)]: outcomes this worker received (or
              adopted from a dead worker) whose prediction it does not hold, not yet settled
    claims    [(receiver, model, key, serial)]: outcomes other workers list that this worker
              has claimed, kept until their receiver no longer lists them
    adopted   [worker]: dead workers whose files this worker has taken over

Every cycle a worker reads the others' files and drops (``forget``) its waiting outcomes that
another worker has claimed. When it has something to decide it takes the directory lock,
reads every file afresh, and

- **claims** each outcome another worker lists, unclaimed, whose key it knows (it holds the
  prediction, or the prediction's tombstone: matched, expired or evicted);
- **settles** its own waiting outcomes, unclaimed: joins those whose prediction has arrived
  here since, counts ``unknown`` those that waited ``unknown_grace_seconds``;
- **adopts** a dead worker's unclaimed waiting outcomes and its claims, then deletes its file.

It writes its own file (claims added, settled outcomes left out) before it releases the lock,
and counts only after that write succeeded: the joins it claimed (matched, late or duplicate,
on the version that made the prediction) and its settled outcomes.

Why each outcome is counted exactly once: a worker counts an outcome only after deciding it
under the lock, from files read under the lock, and publishing the decision: a claim is in the
claimer's file before the claimer counts; a settled outcome has left its receiver's file before
the receiver counts. So a holder cannot claim what its receiver counted unknown (the
receiver's file no longer lists it), and a receiver cannot count unknown what a holder claimed
(it sees the claim). Outside the lock a worker only adds waiting outcomes to its file or drops
what is decided already (forgotten outcomes, claims their receiver no longer lists, adopted
names whose file is gone), which changes no decision. Serials tell two waits of one key at one
worker apart. A worker that dies between publishing a decision and counting it loses that
outcome (counted nowhere, never twice). An adopter names the dead worker in ``adopted``
before deleting its file, so a file left by an adopter that died in between is not adopted
twice.

Latency: a waiting outcome is in its receiver's file within one interval and claimed at the
holder's next cycle, so it is joined within about two intervals; ``unknown_grace_seconds``
must be at least :data:`JOIN_INTERVALS` intervals (checked when the probe is created).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._mp_files import FORMAT, encode
from ._mp_outcome_files import (
    Claim,
    LocalQuality,
    OutcomeFile,
    OutcomeFiles,
    file_name,
    plain_label,
)
from ._outcomes import PredictionStore

if TYPE_CHECKING:
    from ._mp_merge import Merger

__all__ = ["JOIN_INTERVALS", "OutcomeExchange"]

_log = logging.getLogger("mlprobe")

JOIN_INTERVALS = 2
"""Publish intervals within which an outcome reaching another worker is joined (the least
``unknown_grace_seconds`` allowed in multi-process mode)."""


class _Decision:
    """What one locked exchange decided, counted once the lock is released."""

    def __init__(self) -> None:
        self.claimed: list[tuple[str, str, Any, str]] = []  # (model, key, label, version)
        self.settled: dict[str, list[tuple[str, int]]] = {}  # model -> [(key, serial)]
        self.orphans: list[tuple[str, str, Any, str]] = []  # adopted ones settled here
        self.overflow: list[tuple[str, str]] = []  # (model, version): adopted past the bound
        self.known: dict[str, set[str]] = {}


class OutcomeExchange:
    """One worker's side of the exchange (see the module docstring); run by the publisher."""

    def __init__(self, merger: Merger) -> None:
        self.merger = merger
        # One exchange at a time in this process: only it writes this worker's file and
        # changes the claims, the adopted names and the orphans below.
        self._lock = threading.Lock()
        self._files = OutcomeFiles(merger.directory)
        self._claims: set[Claim] = set()
        self._adopted: set[str] = set()
        # Outcomes adopted from dead workers: (model, key, serial) -> (time, label, version).
        # Negative serials: never those of this worker's stores.
        self._orphans: dict[tuple[str, str, int], tuple[float, Any, str]] = {}
        self._orphan_serials = itertools.count(-1, -1)
        self._written: dict[str, Any] | None = None  # this worker's file as last written
        # each store's waiting outcomes as listed in the file, with the store's change count
        self._listed: dict[str, tuple[int, list[tuple[str, str, int, float, Any, str]]]] = {}
        self.closed = False
        self.decisions = 0  # locked exchanges that published a decision (tests, benchmarks)

    def close(self) -> None:
        """Exchange no more (this worker is exiting: its file stays for a live worker)."""
        with self._lock:
            self.closed = True

    def run(self) -> None:
        """One cycle: forget what others claimed; decide under the lock when there is
        something to decide, else publish this worker's waiting outcomes if they changed."""
        with self._lock:
            if self.closed:
                return
            local = LocalQuality(self.merger.registry.sources)
            if not local.stores and self._written is None:
                return
            me = self.merger.worker().name
            files = self._read(me)
            self._forget_claimed(files, me, local)
            self._drop_decided(files)
            if not (local.stores and self._pending(files, me, local)):
                self._write(me, self._content(local, self._claims, self._orphans,
                                              self._adopted))
                return
            try:
                with self.merger.directory.locked():
                    decision = self._decide(me, local)
            except TimeoutError as exc:  # nothing was decided: again next cycle
                _log.warning("mlprobe: outcome exchange skipped: %s", exc)
                return
            self._count(decision, local)

    # -- reading -------------------------------------------------------------------------------

    def _read(self, me: str) -> dict[str, OutcomeFile]:
        """Every other worker's file, with whether it lives."""
        return self._files.read(me, self.merger.alive, self.merger.unmerged)

    def _forget_claimed(self, files: Mapping[str, OutcomeFile], me: str,
                        local: LocalQuality) -> None:
        """Drop this worker's waiting outcomes that another worker has claimed."""
        forget: dict[str, list[tuple[str, int]]] = {}
        for f in files.values():
            for receiver, model, key, serial in f.claims:
                if receiver != me:
                    continue
                if serial < 0:
                    self._orphans.pop((model, key, serial), None)
                elif model in local.stores:
                    forget.setdefault(model, []).append((key, serial))
        for model, claims in forget.items():
            local.stores[model].forget(claims)

    def _drop_decided(self, files: Mapping[str, OutcomeFile]) -> None:
        """Drop claims their receiver no longer lists, and adopted names whose file is gone
        (neither comes back: a receiver never lists a settled outcome again)."""
        self._claims = {(r, m, k, n) for r, m, k, n in self._claims
                        if r in files and n in files[r].index.get(m, {}).get(k, ())}
        self._adopted = {name for name in self._adopted if name in files}

    def _pending(self, files: Mapping[str, OutcomeFile], me: str, local: LocalQuality) -> bool:
        """True when a locked exchange would decide something (a cheap look, unlocked)."""
        void = self._adopted.union(*(f.adopted for f in files.values()))
        if any(not f.alive or f.name in void for f in files.values()):
            return True  # a dead worker's file to adopt (or a void one to delete)
        wanted: dict[str, set[str]] = {}
        for f in files.values():
            for model, keys in f.index.items():
                if model in local.stores:
                    wanted.setdefault(model, set()).update(keys)
        for store in local.stores.values():
            # a prediction arrived for a waiting outcome, or the oldest waited the grace
            store.ingest()  # (queued predictions: arrived is set as they enter the store)
            oldest = store.oldest_waiting()
            if store.arrived or (oldest is not None and oldest < store.clock() - store.grace):
                return True
        for (model, key, _), (t, _, _) in self._orphans.items():
            store = local.stores.get(model)
            if store is None or t < store.clock() - store.grace \
                    or store.known((key,)):
                return True
        claimed = self._claims.union(*(f.claims for f in files.values()))
        for model, keys in wanted.items():
            for key in local.stores[model].known(keys):  # known here: claimed already?
                for f in files.values():
                    for serial in f.index.get(model, {}).get(key, ()):
                        if (f.name, model, key, serial) not in claimed:
                            return True
        return False

    # -- deciding (under the directory lock) ---------------------------------------------------

    def _decide(self, me: str, local: LocalQuality) -> _Decision:
        """Decide from every file read afresh, publish the decision, then commit it."""
        files = self._read(me)
        self._forget_claimed(files, me, local)
        decision = _Decision()
        claimed = self._claims.union(*(f.claims for f in files.values()))
        void = self._adopted.union(*(f.adopted for f in files.values()))
        for store in local.stores.values():
            store.arrived = False  # (before the snapshot: a later arrival sets it again)
        own = {model: store.waiting() for model, store in local.stores.items()}
        wanted: dict[str, set[str]] = {m: {item[0] for item in items} for m, items in own.items()}
        for model, key, _ in self._orphans:
            wanted.setdefault(model, set()).add(key)
        live = [f for f in files.values() if f.name not in void]
        for f in live:
            for model, key, serial, *_ in f.waiting:
                if model in local.stores and (f.name, model, key, serial) not in claimed:
                    wanted.setdefault(model, set()).add(key)
        known = decision.known = {m: local.stores[m].known(keys) for m, keys in wanted.items()
                                  if m in local.stores}
        claims = set(self._claims)
        for f in live:  # claims: other workers' outcomes whose key this worker knows
            for model, key, serial, _, label, version in f.waiting:
                claim = (f.name, model, key, serial)
                if claim not in claimed and key in known.get(model, ()):
                    claims.add(claim)
                    claimed.add(claim)
                    decision.claimed.append((model, key, label, version))
        orphans, adopted = self._adopt(me, [f for f in live if not f.alive], claimed, claims,
                                       local, decision)
        excluded = set()
        for model, items in own.items():  # this worker's: joined here, or unknown
            store = local.stores[model]
            cutoff = store.clock() - store.grace
            for key, serial, t, _, _ in items:
                if (me, model, key, serial) in claimed:
                    continue
                if key in known[model] or t < cutoff:
                    decision.settled.setdefault(model, []).append((key, serial))
                    excluded.add((model, key, serial))
        for slot, (t, label, version) in list(orphans.items()):
            model, key, serial = slot
            store = local.stores.get(model)
            if store is None:  # (its probe was removed: a test's registry) nowhere to count
                del orphans[slot]
            elif (me, model, key, serial) not in claimed and (
                    key in known.get(model, ()) or t < store.clock() - store.grace):
                decision.orphans.append((model, key, label, version))
                del orphans[slot]
        # Publish before anything changes here: if the write fails nothing was decided.
        self._write(me, self._content(local, claims, orphans, adopted, excluded))
        self._claims, self._orphans, self._adopted = claims, orphans, adopted
        for name in [f.name for f in files.values() if not f.alive or f.name in void]:
            self.merger.directory.remove(file_name(name))
        self.decisions += 1
        return decision

    def _adopt(self, me: str, dead: list[OutcomeFile], claimed: set[Claim], claims: set[Claim],
               local: LocalQuality, decision: _Decision
               ) -> tuple[dict[tuple[str, str, int], tuple[float, Any, str]], set[str]]:
        """Take over dead workers' unclaimed waiting outcomes and their claims."""
        orphans = dict(self._orphans)
        adopted = set(self._adopted)
        for f in dead:
            for model, key, serial, t, label, version in f.waiting:
                if (f.name, model, key, serial) in claimed:
                    continue
                store = local.stores.get(model)
                if store is None:
                    _log.warning("mlprobe: an outcome of model %r left by a dead worker has "
                                 "no store here; dropped", model)
                elif len(orphans) >= store.max_unmatched:
                    decision.overflow.append((model, version))
                else:
                    orphans[(model, key, next(self._orphan_serials))] = (t, label, version)
            # (its claims on this worker's outcomes were forgotten when its file was read)
            claims |= {claim for claim in f.claims if claim[0] != me}
            adopted.add(f.name)
        return orphans, adopted

    # -- publishing and counting ---------------------------------------------------------------

    def _content(self, local: LocalQuality, claims: set[Claim],
                 orphans: Mapping[tuple[str, str, int], tuple[float, Any, str]],
                 adopted: set[str], excluded: set[tuple[str, str, int]] | None = None
                 ) -> dict[str, Any]:
        waiting = []
        for model, store in local.stores.items():
            listed = self._listed_of(model, store, local)
            if excluded:
                listed = [e for e in listed if (e[0], e[1], e[2]) not in excluded]
            waiting += listed
        waiting += [(m, k, n, t, label, v) for (m, k, n), (t, label, v) in orphans.items()]
        return {"waiting": waiting, "claims": sorted(claims), "adopted": sorted(adopted)}

    def _listed_of(self, model: str, store: PredictionStore, local: LocalQuality
                   ) -> list[tuple[str, str, int, float, Any, str]]:
        """A store's waiting outcomes as the file lists them, rebuilt only after a change."""
        changes = store.waiting_changes  # read first: a change after it rebuilds next time
        cached = self._listed.get(model)
        if cached is not None and cached[0] == changes:
            return cached[1]
        listed = [(model, key, serial, t, plain_label(label), local.version_of.get(id(via), ""))
                  for key, serial, t, label, via in store.waiting()]
        self._listed[model] = (changes, listed)
        return listed

    def _write(self, me: str, content: dict[str, Any]) -> None:
        """Write this worker's file atomically (remove it when empty; skip it if unchanged)."""
        if content == self._written:
            return
        name = file_name(me)
        if not any(content.values()):
            self.merger.directory.remove(name)
            self._written = None
            return
        self.merger.directory.write(name, encode({"format": FORMAT, "worker": me, **content}))
        self._written = content

    def _count(self, decision: _Decision, local: LocalQuality) -> None:
        """Count what was decided (after the lock: the joins take the stores' locks)."""
        claimed: dict[tuple[str, str], list[tuple[str, Any]]] = {}
        for model, key, label, version in decision.claimed:
            claimed.setdefault((model, version), []).append((key, label))
        for (model, version), outcomes in claimed.items():
            local.stores[model].join_foreign(outcomes, local.recipient(model, version),
                                             claimed=True)
        for model, pairs in decision.settled.items():
            store, known = local.stores[model], decision.known[model]
            for key, _, label, via in store.take_waiting(pairs):
                if key in known:
                    store.join_foreign([(key, label)], via, claimed=True)
                else:
                    via.count("unknown")
        for model, key, label, version in decision.orphans:
            via = local.recipient(model, version)
            if key in decision.known.get(model, ()):
                local.stores[model].join_foreign([(key, label)], via, claimed=True)
            else:
                via.count("unknown")
        for model, version in decision.overflow:
            local.recipient(model, version).count("unknown")


