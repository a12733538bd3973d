"""Every example runs: the demo service in-process, the demo end to end, the plain ASGI one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from realservers import free_port
from test_asgi_helpers import counts, get, run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def examples_on_path(monkeypatch):
    """Make the examples folder importable the way run_demo.py does."""
    monkeypatch.syspath_prepend(str(EXAMPLES))


def test_demo_service_predicts_and_reports(examples_on_path, registry):
    """The demo app answers /predict with scores and exposes HTTP, model and drift metrics."""
    from demo import model_service

    trained = model_service.train()
    assert trained.accuracy > 0.9
    app = model_service.create_app(trained, registry=registry)
    rows = trained.X_test[:3].tolist()

    async def body():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            predicted = await client.post("/predict", json={"rows": rows})
            bad = await client.post("/predict", json={"rows": [[1.0]]})
            metrics = await client.get("/metrics")
            drift = await client.get("/drift")
        return predicted, bad, metrics, drift

    predicted, bad, metrics, drift = run(body)
    scores = predicted.json()["scores"]
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert bad.status_code == 422
    names = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert {"http_server_request_duration_seconds", "mlprobe_predictions",
            "mlprobe_prediction_duration_seconds"} <= names
    assert drift.status_code == 200 and drift.json()["status"] == "insufficient_data"
    assert counts(registry) == {("POST", "/predict", "200", ""): 1,
                                ("POST", "/predict", "422", ""): 1}


def test_run_demo_quick_end_to_end():
    """python examples/run_demo.py --quick exits 0 and shows drift going ok -> critical."""
    result = subprocess.run([sys.executable, str(EXAMPLES / "run_demo.py"), "--quick"],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "/predict" in out and "p95" in out
    assert "done: drift status ok (normal) -> warning (drifting) -> critical (drifted)" in out
    assert "deliberately malformed" in out and "PSI (population stability index)" in out
    # model quality: labels come back late, accuracy falls in the drifted phase, the shadow
    # candidate's agreement is printed
    quality = out[out.index("=== model quality"):]
    phases = re.findall(r"(normal|drifting|drifted) +labels received in this phase: "
                        r"accuracy (\d+)%", quality)
    accuracy = {name: int(value) for name, value in phases}
    assert accuracy["normal"] >= 95 and accuracy["drifted"] <= accuracy["normal"] - 10
    assert re.search(r"drifted .*: critical", quality)
    assert "shadow v2-candidate agrees with v1 on" in quality
    assert not re.search(r"\d\.\d{5,}", out), "unrounded number in the demo's output"


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float) -> str:
    """Read the process's stdout line by line until ``marker`` appears; return what was read."""
    seen = ""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while marker not in seen:
        assert time.monotonic() < deadline, f"{marker!r} not printed in {timeout} s: {seen}"
        line = proc.stdout.readline()
        assert line or proc.poll() is None, f"exited before {marker!r}: {seen}"
        seen += line
    return seen


def test_run_demo_serve_keeps_the_service_up_until_ctrl_c():
    """With --serve the printed curl commands work after the traffic, and Ctrl-C stops it."""
    with subprocess.Popen([sys.executable, str(EXAMPLES / "run_demo.py"), "--quick", "--serve",
                           "--serve-seconds", "60"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            out = read_until(proc, "press Ctrl-C to stop it", timeout=90)
            base = re.search(r"keeps running at (http://127\.0\.0\.1:\d+)", out).group(1)
            assert f"curl {base}/metrics" in read_until(proc, "/drift", timeout=10)
            metrics = httpx.get(f"{base}/metrics", timeout=10)
            drift = httpx.get(f"{base}/drift", timeout=10)
            assert metrics.status_code == 200
            assert "http_server_request_duration_seconds" in metrics.text
            assert drift.status_code == 200 and drift.json()["status"] in ("critical", "warning")
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
            assert proc.wait(timeout=20) == 0
            assert "stopping the service" in proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()  # by PID: the process this test started


def test_model_service_uvicorn_command_from_its_docstring_works():
    """``uvicorn examples.demo.model_service:app`` (from the repository root) serves the model."""
    docstring = (EXAMPLES / "demo" / "model_service.py").read_text().split('"""')[1]
    command = re.search(r"``(uvicorn [^`]+)``", docstring).group(1).split()
    assert command == ["uvicorn", "examples.demo.model_service:app"]  # run as written
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)}
    with subprocess.Popen([sys.executable, "-m", *command, "--host", "127.0.0.1",
                           "--port", str(port)], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as proc:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "uvicorn exited"
                assert time.monotonic() < deadline, "the service did not start in 60 s"
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.2)
            scores = httpx.post(f"{base}/predict", json={"rows": [[10.0] * 30]}, timeout=10)
            assert scores.status_code == 200 and len(scores.json()["scores"]) == 1
            metrics = httpx.get(f"{base}/metrics", timeout=10).text
            assert 'http_route="/predict"' in metrics and "mlprobe_predictions_total" in metrics
        finally:
            proc.terminate()  # by PID: the process this test started


def test_traffic_generator_has_a_cli():
    """examples/demo/traffic.py runs as a script (its --help at least)."""
    result = subprocess.run([sys.executable, str(EXAMPLES / "demo" / "traffic.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "base_url" in result.stdout


def test_plain_asgi_example_labels_by_resolver(examples_on_path):
    """The framework-less example labels requests by its resolver and serves /metrics."""
    import plain_asgi

    wrapped = plain_asgi.instrumented
    assert counts(plain_asgi.registry) == {}
    assert get(wrapped, "/users/1").status_code == 200
    assert get(wrapped, "/users/2").status_code == 200
    assert get(wrapped, "/other").status_code == 404
    assert counts(plain_asgi.registry) == {("GET", "/users/{user_id}", "200", ""): 2,
                                           ("GET", "__unmatched__", "404", ""): 1}
    assert "http_server_active_requests" in get(wrapped, "/metrics").text
