"""ASGI middleware: HTTP server metrics, plus optional ``/metrics`` and drift status endpoints.

Example:
    >>> import mlprobe
    >>> from mlprobe.asgi import ProbeMiddleware
    >>> probe = mlprobe.Probe("churn", version="3")
    >>> app.add_middleware(ProbeMiddleware, probe=probe, metrics_path="/metrics")

The middleware is pure ASGI: it works with Starlette, FastAPI and any other ASGI framework,
through ``add_middleware`` or by wrapping an app (``app = ProbeMiddleware(app)``). It imports
no framework. What it records follows the OpenTelemetry HTTP semantic conventions as rendered
for Prometheus (see ``docs/asgi.md`` for the exact semantics of every series):

- ``http_server_request_duration_seconds`` (histogram): from the request's arrival at the
  middleware to the moment the last response body message was handed to the server; work the
  app does after that (background tasks) is not included.
- ``http_server_time_to_first_byte_seconds`` (histogram): to the first non-empty body message.
- ``http_server_request_body_size_bytes`` / ``http_server_response_body_size_bytes``
  (histograms): bytes actually received from and handed to the server, streaming included.
- ``http_server_active_requests`` (gauge, by method).

Labels are ``http_request_method`` (unknown methods as ``_OTHER``), ``http_route`` (the route
template, never the raw path), ``http_response_status_code`` and ``error_type`` (empty when the
request succeeded; the exception type, the 5xx status code, or ``client_disconnected``).
Every label is capped: past the cap new values count as ``__other__``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from time import perf_counter
from typing import TYPE_CHECKING, Any

from . import _config
from ._asgi_endpoints import DriftEndpoint, MetricsEndpoint, run_off_loop
from ._asgi_routes import RouteResolver
from ._config import check_buckets, check_positive_int
from ._guard import report_internal_error
from ._prediction_ids import RequestIds, id_key, request_ids
from ._http_metrics import (
    DEFAULT_DURATION_BUCKETS,
    DEFAULT_KNOWN_METHODS,
    FOLD_BATCH,
    OTHER_METHOD,
    UNMATCHED_ROUTE,
    HttpConfig,
    HttpMetrics,
)
from ._registry import Registry, default_registry
from ._status_page import StatusPageEndpoint
from ._types import ASGIApp, Message, Receive, Scope, Send
from .errors import ConfigurationError
from .stats._labels import label_value

if TYPE_CHECKING:
    from ._probe import Probe

__all__ = [
    "CLIENT_DISCONNECTED",
    "DEFAULT_EXCLUDE_PATHS",
    "OTHER_METHOD",
    "ProbeMiddleware",
    "UNMATCHED_ROUTE",
]

DEFAULT_EXCLUDE_PATHS: tuple[str, ...] = ("/metrics", "/health", "/healthz", "/ready",
                                          "/readyz", "/livez")
"""Paths passed through unrecorded unless ``exclude_paths`` says otherwise."""

CLIENT_DISCONNECTED = "client_disconnected"
"""``error_type`` of a request whose client went away before the response was complete."""

DISCONNECT_STATUS = 499
"""Status label of a request whose client went away before a response started (nginx's code)."""

# Set in the scope of a request this middleware is recording, so that a second instance on the
# same request (the middleware added twice, or also inside a mounted sub-app) passes through.
# A scope key rather than a ContextVar: it is exactly per request, while a ContextVar would
# leak into tasks the request spawns (a sub-request dispatched from a handler).
_SCOPE_KEY = "mlprobe.asgi"

_METHOD_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")



class ProbeMiddleware:
    """Record HTTP server metrics for an ASGI app; optionally serve ``/metrics`` and drift status.

    Args:
        app: the ASGI application to wrap.
        probe: the model's probe: its registry receives the HTTP metrics (unless
            ``registry`` is given) and ``drift_path`` serves its ``drift_status()``.
        registry: where the HTTP series live; by default the probe's registry, else
            :data:`mlprobe.default_registry`.
        exclude_paths: paths (relative to ``root_path``, exact match) passed through
            unrecorded; health checks and the scrape endpoint by default.
        route_resolver: ``scope -> template | None`` for frameworks that do not put the matched
            route in ``scope["route"]``; return a template, never the raw path. Unmatched
            requests are labelled :data:`UNMATCHED_ROUTE`.
        metrics_path: serve the Prometheus exposition at this path (off by default). It serves
            prometheus_client's default registry when ``registry`` is mlprobe's default one,
            else a private registry holding only ``registry``; pass ``prometheus_registry``
            to choose.
        prometheus_registry: the prometheus_client ``CollectorRegistry`` ``metrics_path``
            serves.
        drift_path: serve ``probe.drift_status()`` as JSON at this path (off by default); 404
            while the probe has neither a reference profile nor ``quality=``.
        status_page_path: serve a live HTML status page of the probe's drift, data quality
            and model quality at this path (off by default; self-contained, refreshes itself; ``?format=json``
            gives its content as JSON). 404 while the probe has no reference profile.
        status_page_refresh: seconds between the page's refreshes (default 5).
        prediction_id_header: a request header carrying the prediction id (e.g.
            ``"x-prediction-id"``; off by default). A tracked call of a probe with
            ``quality=`` made while serving the request stores its prediction under that id,
            or under a new one when the request has none; either way the id is sent back in
            the same response header, for the caller to bring the outcome with
            (``probe.record_outcome(id, label)``). The response must start after the call.
        duration_buckets: upper bounds in seconds for duration and time to first byte
            (default: the semconv advice, 5 ms to 10 s).
        size_buckets: upper bounds in bytes for request and response body sizes.
        known_methods: methods kept as they are; others are recorded as ``_OTHER``.
        max_routes: distinct ``http_route`` values kept before the rest count as ``__other__``.
        max_status_codes: distinct status codes kept before the rest count as ``__other__``.
        max_error_types: distinct ``error_type`` values kept before the rest count as
            ``__other__``.

    Raises:
        ConfigurationError: a bad argument; the message names it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        probe: Probe | None = None,
        registry: Registry | None = None,
        exclude_paths: Iterable[str] | None = None,
        route_resolver: Callable[[Scope], str | None] | None = None,
        metrics_path: str | None = None,
        prometheus_registry: Any = None,
        drift_path: str | None = None,
        status_page_path: str | None = None,
        status_page_refresh: float = 5.0,
        prediction_id_header: str | None = None,
        duration_buckets: Iterable[float] | None = None,
        size_buckets: Iterable[float] | None = None,
        known_methods: Iterable[str] | None = None,
        max_routes: int = 200,
        max_status_codes: int = 40,
        max_error_types: int = 20,
    ) -> None:
        if registry is not None and not isinstance(registry, Registry):
            raise ConfigurationError(f"registry must be a mlprobe.Registry, got "
                                     f"{type(registry).__name__}")
        if route_resolver is not None and not callable(route_resolver):
            raise ConfigurationError("route_resolver must be a callable scope -> str | None")
        if probe is not None and not hasattr(probe, "registry"):
            raise ConfigurationError(f"probe must be a mlprobe.Probe, got {type(probe).__name__}")
        methods = tuple(DEFAULT_KNOWN_METHODS if known_methods is None else known_methods)
        # Known methods are exported as label values as they are: HTTP tokens (RFC 9110).
        if not methods or any(not isinstance(m, str) or _METHOD_TOKEN.fullmatch(m) is None
                              for m in methods):
            raise ConfigurationError("known_methods must be non-empty HTTP method names "
                                     "(tokens of at most 64 letters, digits or !#$%&'*+-.^_`|~), "
                                     "e.g. ('GET', 'POST')")
        config = HttpConfig(
            duration_buckets=check_buckets("duration_buckets", duration_buckets,
                                           DEFAULT_DURATION_BUCKETS),
            size_buckets=check_buckets("size_buckets", size_buckets,
                                       _config.DEFAULT_BYTES_BUCKETS),
            known_methods=tuple(dict.fromkeys(methods)),
            max_routes=check_positive_int("max_routes", max_routes),
            max_status_codes=check_positive_int("max_status_codes", max_status_codes),
            max_error_types=check_positive_int("max_error_types", max_error_types),
        )
        self.app = app
        self.probe = probe
        if registry is None:
            registry = probe.registry if probe is not None else default_registry
        self.registry = registry
        self._metrics = registry.get_or_create(("asgi", "http"), lambda: HttpMetrics(config))
        if self._metrics.config != config:
            import logging

            logging.getLogger("mlprobe").warning(
                "mlprobe: HTTP metrics of this registry already exist with other settings; "
                "keeping the first settings")
        self._method_index = self._metrics.method_index
        self._other_method = self._metrics.other_method
        self._routes = RouteResolver(route_resolver)
        # path -> None (pass through unrecorded) or an endpoint app served here
        special: dict[str, ASGIApp | None] = {}
        for path in DEFAULT_EXCLUDE_PATHS if exclude_paths is None else exclude_paths:
            special[_check_path("exclude_paths", path)] = None
        if metrics_path is not None:
            special[_check_path("metrics_path", metrics_path)] = MetricsEndpoint(
                registry, prometheus_registry)
        if drift_path is not None:
            special[_check_path("drift_path", drift_path)] = DriftEndpoint(probe)
        if status_page_path is not None:
            if isinstance(status_page_refresh, bool) or not isinstance(
                    status_page_refresh, (int, float)) or not 1 <= status_page_refresh <= 3600:
                raise ConfigurationError("status_page_refresh must be seconds between 1 and "
                                         f"3600, got {status_page_refresh!r}")
            special[_check_path("status_page_path", status_page_path)] = StatusPageEndpoint(
                probe, float(status_page_refresh))
        self._special = special
        self._id_header: bytes | None = None
        if prediction_id_header is not None:
            if not isinstance(prediction_id_header, str) or _METHOD_TOKEN.fullmatch(
                    prediction_id_header) is None:
                raise ConfigurationError("prediction_id_header must be an HTTP header name "
                                         "(letters, digits and -), e.g. 'x-prediction-id'; "
                                         f"got {prediction_id_header!r}")
            self._id_header = prediction_id_header.lower().encode("ascii")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (HTTP is recorded; everything else passes through)."""
        if scope["type"] != "http" or _SCOPE_KEY in scope:
            if scope["type"] == "lifespan" and self.registry.merger is not None:
                await self.app(scope, receive, self._lifespan_send(send))
                return
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = True
        path = scope["path"]
        entry_root = scope.get("root_path", "")
        if entry_root and path.startswith(entry_root):
            path = path[len(entry_root):]
        if path in self._special:
            endpoint = self._special[path]
            await (self.app if endpoint is None else endpoint)(scope, receive, send)
            return

        metrics = self._metrics
        method = self._method_index.get(scope["method"], self._other_method)
        next(metrics.started[method])  # HttpMetrics.enter, inlined: it runs on every request
        start = perf_counter()
        # Per-request state: locals of this call, shared with the two wrappers as cells.
        status = 0
        received = 0
        sent = 0
        first = -1.0
        state = 0  # 0 open, 1 last body handed to the server, 2 recorded
        disconnected = False
        # With prediction_id_header: the request's id holder, in the context of the app (and
        # of every thread or task it starts: they share this one object).
        holder = token = None
        if self._id_header is not None:
            holder = RequestIds(_incoming_id(scope, self._id_header))
            token = request_ids.set(holder)

        async def receive_wrapper() -> Message:
            nonlocal received, disconnected
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body")
                if body:
                    received += len(body)
            elif message["type"] == "http.disconnect" and state == 0:
                disconnected = True
            return message

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, first, state, disconnected
            if message["type"] == "http.response.body":
                more = message.get("more_body", False)
                if not more and state == 0:
                    # A server may report the disconnect of a finished response to a
                    # concurrent receive() as soon as it has the last body: not a disconnect.
                    state = 1
                try:
                    await send(message)
                except OSError:
                    disconnected = True
                    raise
                now = perf_counter()
                body = message.get("body")
                if body:
                    sent += len(body)
                    if first < 0.0:
                        first = now
                if more or state == 2:
                    return
                state = 2
                if disconnected or status >= 500:
                    self._record(scope, entry_root, method, status, "", disconnected, start,
                                 now, first, received, sent)
                    return
                # The common case, inlined: a complete response with a status below 500.
                try:
                    template = getattr(scope.get("route"), "path", None)
                    if (type(template) is str and scope.get("root_path", "") == entry_root
                            and "app_root_path" not in scope):
                        label = entry_root + template if entry_root else template
                    else:
                        label = self._routes(scope, entry_root)
                    # HttpMetrics.record, inlined
                    pending = self._metrics.pending
                    pending.append((method, label, status, "", start, now, first, received,
                                    sent))
                    if len(pending) >= FOLD_BATCH:
                        self._metrics.fold()
                except Exception as exc:  # noqa: BLE001
                    report_internal_error("asgi.record", exc)
                return
            if holder is not None and holder.assigned is not None \
                    and message["type"] == "http.response.start":
                message = _with_header(message, self._id_header, holder.assigned)
            try:
                await send(message)
            except OSError:
                disconnected = True
                raise
            if message["type"] == "http.response.start":
                status = message["status"]  # once the server took it: the status was sent

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        except BaseException as exc:
            if state != 2:
                state = 2
                self._record(scope, entry_root, method, status, type(exc).__qualname__,
                             disconnected, start, perf_counter(), first, received, sent)
            raise
        finally:
            if token is not None:
                request_ids.reset(token)
        if state != 2:
            # The app returned without completing its response: the server answers 500 if
            # nothing was started, or cuts the connection.
            self._record(scope, entry_root, method, status, "incomplete_response",
                         disconnected, start, perf_counter(), first, received, sent)

    def _lifespan_send(self, send: Send) -> Send:
        """``send`` of the lifespan scope in multi-process mode: when the app has shut down,
        this worker folds its last state into the directory's archive before the server is
        told (servers may end the process with the signal that stopped it, so an atexit
        handler would not run)."""
        merger = self.registry.merger

        async def lifespan_send(message: Message) -> None:
            if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                try:
                    await run_off_loop(merger.final)
                except Exception as exc:  # noqa: BLE001 - shutting down must go on
                    report_internal_error("asgi.lifespan_final", exc)
            await send(message)

        return lifespan_send

    def _record(self, scope: Scope, entry_root: str, method: int, status: int, error: str,
                disconnected: bool, start: float, end: float, first: float, received: int,
                sent: int) -> None:
        """Record a request that failed, was cut short, or answered 5xx (the slow path).

        ``start``, ``end`` and ``first`` (the first body byte, < 0 if none) are perf_counter
        readings. ``status`` is 0 when no response started: then the server answers 500 (an exception,
        or an app that returned without responding) unless the client is already gone.
        """
        try:
            if disconnected:
                error = CLIENT_DISCONNECTED
                if not status:
                    status = DISCONNECT_STATUS
            elif not status:
                status = 500
            elif status >= 500 and not error:
                error = str(status)  # semconv: a 5xx without an exception is its code
            if type(error) is not str:  # a class may carry any __qualname__, even a str subclass
                error = label_value(error)
            self._metrics.record(method, self._routes(scope, entry_root), status, error,
                                 start, end, first, received, sent)
        except Exception as exc:  # noqa: BLE001
            report_internal_error("asgi.record", exc)


def _incoming_id(scope: Scope, header: bytes) -> str | None:
    """The prediction id a request carries in ``header`` (None when absent or empty), as the
    store keys it (a long id by its hash, as ``record_outcome`` looks it up)."""
    for key, value in scope.get("headers") or ():
        if key.lower() == header:
            text = bytes(value).decode("latin-1").strip()
            return id_key(text) if text else None
    return None


def _with_header(message: Message, header: bytes | None, prediction_id: str) -> Message:
    """A response start message with the prediction id header added."""
    try:
        value = prediction_id.encode("latin-1")
    except UnicodeEncodeError:  # an id given as an argument may be any text
        value = prediction_id.encode("utf-8")
    return {**message, "headers": [*(message.get("headers") or ()), (header, value)]}


def _check_path(arg: str, path: object) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"{arg} must be paths starting with '/', got {path!r}")
    return path
