"""The publisher: a thread that writes this worker's state every interval, and at exit.

Never on the request path: a daemon thread (``mlprobe-publisher``) wakes every interval
(1 s by default), publishes each multi-process registry's states (:meth:`Merger.publish`) and
folds the files of workers that died (:meth:`Merger.fold_dead`). At interpreter exit it stops
and each registry folds its own last state into the archive (:meth:`Merger.final`), so a
worker recycled by gunicorn leaves no file behind. A worker killed with SIGKILL leaves its
last published file (at most one interval old), which the others fold: it loses at most what
it recorded during its last interval.

Fork: the thread does not exist in a forked child; it is started again there if it ran in the
parent (each merger forgets its parent's locks in :mod:`mlprobe._mp_merge`'s at-fork hook).
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import TYPE_CHECKING

from ._background import BackgroundThread
from ._guard import report_internal_error
from ._mp_process import is_helper

if TYPE_CHECKING:
    from ._mp_merge import Merger

__all__ = ["Publisher", "publisher"]


class Publisher:
    """One thread publishing every registered merger (see the module docstring)."""

    def __init__(self) -> None:
        self._mergers: weakref.WeakSet[Merger] = weakref.WeakSet()
        self._thread = BackgroundThread(self._run, "mlprobe-publisher")
        self._init_thread_state()

    def _init_thread_state(self) -> None:
        self._lock = threading.Lock()  # guards _mergers
        self._thread.forget()
        self.cycles = 0  # publish cycles run (read by tests)

    def add(self, merger: Merger) -> None:
        """Publish ``merger`` from now on (weakly held)."""
        with self._lock:
            self._mergers.add(merger)

    def remove(self, merger: Merger) -> None:
        """Stop publishing ``merger``."""
        with self._lock:
            self._mergers.discard(merger)

    def ensure_running(self) -> None:
        """Start the thread if it is not running (called when a source is created)."""
        self._thread.ensure_running()

    def interval(self) -> float:
        """Seconds between two cycles: the shortest interval of the registered mergers."""
        return min((m.interval for m in list(self._mergers)), default=1.0)

    def run_once(self) -> None:
        """One cycle: settle outcomes across workers, publish every merger, then fold dead
        workers' files (tests call it)."""
        self.cycles += 1
        for merger in list(self._mergers):
            try:
                merger.exchange_outcomes()
                merger.publish()
                merger.fold_dead()
            except Exception as exc:  # noqa: BLE001 - the publisher must never die
                report_internal_error("multiprocess.publish", exc)

    def _run(self) -> None:
        thread = self._thread
        while not thread.wake.wait(self.interval()):  # set only by stop()
            self.run_once()

    def finish(self, timeout: float = 2.0) -> None:
        """Stop the thread and fold every merger's last state into its archive (at exit)."""
        self._thread.stop()
        self._thread.join(timeout)
        for merger in list(self._mergers):
            try:
                merger.final()
            except Exception as exc:  # noqa: BLE001 - exiting must not raise
                report_internal_error("multiprocess.final", exc)

    def abandon(self) -> None:
        """Stop the thread without publishing or archiving anything (a helper process forked
        from a worker, such as a shadow's candidate process: not a worker itself)."""
        self._thread.stop()

    def _after_fork_in_child(self) -> None:
        # (each merger forgets its parent's locks in mlprobe._mp_merge's own at-fork hook)
        was_running = self._thread.started
        self._init_thread_state()
        if is_helper():  # a shadow's candidate process: it publishes nothing, ever
            self._thread.stop()
        elif was_running:
            self.ensure_running()


publisher = Publisher()
"""The process's publisher."""

atexit.register(publisher.finish)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=publisher._after_fork_in_child)
