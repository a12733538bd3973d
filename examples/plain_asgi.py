"""ProbeMiddleware around a framework-less ASGI app, with a route_resolver.

Frameworks other than Starlette and FastAPI may not put the matched route in the scope; a
``route_resolver`` maps each request to a route template instead (never the raw path, so the
number of series stays bounded). Run: ``python examples/plain_asgi.py`` then
``curl 127.0.0.1:8000/users/42`` and ``curl 127.0.0.1:8000/metrics``.
"""

from __future__ import annotations

from typing import Any

import mlprobe
from mlprobe.asgi import ProbeMiddleware


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A tiny ASGI app: /users/<id> answers, anything else is a 404."""
    if scope["type"] != "http":
        return
    found = scope["path"].startswith("/users/")
    body = b"user\n" if found else b"not found\n"
    await send({"type": "http.response.start", "status": 200 if found else 404,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def route_of(scope: dict[str, Any]) -> str | None:
    """Route template of a request (None: labelled __unmatched__)."""
    return "/users/{user_id}" if scope["path"].startswith("/users/") else None


registry = mlprobe.Registry()
instrumented = ProbeMiddleware(app, registry=registry, route_resolver=route_of,
                               metrics_path="/metrics")

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(instrumented, host="127.0.0.1", port=8000)
