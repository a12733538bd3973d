"""The ``http_route`` label: a route template, never a raw path.

Starlette and FastAPI record the matched route object as ``scope["route"]`` (its ``path`` is
the template, ``/items/{item_id}``). Mounted sub-applications complicate this: the router of
a mount overwrites ``scope["route"]`` with the inner route, whose template is relative to the
mount, and the mount only leaves behind the *raw* prefix it consumed, appended to
``scope["root_path"]``. So when ``root_path`` grew during the request, the mounts' templates
are recovered by matching the request path against the mount routes of the top router
(``scope["router"]``, which Starlette sets once, at the outermost router). That walk runs
only for requests that went through a mount, and its result is cached per raw prefix.

The server's ``root_path`` (the application root behind a proxy) is kept in front of the
template, as the OTel semantic conventions ask for ``http.route``.

Nothing here imports Starlette: routes are read by duck typing (``path``, ``path_regex``,
``routes``), so other frameworks that set a compatible ``scope["route"]`` work too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._guard import report_internal_error
from ._http_metrics import UNMATCHED_ROUTE
from ._types import Scope
from .stats._labels import label_value

__all__ = ["RouteResolver"]

MOUNT_PLACEHOLDER = "/{mount}"
"""Stands for a mount prefix whose template could not be recovered (never the raw prefix)."""

_MAX_CACHED_PREFIXES = 1024  # raw prefixes vary only when a mount path has parameters


class RouteResolver:
    """Maps a finished request's scope to its ``http_route`` label value.

    Args:
        fallback: called with the scope when the framework left no route template; returns
            a label value or None (then :data:`UNMATCHED_ROUTE`). It must return templates,
            not raw paths: its values count against the route cap like any other.
    """

    __slots__ = ("_fallback", "_prefixes")

    def __init__(self, fallback: Callable[[Scope], str | None] | None = None) -> None:
        self._fallback = fallback
        self._prefixes: dict[str, str] = {}

    def __call__(self, scope: Scope, entry_root: str) -> str:
        """Return the route label; ``entry_root`` is ``root_path`` as the middleware saw it."""
        route = scope.get("route")
        template = getattr(route, "path", None) if route is not None else None
        if type(template) is str:
            root = scope.get("root_path", "")
            # app_root_path is set by the first Starlette mount to the root_path it saw: the
            # server's application root even if this middleware sits inside a mount.
            server_root = scope.get("app_root_path", entry_root)
            if root == server_root:
                return server_root + template if server_root else template
            prefix = self._prefixes.get(root)
            if prefix is None:
                prefix = self._mount_prefix(scope, root, server_root)
            if _is_mount(route):
                return prefix  # the innermost mount matched nothing deeper; it is the prefix
            return prefix + template
        if self._fallback is not None:
            try:
                label = self._fallback(scope)
            except Exception as exc:  # noqa: BLE001 - a user callback must not fail requests
                report_internal_error("asgi.route_resolver", exc)
                return UNMATCHED_ROUTE
            if isinstance(label, str) and label:
                # a str subclass may hash or compare oddly: keep its plain characters
                return label if type(label) is str else label_value(label)
        return UNMATCHED_ROUTE

    def _mount_prefix(self, scope: Scope, root: str, server_root: str) -> str:
        path = scope.get("path", "")
        if server_root and path.startswith(server_root):
            path = path[len(server_root):]
        router = scope.get("router")
        routes = getattr(router, "routes", None)
        prefix = None
        if routes is not None and root.startswith(server_root):
            prefix = _walk(routes, path, len(root) - len(server_root))
        prefix = server_root + (MOUNT_PLACEHOLDER if prefix is None else prefix)
        if len(self._prefixes) < _MAX_CACHED_PREFIXES:
            self._prefixes[root] = prefix
        return prefix


def _is_mount(route: Any) -> bool:
    return getattr(route, "path_regex", None) is not None and hasattr(route, "routes")


def _walk(routes: Any, path: str, consume: int) -> str | None:
    """Return the templates of the mounts that consumed ``consume`` leading chars of ``path``."""
    for route in routes:
        if not _is_mount(route):
            continue
        match = route.path_regex.match(path)
        if match is None:
            continue
        rest = "/" + match.groupdict().get("path", "")
        consumed = len(path) - len(rest)
        if consumed == consume:
            return str(route.path)
        if 0 <= consumed < consume:
            inner = _walk(route.routes, rest, consume - consumed)
            if inner is not None:
                return str(route.path) + inner
    return None
