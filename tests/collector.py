"""A real OpenTelemetry collector for tests: rotel on 127.0.0.1, forwarding to an OTLP/HTTP
receiver in the test process that keeps every request it gets.

rotel (PyPI ``rotel``, a collector written in Rust) receives OTLP over gRPC and HTTP and
forwards OTLP/HTTP; ``.ci/install-rotel.sh`` installs it into its own virtualenv and
``.ci/run`` passes its path in ``CI_ROTEL_AGENT``. Locally the same path is found in the
script's cache, or the test skips; in CI (``CI`` set) a missing collector fails.

(Not a test module: it holds no tests.)
"""

from __future__ import annotations

import glob
import gzip
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from realservers import free_port

ROTEL_VERSION = "0.0.1a15"


def rotel_agent() -> str:
    """The rotel-agent binary: CI's, else the install script's cache; skip (fail in CI)."""
    candidates = [os.environ.get("CI_ROTEL_AGENT", "")]
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    candidates += glob.glob(f"{cache}/mlprobe-ci/rotel-{ROTEL_VERSION}/lib/python*/"
                            "site-packages/rotel/rotel-agent")
    for path in candidates:
        if path and os.access(path, os.X_OK):
            return path
    message = "rotel is not installed (bash .ci/install-rotel.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class OtlpSink:
    """An OTLP/HTTP metrics receiver on 127.0.0.1 (protobuf, optionally gzip): every export
    request it accepts is kept as OTLP/JSON (``requests``), with its headers."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                """Decode one export request and answer with an empty response."""
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path.split("?")[0] != "/v1/metrics":
                    self.send_error(404)
                    return
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                request = metrics_service_pb2.ExportMetricsServiceRequest()
                try:
                    request.ParseFromString(body)
                except Exception:  # noqa: BLE001 - a malformed payload is a 400, as a collector
                    self.send_error(400)
                    return
                with sink._lock:
                    sink.requests.append(json_format.MessageToDict(request))
                    sink.headers.append(dict(self.headers))
                payload = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                """Keep test output quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def snapshot(self) -> list[dict[str, Any]]:
        """A copy of the requests received so far."""
        with self._lock:
            return list(self.requests)

    def wait_for(self, condition: Callable[[list[dict[str, Any]]], bool],
                 timeout: float = 20.0) -> list[dict[str, Any]]:
        """Poll until ``condition(requests)`` holds; return the requests."""
        deadline = time.monotonic() + timeout
        while True:
            requests = self.snapshot()
            if condition(requests):
                return requests
            if time.monotonic() > deadline:
                raise AssertionError(f"the sink did not get what was expected in {timeout} s "
                                     f"({len(requests)} requests)")
            time.sleep(0.05)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


class Rotel:
    """One rotel process on free loopback ports, forwarding to ``forward`` (OTLP/HTTP)."""

    def __init__(self, workdir: Path, forward: str) -> None:
        self.agent = rotel_agent()
        self.workdir = workdir
        self.forward = forward
        self.grpc_port, self.http_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def grpc_endpoint(self) -> str:
        """Where the OTLP gRPC exporter sends (``http://`` means no TLS)."""
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        """The OTLP/HTTP metrics URL."""
        return f"http://127.0.0.1:{self.http_port}/v1/metrics"

    def start(self) -> None:
        """Start rotel (again, on the same ports) and wait until both receivers listen."""
        self.starts += 1
        log = open(self.workdir / f"rotel-{self.starts}.log", "wb")  # noqa: SIM115
        # A clean environment: the host's ROTEL_* variables would configure it too.
        env = {"PATH": os.environ.get("PATH", ""), "NO_COLOR": "1",
               "ROTEL_BATCH_TIMEOUT": "50ms"}
        self.proc = subprocess.Popen(
            [self.agent, "start",
             "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
             "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
             "--pid-file", str(self.workdir / "rotel.pid"),
             "--exporter", "otlp", "--otlp-exporter-protocol", "http",
             "--otlp-exporter-endpoint", self.forward],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        log.close()
        deadline = time.monotonic() + 20
        while not self._listening():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.workdir / f"rotel-{self.starts}.log").read_text()[-2000:]
                self.stop()
                raise RuntimeError(f"rotel did not start: {tail}")
            time.sleep(0.05)

    def _listening(self) -> bool:
        try:  # any HTTP answer means the HTTP receiver is up (GET / is a 404)
            urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/", timeout=1)
        except urllib.error.HTTPError:
            pass
        except OSError:
            return False
        import socket

        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", self.grpc_port)) == 0

    def stop(self) -> None:
        """Stop rotel by its PID: SIGTERM, then SIGKILL after 10 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def collector(workdir: Path) -> Iterator[tuple[Rotel, OtlpSink]]:
    """rotel forwarding to an in-process sink; both stopped on exit."""
    sink = OtlpSink()
    rotel = Rotel(workdir, sink.url)
    try:
        rotel.start()
        yield rotel, sink
    finally:
        rotel.stop()
        sink.close()


def latest_points(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """One OTLP/JSON request holding, per stream (metric and attributes), its latest point:
    rotel may split and merge batches, so the state is rebuilt from every request."""
    metrics: dict[str, dict[str, Any]] = {}
    resources: list[Any] = []
    for request in requests:
        for rm in request.get("resourceMetrics", []):
            resources.append(rm.get("resource", {}))
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    kind = next(k for k in ("sum", "gauge", "histogram") if k in m)
                    entry = metrics.setdefault(m["name"], {**m, kind: {**m[kind], "points": {}}})
                    for p in m[kind].get("dataPoints", []):
                        key = repr(sorted((a["key"], repr(a["value"]))
                                          for a in p.get("attributes", [])))
                        old = entry[kind]["points"].get(key)
                        if old is None or int(p["timeUnixNano"]) >= int(old["timeUnixNano"]):
                            entry[kind]["points"][key] = p
    out = []
    for m in metrics.values():
        kind = next(k for k in ("sum", "gauge", "histogram") if k in m)
        data = {k: v for k, v in m[kind].items() if k != "points"}
        data["dataPoints"] = list(m[kind]["points"].values())
        out.append({**{k: v for k, v in m.items() if k != kind}, kind: data})
    return {"resourceMetrics": [{"resource": resources[-1] if resources else {},
                                 "scopeMetrics": [{"metrics": out}]}]}
