"""ProbeMiddleware in-process: statuses, errors, sizes, timing, pass-through, stateless."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from test_asgi_helpers import (
    counts,
    drive,
    families,
    get,
    http_scope,
    http_series,
    one,
    request,
    run,
)

import mlprobe
from mlprobe.asgi import CLIENT_DISCONNECTED, ProbeMiddleware
from mlprobe.errors import ConfigurationError
from mlprobe.snapshot import HistogramSample


async def ok(request: Any) -> Response:
    return PlainTextResponse("hello")  # 5 bytes


async def item(request: Any) -> Response:
    return JSONResponse({"id": request.path_params["item_id"]})


async def teapot(request: Any) -> Response:
    return PlainTextResponse("no", status_code=418)


async def unavailable(request: Any) -> Response:
    return PlainTextResponse("later", status_code=503)


class Boom(Exception):
    """The app's own exception type."""


async def boom(request: Any) -> Response:
    raise Boom("from the app")


async def echo(request: Any) -> Response:
    body = await request.body()
    return Response(body)


async def stream(request: Any) -> Response:
    async def chunks():
        for _ in range(4):
            await asyncio.sleep(0.02)
            yield b"x" * 1000

    return StreamingResponse(chunks())


async def broken_stream(request: Any) -> Response:
    async def chunks():
        yield b"first"
        raise RuntimeError("mid-stream")

    return StreamingResponse(chunks())


async def with_background(request: Any) -> Response:
    async def slow() -> None:
        await asyncio.sleep(0.3)

    return PlainTextResponse("done", background=BackgroundTask(slow))


ROUTES = [
    Route("/ok", ok), Route("/items/{item_id}", item), Route("/teapot", teapot),
    Route("/unavailable", unavailable), Route("/boom", boom),
    Route("/echo", echo, methods=["POST"]), Route("/stream", stream),
    Route("/broken-stream", broken_stream), Route("/background", with_background),
    Route("/health", ok), Route("/ping", ok),
]


def make_app(registry: mlprobe.Registry, **options: Any) -> Starlette:
    app = Starlette(routes=list(ROUTES))
    app.add_middleware(ProbeMiddleware, registry=registry, **options)
    return app


def test_status_codes_and_route_templates(registry):
    """2xx, 4xx, 5xx and unmatched requests are counted under route templates and their status."""
    app = make_app(registry)
    assert get(app, "/ok").status_code == 200
    assert get(app, "/items/1").status_code == 200
    assert get(app, "/items/2").status_code == 200
    assert get(app, "/teapot").status_code == 418
    assert get(app, "/unavailable").status_code == 503
    assert get(app, "/no/such/page").status_code == 404
    assert get(app, "/echo").status_code == 405
    assert counts(registry) == {
        ("GET", "/ok", "200", ""): 1,
        ("GET", "/items/{item_id}", "200", ""): 2,
        ("GET", "/teapot", "418", ""): 1,
        ("GET", "/unavailable", "503", "503"): 1,
        ("GET", "__unmatched__", "404", ""): 1,
        ("GET", "/echo", "405", ""): 1,
    }


def test_unhandled_exception_recorded_as_500_and_reraised_unchanged(registry):
    """An exception before the response starts is a 500 with its type, and the same object
    reaches the caller."""
    raised = Boom("mine")

    async def app(scope, receive, send):
        raise raised

    wrapped = ProbeMiddleware(app, registry=registry)
    with pytest.raises(Boom) as info:
        run(lambda: drive(wrapped, http_scope("/x"), []))
    assert info.value is raised
    assert counts(registry) == {("GET", "__unmatched__", "500", "Boom"): 1}


def test_unhandled_exception_in_starlette_app(registry):
    """Inside Starlette the client gets its 500 and the series names the exception type."""
    app = make_app(registry)
    assert get(app, "/boom").status_code == 500
    assert counts(registry) == {("GET", "/boom", "500", "Boom"): 1}


def test_exception_after_response_started_keeps_status_and_names_error(registry):
    """A stream that fails midway keeps its 200 and records the exception type."""
    app = make_app(registry)
    with pytest.raises(RuntimeError, match="mid-stream"):
        run(lambda: drive(app, http_scope("/broken-stream"), []))
    (key, sample) = one(registry)
    assert key == ("GET", "/broken-stream", "200", "RuntimeError")
    assert one(registry, "http_server_response_body_size_bytes")[1].sum == len(b"first")


def test_streaming_response_sizes_and_time_to_first_byte(registry):
    """A streamed body counts every byte sent, and its first byte precedes its end."""
    app = make_app(registry)
    response = get(app, "/stream")
    assert len(response.content) == 4000
    _, size = one(registry, "http_server_response_body_size_bytes")
    assert size.sum == 4000 and size.count == 1
    _, duration = one(registry)
    _, ttfb = one(registry, "http_server_time_to_first_byte_seconds")
    assert ttfb.count == 1
    assert 0.015 <= ttfb.sum < duration.sum
    assert duration.sum >= 0.075


def test_request_body_counted_from_bytes_received_in_chunks(registry):
    """A request body sent in several messages is counted in full, whatever Content-Length says."""
    app = make_app(registry)
    messages = [{"type": "http.request", "body": b"a" * 700, "more_body": True},
                {"type": "http.request", "body": b"b" * 300, "more_body": True},
                {"type": "http.request", "body": b"", "more_body": False}]
    scope = http_scope("/echo", "POST", headers=[(b"content-length", b"5")])
    sent = run(lambda: drive(app, scope, messages))
    assert sent[0]["status"] == 200
    _, received = one(registry, "http_server_request_body_size_bytes")
    assert received.sum == 1000 and received.count == 1
    _, answered = one(registry, "http_server_response_body_size_bytes")
    assert answered.sum == 1000


def test_background_task_not_in_duration(registry):
    """Duration ends with the last body message, before a 0.3 s background task runs."""
    app = make_app(registry)
    start = time.perf_counter()
    assert get(app, "/background").status_code == 200
    assert time.perf_counter() - start >= 0.3  # the task did run inside the request call
    _, duration = one(registry)
    assert duration.sum < 0.2


def test_active_requests_gauge_during_and_after(registry):
    """The active-requests gauge counts a request while it runs and drops it when it ends."""
    release = asyncio.Event()
    seen: list[float] = []

    async def slow(request):
        seen.append(families(registry)["http_server_active_requests"][
            (("http_request_method", "POST"),)].value)
        await release.wait()
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/slow", slow, methods=["POST"])])
    app.add_middleware(ProbeMiddleware, registry=registry)

    async def body():
        task = asyncio.create_task(request(app, "POST", "/slow"))
        while not seen:
            await asyncio.sleep(0.01)
        release.set()
        await task

    run(body)
    assert seen == [1.0]
    active = families(registry)["http_server_active_requests"]
    assert active == {(("http_request_method", "POST"),): active[
        (("http_request_method", "POST"),)]}
    assert active[(("http_request_method", "POST"),)].value == 0.0


def test_unknown_methods_become_other(registry):
    """Methods outside the known set, including lower-case ones, are labelled _OTHER."""
    app = make_app(registry)
    run(lambda: drive(app, http_scope("/ok", "PURGE"), []))
    run(lambda: drive(app, http_scope("/ok", "get"), []))
    run(lambda: drive(app, http_scope("/ok", "GET"), []))
    methods = {key[0]: n for key, n in counts(registry).items()}
    assert methods == {"_OTHER": 2, "GET": 1}


def test_excluded_paths_pass_through_unrecorded(registry):
    """Default excluded paths reach the app but leave no series; a custom list replaces them."""
    app = make_app(registry)
    assert get(app, "/health").text == "hello"
    assert http_series(registry) == {}
    other = mlprobe.Registry()
    app = make_app(other, exclude_paths=["/ping"])
    assert get(app, "/ping").status_code == 200
    assert get(app, "/health").status_code == 200
    assert set(counts(other)) == {("GET", "/health", "200", "")}


def test_lifespan_passes_through(registry):
    """Lifespan startup and shutdown reach the app and record nothing."""
    events: list[str] = []

    async def app(scope, receive, send):
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return

    wrapped = ProbeMiddleware(app, registry=registry)
    sent = run(lambda: drive(wrapped, {"type": "lifespan", "asgi": {"version": "3.0"}},
                             [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]))
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    assert http_series(registry) == {}


def test_websocket_passes_through(registry):
    """A websocket session works through the middleware and records no HTTP series."""
    async def ws(websocket):
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text(text.upper())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", ws)])
    app.add_middleware(ProbeMiddleware, registry=registry)
    scope = http_scope("/ws", type="websocket", scheme="ws", subprotocols=[])
    del scope["method"]
    sent = run(lambda: drive(app, scope, [{"type": "websocket.connect"},
                                          {"type": "websocket.receive", "text": "hi"}]))
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send",
                                         "websocket.close"]
    assert sent[1]["text"] == "HI"
    assert http_series(registry) == {}


def test_double_application_records_once(registry):
    """The middleware added twice, and wrapped around again, records each request once."""
    app = make_app(registry)
    app.add_middleware(ProbeMiddleware, registry=registry)
    wrapped = ProbeMiddleware(app, registry=registry)
    assert get(wrapped, "/ok").status_code == 200
    assert counts(registry) == {("GET", "/ok", "200", ""): 1}
    active = families(registry)["http_server_active_requests"]
    assert active[(("http_request_method", "GET"),)].value == 0.0


def test_client_disconnect_before_response(registry):
    """A client gone before the app answered is recorded as 499 client_disconnected."""
    async def app(scope, receive, send):
        message = await receive()
        assert message["type"] == "http.disconnect"
        raise OSError("client went away")  # what an app reading a dead client may do

    wrapped = ProbeMiddleware(app, registry=registry)
    with pytest.raises(OSError):
        run(lambda: drive(wrapped, http_scope("/upload", "POST"), [{"type": "http.disconnect"}]))
    assert counts(registry) == {("POST", "__unmatched__", "499", CLIENT_DISCONNECTED): 1}


def test_client_disconnect_while_streaming(registry):
    """A send that fails with OSError mid-response is recorded as client_disconnected and
    the error reaches the app (Starlette turns it into ClientDisconnect)."""
    app = make_app(registry)
    with pytest.raises(ClientDisconnect):
        run(lambda: drive(app, http_scope("/stream"), [], send_error=ConnectionResetError()))
    ((key, n),) = counts(registry).items()
    assert key[1:] == ("/stream", "499", CLIENT_DISCONNECTED) and n == 1


def test_disconnect_after_complete_response_is_not_an_error(registry):
    """The http.disconnect a server reports after the response is complete is ignored."""
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        assert (await receive())["type"] == "http.disconnect"

    wrapped = ProbeMiddleware(app, registry=registry)
    run(lambda: drive(wrapped, http_scope("/x"), [{"type": "http.disconnect"}]))
    assert counts(registry) == {("GET", "__unmatched__", "200", ""): 1}


def test_app_returning_without_response(registry):
    """An app that returns without responding is recorded as the server's 500."""
    async def app(scope, receive, send):
        return None

    wrapped = ProbeMiddleware(app, registry=registry)
    run(lambda: drive(wrapped, http_scope("/x"), []))
    assert counts(registry) == {("GET", "__unmatched__", "500", "incomplete_response"): 1}


def test_concurrent_requests_do_not_share_state(registry):
    """Fifty interleaved requests with different sizes and statuses are each recorded right."""
    async def sized(request):
        n = int(request.path_params["n"])
        await asyncio.sleep(0.001 * (n % 7))
        return Response(b"z" * n, status_code=200 if n % 2 else 201)

    app = Starlette(routes=[Route("/sized/{n:int}", sized)])
    app.add_middleware(ProbeMiddleware, registry=registry, size_buckets=list(range(1, 51)))

    async def body():
        await asyncio.gather(*(request(app, "GET", f"/sized/{n}") for n in range(1, 51)))

    run(body)
    sizes = http_series(registry, "http_server_response_body_size_bytes")
    odd = sizes[("GET", "/sized/{n:int}", "200", "")]
    even = sizes[("GET", "/sized/{n:int}", "201", "")]
    assert isinstance(odd, HistogramSample) and isinstance(even, HistogramSample)
    assert odd.sum == sum(range(1, 51, 2)) and even.sum == sum(range(2, 51, 2))
    # one observation per bucket n: no request saw another's size
    assert odd.bucket_counts[:50] == tuple(1 if (i + 1) % 2 else 0 for i in range(50))


def test_probe_metrics_work_inside_the_app(registry):
    """A tracked predict function inside an endpoint records model metrics next to HTTP ones."""
    probe = mlprobe.Probe("m", registry=registry)

    @probe.track
    def predict(rows):
        return [0.25 for _ in rows]

    async def endpoint(request):
        return JSONResponse({"scores": predict([[1.0], [2.0]])})

    app = Starlette(routes=[Route("/predict", endpoint)])
    app.add_middleware(ProbeMiddleware, probe=probe)
    assert get(app, "/predict").json() == {"scores": [0.25, 0.25]}
    assert counts(registry) == {("GET", "/predict", "200", ""): 1}
    ok = families(registry)["mlprobe_predictions"][
        (("model", "m"), ("model_version", ""), ("outcome", "ok"))]
    assert ok.value == 1.0


def test_custom_duration_buckets_are_used(registry):
    """duration_buckets replaces the semconv default bounds."""
    app = make_app(registry, duration_buckets=[0.5, 1.0])
    get(app, "/ok")
    _, sample = one(registry)
    assert sample.bounds == (0.5, 1.0) and sample.bucket_counts == (1, 0, 0)


def test_default_duration_buckets_follow_semconv(registry):
    """By default the duration histogram uses the semconv advised bounds."""
    get(make_app(registry), "/ok")
    _, sample = one(registry)
    assert sample.bounds == (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                             5.0, 7.5, 10.0)


@pytest.mark.parametrize("options", [
    {"exclude_paths": ["health"]}, {"metrics_path": "metrics"}, {"max_routes": 0},
    {"duration_buckets": [2, 1]}, {"registry": "default"}, {"known_methods": []},
    {"route_resolver": "path"},
])
def test_bad_options_fail_at_construction(options):
    """Invalid options raise ConfigurationError when the middleware is built."""
    with pytest.raises(ConfigurationError):
        ProbeMiddleware(ok, **options)
