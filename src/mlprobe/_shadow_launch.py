"""Starting a shadow's candidate process, and the handle the serving process keeps on it.

:func:`launch` creates the two pipes and starts the child with ``fork`` (a copy of this
process running :func:`mlprobe._shadow_child.forked`; the candidate need not pickle) or
``spawn`` (a new interpreter running :func:`mlprobe._shadow_child.spawned`, which reads the
pickled candidate from its pipe first). :class:`Child` keeps the serving process's ends of the
pipes and reaps the child; :class:`Restarts` says when to start another after a failure;
:class:`WakePipe` lets other threads end the runner thread's wait on the child's pipe.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

from ._mp_process import helper_fork
from ._shadow_child import MULTIPROCESS_VARIABLE, forked
from ._shadow_compare import Comparer

__all__ = ["MAX_FAILURES", "MAX_RESTART_SECONDS", "RESTART_SECONDS", "Child", "Restarts",
           "WakePipe", "describe", "launch"]

RESTART_SECONDS = 0.5
"""Delay before the first restart of a failed child; it doubles with each failure in a row,
up to :data:`MAX_RESTART_SECONDS`."""

MAX_RESTART_SECONDS = 60.0

MAX_FAILURES = 5
"""Failures in a row (no answer in between) after which the shadow gives up."""

_BOOT = ("import sys; sys.path.insert(0, {path!r}); "
         "from mlprobe._shadow_child import spawned; spawned()")


class Child:
    """One child process: its pid, the serving process's ends of its pipes, its exit."""

    def __init__(self, pid: int, to_child: int, from_child: int,
                 popen: subprocess.Popen[bytes] | None) -> None:
        self.pid, self.to_child, self.from_child, self._popen = pid, to_child, from_child, popen
        self.status: int | None = None  # exit code; negative: the signal that ended it
        self._lock = threading.Lock()  # reaping and killing: never kill a reaped (reused) pid

    def poll(self) -> int | None:
        """The exit code once the child ended (it is then reaped), else None."""
        with self._lock:
            if self.status is None:
                if self._popen is not None:
                    self.status = self._popen.poll()
                else:
                    try:
                        pid, status = os.waitpid(self.pid, os.WNOHANG)
                    except ChildProcessError:  # reaped by someone else (a SIGCHLD handler)
                        pid, status = self.pid, 255 << 8
                    if pid:
                        self.status = os.waitstatus_to_exitcode(status)
            return self.status

    def kill(self) -> None:
        """SIGKILL it unless it was reaped."""
        with self._lock:
            if self.status is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the exit code."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        return self.status

    def close_fds(self) -> None:
        """Close the serving process's ends of the pipes."""
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_child = self.from_child = -1


class Restarts:
    """When to start a failed child again, and when to give up (one runner's bookkeeping)."""

    def __init__(self) -> None:
        self.failures = 0  # in a row: an answer from a child resets it
        self.at = 0.0  # monotonic time of the next start

    def answered(self) -> None:
        """The child answered: whatever failed before is forgiven."""
        self.failures = 0

    def failed(self) -> float | None:
        """A child failed: seconds until the next one starts, or None to give up."""
        self.failures += 1
        if self.failures >= MAX_FAILURES:
            return None
        delay = min(MAX_RESTART_SECONDS, RESTART_SECONDS * 2 ** (self.failures - 1))
        self.at = time.monotonic() + delay
        return delay


class WakePipe:
    """A pipe the runner thread waits on with its child's (``select``): another thread ends
    the wait by writing a byte, one per wait however many times it is woken."""

    def __init__(self) -> None:
        self.fd = self._write_fd = -1  # fd: the end to wait on; -1: not open (a write fails)
        self.woken = False
        """A byte was written since the last wait ended (another wake writes nothing)."""

    def open(self) -> None:
        """Open the pipe in this process (never blocking: a full pipe is woken already)."""
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        os.set_blocking(self._write_fd, False)

    def wake(self, *, again: bool = False) -> None:
        """End the current (or next) wait; ``again``: even if woken since the last one."""
        if again or not self.woken:
            self.woken = True
            try:
                os.write(self._write_fd, b"\0")
            except OSError:  # full (it cannot be) or closed (closing): the tick still runs
                pass

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds`` (a wake ends it sooner)."""
        select.select([self.fd], [], [], seconds)
        self.drain()

    def drain(self) -> None:
        """Take the bytes written (the wait they asked to end has ended)."""
        self.woken = False
        try:
            while os.read(self.fd, 4096):
                pass
        except OSError:
            pass

    def close(self) -> None:
        """Close both ends (a forked process: they are its parent's)."""
        for fd in (self.fd, self._write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.fd = self._write_fd = -1


def describe(status: int | None) -> str:
    if status is None:
        return "stopped answering"
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = str(-status)
        return f"was killed by signal {-status} ({name})"
    return f"exited with code {status}"


def launch(start_method: str, candidate: Callable[..., Any], comparer: Comparer,
           nice: int) -> Child:
    """Start a child running ``candidate`` and comparing its outputs with ``comparer``
    (raises OSError when it cannot be started)."""
    fds: list[int] = []
    try:
        to_r, to_w = os.pipe()
        fds += (to_r, to_w)
        from_r, from_w = os.pipe()
        fds += (from_r, from_w)
        popen = None
        if start_method == "fork":
            pid = _fork(candidate, comparer, to_r, from_w, nice)
        else:
            # where this copy of mlprobe is imported from: the child imports the same one
            root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
            popen = subprocess.Popen(
                [sys.executable, "-c", _BOOT.format(path=root), str(to_r), str(from_w),
                 str(os.getpid()), str(nice)],
                pass_fds=(to_r, from_w), stdin=subprocess.DEVNULL, close_fds=True,
                env={k: v for k, v in os.environ.items() if k != MULTIPROCESS_VARIABLE})
            pid = popen.pid
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    os.close(to_r)
    os.close(from_w)
    # The serving process never blocks on the child: it writes what fits, reads what came.
    os.set_blocking(to_w, False)
    os.set_blocking(from_r, False)
    return Child(pid, to_w, from_r, popen)


def _fork(candidate: Callable[..., Any], comparer: Comparer, read_fd: int, write_fd: int,
          nice: int) -> int:
    for stream in (sys.stdout, sys.stderr):  # else the child may write their buffers too
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110
            pass
    parent = os.getpid()
    helper_fork.active = True  # the after-fork hooks of multi-process mode read it in the child
    try:
        if sys.version_info < (3, 12):
            pid = os.fork()
        else:
            with warnings.catch_warnings():
                # 3.12+ warns that forking a multi-threaded process may deadlock the child:
                # it runs only the candidate, and a child that hangs is killed (timeout).
                warnings.simplefilter("ignore", DeprecationWarning)
                pid = os.fork()
    finally:
        if os.getpid() == parent:
            helper_fork.active = False
    if pid == 0:
        forked(read_fd, write_fd, candidate, comparer, parent, nice)  # never returns
    return pid
