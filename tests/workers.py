"""Real multi-worker servers for tests: uvicorn ``--workers`` and gunicorn with uvicorn workers.

:class:`WorkerServer` runs ``tests/workers_app.py`` on a free port of 127.0.0.1 in a new
session (its own process group: a server of its own to mlprobe), in multi-process mode with a
fresh directory, and stops it by its PID (SIGTERM, then SIGKILL after a bound). gunicorn runs
with its control socket off. :class:`MultiWorkerReplica` is a fleet replica
(``tests/fleet.py``'s protocol) backed by such a server. (Not a test module.)
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import mlprobe
from realservers import free_port

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0


def require_server(name: str) -> None:
    """Skip (fail in CI) when the server package is missing."""
    try:
        __import__(name)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is not installed (pip install -e '.[test]')")
        pytest.skip(f"{name} is not installed")


class WorkerServer:
    """One multi-worker server of the test app (see the module docstring).

    Args:
        kind: ``"uvicorn"`` (``--workers``) or ``"gunicorn"`` (``-k UvicornWorker``).
        directory: the multi-process directory (created if missing).
        workers: worker processes.
        env: more environment variables for the server (``WORKERS_APP_*``).
        gunicorn_args: more gunicorn arguments (``--max-requests``, ``--preload``, ...).
        config: gunicorn config file text (it may call ``mlprobe.multiprocess.enable``;
            then the environment switch is left unset).
    """

    def __init__(self, kind: str, directory: Path, *, workers: int = 3,
                 env: dict[str, str] | None = None, gunicorn_args: tuple[str, ...] = (),
                 config: str | None = None) -> None:
        require_server(kind)
        self.kind, self.directory, self.workers = kind, Path(directory), workers
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.target = f"127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.gunicorn_args = gunicorn_args
        self.config = config
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.directory.parent / f"{kind}-{self.port}.log"

    def command(self) -> list[str]:
        app = "workers_app:app"
        if self.kind == "uvicorn":
            return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port",
                    str(self.port), "--workers", str(self.workers), "--app-dir", str(TESTS),
                    "--log-level", "warning", app]
        cmd = [sys.executable, "-m", "gunicorn", "-w", str(self.workers), "-k",
               "uvicorn.workers.UvicornWorker", "--bind", self.target, "--no-control-socket",
               "--chdir", str(TESTS), "--graceful-timeout", "5", *self.gunicorn_args]
        if self.config is not None:
            path = self.directory.parent / f"gunicorn-{self.port}.conf.py"
            path.write_text(self.config)
            cmd += ["-c", str(path)]
        return [*cmd, app]

    def start(self) -> WorkerServer:
        """Start the server and wait until every worker answers."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPROBE_", "OTEL_"))}
        env["PYTHONPATH"] = os.pathsep.join([str(SRC), str(TESTS)])
        if self.config is None:
            env["MLPROBE_MULTIPROCESS_DIR"] = str(self.directory)
        env.update(self.env)
        log = open(self.log, "ab")  # noqa: SIM115 - kept for the server's life
        self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.log.read_text()[-3000:]}")
            try:
                if self.ready():
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} did not start: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def ready(self) -> bool:
        """Every worker is up: each answers a request, or, when workers recycle after a few
        requests (``--max-requests``), as many children as workers and one answer."""
        if "--max-requests" in self.gunicorn_args:
            # Probing every worker would itself recycle them: the workers answering and the
            # children never agree for long on a loaded machine (a CI run spent its 60 s so).
            if len(self.children()) < self.workers:
                return False
            return self.get("/pid").status_code == 200
        return len(self.worker_pids()) >= self.workers

    def children(self) -> set[int]:
        """The server's child processes (its workers)."""
        assert self.proc is not None
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(p) for p in path.read_text().split()}

    def worker_pids(self) -> set[int]:
        """The workers that answered requests (new connections) among the server's children,
        trying until each has answered or a bound is reached."""
        children = self.children()
        answering: set[int] = set()
        for _ in range(10 * self.workers):
            answering.add(int(self.get("/pid").json()["pid"]))
            if len(answering & children) >= self.workers:
                break
        return answering & children

    def stop(self) -> None:
        """SIGTERM the server by its PID, SIGKILL after a bound; wait for it."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)

    # -- client ------------------------------------------------------------------------------

    def get(self, path: str) -> Response:
        """One GET on a new connection (new connections spread over the workers)."""
        return self._request("GET", path, None)

    def post(self, path: str, body: Any) -> Response:
        """One POST of ``body`` as JSON on a new connection."""
        return self._request("POST", path, json.dumps(body).encode())

    def _request(self, method: str, path: str, body: bytes | None) -> Response:
        # http.client: a new connection costs a socket, not a client object (httpx builds an
        # SSL context per client), so thousands of requests stay fast.
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"connection": "close"}
            if body is not None:
                headers["content-type"] = "application/json"
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return Response(response.status, response.read(), dict(response.getheaders()))
        finally:
            connection.close()

    def scrape(self) -> str:
        """One ``/metrics`` exposition."""
        response = self.get("/metrics")
        assert response.status_code == 200, response.text
        return response.text


class Response:
    """What a test reads of a response: status, body, headers (names in lower case)."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.status_code = status
        self.content = body
        self.headers = {k.lower(): v for k, v in headers.items()}

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self) -> Any:
        return json.loads(self.content)


def value(exposition: str, name: str, **labels: str) -> float:
    """The sum of every sample of ``name`` whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in exposition.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


class MultiWorkerReplica:
    """A fleet replica served by gunicorn with several workers in multi-process mode.

    ``restart()`` stops the whole server and starts a new one on the same port: a new server
    to mlprobe, whose counters start at zero (as a restarted single-process replica's do).
    """

    def __init__(self, profile: mlprobe.ReferenceProfile, tmp: Path, *, model: str = "fleet",
                 version: str = "1", workers: int = 2) -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        path = self.tmp / "profile.json"
        profile.save(path)
        self.server = WorkerServer("gunicorn", self.tmp / "mp", workers=workers, env={
            "WORKERS_APP_PROFILE": str(path), "WORKERS_APP_MODEL": f"{model}:{version}"})
        self.target = self.server.target
        self.calls = 0

    def start(self) -> None:
        """Start serving (a fresh server state)."""
        self.calls = 0
        self.server.start()

    def stop(self) -> None:
        """Stop the server."""
        self.server.stop()

    def restart(self) -> None:
        """Stop, then start a new server on the same port."""
        self.stop()
        self.start()

    def predict(self, batch: Any, scores: Any) -> None:
        """One tracked call of ``batch`` (columns) returning ``scores``, via HTTP."""
        body = {"batch": {k: _plain(v) for k, v in batch.items()}, "scores": _plain(scores)}
        response = self.server.post("/batch", body)
        assert response.status_code == 200, response.text
        self.calls += 1


def _plain(values: Any) -> list[Any]:
    return json.loads(json.dumps([v.item() if hasattr(v, "item") else v
                                  for v in list(values)]))
