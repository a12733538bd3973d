"""The composition root wires core to the Prometheus exporter; core never imports it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import urllib.request
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

import mlprobe
from mlprobe import _guard
from mlprobe._registry import FamilyBuilder
from mlprobe.exporters import prometheus as prom_export

from realservers import free_port


class _Source:
    def collect_into(self, builder: FamilyBuilder) -> None:
        """Report nothing."""

    def reset(self) -> None:
        """Nothing to forget."""


# The child imports the same mlprobe as this process (a worktree's src, or the installed one).
_SRC = str(Path(mlprobe.__file__).resolve().parents[1])


def _run(code: str, **env: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, timeout=60, env={"PATH": "", "PYTHONPATH": _SRC, **env})
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_import_mlprobe_and_a_middleware_without_metrics_path_import_no_exporter():
    """import mlprobe, a probe that records and a middleware without metrics_path (the
    auto-attach turned off) load neither an exporter nor prometheus_client."""
    out = _run("""
        import sys
        import mlprobe
        from mlprobe.asgi import ProbeMiddleware
        probe = mlprobe.Probe("m")
        probe.track(lambda x: 0.5)([1.0])
        async def app(scope, receive, send):
            pass
        ProbeMiddleware(app, probe=probe)
        print(sorted(m for m in sys.modules
                     if m.startswith(("prometheus_client", "mlprobe.exporters"))))
    """, MLPROBE_PROMETHEUS_AUTO="0")
    assert out == "[]"


def test_the_exporter_is_imported_when_the_default_registry_gets_its_first_probe():
    """With the auto-attach on, import mlprobe still loads no exporter; the first probe on the
    default registry loads it and attaches the default registry to prometheus's REGISTRY."""
    out = _run("""
        import sys
        import mlprobe
        before = "mlprobe.exporters.prometheus" in sys.modules
        mlprobe.Probe("m")
        import prometheus_client
        text = prometheus_client.generate_latest().decode()
        print(before, "mlprobe.exporters.prometheus" in sys.modules,
              "mlprobe_internal_errors_total" in text)
    """)
    assert out == "False True True"


def test_first_source_callbacks_run_once_after_the_first_source(registry):
    """Callbacks set before the first source run once, in order, when it is added (with the
    source already registered); later sources run nothing."""
    seen: list[tuple[str, int]] = []
    registry.on_first_source(lambda r: seen.append(("a", len(r._sources))))
    registry.on_first_source(lambda r: seen.append(("b", len(r._sources))))
    assert seen == []
    registry.get_or_create("one", _Source)
    registry.get_or_create("two", _Source)
    assert seen == [("a", 1), ("b", 1)]


def test_a_first_source_callback_set_late_runs_at_once(registry):
    """A callback set on a registry that already has a source runs immediately, once."""
    registry.get_or_create("one", _Source)
    seen: list[mlprobe.Registry] = []
    registry.on_first_source(seen.append)
    assert seen == [registry]
    registry.get_or_create("two", _Source)
    assert seen == [registry]


def test_concurrent_first_sources_run_a_callback_exactly_once(registry):
    """Eight threads adding sources at once run the callback once."""
    calls: list[int] = []
    registry.on_first_source(lambda r: calls.append(1))
    start = threading.Barrier(8)

    def add(i: int) -> None:
        start.wait(10)
        registry.get_or_create(i, _Source)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == [1] and len(registry._sources) == 8


@pytest.mark.allow_internal_errors
def test_a_failing_first_source_callback_is_counted_not_raised(registry):
    """A callback that raises costs an internal error; the source is still created."""
    before = _guard.internal_error_count()

    def fail(r: mlprobe.Registry) -> None:
        raise RuntimeError("wiring failed")

    registry.on_first_source(fail)
    probe = mlprobe.Probe("m", registry=registry)
    assert _guard.internal_error_count() == before + 1
    assert probe is not None and len(registry._sources) == 1


def test_the_exporter_chooses_the_prometheus_registry_in_one_place(registry):
    """exposition() serves prometheus's REGISTRY for the default registry, a private one for
    any other, and the one given when there is one; start_http_server agrees."""
    assert prom_export.exposition().prometheus_registry is prometheus_client.REGISTRY
    assert (prom_export.exposition(mlprobe.default_registry).prometheus_registry
            is prometheus_client.REGISTRY)
    private = prom_export.exposition(registry).prometheus_registry
    assert private is not prometheus_client.REGISTRY and isinstance(private, CollectorRegistry)
    given = CollectorRegistry()
    assert prom_export.exposition(registry, given).prometheus_registry is given
    # start_http_server given mlprobe's default registry serves prometheus's REGISTRY too, so
    # its default process and platform collectors come along (a private registry has none).
    port = free_port()
    server, thread = prom_export.start_http_server(port, addr="127.0.0.1",
                                                   registry=mlprobe.default_registry)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert "python_info" in body and "mlprobe_internal_errors_total" in body


def test_an_exposition_serves_the_registry_it_was_made_for(registry):
    """Calling an Exposition returns the probe's samples in the format the Accept header asks
    for, and the classic text format for a header prometheus_client cannot parse."""
    mlprobe.Probe("exposed", registry=registry).observe(outputs=[0.5])
    expose = prom_export.exposition(registry)
    body, content_type = expose(None)
    assert content_type.startswith("text/plain") and b'model="exposed"' in body
    body, content_type = expose("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
    _, content_type = expose("application/openmetrics-text; version=abc")
    assert content_type.startswith("text/plain")
