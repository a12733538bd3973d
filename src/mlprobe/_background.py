"""The one background thread of an owner (the flusher, the publisher, a shadow's runner):
started on first use, woken early or stopped through one event, and forgotten in a forked
child. (The OTLP pusher has its own: exporters import only mlprobe's public modules.)

Every owner's loop has the same shape: wait on :attr:`BackgroundThread.wake` for up to its
interval (clearing it, when the owner also wakes it for work) and return once
:attr:`BackgroundThread.stopped` is set; :meth:`stop` sets the flag and then the event, so a
sleeping loop sees the flag as soon as it wakes.

Fork: the thread does not exist in a forked child, and the start lock may have been held by
a parent thread at the fork, so the owner's after-fork hook calls :meth:`forget` (a new lock
and event, no thread); whether to start again there is the owner's decision. ``stopped``
survives a fork: what was stopped in the parent stays stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["BackgroundThread"]


class BackgroundThread:
    """A daemon thread running ``target`` in this process, at most one at a time."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._target = target
        self._name = name
        self.stopped = False
        """:meth:`stop` ran: the loop returns, and nothing starts the thread again."""
        self.forget()

    def forget(self) -> None:
        """Forget the thread, the lock and the event (a forked child: see the module
        docstring); a later :meth:`ensure_running` starts a new thread."""
        self._lock = threading.Lock()  # serialises starting and stopping
        self.wake = threading.Event()
        """Set to end the loop's wait early (a full buffer, piled-up calls, :meth:`stop`)."""
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        """A thread was started in this process (since the last :meth:`forget`)."""
        return self._thread is not None

    def is_alive(self) -> bool:
        """The thread is running."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the thread unless it runs or :meth:`stop` ran (first use, first use after a
        fork, or after the thread died: in tests an internal error kills it)."""
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            thread = self._thread
            if self.stopped or (thread is not None and thread.is_alive()):
                return
            thread = threading.Thread(target=self._target, name=self._name, daemon=True)
            thread.start()
            self._thread = thread

    def stop(self) -> bool:
        """Tell the loop to return and never start again; True the first time."""
        with self._lock:
            first = not self.stopped
            self.stopped = True
        self.wake.set()
        return first

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the thread to end (not from the thread
        itself, which would wait for ever)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
