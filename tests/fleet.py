"""Replicas of an instrumented model for fleet tests with a real Prometheus.

A replica is anything with ``target`` (``host:port`` Prometheus scrapes), ``start()``,
``stop()``, ``restart()`` (a fresh process state on the same port) and ``predict(batch,
scores)``. :class:`InProcessReplica` is one probe with its own registry served by
``mlprobe.exporters.prometheus.start_http_server``; :class:`workers.MultiWorkerReplica`
(``tests/workers.py``) is a gunicorn server with several workers in multi-process mode that
implements the same methods and slots into the same tests.
"""

from __future__ import annotations

from typing import Any, Protocol

import mlprobe
from mlprobe.exporters.prometheus import start_http_server
from realservers import free_port


class Replica(Protocol):
    """What the fleet tests need of a replica."""

    target: str
    calls: int

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def restart(self) -> None: ...
    def predict(self, batch: Any, scores: Any) -> None: ...


class InProcessReplica:
    """One probe, its own registries, its own ``/metrics`` server on 127.0.0.1.

    Args:
        profile: The reference profile the replica serves with.
        model: Model name; ``version`` its version.
    """

    def __init__(self, profile: mlprobe.ReferenceProfile, *, model: str = "fleet",
                 version: str = "1") -> None:
        self.profile, self.model, self.version = profile, model, version
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._server: Any = None
        self.calls = 0  # predict calls since the last (re)start

    def start(self) -> None:
        """A fresh registry and probe (what a new process has), served on the port."""
        registry = mlprobe.Registry()
        probe = mlprobe.Probe(self.model, version=self.version, reference=self.profile,
                              registry=registry)

        @probe.track
        def predict(batch: Any, scores: Any) -> Any:
            return scores

        self._predict = predict
        self.calls = 0
        self._server, _ = start_http_server(self.port, "127.0.0.1", registry=registry)

    def stop(self) -> None:
        """Stop serving (a replica that died or was scaled down)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def restart(self) -> None:
        """Stop, then start again on the same port with all counters at zero."""
        self.stop()
        self.start()

    def predict(self, batch: Any, scores: Any) -> None:
        """One tracked predict call of ``batch`` (a dict of columns) returning ``scores``."""
        self._predict(batch, scores)
        self.calls += 1
