"""Headless Chromium (Debian's, driven by Playwright) and uvicorn-in-a-thread for page tests.

``.ci/install-chromium.sh`` installs both; locally a missing browser or playwright skips, in CI
(``CI`` set) it fails. Screenshots go to the test's ``tmp_path``; with
``MLPROBE_WRITE_DOCS_IMAGES=1`` (read at import, before the suite clears ``MLPROBE_*``) they
are also written to ``docs/img/`` for the README.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

DOCS_IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
WRITE_DOCS_IMAGES = os.environ.get("MLPROBE_WRITE_DOCS_IMAGES") == "1"


def need(reason: str) -> None:
    """Skip locally; under CI a missing browser is a broken setup, so fail."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on a free 127.0.0.1 port; yield the base URL."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[Any]:
    """One Chromium per test module (Playwright, system browser; never `playwright install`).

    Not per session: while Playwright's sync API is open, its event loop counts as running in
    the main thread, so later tests that call ``asyncio.run`` would fail.
    """
    exe = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not exe or not os.access(exe, os.X_OK):
        need("no chromium on PATH: run .ci/install-chromium.sh")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright is not installed: run .ci/install-chromium.sh")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe)
        yield browser
        browser.close()


@pytest.fixture
def web_page(chromium_browser: Any) -> Iterator[Any]:
    """A fresh context and page; console errors, page errors and every requested URL are
    collected in ``.js_errors`` and ``.requests``."""
    context = chromium_browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.js_errors = []
    page.requests = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    page.on("console", lambda msg: msg.type == "error" and page.js_errors.append(msg.text))
    page.on("request", lambda request: page.requests.append(request.url))
    yield page
    context.close()


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def screenshot(target: Any, tmp_path: Path, name: str, **kwargs: Any) -> Path:
    """Save a PNG of a page or locator under ``tmp_path`` (and ``docs/img`` when asked)."""
    path = tmp_path / name
    target.screenshot(path=path, animations="disabled", **kwargs)
    assert png_size(path)[0] > 100
    if WRITE_DOCS_IMAGES:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)
    return path
