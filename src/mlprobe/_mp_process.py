"""Who is who among a server's processes: worker identities, liveness, the server's identity.

A worker is named by its pid *and* its start time (clock ticks since boot, field 22 of
``/proc/<pid>/stat`` on Linux), so a new process that reuses a dead worker's pid is another
worker: its file has another name, and the dead one is still recognised as dead. A zombie
(killed, not yet reaped by its parent) is dead. Without ``/proc`` (macOS) the start time is 0
and liveness falls back to the pid alone; gunicorn's ``child_exit`` hook
(:func:`mlprobe.multiprocess.child_exit`) then tells the directory which worker died.

A server is its process group: gunicorn's master and its workers, and uvicorn's supervisor and
its ``--workers`` processes, share one. Another server's directory is in use as long as any
process of its group lives.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass

__all__ = ["WorkerId", "current_worker", "group_alive", "helper_fork", "is_alive",
           "is_helper", "process_start"]

helper_fork = threading.local()
"""``helper_fork.active`` is True in a thread while it forks a helper process (a shadow's
candidate), and so in that helper, whose only thread it becomes: the after-fork hooks of
multi-process mode then make it no worker (no publisher thread, nothing published or
archived), instead of a new one."""


def is_helper() -> bool:
    """This process (or this thread, while it forks) is a helper, not a worker."""
    return getattr(helper_fork, "active", False)

_NAME = re.compile(r"(\d+)-(\d+)")


@dataclass(frozen=True, slots=True)
class WorkerId:
    """One process: its pid and its start time (0 when the system does not tell)."""

    pid: int
    start: int

    @property
    def name(self) -> str:
        """``<pid>-<start>``: how the worker's files are named."""
        return f"{self.pid}-{self.start}"

    @classmethod
    def parse(cls, name: str) -> WorkerId | None:
        """The worker a ``<pid>-<start>`` name describes, or None."""
        match = _NAME.fullmatch(name)
        return cls(int(match.group(1)), int(match.group(2))) if match else None


def process_start(pid: int) -> int | None:
    """Start time of a *running* process (0 if unknown); None if it is dead or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else _pid_only(pid)
    except OSError:
        return _pid_only(pid)
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the
    # last ")"; the state is field 3 and the start time field 22.
    fields = stat[stat.rfind(b")") + 2:].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def _pid_only(pid: int) -> int | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0  # it exists (another user's)
    return 0


def is_alive(worker: WorkerId) -> bool:
    """True while the process ``worker`` names runs (a reused pid is not it)."""
    start = process_start(worker.pid)
    return start is not None and (start == worker.start or 0 in (start, worker.start))


_current: WorkerId | None = None


def current_worker() -> WorkerId:
    """This process (computed once per pid: a forked child gets its own)."""
    global _current
    me = _current
    pid = os.getpid()
    if me is None or me.pid != pid:
        me = _current = WorkerId(pid, process_start(pid) or 0)
    return me


def group_alive(pgid: int) -> bool:
    """True while any process of process group ``pgid`` exists."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
