"""ProbeMiddleware behind a real uvicorn server on 127.0.0.1 (real sockets, real HTTP/1.1)."""

from __future__ import annotations

import asyncio
import random
import socket
import string
import time
import urllib.parse
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse, StreamingResponse
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.routing import Route
from test_asgi_helpers import counts, families, one, uvicorn_server

import mlprobe
from mlprobe.asgi import CLIENT_DISCONNECTED, UNMATCHED_ROUTE, ProbeMiddleware


def build_app(registry: mlprobe.Registry, lifespan_log: list[str] | None = None,
              **options: Any) -> FastAPI:
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if lifespan_log is not None:
            lifespan_log.append("startup")
        yield
        if lifespan_log is not None:
            lifespan_log.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}")
    def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    @app.post("/echo")
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse((await request.body()).decode())

    @app.get("/fail")
    def fail() -> None:
        raise LookupError("nothing here")

    @app.get("/stream")
    async def stream(request: Request) -> StreamingResponse:
        async def chunks():
            for _ in range(100):
                yield b"y" * 500
                await asyncio.sleep(0.01)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/background")
    def with_background(tasks: BackgroundTasks) -> dict[str, str]:
        tasks.add_task(time.sleep, 0.4)
        return {"ok": "yes"}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "up"}

    sub = Starlette(routes=[Route("/{name}", lambda request: PlainTextResponse("sub"))])
    app.mount("/tenants/{tenant}", sub)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text((await websocket.receive_text())[::-1])
        await websocket.close()

    app.add_middleware(ProbeMiddleware, registry=registry, metrics_path="/metrics", **options)
    return app


def test_statuses_errors_and_templates_over_uvicorn(registry):
    """Through uvicorn: 2xx, 4xx (404, 422), an unhandled exception and a mounted app."""
    with uvicorn_server(build_app(registry)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/items/1").status_code == 200
        assert client.get("/items/2").status_code == 200
        assert client.get("/items/abc").status_code == 422
        assert client.get("/nowhere").status_code == 404
        assert client.get("/tenants/acme/report").text == "sub"
        assert client.get("/health").status_code == 200
        # last: after an unhandled exception uvicorn closes the keep-alive connection
        assert client.get("/fail").status_code == 500
    assert counts(registry) == {
        ("GET", "/items/{item_id}", "200", ""): 2,
        ("GET", "/items/{item_id}", "422", ""): 1,
        ("GET", UNMATCHED_ROUTE, "404", ""): 1,
        ("GET", "/fail", "500", "LookupError"): 1,
        ("GET", "/tenants/{tenant}/{name}", "200", ""): 1,
    }


def test_body_sizes_over_uvicorn(registry):
    """Request bytes (a chunked upload) and streamed response bytes are counted exactly."""
    def upload():
        for _ in range(10):
            yield b"u" * 1234

    with uvicorn_server(build_app(registry)) as base, httpx.Client(base_url=base) as client:
        assert len(client.post("/echo", content=upload()).content) == 12340
        assert len(client.get("/stream").content) == 50_000
    rx = families(registry)["http_server_request_body_size_bytes"]
    tx = families(registry)["http_server_response_body_size_bytes"]
    echo = (("http_request_method", "POST"), ("http_route", "/echo"),
            ("http_response_status_code", "200"), ("error_type", ""))
    stream = (("http_request_method", "GET"), ("http_route", "/stream"),
              ("http_response_status_code", "200"), ("error_type", ""))
    assert rx[echo].sum == 12340 and tx[echo].sum == 12340
    assert tx[stream].sum == 50_000 and rx[stream].sum == 0
    ttfb = families(registry)["http_server_time_to_first_byte_seconds"][stream]
    duration = families(registry)["http_server_request_duration_seconds"][stream]
    assert ttfb.sum < 0.5 < duration.sum  # 100 chunks 10 ms apart; the first comes at once


def test_root_path_over_uvicorn(registry):
    """uvicorn --root-path puts the application root in front of every template.

    (The client asks for /items/5 as a proxy that strips /api would; uvicorn then hands the app
    path /api/items/5 with root_path /api.)
    """
    with uvicorn_server(build_app(registry), root_path="/api") as base, \
            httpx.Client(base_url=base) as client:
        assert client.get("/items/5").status_code == 200
        assert client.get("/tenants/t/x").status_code == 200
        assert client.get("/health").status_code == 200
    assert counts(registry) == {("GET", "/api/items/{item_id}", "200", ""): 1,
                                ("GET", "/api/tenants/{tenant}/{name}", "200", ""): 1}


def test_random_path_scan_over_uvicorn_is_bounded(registry):
    """1,000 random paths over real HTTP add exactly three series."""
    rng = random.Random(3)
    with uvicorn_server(build_app(registry)) as base, httpx.Client(base_url=base) as client:
        for _ in range(1000):
            junk = "".join(rng.choices(string.ascii_letters + string.digits, k=10))
            path = rng.choice([f"/items/{rng.randrange(10**6)}", f"/{junk}/{junk}",
                               f"/tenants/{junk}/{junk}"])
            client.get(urllib.parse.quote(path))
    series = counts(registry)
    assert set(series) == {("GET", "/items/{item_id}", "200", ""),
                           ("GET", UNMATCHED_ROUTE, "404", ""),
                           ("GET", "/tenants/{tenant}/{name}", "200", "")}
    assert sum(series.values()) == 1000


def test_background_task_excluded_over_uvicorn(registry):
    """A 0.4 s background task does not count in the request's duration."""
    with uvicorn_server(build_app(registry)) as base, httpx.Client(base_url=base) as client:
        assert client.get("/background").json() == {"ok": "yes"}
        time.sleep(0.6)  # let the task finish inside the server
    _, duration = one(registry)
    assert duration.count == 1 and duration.sum < 0.3


def test_lifespan_and_websocket_pass_through_uvicorn(registry):
    """Lifespan events reach the app and a websocket session works; neither is recorded."""
    websockets_client = pytest.importorskip("websockets.sync.client")
    log: list[str] = []
    with uvicorn_server(build_app(registry, lifespan_log=log), lifespan="on",
                        ws="websockets-sansio") as base:
        assert log == ["startup"]
        with websockets_client.connect(base.replace("http", "ws") + "/ws") as session:
            session.send("abc")
            assert session.recv() == "cba"
    assert log == ["startup", "shutdown"]
    assert counts(registry) == {}


def test_double_application_over_uvicorn(registry):
    """Wrapping an instrumented app again still records each request once."""
    app = ProbeMiddleware(build_app(registry), registry=registry)
    with uvicorn_server(app) as base, httpx.Client(base_url=base) as client:
        for n in range(5):
            client.get(f"/items/{n}")
    assert counts(registry) == {("GET", "/items/{item_id}", "200", ""): 5}


def test_metrics_endpoint_over_uvicorn(registry):
    """/metrics over real HTTP parses and reports the requests made before it."""
    with uvicorn_server(build_app(registry)) as base, httpx.Client(base_url=base) as client:
        for n in range(4):
            client.get(f"/items/{n}")
        text = client.get("/metrics").text
    metrics = {f.name: f for f in text_string_to_metric_families(text)}
    samples = [s for s in metrics["http_server_request_duration_seconds"].samples
               if s.name.endswith("_count")]
    assert [(s.labels["http_route"], s.value) for s in samples] == [("/items/{item_id}", 4.0)]


def test_metrics_endpoint_gzip_over_uvicorn(registry):
    """Over real HTTP a client asking for gzip gets a compressed /metrics that it decompresses
    to the exposition; one that does not ask gets it plain."""
    import gzip

    with uvicorn_server(build_app(registry)) as base, httpx.Client(base_url=base) as client:
        client.get("/items/1")
        zipped = client.get("/metrics", headers={"accept-encoding": "gzip"})
        with client.stream("GET", "/metrics", headers={"accept-encoding": "gzip"}) as raw:
            wire = b"".join(raw.iter_raw())
        plain = client.get("/metrics", headers={"accept-encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in zipped.headers["vary"].lower()
    families_seen = {f.name for f in text_string_to_metric_families(zipped.text)}
    assert "http_server_request_duration_seconds" in families_seen
    assert gzip.decompress(wire).startswith(b"# HELP") and len(wire) < len(plain.content)
    assert "content-encoding" not in plain.headers and plain.text.startswith("# HELP")


def test_client_disconnect_over_uvicorn(registry):
    """A client that hangs up mid-stream is recorded as client_disconnected, not as a success."""
    with uvicorn_server(build_app(registry)) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while not counts(registry) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert counts(registry) == {("GET", "/stream", "200", CLIENT_DISCONNECTED): 1}
    sent = one(registry, "http_server_response_body_size_bytes")[1].sum
    assert 0 < sent < 50_000
