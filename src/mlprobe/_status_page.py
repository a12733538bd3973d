"""The live status page the middleware serves on an opt-in path (``status_page_path``).

``GET path`` returns a self-contained HTML page (inline CSS, SVG and a few lines of script; no
external asset, so it works offline and behind a firewall) that re-fetches its content every
``refresh_seconds`` from ``path?fragment=1``; ``path?format=json`` returns the same content as
JSON (:func:`mlprobe._html_report.view_model`). The content is computed off the event loop,
like ``/drift``. A Content-Security-Policy header allows nothing but the page itself and
same-origin fetches.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from ._asgi_endpoints import Receive, Scope, Send, run_off_loop
from ._guard import report_internal_error

__all__ = ["StatusPageEndpoint", "probe_view_model"]

CSP = (b"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       b"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'")


def probe_view_model(probe: Any) -> dict[str, Any] | None:
    """The page content of a probe's rolling window, or None without a reference profile."""
    from ._feature_metrics import PREDICTION_FEATURE, feature_labels
    from ._fingerprint import profile_fingerprint
    from ._html_report import view_model

    state = probe._current_state()
    window, report, model_quality = state.drift_view()
    if window is None:
        return None
    monitor = state.features.monitor
    sensitive = state.source.config.sensitive
    profile = monitor.profile
    return view_model(profile, window, report, sensitive=sensitive,
                      title=f"mlprobe · {probe.name}", model=probe.name, version=probe.version,
                      window_seconds=monitor.window_seconds,
                      profile_id=profile_fingerprint(profile, feature_labels(profile),
                                                     sensitive, PREDICTION_FEATURE),
                      model_quality=model_quality)


async def _respond(send: Send, status: int, body: bytes, content_type: bytes,
                   head: bool) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode("ascii")),
                            (b"cache-control", b"no-store"),
                            (b"content-security-policy", CSP),
                            (b"x-content-type-options", b"nosniff")]})
    await send({"type": "http.response.body", "body": b"" if head else body})


class StatusPageEndpoint:
    """Serves the status page of ``probe`` (see the module docstring).

    Args:
        probe: The probe whose rolling window the page shows (404 without a reference).
        refresh_seconds: How often the page re-fetches its content.
    """

    def __init__(self, probe: Any, refresh_seconds: float = 5.0) -> None:
        self._probe = probe
        self._refresh = refresh_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request for the page, its fragment or its JSON."""
        from ._html_report import render_body, render_page

        method = scope.get("method", "GET")
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await _respond(send, 405, b"method not allowed\n", b"text/plain; charset=utf-8",
                           head)
            return
        query = parse_qs(bytes(scope.get("query_string") or b"").decode("latin-1"))
        as_json = query.get("format") == ["json"]
        fragment = "fragment" in query
        try:
            model = None
            if self._probe is not None and hasattr(self._probe, "_state"):
                model = await run_off_loop(lambda: probe_view_model(self._probe))
            if model is not None:
                if as_json:
                    body, kind = json.dumps(model, allow_nan=False).encode(), b"application/json"
                elif fragment:
                    body, kind = render_body(model).encode(), b"text/html; charset=utf-8"
                else:
                    body = render_page(model, refresh_seconds=self._refresh,
                                       fragment_url="?fragment=1").encode()
                    kind = b"text/html; charset=utf-8"
        except Exception as exc:  # noqa: BLE001 - an mlprobe failure must not crash the app
            report_internal_error("asgi.status_page", exc)
            await _respond(send, 500, b"mlprobe: building the status page failed; see the "
                           b"application log\n", b"text/plain; charset=utf-8", head)
            return
        if model is None:
            await _respond(send, 404, b"mlprobe: no reference profile, so no drift to show; "
                           b"create the Probe with reference=ReferenceProfile\n",
                           b"text/plain; charset=utf-8", head)
            return
        await _respond(send, 200, body, kind, head)
