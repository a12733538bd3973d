"""A shadow's candidate run in a child process (``isolation="process"``; see
:mod:`mlprobe._shadow`), and the serving process's side of it.

One daemon thread of the serving process (``mlprobe-shadow``) owns the child: it starts it at
the first call (fork, or spawn), moves the queued calls into its input pipe in batches (one
pickle per batch, written without blocking), reads the outcomes back and records them
(:class:`~mlprobe._shadow_record.CandidateRecorder`: the same metrics as a thread). The
request path only copies the call's arguments and appends them to the shadow's queue, as with
a thread.

Bounded everywhere: calls queued plus calls in the child are at most ``queue_size`` (more are
dropped and counted); one batch at a time is being written. When the child dies (a crash, a
kill, ``os._exit`` in the candidate) or runs one call for longer than ``timeout`` (then it is
killed), the call it was running counts as the candidate's error ``ShadowProcessDied`` or
``ShadowTimeout`` and the calls it held as dropped; a new child starts after a back-off
(:class:`~mlprobe._shadow_launch.Restarts`: 0.5 s, doubling), and after 5 failures in a row
without an answer in between the shadow gives up: it logs why and drops every call from then
on. Nothing of this reaches the request path, which never waits for the child.

Fork: a serving process forked after its shadow started (a gunicorn worker from a master that
made calls) closes its copies of the parent's pipes and starts its own child at its first
call; the parent's child stays the parent's.
"""

from __future__ import annotations

import logging
import os
import pickle
import select
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

from ._guard import report_internal_error
from ._shadow_compare import Comparer
from ._shadow_counts import Comparison, ShadowCounters
from ._shadow_launch import Child, Restarts, WakePipe, describe, launch
from ._shadow_record import CandidateRecorder
from ._shadow_thread import PAUSE_SECONDS, TICK_SECONDS, WAKE_ITEMS, stretch
from ._shadow_wire import FrameReader, encode, encode_calls, unpack_results

__all__ = ["BATCH_CALLS", "DIED", "ProcessRunner", "TIMED_OUT"]

_log = logging.getLogger("mlprobe")

BATCH_CALLS = 64
"""Calls per frame sent to the child at most."""

STOP_SECONDS = 2.0
"""How long a closing shadow waits for its child to exit before killing it."""

DIED = "ShadowProcessDied"
"""Error type of the call a child was running when it died."""

TIMED_OUT = "ShadowTimeout"
"""Error type of the call a child was killed for (it ran longer than ``timeout``)."""


class ProcessRunner:
    """Runs the candidate in a child process; records its outcomes in this one."""

    def __init__(self, queue: deque[tuple[Any, Any, Any, Any]], candidate: Callable[..., Any],
                 comparer: Comparer, recorder: CandidateRecorder, counters: ShadowCounters,
                 *, queue_size: int, start_method: str, nice: int, timeout: float,
                 name: str) -> None:
        self._queue = queue
        self._queue_size = queue_size
        self._candidate = candidate
        self._comparer = comparer
        self._recorder = recorder
        self._counters = counters
        self.start_method = start_method
        self.nice = nice
        self.timeout = timeout
        self.name = name
        # spawn: pickled once (the constructor checked it can be); unpickled by each child
        self._blob = pickle.dumps((candidate, comparer)) if start_method == "spawn" else b""
        self._closing = False
        self._reset()
        _runners.add(self)

    def _reset(self) -> None:
        """This process's runner as new: no thread, no child (construction, and a fork)."""
        self.held = 0
        """Calls taken off the queue and not recorded yet (the queue bound counts them)."""
        self.disabled = False
        """The runner gave up (the log says why): every call is dropped."""
        self._thread: threading.Thread | None = None
        self._wake = WakePipe()
        self._out_of_time = False  # close() killed the child
        self._hurry = False
        self._sent_at = 0.0  # when the last batch went (monotonic)
        self._child: Child | None = None
        self._pending: deque[Any] = deque()  # the prediction id of each call sent
        self._outgoing = b""
        self._reader = FrameReader()
        self._since = 0.0  # last sign of progress while calls are pending (monotonic)
        self._restarts = Restarts()
        self._warned_pickle = False

    # -- called from other threads ---------------------------------------------------------

    def start(self) -> None:
        """Start the runner thread in this process (first call, or first after a fork)."""
        self.held = 0
        self._wake.open()
        self._thread = threading.Thread(target=self._run, name="mlprobe-shadow", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Calls piled up: send them now rather than at the next tick (one byte per cycle)."""
        wake = self._wake
        if not wake.woken:  # (checked here: each request calls this while calls pile up)
            wake.wake()

    def busy(self) -> bool:
        """Calls are in the child, or being recorded."""
        return self.held > 0

    def hurry(self) -> None:
        """Send the queued calls now, however few (``Shadow.join``)."""
        self._hurry = True
        self.wake()

    def close(self, timeout: float) -> None:
        """Finish what is queued (up to ``timeout`` seconds), stop the child, end the thread;
        a child still running then is killed."""
        self._closing = True
        self._wake.wake(again=True)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        child = self._child
        if thread.is_alive() and child is not None:
            self._out_of_time = True  # its call counts as timed out, not as a crash
            child.kill()  # the thread sees the end of its pipe and finishes
            child.wait(STOP_SECONDS)
            thread.join(STOP_SECONDS)

    def child_pid(self) -> int | None:
        """The pid of the running child (tests and diagnostics)."""
        child = self._child
        return None if child is None else child.pid

    # -- the runner thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                child = self._child
                if child is None:  # not started yet, or waiting to restart
                    if self.disabled or self._closing:
                        return
                    remaining = self._restarts.at - time.monotonic()
                    if remaining > 0:
                        self._wake.sleep(remaining)
                    else:
                        self._start_child()
                    continue
                self._cycle(child)
                if self._closing and self._child is child and not (
                        self._queue or self._pending or self._outgoing):
                    self._stop(child)
                    return
        except Exception as exc:  # noqa: BLE001 - a bug here must not go unnoticed
            self.disabled = True  # calls are dropped (counted) rather than queued for no one
            report_internal_error("shadow.process", exc)
        finally:
            child = self._child
            if child is not None:
                self._stop(child)
            self._drop_queued()

    def _cycle(self, child: Child) -> None:
        # The queued calls go in batches: when WAKE_ITEMS are queued (the request path wakes
        # this thread then), else once per tick. Sending whatever had queued each time the
        # child answered made small batches, and each costs the serving process a wake-up
        # and a round of pickling, mostly cache misses (measured: ~3x the CPU per call).
        now = time.monotonic()
        due = self._sent_at + TICK_SECONDS
        wait = max(0.0, due - now)
        if self._pending:
            wait = max(0.0, min(wait, self._since + self.timeout - now))
        readable, writable, _ = select.select(
            [child.from_child, self._wake.fd], [child.to_child] if self._outgoing else [], [],
            wait)
        if self._wake.fd in readable:
            self._wake.drain()
        if child.from_child in readable and not self._receive(child):
            return
        now = time.monotonic()
        if not self._outgoing and (now >= due or len(self._queue) >= WAKE_ITEMS
                                   or self._closing or self._hurry):
            self._sent_at = now
            self._hurry = False
            self._fill()
        if self._outgoing and not self._send(child):
            return
        if self._pending and time.monotonic() - self._since > self.timeout:
            self._lost(child, TIMED_OUT, f"ran one call for more than {self.timeout:g} s and "
                                         "was killed")
        elif not readable and child.poll() is not None:  # ended without closing its pipe?
            self._lost(child, DIED, describe(child.status))

    def _start_child(self) -> None:
        try:
            child = launch(self.start_method, self._candidate, self._comparer, self.nice)
        except OSError as exc:
            self._failed(f"could not be started ({exc})")
            return
        self._reader = FrameReader()
        self._since = time.monotonic()
        if self.start_method == "spawn":
            self._outgoing = encode((list(sys.path), self._blob))
        self._child = child

    def _fill(self) -> None:
        """Move up to a batch of queued calls into the next frame for the child."""
        queue, pending = self._queue, self._pending
        calls, ids = [], []
        while queue and len(calls) < BATCH_CALLS:
            self.held += 1  # before popping: join() sees either the call or this
            args, kwargs, primary_result, prediction_id = queue.popleft()
            calls.append((args, kwargs, primary_result))
            ids.append(prediction_id)
        if not calls:
            return
        frame, left_out = encode_calls(calls)
        if left_out:  # arguments that do not pickle: dropped, counted, logged once
            self.held -= len(left_out)
            self._counters.drop(len(left_out))
            if not self._warned_pickle:
                self._warned_pickle = True
                exc = left_out[0][1]
                _log.warning("mlprobe: shadow %s: a call's arguments cannot be pickled for the "
                             "candidate's process (%s: %s); such calls are dropped "
                             "(mlprobe_shadow_dropped_total)", self.name, type(exc).__name__,
                             exc)
            out = {i for i, _ in left_out}
            ids = [x for i, x in enumerate(ids) if i not in out]
        if not ids:
            return
        if not pending:
            self._since = time.monotonic()
        pending.extend(ids)
        self._outgoing = frame

    def _send(self, child: Child) -> bool:
        try:
            written = os.write(child.to_child, self._outgoing)
        except BlockingIOError:
            return True
        except OSError:  # the child's end is closed: it died
            self._lost(child, DIED, describe(child.wait(1.0)))
            return False
        self._outgoing = self._outgoing[written:]
        return True

    def _receive(self, child: Child) -> bool:
        try:
            data = os.read(child.from_child, 1 << 20)
        except BlockingIOError:
            return True
        except OSError:
            data = b""
        if not data:  # end of file: the child ended
            self._lost(child, DIED, describe(child.wait(1.0)))
            return False
        for body in self._reader.feed(data):
            message = pickle.loads(body)
            if message[0] == "fatal":
                self._give_up(f"the candidate's process cannot run it: {message[1]}")
                self._stop(child)
                return False
            self._record(unpack_results(message[1]), message[2])
        return True

    def _record(self, outcomes: list[tuple[float, Any, str | None]],
                comparison: Comparison | None) -> None:
        pending, record = self._pending, self._recorder.record
        self._since = time.monotonic()
        self._restarts.answered()
        clock = time.perf_counter
        started = clock()
        done = 0
        for duration, result, error in outcomes:
            if not pending:
                break
            record(pending.popleft(), duration, result, error)
            done += 1
            if clock() - started >= stretch((len(self._queue) + self.held) / self._queue_size):
                time.sleep(PAUSE_SECONDS)  # a request waiting for the GIL takes it now
                started = clock()
        self._recorder.add_comparison(comparison)
        if not pending:
            self._recorder.drained()
        self.held -= done  # after the comparisons: join() returns with them counted

    def _lost(self, child: Child, error_type: str, reason: str) -> None:
        """The child died or hung: account for its calls, then restart it later (or give
        up)."""
        child.kill()
        child.wait(STOP_SECONDS)
        child.close_fds()
        self._child = None
        if self._out_of_time:
            error_type = TIMED_OUT
        pending = self._pending
        if pending:  # the call it was running failed; the others were never run
            self._recorder.record(pending.popleft(), max(0.0, time.monotonic() - self._since),
                                  None, error_type)
            self._counters.drop(len(pending))
            pending.clear()
        self._recorder.drained()
        self.held = 0
        self._outgoing = b""
        if self._closing:
            return
        self._failed(reason)

    def _failed(self, reason: str) -> None:
        delay = self._restarts.failed()
        if delay is None:
            self._give_up(f"{self._restarts.failures} failures in a row; the last: its process "
                          f"{reason}")
            return
        _log.warning("mlprobe: shadow %s: the candidate's process %s; starting a new one in "
                     "%.1f s", self.name, reason, delay)

    def _give_up(self, reason: str) -> None:
        self.disabled = True
        _log.warning("mlprobe: shadow %s stopped: %s. Its calls are dropped from now on "
                     "(mlprobe_shadow_dropped_total).", self.name, reason)
        self._drop_queued()

    def _drop_queued(self) -> None:
        n = 0
        queue = self._queue
        while queue:
            try:
                queue.popleft()
            except IndexError:
                break
            n += 1
        if n:
            self._counters.drop(n)

    def _stop(self, child: Child) -> None:
        """Ask the child to exit, kill it if it does not."""
        if not self._outgoing:  # (after half a frame, the empty frame would not be one)
            try:
                os.write(child.to_child, encode(None))
            except OSError:
                pass
        if child.wait(STOP_SECONDS) is None:
            child.kill()
            child.wait(STOP_SECONDS)
        child.close_fds()
        self._child = None

    def _after_fork_in_child(self) -> None:
        # A forked serving process: the child and the thread are the parent's. Close our
        # copies of the pipes (the parent's child must see end of file when the parent
        # ends); the next call here starts this process's own child.
        child = self._child
        if child is not None:
            child.close_fds()
        self._wake.close()
        self._reset()


_runners: weakref.WeakSet[ProcessRunner] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for runner in list(_runners):
        runner._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
