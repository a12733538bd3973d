"""The background flusher: one daemon thread per process ingests every monitor's buffered rows.

Why a thread: ingesting buffered rows is a few milliseconds of numpy work per few thousand
rows. Done inline, one request in every few thousand paid for all the others' rows (a 2.7 ms
p99.99 for a 3 µs call). Here no request ingests anything but its own large batches.

Why it pauses between steps: under the GIL a background thread delays whatever request thread
wants to run while it holds the interpreter. A thread that keeps the GIL is only made to hand
it over after the switch interval (5 ms by default), so the flusher instead gives it up after
every small step (one feature of one flush, tens of microseconds) with a short sleep, in
which a waiting request thread takes the interpreter. A request is then delayed by at most
one step. The price is paid by the flusher: when request threads keep the interpreter busy
all the time, it gets about one step per switch interval and falls behind; the monitors'
buffers absorb the backlog up to their byte bound, past which rows are dropped and counted
(``mlprobe_feature_dropped_rows_total``), never waited for.

Life cycle: started lazily by the first buffered row, a daemon (it never keeps a process
alive), stopped and joined at interpreter exit, and restarted lazily in a forked child (the
parent's thread does not exist there). It never raises: a failing monitor is counted as an
internal error and the others are still flushed (in tests, where internal errors are
raised, it dies loudly instead, and the next buffered row starts a new one).

Besides feature monitors it flushes any buffer that asks (:meth:`Flusher.request`): the score
histograms' buffered arrays.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from ._background import BackgroundThread
from ._guard import report_internal_error

__all__ = ["COLLECT_BUDGET_S", "STEP_BUDGET_S", "Flusher", "flusher", "flusher_pace", "pause"]

FLUSH_INTERVAL_S = 0.5
"""Longest time a buffered row waits for the flusher (a full buffer wakes it sooner)."""

PAUSE_S = 0.0001
"""Sleep between two stretches of steps: long enough for a waiting thread to take the GIL."""

STEP_BUDGET_S = 40e-6
"""Longest stretch of ingestion steps the background flusher runs between two pauses while
it keeps up (see :func:`flusher_pace`)."""

COLLECT_BUDGET_S = 1e-3
"""Stretch of ingestion steps between pauses when a collect (a scrape, a status call)
ingests what is buffered, or waits for the flusher to finish: a scrape may take a little
longer, a request is held up by at most about this much."""

MAX_STEP_BUDGET_S = 1e-3
"""The stretch it allows itself when the buffer is nearly full (see :func:`flusher_pace`)."""

CYCLE_ROWS = 4096
"""Single rows the background flusher ingests per cycle while it keeps up (it bounds the
length of each step); four times as many when it falls behind."""


def flusher_pace(fill: float) -> tuple[float, int]:
    """``(step budget in seconds, rows per cycle)`` for a buffer ``fill`` (0 to 1) full.

    When request threads keep the interpreter busy all the time, the flusher gets the GIL
    back only once per switch interval (5 ms), so its throughput is what it does per
    stretch. Short stretches (40 µs) keep up with any realistic request rate and delay a
    request by at most that much. Past an eighth of the buffer it is falling behind: the
    stretch grows linearly with the fill up to 1 ms and the cycles grow fourfold (per-row
    cost falls with cycle size), so that a sustained overload costs some tail latency first
    and drops rows (counted) only when even that does not keep up.
    """
    if fill <= 0.125:
        return STEP_BUDGET_S, CYCLE_ROWS
    share = min(1.0, (fill - 0.125) / 0.875)
    return STEP_BUDGET_S + share * (MAX_STEP_BUDGET_S - STEP_BUDGET_S), 4 * CYCLE_ROWS


class Flushable(Protocol):
    """What the flusher drives: a monitor that ingests its buffer in pausable steps."""

    def flush_in_background(self, pause: Callable[[], None]) -> None:
        """Ingest buffered rows, calling ``pause()`` between steps."""


class Flusher:
    """One background thread flushing every registered monitor (see the module docstring)."""

    def __init__(self) -> None:
        self._monitors: weakref.WeakSet[Flushable] = weakref.WeakSet()
        self._thread = BackgroundThread(self._run, "mlprobe-flusher")
        # The request path's call (batch calls make it every time): straight to the thread's
        # method, one call less. The thread object stays the same across forks.
        self.ensure_running = self._thread.ensure_running
        """Start the thread if it is not running (first row, or first row after a fork)."""
        self._init_thread_state()

    def _init_thread_state(self) -> None:
        # Also the after-fork reset: a lock held by a parent thread at fork time would never
        # be released in the child, and the parent's thread does not exist there.
        self._lock = threading.Lock()  # guards _requests and _monitors
        self._thread.forget()
        self._requests: dict[int, Any] = {}  # id -> object whose flush() is due (deduplicated)
        self.cycles = 0  # flush cycles run (read by tests and benchmarks)

    def register(self, monitor: Flushable) -> None:
        """Flush ``monitor`` from now on (weakly held: a dropped monitor is forgotten)."""
        with self._lock:
            self._monitors.add(monitor)

    def wake(self) -> None:
        """Ask for a flush now (a buffer reached its flush threshold)."""
        self.ensure_running()
        event = self._thread.wake
        if not event.is_set():  # set() takes a lock: skip it when nothing would change
            event.set()

    def request(self, buffer: Any) -> None:
        """Ask for ``buffer.flush()`` on the flusher's thread soon (a histogram's buffered
        values); asking again before it ran changes nothing."""
        with self._lock:
            self._requests[id(buffer)] = buffer
        self.wake()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread and wait up to ``timeout`` seconds for it (interpreter exit)."""
        self._thread.stop()
        self._thread.join(timeout)

    def _run(self) -> None:
        thread = self._thread
        event = thread.wake
        while not thread.stopped:
            event.wait(FLUSH_INTERVAL_S)
            event.clear()
            if thread.stopped:
                break
            self.cycles += 1
            with self._lock:
                requests, self._requests = list(self._requests.values()), {}
            for buffer in requests:
                try:
                    buffer.flush()
                except Exception as exc:  # noqa: BLE001 - the flusher must never die
                    report_internal_error("instruments.flusher", exc)
            for monitor in list(self._monitors):
                try:
                    monitor.flush_in_background(pause)
                except Exception as exc:  # noqa: BLE001 - the flusher must never die
                    report_internal_error("features.flusher", exc)

    def _after_fork_in_child(self) -> None:
        self._init_thread_state()


def pause() -> None:
    """Give the GIL up for a moment (between two stretches of ingestion steps)."""
    time.sleep(PAUSE_S)


flusher = Flusher()
"""The process's flusher."""

atexit.register(flusher.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=flusher._after_fork_in_child)
