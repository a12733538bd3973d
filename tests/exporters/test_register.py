"""register(): one collector per prometheus registry, whatever the mix and the threads."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pytest
from expositions import bare_probe, parse, profiled_probe, promtool_problems, target_for, text
from prometheus_client import CollectorRegistry

import mlprobe
from mlprobe._asgi_endpoints import MetricsEndpoint
from mlprobe.exporters import prometheus as prom_export


def type_lines(exposition: str) -> list[str]:
    return [line for line in exposition.splitlines() if line.startswith("# TYPE ")]


@pytest.mark.real_prometheus
def test_two_mlprobe_registries_in_one_prometheus_registry_make_one_family_each():
    """Both registries' series come out under one # TYPE line per family, promtool-clean."""
    first, second = mlprobe.Registry(), mlprobe.Registry()
    bare_probe(first)
    profiled_probe(second)
    exposition = text(target_for(first, second))
    lines = type_lines(exposition)
    assert len(lines) == len(set(lines))
    models = {s.labels["model"] for s in parse(exposition)["mlprobe_predictions"].samples}
    assert models == {"bare", "profiled"}
    assert len(parse(exposition)["mlprobe_internal_errors"].samples) == 1
    assert promtool_problems(exposition) == ""


def test_the_same_series_in_two_registries_is_exported_once_with_a_warning(caplog):
    """Two registries holding the same model and version: the first one's series, one warning."""
    first, second = mlprobe.Registry(), mlprobe.Registry()
    mlprobe.Probe("same", registry=first).observe(outputs=0.1)
    mlprobe.Probe("same", registry=second).observe(outputs=[0.9, 0.9])
    target = target_for(first, second)
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        text(target)
        exposition = text(target)
    counts = [s for s in parse(exposition)["mlprobe_prediction_score"].samples
              if s.name.endswith("_count")]
    assert [s.value for s in counts] == [1.0]
    warnings = [r for r in caplog.records if "mlprobe_prediction_score" in r.getMessage()]
    assert len(warnings) == 1


def test_concurrent_registration_attaches_each_registry_exactly_once():
    """16 threads registering 4 registries into one target: one collector, each registry once."""
    target = CollectorRegistry()
    registries = [mlprobe.Registry() for _ in range(4)]
    for i, registry in enumerate(registries):
        mlprobe.Probe(f"m{i}", registry=registry).observe(outputs=0.5)
    results: list[tuple[int, Any]] = []
    barrier = threading.Barrier(16)

    def attach(i: int) -> None:
        barrier.wait()
        results.append((i % 4, prom_export.register(registries[i % 4], target)))

    threads = [threading.Thread(target=attach, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    attached = [i for i, collector in results if collector is not None]
    assert sorted(attached) == [0, 1, 2, 3]
    collectors = {id(c) for _, c in results if c is not None}
    assert len(collectors) == 1
    exposition = text(target)
    assert len(type_lines(exposition)) == len(set(type_lines(exposition)))
    assert {s.labels["model"] for s in parse(exposition)["mlprobe_predictions"].samples} == {
        "m0", "m1", "m2", "m3"}


def test_registering_again_after_unregister_attaches_again(registry):
    """A collector removed with CollectorRegistry.unregister is replaced on the next register."""
    target = CollectorRegistry()
    collector = prom_export.register(registry, target)
    assert collector is not None and prom_export.register(registry, target) is None
    target.unregister(collector)  # type: ignore[arg-type]
    assert "mlprobe_internal_errors" not in text(target)
    again = prom_export.register(registry, target)
    assert again is not None and again is not collector
    assert "mlprobe_internal_errors_total" in text(target)


def test_first_scrapes_in_parallel_share_one_private_registry(registry, monkeypatch):
    """Concurrent first scrapes of the endpoint resolve one prometheus registry, not several."""
    original = prom_export.register

    def slow_register(*args: Any) -> Any:
        time.sleep(0.01)  # widen the window two first scrapes would race in
        return original(*args)

    monkeypatch.setattr(prom_export, "register", slow_register)
    endpoint = MetricsEndpoint(registry)
    targets: list[Any] = []
    threads = [threading.Thread(
        target=lambda: targets.append(endpoint._exposition().prometheus_registry))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(targets) == 8 and len({id(t) for t in targets}) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_worker_forked_while_register_holds_its_lock_can_register():
    """The child of a fork taken while another thread holds register()'s lock is not stuck."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with prom_export._attach_lock:
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    assert held.wait(10)
    try:
        pid = os.fork()
        if pid == 0:  # the child: register must not block on the lock copied held
            code = 1
            try:
                done = threading.Event()

                def attach() -> None:
                    prom_export.register(mlprobe.Registry(), CollectorRegistry())
                    done.set()

                threading.Thread(target=attach, daemon=True).start()
                code = 0 if done.wait(5) else 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        while True:
            done_pid, status = os.waitpid(pid, os.WNOHANG)
            if done_pid or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if not done_pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        assert done_pid and os.waitstatus_to_exitcode(status) == 0
    finally:
        release.set()
        holder.join(10)
