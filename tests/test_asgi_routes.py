"""The http_route label: templates through mounts and root_path, fallbacks, bounded values."""

from __future__ import annotations

import random
import string
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from test_asgi_helpers import counts, drive, families, get, http_scope, run

import mlprobe
from mlprobe.asgi import OTHER_METHOD, UNMATCHED_ROUTE, ProbeMiddleware


async def ok(request: Any) -> Response:
    return PlainTextResponse("ok")


async def raw_asgi(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


def routes_seen(registry: mlprobe.Registry) -> set[str]:
    return {key[1] for key in counts(registry)}


def test_mounted_starlette_apps_compose_templates(registry):
    """Routes inside static, parameterised and nested mounts get the full template."""
    inner = Starlette(routes=[Route("/users/{user_id}", ok)])
    deep = Router(routes=[Mount("/b", routes=[Route("/c/{c_id}", ok)])])
    app = Starlette(routes=[
        Route("/top", ok),
        Mount("/static-prefix", app=inner),
        Mount("/v/{version}", app=inner),
        Mount("/a", app=deep),
    ])
    app.add_middleware(ProbeMiddleware, registry=registry)
    for path in ["/top", "/static-prefix/users/1", "/v/1/users/2", "/v/2/users/3",
                 "/a/b/c/4"]:
        assert get(app, path).status_code == 200, path
    assert counts(registry) == {
        ("GET", "/top", "200", ""): 1,
        ("GET", "/static-prefix/users/{user_id}", "200", ""): 1,
        ("GET", "/v/{version}/users/{user_id}", "200", ""): 2,
        ("GET", "/a/b/c/{c_id}", "200", ""): 1,
    }


def test_mount_of_a_plain_asgi_app_is_labelled_by_its_prefix(registry):
    """A mounted app that sets no route of its own is labelled with the mount's template."""
    app = Starlette(routes=[Mount("/files/{bucket}", app=raw_asgi)])
    app.add_middleware(ProbeMiddleware, registry=registry)
    for n in range(5):
        assert get(app, f"/files/b{n}/some/file{n}.txt").text == "raw"
    assert counts(registry) == {("GET", "/files/{bucket}", "200", ""): 5}


def test_unmatched_inside_a_mount_keeps_the_mount_prefix(registry):
    """A 404 inside a mounted router is labelled by the mount, not by the raw path."""
    inner = Starlette(routes=[Route("/known", ok)])
    app = Starlette(routes=[Mount("/sub/{tenant}", app=inner)])
    app.add_middleware(ProbeMiddleware, registry=registry)
    assert get(app, "/sub/t1/unknown").status_code == 404
    assert get(app, "/sub/t2/other").status_code == 404
    assert counts(registry) == {("GET", "/sub/{tenant}", "404", ""): 2}


def test_middleware_inside_a_mounted_sub_app(registry):
    """The middleware applied to a mounted sub-app still reports the full template."""
    inner = Starlette(routes=[Route("/items/{item_id}", ok)])
    inner.add_middleware(ProbeMiddleware, registry=registry)
    app = Starlette(routes=[Mount("/shop/{shop_id}", app=inner)])
    assert get(app, "/shop/42/items/7").status_code == 200
    assert counts(registry) == {("GET", "/shop/{shop_id}/items/{item_id}", "200", ""): 1}


def test_root_path_is_part_of_the_route(registry):
    """An application root (root_path) prefixes the template, as semconv asks for http.route."""
    inner = Starlette(routes=[Route("/items/{item_id}", ok)])
    app = Starlette(routes=[Route("/items/{item_id}", ok), Mount("/m", app=inner)])
    app.add_middleware(ProbeMiddleware, registry=registry)
    assert get(app, "/api/items/1", root_path="/api").status_code == 200
    assert get(app, "/api/m/items/2", root_path="/api").status_code == 200
    assert get(app, "/api/health", root_path="/api").status_code == 404  # excluded
    assert counts(registry) == {
        ("GET", "/api/items/{item_id}", "200", ""): 1,
        ("GET", "/api/m/items/{item_id}", "200", ""): 1,
    }


def test_fastapi_routers_and_mounted_fastapi_apps(registry):
    """FastAPI path operations, included routers and mounted FastAPI apps give templates."""
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/models/{name}")
    def model(name: str) -> dict[str, str]:
        return {"name": name}

    @app.get("/items/{item_id}")
    def read_item(item_id: int) -> dict[str, int]:
        return {"item_id": item_id}

    sub = FastAPI()

    @sub.get("/status/{code}")
    def status(code: str) -> dict[str, str]:
        return {"code": code}

    app.include_router(router)
    app.mount("/admin", sub)
    app.add_middleware(ProbeMiddleware, registry=registry)
    assert get(app, "/items/3").json() == {"item_id": 3}
    assert get(app, "/items/not-an-int").status_code == 422
    assert get(app, "/v1/models/churn").status_code == 200
    assert get(app, "/admin/status/green").status_code == 200
    assert counts(registry) == {
        ("GET", "/items/{item_id}", "200", ""): 1,
        ("GET", "/items/{item_id}", "422", ""): 1,
        ("GET", "/v1/models/{name}", "200", ""): 1,
        ("GET", "/admin/status/{code}", "200", ""): 1,
    }


def test_random_path_scan_adds_a_fixed_number_of_series(registry):
    """10,000 random paths (params, unknown paths, odd methods) add exactly the series the
    route table allows: here 5 duration series and 2 active-request series."""
    app = Starlette(routes=[Route("/items/{item_id}", ok), Route("/users/{uid}/orders", ok),
                            Mount("/files/{bucket}", app=raw_asgi)])
    app.add_middleware(ProbeMiddleware, registry=registry)
    rng = random.Random(7)

    def junk() -> str:
        return "".join(rng.choices(string.ascii_letters + string.digits + "-_.~%", k=12))

    async def scan() -> None:
        for _ in range(10_000):
            shape = rng.randrange(4)
            path = ["/items/" + junk(), f"/users/{junk()}/orders", f"/files/{junk()}/{junk()}",
                    "/" + junk() + "/" + junk()][shape]
            method = rng.choice(["GET", "GET", "BREW"])
            await drive(app, http_scope(path, method), [])

    run(scan)
    series = counts(registry)
    assert sum(series.values()) == 10_000
    assert set(series) == {
        ("GET", "/items/{item_id}", "200", ""), ("GET", "/users/{uid}/orders", "200", ""),
        ("GET", "/files/{bucket}", "200", ""), ("GET", UNMATCHED_ROUTE, "404", ""),
        # Starlette routes match paths, not methods: BREW on a route is a 405 there
        (OTHER_METHOD, "/items/{item_id}", "405", ""),
        (OTHER_METHOD, "/users/{uid}/orders", "405", ""),
        (OTHER_METHOD, "/files/{bucket}", "200", ""), (OTHER_METHOD, UNMATCHED_ROUTE, "404", ""),
    }
    assert len(families(registry)["http_server_active_requests"]) == 2
    exported = [family for family in registry.collect() if family.name.startswith("http_")]
    assert sum(len(f.samples) for f in exported) == 4 * 8 + 2


def test_route_resolver_for_frameworks_without_scope_route(registry):
    """A route_resolver labels requests of an app that sets no scope['route']."""
    def resolver(scope):
        return "/raw/{rest}" if scope["path"].startswith("/raw/") else None

    app = ProbeMiddleware(raw_asgi, registry=registry, route_resolver=resolver)
    run(lambda: drive(app, http_scope("/raw/1"), []))
    run(lambda: drive(app, http_scope("/raw/2"), []))
    run(lambda: drive(app, http_scope("/elsewhere"), []))
    assert counts(registry) == {("GET", "/raw/{rest}", "200", ""): 2,
                                ("GET", UNMATCHED_ROUTE, "200", ""): 1}


def test_without_resolver_unrouted_apps_get_the_constant(registry):
    """With no route and no resolver, every path shares the one unmatched value."""
    app = ProbeMiddleware(raw_asgi, registry=registry)
    for n in range(20):
        run(lambda n=n: drive(app, http_scope(f"/p/{n}"), []))
    assert counts(registry) == {("GET", UNMATCHED_ROUTE, "200", ""): 20}


@pytest.mark.allow_internal_errors
def test_failing_route_resolver_is_swallowed(registry):
    """A resolver that raises costs the request nothing; it is counted as an internal error."""
    before = mlprobe._guard.internal_error_count()

    def resolver(scope):
        raise KeyError("bug")

    app = ProbeMiddleware(raw_asgi, registry=registry, route_resolver=resolver)
    sent = run(lambda: drive(app, http_scope("/x"), []))
    assert sent[-1]["body"] == b"raw"
    assert counts(registry) == {("GET", UNMATCHED_ROUTE, "200", ""): 1}
    assert mlprobe._guard.internal_error_count() == before + 1


def test_route_cap_overflows_to_other(registry):
    """Past max_routes distinct routes, new ones are counted as __other__."""
    app = ProbeMiddleware(raw_asgi, registry=registry, max_routes=3,
                          route_resolver=lambda scope: scope["path"])
    for n in range(10):
        run(lambda n=n: drive(app, http_scope(f"/r{n}"), []))
    series = counts(registry)
    assert series == {("GET", "/r0", "200", ""): 1, ("GET", "/r1", "200", ""): 1,
                      ("GET", "/r2", "200", ""): 1, ("GET", "__other__", "200", ""): 7}


def test_status_and_error_type_caps_overflow_to_other(registry):
    """Status codes and error types past their caps are counted as __other__."""
    async def app(scope, receive, send):
        n = int(scope["path"][1:])
        if n >= 100:
            raise type(f"Error{n}", (Exception,), {})()
        await send({"type": "http.response.start", "status": 200 + n, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped = ProbeMiddleware(app, registry=registry, max_status_codes=2, max_error_types=2)
    for n in [0, 1, 2, 3, 100, 101, 102]:
        try:
            run(lambda n=n: drive(wrapped, http_scope(f"/{n}"), []))
        except Exception:
            pass
    series = counts(registry)
    assert {key[2] for key in series} == {"200", "201", "__other__"}
    assert {key[3] for key in series} == {"", "Error100", "Error101", "__other__"}
    assert sum(series.values()) == 7
