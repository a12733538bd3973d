"""Helpers to run real components (Prometheus, promtool) on 127.0.0.1 in tests.

``.ci/run`` installs Debian's prometheus package, so in CI (``CI`` set) a missing binary is a
failure, not a skip: a suite that silently skipped its real-component tests would prove nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def require_binary(name: str) -> str:
    """Return the path of ``name``; skip locally, fail in CI, when it is not installed."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (.ci/run installs it with apt-get)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextmanager
def prometheus_server(tmp: Path, targets: list[str], rules: Path | None = None,
                      interval: str = "1s") -> Iterator[int]:
    """Run a real Prometheus scraping ``targets`` every ``interval``; yield its port."""
    binary = require_binary("prometheus")
    port = free_port()
    config = tmp / "prometheus.yml"
    lines = ["global:", f"  scrape_interval: {interval}", f"  evaluation_interval: {interval}"]
    if rules is not None:
        lines += ["rule_files:", f"  - {rules}"]
    lines += ["scrape_configs:", "  - job_name: app", "    static_configs:",
              f"      - targets: {json.dumps(targets)}"]
    config.write_text("\n".join(lines) + "\n")
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp / "prometheus.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def prom_query(port: int, query: str, timeout: float = 30.0) -> list[dict]:
    """Poll an instant query until it returns series (or the timeout passes)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url, timeout=5) as resp:
            result = json.load(resp)["data"]["result"]
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)
