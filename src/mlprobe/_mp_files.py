"""The multi-process directory: its files, atomic writes, the lock, and the file codec.

Layout (every name starts with ``mlprobe-``; nothing else in the directory is touched)::

    mlprobe-server.json            the server owning the directory, its start, its streams
    mlprobe.lock                   fcntl lock serialising changes to the two files above+below
    mlprobe-archive.state          the merged counts of workers that died
    mlprobe-worker-<pid>-<start>.state   one live worker's latest published state
    mlprobe-dead-<pid>-<start>.state     the same, marked dead by gunicorn's child_exit
    mlprobe-outcomes-<pid>-<start>.state one worker's outcomes exchange (mlprobe._mp_outcomes)
    mlprobe-exporter.lock          held (fcntl) by the one worker that pushes OTLP
    .mlprobe-tmp-*                 a file being written (renamed over its target when whole)

Atomicity: a file is written under a temporary name and renamed over its target
(``os.replace``), so a reader sees the previous whole file or the new whole file, never a part.
(No fsync: the files must survive the death of a process, which the page cache does, not of
the machine, after which the whole server restarts anyway.)

Locking: ``fcntl.lockf`` locks belong to a process and are never inherited by a forked child,
so a worker forked while another thread held the lock cannot keep it held forever; a
process-wide ``threading.Lock`` keeps two threads of one process apart (fcntl locks do not).
Readers never lock: see :mod:`mlprobe._mp_archive` for how they stay consistent.

Codec: pickle (protocol 5, fast for numpy arrays), read back by an unpickler that refuses
every global but numpy's array and scalar constructors, from files owned by this user only:
a file planted by someone else cannot run code or inject counts.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import pickle
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["ARCHIVE", "EXPORTER_LOCK", "FORMAT", "LEDGER", "OUTCOMES_PREFIX", "Directory",
           "decode", "encode"]

FORMAT = 1
"""Version of the state files' layout (a worker reading another version counts them
unreadable)."""

LEDGER = "mlprobe-server.json"
LOCK = "mlprobe.lock"
ARCHIVE = "mlprobe-archive.state"
EXPORTER_LOCK = "mlprobe-exporter.lock"
WORKER_PREFIX = "mlprobe-worker-"
DEAD_PREFIX = "mlprobe-dead-"
OUTCOMES_PREFIX = "mlprobe-outcomes-"
SUFFIX = ".state"
TMP_PREFIX = ".mlprobe-tmp-"

LOCK_TIMEOUT_S = 5.0
"""Longest wait for the directory lock (held for milliseconds by a fold or a claim)."""

_ALLOWED_GLOBALS = frozenset({
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy._core.numeric", "_frombuffer"), ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"), ("numpy.core.multiarray", "scalar"),
})


def encode(obj: Any) -> bytes:
    """Serialise plain data (numpy arrays allowed)."""
    return pickle.dumps(obj, protocol=5)


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in an mlprobe state file")


def decode(data: bytes) -> Any:
    """Read what :func:`encode` wrote (plain data and numpy arrays only)."""
    return _PlainUnpickler(io.BytesIO(data)).load()


_thread_locks: dict[str, threading.Lock] = {}
_thread_locks_guard = threading.Lock()


def _after_fork_in_child() -> None:
    # Locks held by parent threads at fork time would never be released here.
    global _thread_locks, _thread_locks_guard
    _thread_locks = {}
    _thread_locks_guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Directory:
    """Paths, atomic writes and the lock of one multi-process directory."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)

    def file(self, name: str) -> str:
        """The path of ``name`` in the directory."""
        return os.path.join(self.path, name)

    @staticmethod
    def worker_file(worker_name: str, dead: bool = False) -> str:
        """The file name of a worker's state (``dead``: marked dead by child_exit)."""
        return f"{DEAD_PREFIX if dead else WORKER_PREFIX}{worker_name}{SUFFIX}"

    def worker_files(self) -> list[tuple[str, str, bool]]:
        """``(file name, worker name, marked dead)`` of every worker state file."""
        out = []
        for name in os.listdir(self.path):
            if not name.endswith(SUFFIX):
                continue
            for prefix, dead in ((WORKER_PREFIX, False), (DEAD_PREFIX, True)):
                if name.startswith(prefix):
                    out.append((name, name[len(prefix):-len(SUFFIX)], dead))
        return out

    def write(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``name`` atomically (see the module docstring)."""
        tmp = self.file(f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(tmp, self.file(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self, name: str) -> tuple[bytes, os.stat_result] | None:
        """The bytes of ``name`` and its stat, or None if it does not exist; refuses a file
        another user owns (``PermissionError``)."""
        try:
            fd = os.open(self.file(name), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            info = os.fstat(fd)
            if info.st_uid != os.geteuid():
                raise PermissionError(f"{self.file(name)} belongs to another user")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks), info
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        """Delete ``name`` if it exists."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.file(name))

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the directory lock (this thread among the process's, this process among the
        server's); ``TimeoutError`` after ``timeout`` seconds."""
        with _thread_locks_guard:
            lock = _thread_locks.setdefault(self.path, threading.Lock())
        if not lock.acquire(timeout=timeout):
            raise TimeoutError(f"mlprobe: {self.path} is locked by another thread")
        try:
            fd = os.open(self.file(LOCK), os.O_RDWR | os.O_CREAT, 0o600)
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"mlprobe: {self.path} is locked by another "
                                               "process") from None
                        time.sleep(0.005)
                yield
            finally:
                os.close(fd)  # releases the fcntl lock
        finally:
            lock.release()

    def clean(self) -> None:
        """Delete every state and temporary file (a directory taken over from a dead server)."""
        for name in os.listdir(self.path):
            if name.startswith(TMP_PREFIX) or (name.startswith("mlprobe-")
                                               and name.endswith(SUFFIX)):
                self.remove(name)
