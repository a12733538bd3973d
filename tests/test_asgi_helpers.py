"""Helpers shared by the ASGI tests: read HTTP series back, drive apps in-process and over uvicorn.

(Named ``test_*`` only to live with the ASGI tests; it holds no tests.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

import mlprobe
from mlprobe.snapshot import HistogramSample, Sample

DURATION = "http_server_request_duration_seconds"

Labels = tuple[tuple[str, str], ...]


def families(registry: mlprobe.Registry) -> dict[str, dict[Labels, Sample | HistogramSample]]:
    """Return {family name: {labels: sample}} for everything the registry exports."""
    return {f.name: {s.labels: s for s in f.samples} for f in registry.collect()}


def http_series(registry: mlprobe.Registry, name: str = DURATION
                ) -> dict[tuple[str, str, str, str], Sample | HistogramSample]:
    """Return {(method, route, status, error_type): sample} of one HTTP family."""
    out = {}
    for labels, sample in families(registry).get(name, {}).items():
        d = dict(labels)
        if "http_route" in d:
            out[(d["http_request_method"], d["http_route"], d["http_response_status_code"],
                 d["error_type"])] = sample
        else:
            out[(d["http_request_method"], "", "", "")] = sample
    return out


def counts(registry: mlprobe.Registry, name: str = DURATION
           ) -> dict[tuple[str, str, str, str], int]:
    """Return {(method, route, status, error_type): observation count} of a histogram family."""
    out = {}
    for key, sample in http_series(registry, name).items():
        assert isinstance(sample, HistogramSample)
        out[key] = sample.count
    return out


def one(registry: mlprobe.Registry, name: str = DURATION) -> tuple[tuple[str, ...], HistogramSample]:
    """Return the only series of ``name`` (fails if there is not exactly one)."""
    series = http_series(registry, name)
    assert len(series) == 1, series
    ((key, sample),) = series.items()
    assert isinstance(sample, HistogramSample)
    return key, sample


def run(coro_fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an async test body on a fresh asyncio loop."""
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


async def request(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """Send one request to ``app`` in-process (app exceptions become 500 responses)."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False,
                                    root_path=kwargs.pop("root_path", ""))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(method, path, **kwargs)


def get(app: Any, path: str, **kwargs: Any) -> httpx.Response:
    """Synchronous one-shot GET in-process."""
    return run(lambda: request(app, "GET", path, **kwargs))


def http_scope(path: str = "/", method: str = "GET", **extra: Any) -> dict[str, Any]:
    """A minimal HTTP scope as a server would build it."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "method": method, "scheme": "http", "path": path,
        "raw_path": path.encode(), "query_string": b"", "root_path": "",
        "headers": [(b"host", b"testserver")], "server": ("127.0.0.1", 80),
        "client": ("127.0.0.1", 5000),
    }
    scope.update(extra)
    return scope


async def drive(app: Any, scope: dict[str, Any], incoming: list[dict[str, Any]],
                send_error: BaseException | None = None) -> list[dict[str, Any]]:
    """Call ``app`` with scripted ``receive`` messages; return what it sent.

    After the script runs out, ``receive`` blocks (as a server does until the client acts).
    With ``send_error``, every send raises it (a server whose client went away).
    """
    queue = list(incoming)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if send_error is not None:
            raise send_error
        sent.append(message)

    await app(scope, receive, send)
    return sent


@contextmanager
def uvicorn_server(app: Any, **config: Any) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on 127.0.0.1 in a thread; yield its base URL."""
    import uvicorn
    from realservers import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                                           access_log=False, **config))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
