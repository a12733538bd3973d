"""The directory's ledger: which server owns it, since when, and when each stream started.

One server (a process group, :mod:`mlprobe._mp_process`) owns a directory at a time. The first
of its processes to enable multi-process mode *claims* it: if the ledger names another server
whose processes still run, that is two servers sharing one directory, refused with a
:class:`~mlprobe.errors.ConfigurationError`; if that server is gone, its files are deleted and
the directory starts afresh (a restarted server's counters restart, as a single process's do).

Streams: the merged counters of one source (one key and fingerprint) are one stream, whose
start time every worker stamps on its samples, so an exporter sees one stream whichever
worker answers and however workers come and go. It is the time the first worker created the
source, recorded here once.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ._mp_files import LEDGER, Directory
from ._mp_process import group_alive, process_start
from .errors import ConfigurationError

__all__ = ["Ledger", "ServerId", "claim", "server_alive", "server_id", "stream_start"]

FORMAT = 1


ServerId = tuple[int, int]
"""``(process group, start time of the group's leader or 0)``: a reused group number is
another server."""


def server_id() -> ServerId:
    """This process's server: its process group."""
    pgid = os.getpgrp()
    return pgid, process_start(pgid) or 0


def server_alive(server: ServerId) -> bool:
    """True while a process of ``server`` runs on this host."""
    pgid, leader_start = server
    if not group_alive(pgid):
        return False
    start = process_start(pgid)
    # The leader may have exited while its group lives on (its workers); a live leader with
    # another start time is a new process that reused the number: another server.
    return start is None or 0 in (start, leader_start) or start == leader_start


@dataclass
class Ledger:
    """What ``mlprobe-server.json`` holds."""

    server: ServerId
    host: str
    claimed_ns: int
    instance_id: str
    streams: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        """The file's bytes."""
        return json.dumps({"format": FORMAT, "server": list(self.server), "host": self.host,
                           "claimed_ns": self.claimed_ns, "instance_id": self.instance_id,
                           "streams": self.streams}, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Ledger:
        """Parse the file's bytes (``ValueError`` if it is not a ledger)."""
        doc: Any = json.loads(data)
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ValueError("not an mlprobe ledger")
        pgid, leader_start = doc["server"]
        return cls((int(pgid), int(leader_start)), str(doc["host"]), int(doc["claimed_ns"]),
                   str(doc["instance_id"]), {str(k): int(v) for k, v in doc["streams"].items()})


def _read(directory: Directory) -> Ledger | None:
    found = directory.read(LEDGER)
    if found is None:
        return None
    try:
        return Ledger.from_json(found[0])
    except (ValueError, KeyError, TypeError):
        return None  # a ledger this version cannot read: treated as absent (taken over)


def claim(directory: Directory, server: ServerId) -> Ledger:
    """Claim ``directory`` for ``server`` (or join its claim); return the ledger.

    Raises:
        ConfigurationError: another live server owns the directory.
    """
    with directory.locked():
        ledger = _read(directory)
        if ledger is not None and ledger.server == server:
            return ledger
        if ledger is not None and ledger.host == socket.gethostname() \
                and server_alive(ledger.server):
            raise ConfigurationError(
                f"mlprobe: the multi-process directory {directory.path} is in use by another "
                f"server (process group {ledger.server[0]}); give each server (each gunicorn "
                "or uvicorn instance) its own directory")
        # Free, or left by a server that is gone: start afresh.
        directory.clean()
        ledger = Ledger(server, socket.gethostname(), time.time_ns(), uuid.uuid4().hex)
        directory.write(LEDGER, ledger.to_json())
        return ledger


def stream_key(key: object, fingerprint: str) -> str:
    """The ledger's name of the stream of source ``key`` with settings ``fingerprint``."""
    return repr((key, fingerprint))


def stream_start(directory: Directory, server: ServerId, key: object, fingerprint: str
                 ) -> int:
    """The start of stream ``(key, fingerprint)``: recorded now if it is new."""
    name = stream_key(key, fingerprint)
    with directory.locked():
        ledger = _read(directory)
        if ledger is None or ledger.server != server:
            raise RuntimeError("mlprobe: the multi-process directory was taken over")
        start = ledger.streams.get(name)
        if start is None:
            start = ledger.streams[name] = time.time_ns()
            directory.write(LEDGER, ledger.to_json())
        return start
