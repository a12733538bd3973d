"""A shadow's candidate run in a background thread of the serving process
(``isolation="thread"``, the default; see :mod:`mlprobe._shadow`).

The thread takes the calls the request path queued, runs the candidate on each, timed here,
and records them (:class:`~mlprobe._shadow_record.CandidateRecorder`). It shares the
interpreter with the requests, so how it hands the GIL back decides what a request waits:

- it wakes on a tick (or when calls pile up), never once per call: a thread switch per
  request was most of what a shadow cost a server;
- after each stretch of work (:func:`stretch`: 50 µs while it keeps up) it sleeps
  :data:`PAUSE_SECONDS`. A
  thread that only releases the GIL and takes it again (``sleep(0)``) keeps it: the waiting
  request thread has not woken up yet when it is taken back; a real sleep lets it in
  (measured: a request's median wait behind a scikit-learn candidate fell from ~200 µs with
  ``sleep(0)`` every 0.5 ms to ~45 µs);
- outputs are compared in batches (:class:`~mlprobe._shadow_compare.Comparer`).

What it cannot avoid: a request arriving while the candidate is in the middle of a call waits
for the rest of that call (the interpreter takes the GIL away from a thread only after 5 ms),
and the candidate's work evicts the primary's data from the CPU caches. For a candidate doing
real work, ``isolation="process"`` takes both off the serving process.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._background import BackgroundThread
from ._shadow_child import run_call
from ._shadow_record import CandidateRecorder

__all__ = ["MAX_YIELD_SECONDS", "PAUSE_SECONDS", "TICK_SECONDS", "ThreadRunner", "WAKE_ITEMS",
           "YIELD_SECONDS", "stretch"]

TICK_SECONDS = 0.05
"""The runner drains the queue at least this often."""

WAKE_ITEMS = 32
"""Queued calls that wake the runner at once; fewer wait for its next tick."""

YIELD_SECONDS = 50e-6
"""Longest stretch of work (whole calls) between two pauses while the runner keeps up."""

MAX_YIELD_SECONDS = 1e-3
"""The stretch it allows itself when its queue is nearly full (see :func:`stretch`)."""

PAUSE_SECONDS = 0.0001
"""The pause: long enough for a request thread waiting for the GIL to take it."""


def stretch(fill: float) -> float:
    """Seconds of work between two pauses for a queue ``fill`` (0 to 1) full.

    Short stretches keep what a request waits for the GIL short; when the runner falls behind
    (past an eighth of the queue) they grow linearly up to :data:`MAX_YIELD_SECONDS`, so that
    a sustained load costs some tail latency before calls are dropped (the flusher's rule,
    :func:`mlprobe._flusher.flusher_pace`).
    """
    if fill <= 0.125:
        return YIELD_SECONDS
    return YIELD_SECONDS + min(1.0, (fill - 0.125) / 0.875) * (MAX_YIELD_SECONDS - YIELD_SECONDS)


class ThreadRunner:
    """Runs the candidate on queued calls in a daemon thread (one per process)."""

    held = 0
    """Calls taken off the queue and not recorded yet (the queue bound counts them)."""

    disabled = False
    """Never: a thread runner does not give up (see the process runner)."""

    def __init__(self, queue: deque[tuple[Any, Any, Any, Any]], candidate: Callable[..., Any],
                 recorder: CandidateRecorder, queue_size: int) -> None:
        self._queue = queue
        self._queue_size = queue_size
        self._candidate = candidate
        self._recorder = recorder
        self._thread = BackgroundThread(self._loop, "mlprobe-shadow")

    def start(self) -> None:
        """Start the thread in this process (first call, or first call after a fork)."""
        self.held = 0
        self._thread.forget()
        self._thread.ensure_running()

    def wake(self) -> None:
        """Calls piled up: drain now rather than at the next tick."""
        event = self._thread.wake
        if not event.is_set():  # set() takes a lock: skip it when nothing would change
            event.set()

    def busy(self) -> bool:
        """A call is being run or recorded."""
        return self.held > 0

    def hurry(self) -> None:
        """Run the queued calls now (``Shadow.join``)."""
        self.wake()

    def close(self, timeout: float) -> None:
        """Finish what is queued (up to ``timeout`` seconds), then end the thread."""
        self._thread.stop()
        self._thread.join(timeout)

    def _loop(self) -> None:
        queue, recorder, candidate = self._queue, self._recorder, self._candidate
        thread, clock = self._thread, time.perf_counter
        wake = thread.wake
        while True:
            wake.wait(TICK_SECONDS)
            wake.clear()
            started = clock()
            while queue:
                self.held = 1  # before popping: join() sees either the item or this
                args, kwargs, primary_result, prediction_id = queue.popleft()
                start, end, result, error = run_call(candidate, args, kwargs, clock)
                recorder.record(prediction_id, end - start, result, error, primary_result,
                                True)
                if clock() - started >= stretch(len(queue) / self._queue_size):
                    time.sleep(PAUSE_SECONDS)  # a request waiting for the GIL takes it now
                    started = clock()
            recorder.drained()  # the last comparisons: only then is nothing held
            self.held = 0
            if thread.stopped:
                return

