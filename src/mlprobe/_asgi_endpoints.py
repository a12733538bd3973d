"""The two endpoints the middleware can serve: Prometheus exposition and drift status JSON.

Both build their body off the event loop (a scrape walks every source of the registry; a drift
status computes statistics), so a slow scrape never stalls requests in flight.

``metrics_path`` serves the Prometheus exposition, so :class:`MetricsEndpoint` asks the
Prometheus exporter for it (:func:`mlprobe.exporters.prometheus.exposition`, which also chooses
the prometheus registry). That is the one import of an exporter outside the composition root,
listed in the import contract; it is made lazily, at the first scrape, so that ``import
mlprobe`` and a middleware without ``metrics_path`` never import prometheus_client.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ._guard import report_internal_error
from ._registry import Registry
from ._types import Receive, Scope, Send

__all__ = ["DriftEndpoint", "METRICS_FAILURE_BODY", "MetricsEndpoint"]

METRICS_FAILURE_BODY = (b"mlprobe: building the metrics exposition failed; "
                        b"see the application log\n")
"""Body of the 500 answer of ``metrics_path`` when the exposition could not be built."""


async def run_off_loop(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a worker thread of whatever event loop serves the app."""
    try:  # anyio covers asyncio and trio; Starlette and FastAPI already depend on it
        from anyio import to_thread
    except ImportError:  # pragma: no cover - plain asyncio servers without anyio
        import asyncio

        return await asyncio.get_running_loop().run_in_executor(None, fn)
    return await to_thread.run_sync(fn)


async def respond(send: Send, status: int, body: bytes, content_type: bytes,
                  head_only: bool = False, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """Send a complete response in two messages (``headers``: extra ones)."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode("ascii")),
                            (b"cache-control", b"no-store"), *headers]})
    await send({"type": "http.response.body", "body": b"" if head_only else body})


GZIP_LEVEL = 6
"""zlib level of compressed scrapes: nearly level 9's size at a fraction of its time."""


def gzip_accepted(accept_encoding: str | None) -> bool:
    """True when an ``Accept-Encoding`` value lists gzip with a quality above zero."""
    for item in (accept_encoding or "").split(","):
        coding, _, parameters = item.partition(";")
        if coding.strip().lower() != "gzip":
            continue
        quality = parameters.strip().lower()
        if not quality.startswith("q="):
            return True
        try:
            return float(quality[2:]) > 0.0
        except ValueError:
            return False
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class MetricsEndpoint:
    """Serves the Prometheus text (or OpenMetrics, by ``Accept``) exposition, gzip-compressed
    when ``Accept-Encoding`` allows it (as prometheus_client's own handlers do).

    Args:
        registry: the mlprobe registry to expose.
        prometheus_registry: a prometheus_client ``CollectorRegistry`` to serve instead of
            the exporter's default choice (prometheus_client's global ``REGISTRY`` for
            :data:`mlprobe.default_registry`, else a private registry holding ``registry``).
    """

    def __init__(self, registry: Registry, prometheus_registry: Any = None) -> None:
        self._registry = registry
        self._prometheus_registry = prometheus_registry
        # Scrapes run in worker threads, so two first scrapes may race: each may build a
        # candidate, and dict.setdefault (atomic) makes every thread use the first one
        # published. No lock, so nothing can be inherited held by a forked worker.
        self._resolved: dict[str, Any] = {}

    def _exposition(self) -> Callable[[str | None], tuple[bytes, str]]:
        expose = self._resolved.get("exposition")
        if expose is None:
            from .exporters import prometheus  # the documented lazy edge (module docstring)

            candidate = prometheus.exposition(self._registry, self._prometheus_registry)
            expose = self._resolved.setdefault("exposition", candidate)
        return expose

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one scrape: 200 with the exposition, or 500 with a short text if it fails."""
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            await respond(send, 405, b"method not allowed\n", b"text/plain; charset=utf-8")
            return
        accept = _header(scope, b"accept")

        def build() -> tuple[bytes, str]:
            return self._exposition()(accept)

        try:
            body, content_type = await run_off_loop(build)
        except Exception as exc:  # noqa: BLE001 - e.g. an application collector that raises
            report_internal_error("asgi.metrics", exc)
            await respond(send, 500, METRICS_FAILURE_BODY, b"text/plain; charset=utf-8",
                          method == "HEAD")
            return
        # The representation depends on both request headers: caches must key on them.
        headers = [(b"vary", b"Accept, Accept-Encoding")]
        if gzip_accepted(_header(scope, b"accept-encoding")):
            body = await run_off_loop(partial(gzip.compress, body, GZIP_LEVEL))
            headers.append((b"content-encoding", b"gzip"))
        await respond(send, 200, body, content_type.encode("latin-1"), method == "HEAD",
                      headers)


class DriftEndpoint:
    """Serves ``probe.drift_status()`` as JSON.

    The HTTP status follows the document's: 404 for ``"no_reference"`` (the probe has no
    reference profile, or there is no probe), 500 for ``"error"``, 200 otherwise (``ok``,
    ``warning``, ``critical``, ...), so a plain HTTP check can tell them apart.
    """

    def __init__(self, probe: Any) -> None:
        self._probe = probe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one status request."""
        method = scope.get("method", "GET")
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await respond(send, 405, b'{"error": "method not allowed"}', b"application/json")
            return
        status_fn = getattr(self._probe, "drift_status", None)
        if status_fn is None:
            detail = ("no probe given to the middleware" if self._probe is None
                      else "this probe has no drift_status()")
            body = json.dumps({"status": "no_reference", "detail": detail}).encode()
            await respond(send, 404, body, b"application/json", head)
            return
        try:
            document = await run_off_loop(status_fn)
            body = json.dumps(_finite(document), default=_jsonable, allow_nan=False).encode()
        except Exception as exc:  # noqa: BLE001 - an mlprobe failure must not crash the app
            report_internal_error("asgi.drift_status", exc)
            body = json.dumps({"status": "error", "detail": type(exc).__name__}).encode()
            await respond(send, 500, body, b"application/json", head)
            return
        state = document.get("status") if isinstance(document, dict) else None
        code = 404 if state == "no_reference" else 500 if state == "error" else 200
        await respond(send, code, body, b"application/json", head)


def _finite(value: Any) -> Any:
    # JSON has no NaN or Infinity (browsers' JSON.parse rejects them): report them as null.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays, dataclasses, enums: whatever a status document may hold
    if hasattr(value, "tolist"):
        return _finite(value.tolist())
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if hasattr(value, "value"):
        return value.value
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
