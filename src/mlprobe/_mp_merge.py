"""One worker's side of multi-process mode: publish its state, read and merge the others'.

A :class:`Merger` is attached to a registry (``registry.merger``) by
:func:`mlprobe.multiprocess.enable`. It

- *publishes*: every mergeable source's ``state().to_dict(parts)`` in one file, written
  atomically; frozen parts (closed window sub-buckets) are pickled once and reused until they
  leave. The background publisher does it every interval, and every collect does it first, so
  that a scrape answered by another worker next never shows less than this one just did;
- *reads*: the other workers' latest files and the archive of dead workers (in that order: see
  :mod:`mlprobe._mp_archive`), each parsed once per change, each frozen part rebuilt once;
- *merges*, for a collect (:class:`View`): its own live state plus every other state of the
  same key and fingerprint; a dead worker's state (its file not yet folded) without its
  live gauges. Drift, quantiles and statuses are then computed once, on the merged state.

What cannot be merged is counted, never raised: a state whose settings differ from this
worker's (``settings_differ``), one this worker has no source for (``unknown_source``), one
that cannot be read (``unreadable``): ``mlprobe_unmerged_worker_states{reason}``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from . import _guard
from ._mp_archive import fold
from ._mp_files import ARCHIVE, EXPORTER_LOCK, FORMAT, Directory, decode, encode
from ._mp_ledger import Ledger, ServerId, stream_start
from ._mp_outcomes import OutcomeExchange
from ._mp_process import WorkerId, current_worker, is_alive, is_helper
from ._registry import FamilyBuilder, Registry
from ._source import is_mergeable as mergeable
from .snapshot import Sample

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: multiprocess.enable refuses
    fcntl = None  # type: ignore[assignment]

__all__ = ["Entry", "Merger", "Origin", "View", "not_a_worker"]

_log = logging.getLogger("mlprobe")

REASONS = ("settings_differ", "unknown_source", "unreadable")

Entry = tuple[Any, str, dict, dict]
"""One source's published state: ``(key, fingerprint, state dict, {uid: part bytes})``."""


class Origin:
    """Another worker's published file, or the archive, as read for one collect."""

    __slots__ = ("alive", "entries", "errors", "name")

    def __init__(self, name: str, alive: bool, errors: int, entries: list[Entry]) -> None:
        self.name, self.alive, self.errors, self.entries = name, alive, errors, entries


class Merger:
    """Publishes this worker's states and merges the other workers' (module docstring)."""

    def __init__(self, registry: Registry, directory: Directory, ledger: Ledger,
                 server: ServerId, *, interval: float,
                 worker: Callable[[], WorkerId] = current_worker,
                 alive: Callable[[WorkerId], bool] = is_alive) -> None:
        self.registry = registry
        self.directory = directory
        self.ledger = ledger
        self.server = server
        self.interval = interval
        self.worker = worker
        self.alive = alive
        self.unmerged: Counter[str] = Counter()
        self._streams: dict[tuple[Any, str], int] = {}
        self.closed = False  # final() ran: this worker's state is in the archive
        self._new_process_state()
        _mergers.add(self)

    def _new_process_state(self) -> None:
        # Also the after-fork reset (see after_fork): nothing here may be held by a thread
        # that does not exist in the child.
        self._publish_lock = threading.Lock()  # orders this worker's file writes
        self._files: dict[str, tuple[tuple[int, int, int], Any]] = {}
        self._parts: dict[tuple[str, Any, str], Any] = {}
        self._written_parts: dict[tuple[Any, str], bytes] = {}
        self._export_fd: int | None = None
        self._export_pid = 0
        self.published = 0  # files written (read by tests and benchmarks)
        self.outcomes = OutcomeExchange(self)  # outcomes joined across workers

    def after_fork(self) -> None:
        """Called in a forked child: a new worker, with nothing of its parent's locks."""
        if self._export_fd is not None:
            try:  # the parent's fcntl lock is not the child's; close our copy of its fd
                os.close(self._export_fd)
            except OSError:
                pass
        self.closed = False  # a new worker: it publishes its own state
        self._new_process_state()

    # -- streams -------------------------------------------------------------------------------

    def stream_start(self, key: object, source: object, cached_only: bool = False) -> int:
        """The start time of ``source``'s merged stream (the ledger's, see _mp_ledger)."""
        if not mergeable(key, source):
            return time.time_ns()
        fingerprint = source.fingerprint()  # type: ignore[attr-defined]
        start = self._streams.get((key, fingerprint))
        if start is None:
            if cached_only:
                return time.time_ns()
            try:
                start = stream_start(self.directory, self.server, key, fingerprint)
            except (OSError, TimeoutError, RuntimeError) as exc:
                _log.warning("mlprobe: cannot record a stream start in %s (%s); using now",
                             self.directory.path, exc)
                return time.time_ns()
            self._streams[(key, fingerprint)] = start
        if not cached_only:  # (after a fork, the publisher restarts its own thread)
            from ._mp_publisher import publisher  # a new source starts the publisher thread

            publisher.ensure_running()
        return start

    # -- publishing ----------------------------------------------------------------------------

    def own_states(self, sources: Mapping[object, Any]) -> dict[object, Any]:
        """The states of this worker's mergeable sources (buffers applied first)."""
        return {key: source.state() for key, source in sources.items()
                if mergeable(key, source)}

    def publish(self, sources: Mapping[object, Any] | None = None) -> dict[object, Any]:
        """Write this worker's states; return them (the states it wrote, for a collect)."""
        sources = self.registry.sources if sources is None else sources
        with self._publish_lock:
            states = self.own_states(sources)
            # After final() this worker's counts are in the archive: a new file would count
            # them twice (what it records from now on is lost; it is exiting).
            if states and not self.closed:
                self.directory.write(Directory.worker_file(self.worker().name),
                                     self.encode(states))
                self.published += 1
            return states

    def encode(self, states: Mapping[object, Any]) -> bytes:
        """This worker's file: every state, its frozen parts pickled once (cached by uid)."""
        return encode({"format": FORMAT, "worker": self.worker().name,
                       "published_ns": time.time_ns(), "errors": _guard.local_error_count(),
                       "sources": self.entries(states, cache=True)})

    def entries(self, states: Mapping[object, Any], *, cache: bool = False) -> list[Entry]:
        """``[key, fingerprint, state dict, {uid: part bytes}]`` per state. With ``cache``,
        parts already written keep their bytes (this worker's file: a closed sub-bucket is
        pickled once in its life)."""
        entries, used = [], set()
        sources = self.registry.sources
        for key, state in states.items():
            parts: dict[str, Any] = {}
            data = state.to_dict(parts)
            blobs = {}
            for uid, part in parts.items():
                blob = self._written_parts.get((key, uid)) if cache else None
                if blob is None:
                    blob = encode(part.to_dict())
                    if cache:
                        self._written_parts[(key, uid)] = blob
                blobs[uid] = blob
                used.add((key, uid))
            entries.append([key, sources[key].fingerprint(), data, blobs])
        if cache:
            for gone in [k for k in self._written_parts if k not in used]:
                del self._written_parts[gone]
        return entries

    # -- reading -------------------------------------------------------------------------------

    def load(self, name: str) -> Any:
        """The decoded file ``name`` (cached until it changes), or None if it is gone."""
        try:
            info = os.stat(self.directory.file(name))
        except FileNotFoundError:
            self._files.pop(name, None)
            return None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        cached = self._files.get(name)
        if cached is not None and cached[0] == signature:
            return cached[1]
        found = self.directory.read(name)
        if found is None:
            return None
        data, info = found
        decoded = decode(data)
        if not isinstance(decoded, dict) or decoded.get("format") != FORMAT:
            raise ValueError(f"{name} is not a state file of this mlprobe version")
        self._files[name] = ((info.st_ino, info.st_size, info.st_mtime_ns), decoded)
        return decoded

    def origins(self) -> list[Origin]:
        """Every other worker's latest state and the archive, read consistently: the worker
        files first, the archive last, and files the archive has folded left out."""
        me = self.worker().name
        origins, seen = [], set()
        for file_name, worker_name, marked_dead in self.directory.worker_files():
            if worker_name == me:
                continue
            seen.add(file_name)
            decoded = self._load_counted(file_name)
            if decoded is None:
                continue
            worker = WorkerId.parse(worker_name)
            alive = not marked_dead and worker is not None and self.alive(worker)
            origins.append(Origin(worker_name, alive, int(decoded.get("errors", 0)),
                                  decoded["sources"]))
        archive = self._load_counted(ARCHIVE)
        if archive is not None:
            seen.add(ARCHIVE)
            folded = archive.get("folded", {})
            origins = [o for o in origins if o.name not in folded]
            origins.append(Origin("archive", False, int(archive.get("errors", 0)),
                                  archive["sources"]))
        # (list(): a snapshot taken in one step, while another thread may insert; the publisher
        # thread folds with these caches while a scrape reads)
        for gone in [n for n in list(self._files) if n not in seen]:
            self._files.pop(gone, None)
        names = {o.name for o in origins}
        for gone in [k for k in list(self._parts) if k[0] not in names]:
            self._parts.pop(gone, None)
        return origins

    def _load_counted(self, name: str) -> Any:
        try:
            return self.load(name)
        except Exception as exc:  # noqa: BLE001 - a file this worker cannot read is counted
            self.unmerged["unreadable"] += 1
            _log.warning("mlprobe: cannot read %s in %s: %r", name, self.directory.path, exc)
            return None

    def rebuild(self, origin: str, key: object, source: Any, data: dict,
                blobs: Mapping[str, bytes]) -> Any:
        """The state of ``source``'s key in another origin's entry (parts rebuilt once)."""
        parts = {}
        for uid, blob in blobs.items():
            cache_key = (origin, key, uid)
            part = self._parts.get(cache_key)
            if part is None:
                part = self._parts[cache_key] = source.part_from_dict(decode(blob))
            parts[uid] = part
        return source.state_from_dict(data, parts)

    # -- merging -------------------------------------------------------------------------------

    def view(self, sources: Mapping[object, Any]) -> View:
        """Everything one collect needs: this worker's states (published first) and the
        others' (see the module docstring)."""
        own = self.publish(sources)
        return View(self, own, self.origins())

    def merged_state(self, key: object, source: Any) -> Any:
        """One source's state merged with the other workers' (``drift_status``, the page)."""
        if not mergeable(key, source):
            return source.state()
        return View(self, {key: source.state()}, self.origins()).state(key, source)

    def exchange_outcomes(self) -> None:
        """Settle outcomes that reached another worker than their prediction (see
        :mod:`mlprobe._mp_outcomes`); the publisher runs it every cycle, before publishing,
        so what it counts is in the same cycle's file."""
        if not self.closed:
            self.outcomes.run()

    # -- deaths --------------------------------------------------------------------------------

    def fold_dead(self) -> int:
        """Fold the files of workers that died into the archive; return how many."""
        if self.closed:
            return 0
        me = self.worker().name
        dead = []
        for file_name, worker_name, marked_dead in self.directory.worker_files():
            if worker_name == me:
                continue
            worker = WorkerId.parse(worker_name)
            if marked_dead or worker is None or not self.alive(worker):
                dead.append((file_name, worker_name))
        if dead:
            fold(self, dead)
        return len(dead)

    def final(self) -> None:
        """At exit: fold this worker's last state into the archive and remove its file (once;
        afterwards this worker publishes nothing)."""
        with self._publish_lock:
            if self.closed:
                return
            # A last exchange first (what it counts must be in the folded state), then none:
            # this worker's waiting outcomes stay in its file, for a live worker to adopt.
            try:
                self.outcomes.run()
            except Exception as exc:  # noqa: BLE001 - the fold below must happen anyway
                _guard.report_internal_error("multiprocess.final", exc)
            self.outcomes.close()
            self.closed = True
            states = self.own_states(self.registry.sources)
            if states or os.path.exists(self.directory.file(
                    Directory.worker_file(self.worker().name))):
                fold(self, [], own=states)

    # -- the exporting worker ------------------------------------------------------------------

    def exports_here(self) -> bool:
        """True in the one live worker that holds the exporter lock (taken when free)."""
        if fcntl is None:
            return True
        pid = os.getpid()
        if self._export_fd is not None and self._export_pid == pid:
            return True
        fd = os.open(self.directory.file(EXPORTER_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        # Kept open for the process's life: the lock goes when the process goes, even by
        # SIGKILL, and another worker takes it at its next try.
        self._export_fd, self._export_pid = fd, pid
        return True


class View:
    """This worker's states and the other origins' for one collect (see Merger.view)."""

    def __init__(self, merger: Merger, own: dict[object, Any], origins: list[Origin]) -> None:
        self.merger = merger
        self.own = own
        self.origins = origins
        self.unmerged: Counter[str] = Counter()
        by_key: dict[Any, list[tuple[Origin, Entry]]] = {}
        for origin in origins:
            for entry in origin.entries:
                by_key.setdefault(_hashable(entry[0]), []).append((origin, entry))
        self._by_key = by_key
        # Internal errors are process-wide counts: the others' join this worker's.
        _guard.set_elsewhere(sum(o.errors for o in origins))

    def state(self, key: object, source: Any) -> Any:
        """``source``'s own state merged with every other origin's state of ``key``."""
        state = self.own.get(key)
        if state is None:
            state = source.state()
        fingerprint = source.fingerprint()
        for origin, (_, their_fingerprint, data, blobs) in sorted(
                self._by_key.get(_hashable(key), ()), key=lambda item: item[0].name):
            if their_fingerprint != fingerprint:
                self.unmerged["settings_differ"] += 1
                continue
            try:
                other = self.merger.rebuild(origin.name, key, source, data, blobs)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                self.unmerged["unreadable"] += 1
                _log.debug("mlprobe: state of %r from %s unreadable: %r", key, origin.name, exc)
                continue
            state.merge(other if origin.alive else other.archived())
        return state

    def collect_into(self, key: object, source: Any, builder: FamilyBuilder) -> None:
        """Report ``source`` merged with the other workers (or alone, if not mergeable)."""
        if not mergeable(key, source):
            source.collect_into(builder)
            return
        self.state(key, source).collect_into(builder)

    def report(self, builder: FamilyBuilder, sources: Mapping[object, Any]) -> None:
        """Add the multi-process families: live workers merged, states left unmerged."""
        known = {_hashable(k) for k, s in sources.items() if mergeable(k, s)}
        for key, entries in self._by_key.items():
            if key not in known:
                self.unmerged["unknown_source"] += len(entries)
        unmerged = self.unmerged + self.merger.unmerged
        self.merger.unmerged.clear()
        live = 1 + sum(1 for o in self.origins if o.alive)
        start = self.merger.ledger.claimed_ns  # these describe the server's directory
        builder.add("mlprobe_worker_processes", [Sample((), float(live), start)])
        builder.add("mlprobe_unmerged_worker_states", [
            Sample((("reason", reason),), float(unmerged[reason]), start) for reason in REASONS])


_mergers: weakref.WeakSet[Merger] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    helper = is_helper()
    for merger in list(_mergers):
        merger.after_fork()
        if helper:  # a shadow's candidate process is not a worker: it never publishes
            merger.closed = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def not_a_worker() -> None:
    """This process was forked from a worker to help it (a shadow's candidate process): it
    publishes no state, now or at exit, so it never counts as a worker of the server."""
    for merger in list(_mergers):
        merger.closed = True
    from ._mp_publisher import publisher

    publisher.abandon()


def _hashable(key: Any) -> Any:
    # Keys come back from pickle as they went in (tuples of plain values); lists, if any
    # writer produced them, are made tuples so they can key a dict.
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key
