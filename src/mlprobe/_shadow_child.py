"""The candidate's process of a shadow with ``isolation="process"``: run the calls, send back
what happened.

The serving process (:mod:`mlprobe._shadow_process`) starts this process and talks to it over
two pipes, in frames (:mod:`mlprobe._shadow_wire`):

- serving process -> child: a batch of calls ``(args, kwargs, primary_result)``; an empty
  frame asks the child to exit once it has answered every call. A child started with
  ``spawn`` first gets ``(sys.path, pickled (candidate, comparer))``.
- child -> serving process: ``("results", outcomes, comparison)``: the outcomes
  ``(duration, result, error_type)`` of the calls in the order they came, and the counts of
  comparing their outputs with the primary's (:class:`~mlprobe._shadow_compare.Comparer`:
  that work is done here, not in the serving process), at least every :data:`FLUSH_SECONDS`
  while it works; or ``("fatal", reason)`` when it cannot run the candidate at all (a
  spawned child that cannot unpickle it), after which it exits.

It never outlives the serving process: it exits when its input pipe reaches end of file (the
serving process closed it or died), a watchdog thread exits when the parent pid changes, and
on Linux the kernel kills it when the thread that started it ends (``PR_SET_PDEATHSIG``), even
while the candidate is stuck in C code.

A forked child starts as a copy of the serving process, with one thread (see
"Fork safety" in ``docs/quality.md``): it first drops what belongs to the server (sockets and
pipes: client connections must close when the server closes them, not when this process
exits; Python signal handlers and asyncio's wake-up fd; multi-process publishing, so it never
counts as a worker), lowers its priority, and freezes the inherited objects out of the
garbage collector's reach so that its collections do not copy the shared pages.
"""

from __future__ import annotations

import gc
import os
import pickle
import signal
import stat
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .stats._labels import error_label
from ._shadow_wire import Outcome, encode, pack_results, read_frames, unpack_calls, write_all

if TYPE_CHECKING:  # the child imports no more than it needs before it runs the candidate
    from ._shadow_compare import Comparer

__all__ = ["FLUSH_SECONDS", "MULTIPROCESS_VARIABLE", "forked", "spawned"]

MULTIPROCESS_VARIABLE = "MLPROBE_MULTIPROCESS_DIR"
"""The variable that turns multi-process mode on: never set in a candidate's process."""

FLUSH_SECONDS = 0.02
"""Longest time a finished call's outcome waits in the child before it is sent."""


def run_call(candidate: Callable[..., Any], args: Any, kwargs: Any,
             clock: Callable[[], float]) -> tuple[float, float, Any, str | None]:
    """Call the candidate once: ``(start, end, result, error type)`` (one of the last two is
    None). The candidate's own exceptions are its errors, counted, never raised here."""
    start = clock()
    try:
        result, error = candidate(*args, **kwargs), None
    except BaseException as exc:  # noqa: BLE001 - the candidate's error, counted
        result, error = None, error_label(exc)
    return start, clock(), result, error


Done = tuple[float, Any, "str | None", Any]
"""A call run here: ``(duration, result, error_type, primary_result)``."""


def _send_results(fd: int, done: list[Done], comparer: Comparer) -> None:
    """Send the outcomes of ``done`` and the comparison of their outputs with the primary's.

    A result that cannot be pickled makes its call the candidate's ``UnpicklableResult``
    error, left out of the comparison, as an error is."""
    outcomes: list[Outcome] = [(duration, result, error) for duration, result, error, _ in done]
    outputs = [(primary, result) for _, result, error, primary in done if error is None]
    try:
        frame = encode(("results", pack_results(outcomes), _compare(comparer, outputs)))
    except Exception:  # noqa: BLE001 - some result cannot be pickled: that call fails alone
        checked: list[Done] = []
        for duration, result, error, primary in done:
            try:
                pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:  # noqa: BLE001
                result, error = None, "UnpicklableResult"
            checked.append((duration, result, error, primary))
        _send_results(fd, checked, comparer)
        return
    write_all(fd, frame)


def serve(frames: Iterator[bytes], write_fd: int, candidate: Callable[..., Any],
          comparer: Comparer) -> None:
    """Run the calls of ``frames`` until the empty frame or end of file."""
    clock = time.perf_counter
    for body in frames:
        if not body:
            return
        done: list[Done] = []
        flushed = clock()
        for args, kwargs, primary_result in unpack_calls(pickle.loads(body)):
            start, end, result, error = run_call(candidate, args, kwargs, clock)
            done.append((end - start, result, error, primary_result))
            if end - flushed >= FLUSH_SECONDS:  # the serving process sees progress
                _send_results(write_fd, done, comparer)
                done, flushed = [], clock()
        if done:
            _send_results(write_fd, done, comparer)


def _compare(comparer: Comparer, outputs: list[tuple[Any, Any]]) -> Any:
    """The comparison's counts; a failure (a bug of mlprobe's) is reported to the serving
    process, which counts it as an internal error, and costs the candidate nothing."""
    try:
        return comparer.compare(outputs)
    except Exception as exc:  # noqa: BLE001
        return ("failed", f"{type(exc).__name__}: {exc}")


# -- becoming a helper process ------------------------------------------------------------


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except Exception:  # noqa: BLE001, S110 - the watchdog below still covers it
            pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    if os.getppid() != parent_pid:  # the parent died before the death signal was set
        os._exit(0)
    threading.Thread(target=watch, name="mlprobe-shadow-watchdog", daemon=True).start()


def _quiet_signals() -> None:
    """The server's signal handlers are not this process's: default actions, SIGINT ignored
    (a Ctrl-C stops the server, which then ends this process), no asyncio wake-up fd (a
    signal here would be reported to the server's event loop through it)."""
    try:
        signal.set_wakeup_fd(-1)
    except (ValueError, OSError):
        pass
    for sig in signal.valid_signals():
        try:
            if callable(signal.getsignal(sig)):
                signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _inherited_fds() -> list[int]:
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return [int(name) for name in os.listdir(path)]
        except OSError:
            continue
    return list(range(3, min(os.sysconf("SC_OPEN_MAX"), 1 << 16)))


def _close_server_fds(keep: tuple[int, ...]) -> None:
    """Close inherited sockets and pipes (the server's listening socket, its clients'
    connections, other processes' pipes); regular files stay open for the candidate."""
    for fd in _inherited_fds():
        if fd <= 2 or fd in keep:
            continue
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            continue
        if stat.S_ISSOCK(mode) or stat.S_ISFIFO(mode):
            try:
                os.close(fd)
            except OSError:
                pass


def _become_helper(parent_pid: int, nice: int) -> None:
    _die_with_parent(parent_pid)
    _quiet_signals()
    if nice:
        try:
            os.nice(nice)
        except OSError:
            pass


def forked(read_fd: int, write_fd: int, candidate: Callable[..., Any], comparer: Comparer,
           parent_pid: int, nice: int) -> None:
    """The body of a forked child; never returns (it ends the process)."""
    code = 0
    try:
        # Not a worker (the at-fork hooks saw helper_fork; this is for good measure), and no
        # probe the candidate makes may turn multi-process mode on here.
        merge = sys.modules.get("mlprobe._mp_merge")
        if merge is not None:
            merge.not_a_worker()
        os.environ.pop(MULTIPROCESS_VARIABLE, None)
        gc.freeze()  # inherited objects: never scanned, so their pages stay shared
        _become_helper(parent_pid, nice)
        _close_server_fds((read_fd, write_fd))
        serve(read_frames(read_fd), write_fd, candidate, comparer)
    except BrokenPipeError:
        pass  # the serving process is gone
    except BaseException:  # noqa: BLE001
        code = 70
        traceback.print_exc()
    finally:
        os._exit(code)  # never the parent's atexit handlers, never back into its threads


def spawned() -> None:
    """The body of a spawned child (``python -c``; arguments: fds, parent pid, niceness)."""
    read_fd, write_fd, parent_pid, nice = (int(a) for a in sys.argv[1:5])
    _become_helper(parent_pid, nice)
    frames = read_frames(read_fd)
    try:
        path, blob = pickle.loads(next(frames))
        sys.path[:] = path
        candidate, comparer = pickle.loads(blob)
    except StopIteration:
        return
    except Exception as exc:  # noqa: BLE001 - reported to the serving process, which stops
        write_all(write_fd, encode(("fatal", f"{type(exc).__name__}: {exc}")))
        return
    try:
        serve(frames, write_fd, candidate, comparer)
    except BrokenPipeError:
        pass
