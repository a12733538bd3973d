"""The archive: what dead workers counted, folded into one file so files do not pile up.

When a worker dies (recycled by gunicorn's ``max_requests``, killed, crashed), its last
published state must keep counting, or the merged counters would go backwards; but one file
per dead worker would pile up. So a live worker (or the dying worker itself, at exit) *folds*
it: under the directory lock it reads the archive, adds the dead worker's states to it (without
their live gauges: no call is in flight in a dead process), writes the archive atomically,
then deletes the dead worker's file. The archive is bounded: one compacted state per source
key and fingerprint (windows keep only their live sub-buckets plus expired totals), a capped
list of states no folder could rebuild yet, and the names of recently folded workers.

Why readers need no lock: the archive records the workers it has folded (``folded``, each
kept for a minute after its file is gone). A reader reads the worker files first and the
archive last, and skips every worker file the archive says it has folded. A worker folded
before the reader listed the directory has no file any more and is in the archive; one folded
after the reader read its file is in the archive *and* named in ``folded``, so it is counted
once; one folded after the reader read the archive is counted from its file. Crash safety is
the same rule: a folder that dies between writing the archive and deleting the file leaves a
file that every reader skips and the next fold deletes.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from . import _guard
from ._mp_files import ARCHIVE, FORMAT, Directory, decode, encode
from ._source import is_mergeable as mergeable

if TYPE_CHECKING:
    from ._mp_merge import Merger

__all__ = ["MAX_UNRESOLVED", "PRUNE_AFTER_S", "fold"]

_log = logging.getLogger("mlprobe")

PRUNE_AFTER_S = 60.0
"""How long a folded worker's name stays in ``folded`` after its file is gone."""

MAX_UNRESOLVED = 256
"""States kept raw because the folder had no source for them (beyond: dropped, logged)."""


def fold(merger: Merger, dead: list[tuple[str, str]], own: dict[Any, Any] | None = None
         ) -> None:
    """Fold the files ``dead`` (``(file name, worker name)``) and, at exit, this worker's own
    final states ``own`` into the archive (see the module docstring)."""
    directory = merger.directory
    sources = merger.registry.sources
    with directory.locked():
        archive = merger.load(ARCHIVE) or {"sources": [], "folded": {}}
        now = time.time_ns()
        present = {worker for _, worker, _ in directory.worker_files()}
        folded = {name: t for name, t in archive.get("folded", {}).items()
                  if name in present or now - t < PRUNE_AFTER_S * 1e9}
        errors = int(archive.get("errors", 0))
        merged: dict[Any, Any] = {}  # key -> state (of the local source's fingerprint: add())
        unresolved: list[Any] = []

        def add(origin: str, entry: list[Any], archived: bool) -> None:
            key, fingerprint, data, blobs = entry
            source = sources.get(key)
            if source is None or not mergeable(key, source) \
                    or source.fingerprint() != fingerprint:
                unresolved.append(entry)
                return
            try:
                state = merger.rebuild(origin, key, source, data, blobs)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                _log.warning("mlprobe: a dead worker's state of %r is unreadable: %r", key, exc)
                return
            add_state(key, state if archived else state.archived())

        def add_state(key: Any, state: Any) -> None:
            if key in merged:
                merged[key].merge(state)
            else:
                merged[key] = state

        for entry in archive["sources"]:
            add("archive", entry, archived=True)
        done = []
        for file_name, worker in dead:
            if worker not in folded:
                try:
                    found = directory.read(file_name)
                    decoded = None if found is None else decode(found[0])
                    entries = [] if decoded is None else list(decoded["sources"])
                    dead_errors = 0 if decoded is None else int(decoded.get("errors", 0))
                except PermissionError:
                    continue  # another user's file: not ours to fold or delete
                except Exception as exc:  # noqa: BLE001 - a file no worker can ever merge
                    _log.warning("mlprobe: %s in %s is unreadable (%r); removing it",
                                 file_name, directory.path, exc)
                    entries, dead_errors = [], 0
                for entry in entries:
                    add(worker, entry, archived=False)
                errors += dead_errors
                folded[worker] = now
            done.append(file_name)
        me = merger.worker().name
        if own is not None:
            for key, state in own.items():
                add_state(key, state.archived())
            errors += _guard.local_error_count()
            folded[me] = now
            done.append(Directory.worker_file(me))
        if len(unresolved) > MAX_UNRESOLVED:
            _log.warning("mlprobe: %d dead workers' states have no source in this worker; "
                         "keeping the newest %d", len(unresolved), MAX_UNRESOLVED)
            unresolved = unresolved[-MAX_UNRESOLVED:]
        version = int(archive.get("version", 0)) + 1
        prefix = f"a{version}-{uuid.uuid4().hex[:8]}-"
        states = {}
        for key, state in merged.items():
            compact = getattr(state, "compacted", None)
            states[key] = compact(prefix) if compact is not None else state
        # (merger.entries writes each key's fingerprint from the local source: the same one)
        directory.write(ARCHIVE, encode({
            "format": FORMAT, "errors": errors, "folded": folded, "version": version,
            "sources": merger.entries(states) + unresolved}))
        for file_name in done:
            directory.remove(file_name)
