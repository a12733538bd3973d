"""Benchmark helper: a free loopback port, and waiting for a server process to listen on it.
(Not a benchmark.)"""

from __future__ import annotations

import socket
import subprocess
import time

__all__ = ["free_port", "wait_listening"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(proc: subprocess.Popen[bytes], port: int, *, what: str, timeout: float,
                   poll: float = 0.1) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; kill ``proc`` and raise
    RuntimeError if it exits or ``timeout`` seconds pass first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{what} did not start") from None
            time.sleep(poll)
