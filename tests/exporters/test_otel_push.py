"""The OTLP push exporter: schedule, shutdown, failures, configuration, resource and fork."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.resources import Resource
from otlp import RecordingExporter

import mlprobe
from mlprobe.errors import ConfigurationError
from mlprobe.exporters import otel
from mlprobe.exporters._otel_push import PushExporter
from mlprobe.testing import sample_value

Make = Callable[..., PushExporter]


@pytest.fixture
def make_pusher() -> Iterator[Make]:
    """Build pushers that are shut down when the test ends."""
    made: list[PushExporter] = []

    def make(*args, **kwargs) -> PushExporter:
        pusher = otel.push(*args, **kwargs)
        made.append(pusher)
        return pusher

    yield make
    for pusher in made:
        pusher.shutdown(timeout=2.0)


def _never() -> bool:
    """exports_here for pushers built only to inspect their OTLP exporter (nothing is sent
    to whatever listens on the default endpoint)."""
    return False


def _wait(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


def _values(batch, name: str, **where: str) -> list:
    metrics = {m.name: m for rm in batch.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics}
    return [p.value if hasattr(p, "value") else p.count
            for p in metrics[name].data.data_points
            if where.items() <= dict(p.attributes).items()]


def test_pushes_every_interval_and_once_more_at_shutdown(registry, make_pusher):
    """The thread pushes on its interval; shutdown stops it, pushes once more, shuts the
    SDK exporter down, and nothing is pushed after that."""
    probe = mlprobe.Probe("m", registry=registry)
    exporter = RecordingExporter()
    pusher = make_pusher(exporter, registry=registry, interval=0.05)
    probe.observe(outputs=[0.5])
    _wait(lambda: len(exporter.batches) >= 2)
    probe.observe(outputs=[0.7])
    pusher.shutdown(timeout=5)
    final = exporter.batches[-1]
    assert _values(final, "mlprobe.prediction.score") == [2]
    assert exporter.shutdowns == 1
    count = len(exporter.batches)
    time.sleep(0.2)
    assert len(exporter.batches) == count
    assert not pusher._thread.is_alive()
    pusher.shutdown()  # idempotent
    assert exporter.shutdowns == 1


def test_shutdown_returns_within_its_timeout_when_the_collector_hangs(registry, make_pusher):
    """An export that never returns cannot hold shutdown beyond its timeout."""
    exporter = RecordingExporter()
    exporter.gate = threading.Event()
    pusher = make_pusher(exporter, registry=registry, interval=0.02)
    _wait(lambda: exporter.calls >= 1)
    started = time.monotonic()
    pusher.shutdown(timeout=0.5)
    assert time.monotonic() - started < 1.5
    exporter.gate.set()


def test_a_hanging_collector_does_not_slow_the_request_path(registry, make_pusher):
    """While a push is stuck in the exporter, tracked calls run at full speed and are counted
    (the export holds no lock that recording takes)."""
    probe = mlprobe.Probe("m", registry=registry)
    predict = probe.track(lambda x: 0.5)
    exporter = RecordingExporter()
    exporter.gate = threading.Event()
    make_pusher(exporter, registry=registry, interval=0.02)
    _wait(lambda: exporter.calls >= 1)
    worst = 0.0
    for _ in range(2000):
        started = time.perf_counter()
        predict([1.0])
        worst = max(worst, time.perf_counter() - started)
    # A lock shared with the export would hold a call until the gate opens (30 s); scheduling
    # noise on a busy machine stays far below the bound.
    assert worst < 0.5
    assert sample_value(registry, "mlprobe_predictions", {"outcome": "ok"}) == 2000
    exporter.gate.set()


def test_failures_are_counted_logged_once_and_the_push_resumes(registry, make_pusher, caplog):
    """Failed pushes count in mlprobe_export_failures_total{exporter}, are logged at most
    once a minute however many there are, and pushing resumes when the collector is back."""
    exporter = RecordingExporter()
    exporter.fail = True
    pusher = make_pusher(exporter, registry=registry, interval=0.01, name="test")
    with caplog.at_level(logging.WARNING, logger="mlprobe"):
        _wait(lambda: exporter.calls >= 5)
    failures = sample_value(registry, "mlprobe_export_failures", {"exporter": "test"})
    assert failures >= 5
    logged = [r for r in caplog.records if "pushing metrics" in r.getMessage()]
    assert len(logged) == 1
    exporter.fail = False
    _wait(lambda: exporter.batches)
    assert pusher._failed_in_a_row == 0
    (pushed_failures,) = _values(exporter.batches[-1], "mlprobe.export.failures")
    assert pushed_failures >= failures


def test_an_exception_in_the_sdk_exporter_is_a_failed_push(registry, make_pusher):
    """An exporter that raises is counted as a failure; the thread keeps running."""
    exporter = RecordingExporter()
    exporter.raise_error = ConnectionError("collector gone")
    pusher = make_pusher(exporter, registry=registry, interval=0.01, name="raising")
    _wait(lambda: exporter.calls >= 3)
    assert pusher._thread.is_alive()
    assert sample_value(registry, "mlprobe_export_failures", {"exporter": "raising"}) >= 2


def test_retries_back_off_from_one_second_to_the_interval(registry, make_pusher):
    """After n failures in a row the next try comes after 2**(n-1) s (with jitter to half),
    never later than the interval."""
    pusher = make_pusher(RecordingExporter(), registry=registry, interval=60)
    for failures, (low, high) in {1: (0.5, 1), 2: (1, 2), 3: (2, 4), 6: (16, 32),
                                  7: (30, 60), 40: (30, 60)}.items():
        pusher._failed_in_a_row = failures
        delays = [pusher._retry_delay() for _ in range(50)]
        assert low <= min(delays) and max(delays) <= high, failures


def test_a_process_that_does_not_export_pushes_nothing(registry, make_pusher):
    """exports_here=False: no periodic push, no push at shutdown (the multi-worker seam)."""
    exporter = RecordingExporter()
    pusher = make_pusher(exporter, registry=registry, interval=0.01,
                         exports_here=lambda: False)
    time.sleep(0.1)
    assert pusher.force_flush() is True
    pusher.shutdown(timeout=2)
    assert exporter.calls == 0


def test_the_exporters_delta_preference_is_honoured(registry, make_pusher):
    """With an exporter that prefers delta, successive pushes carry increments."""
    probe = mlprobe.Probe("m", registry=registry)
    predict = probe.track(lambda x: 0.5)
    exporter = RecordingExporter(AggregationTemporality.DELTA)
    pusher = make_pusher(exporter, registry=registry, interval=3600)
    predict([1.0])
    predict([1.0])
    assert pusher.force_flush()
    predict([1.0])
    assert pusher.force_flush()
    assert [_values(b, "mlprobe.predictions", outcome="ok") for b in exporter.batches] == [
        [2], [1]]


class TestConfiguration:
    """Arguments first, then OTEL_* variables; invalid variables warn and fall back."""

    def test_interval_and_timeout_from_the_environment_in_milliseconds(
            self, registry, make_pusher, monkeypatch):
        """OTEL_METRIC_EXPORT_INTERVAL/TIMEOUT are read in ms; arguments win over them."""
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "2500")
        monkeypatch.setenv("OTEL_METRIC_EXPORT_TIMEOUT", "750")
        pusher = make_pusher(RecordingExporter(), registry=registry)
        assert (pusher.interval, pusher.timeout) == (2.5, 0.75)
        assert make_pusher(RecordingExporter(), registry=registry, interval=9).interval == 9

    def test_an_invalid_variable_warns_and_falls_back(self, registry, make_pusher, monkeypatch):
        """A malformed interval or protocol warns and uses the default."""
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "soon")
        with pytest.warns(RuntimeWarning, match="OTEL_METRIC_EXPORT_INTERVAL"):
            pusher = make_pusher(RecordingExporter(), registry=registry)
        assert pusher.interval == 60.0
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
        with pytest.warns(RuntimeWarning, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
            pusher = make_pusher(registry=registry, interval=3600, exports_here=_never)
        assert pusher.name == "otlp_http"

    @pytest.mark.parametrize("proto", ["grpc", "http/protobuf"])
    def test_invalid_otlp_compression_or_timeout_warn_instead_of_failing(
            self, registry, make_pusher, monkeypatch, proto):
        """Variables that make the SDK's gRPC exporter raise only warn here."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", proto)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd-ish")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "ten")
        with pytest.warns(RuntimeWarning) as warned:
            pusher = make_pusher(registry=registry, interval=3600, exports_here=_never)
        assert {str(w.message).split("=")[0] for w in warned} == {
            "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TIMEOUT"}
        assert pusher.name == ("otlp_grpc" if proto == "grpc" else "otlp_http")

    def test_the_protocol_variable_chooses_the_otlp_exporter(
            self, registry, make_pusher, monkeypatch):
        """OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=grpc builds the gRPC exporter; the metrics
        variable wins over the general one."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc")
        pusher = make_pusher(registry=registry, interval=3600, exports_here=_never)
        assert type(pusher.exporter).__module__.endswith("grpc.metric_exporter")

    @pytest.mark.parametrize("kwargs, message", [
        ({"interval": 0}, "interval"),
        ({"timeout": -1}, "timeout"),
        ({"protocol": "udp"}, "protocol"),
        ({"compression": "brotli"}, "compression"),
        ({"exporter": RecordingExporter(), "endpoint": "http://x"}, "endpoint"),
        ({"exporter": object()}, "MetricExporter"),
        ({"registry": object()}, "mlprobe.Registry"),
        ({"resource": Resource({}), "service_name": "s"}, "either"),
        ({"exports_here": True}, "callable"),
    ])
    def test_bad_arguments_fail_at_construction(self, kwargs, message):
        """A bad argument raises ConfigurationError naming it."""
        with pytest.raises(ConfigurationError, match=message):
            otel.push(**{"interval": 3600, **kwargs})

    def test_a_missing_otlp_extra_says_what_to_install(self, monkeypatch):
        """Without the HTTP exporter package, push() names the extra to install."""
        monkeypatch.setitem(sys.modules,
                            "opentelemetry.exporter.otlp.proto.http.metric_exporter", None)
        with pytest.raises(ConfigurationError, match=r"mlprobe\[otlp-http\]"):
            otel.push(interval=3600)


class TestResource:
    """Resource attributes identify the service and the instance."""

    def test_service_name_and_attributes_from_arguments(self, registry, make_pusher):
        """service_name= and resource_attributes= set the resource; a random
        service.instance.id is added."""
        pusher = make_pusher(RecordingExporter(), registry=registry, interval=3600,
                             service_name="churn", resource_attributes={"env": "test"})
        attributes = pusher.resource.attributes
        assert (attributes["service.name"], attributes["env"]) == ("churn", "test")
        assert len(attributes["service.instance.id"]) == 36

    def test_service_and_instance_from_the_environment(self, registry, make_pusher,
                                                       monkeypatch):
        """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES are read; a configured
        service.instance.id is kept."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=pod-7,team=ml")
        pusher = make_pusher(RecordingExporter(), registry=registry, interval=3600)
        attributes = pusher.resource.attributes
        assert (attributes["service.name"], attributes["service.instance.id"],
                attributes["team"]) == ("from-env", "pod-7", "ml")

    def test_instance_ids_differ_between_exporters_of_one_process_only_if_made(
            self, registry, make_pusher):
        """Each pusher without a configured id gets its own UUID; a given resource is used
        as given, plus an id."""
        a = make_pusher(RecordingExporter(), registry=registry, interval=3600)
        b = make_pusher(RecordingExporter(), registry=registry, interval=3600,
                        resource=Resource({"service.name": "given"}))
        assert a.resource.attributes["service.instance.id"] != \
            b.resource.attributes["service.instance.id"]
        assert b.resource.attributes["service.name"] == "given"

    def test_pushed_batches_carry_the_resource_and_mlprobes_scope(self, registry,
                                                                 make_pusher):
        """Every batch has the pusher's resource and the instrumentation scope mlprobe."""
        exporter = RecordingExporter()
        pusher = make_pusher(exporter, registry=registry, interval=3600, service_name="s")
        pusher.force_flush()
        (rm,) = exporter.batches[0].resource_metrics
        assert rm.resource is pusher.resource
        assert [sm.scope.name for sm in rm.scope_metrics] == ["mlprobe"]


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="needs fork")
def test_a_fork_child_runs_its_own_push_thread_with_its_own_instance(registry, make_pusher):
    """After fork the child starts a new push thread, pushes its own counts (from zero)
    under a new service.instance.id; the parent's pusher is unaffected."""
    probe = mlprobe.Probe("m", registry=registry)
    predict = probe.track(lambda x: 0.5)
    exporter = RecordingExporter()
    pusher = make_pusher(exporter, registry=registry, interval=0.02)
    predict([1.0])
    _wait(lambda: exporter.batches)
    parent_id = pusher.resource.attributes["service.instance.id"]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            exporter.batches.clear()
            predict([1.0])
            predict([1.0])
            child_id = pusher.resource.attributes["service.instance.id"]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and code:
                for batch in list(exporter.batches):  # pushed by the child's own thread
                    counts = _values(batch, "mlprobe.predictions", outcome="ok")
                    ids = {rm.resource.attributes["service.instance.id"]
                           for rm in batch.resource_metrics}
                    if counts == [2] and ids == {child_id} != {parent_id}:
                        code = 0
                time.sleep(0.01)
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.close(write)
    answer = os.read(read, 1)
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == b"\x00"
    assert pusher._thread.is_alive()
    assert pusher.resource.attributes["service.instance.id"] == parent_id


def test_the_interpreter_exit_pushes_once_more(tmp_path: Path):
    """A process that exits without calling shutdown still pushes its last counts
    (shutdown runs at exit, once)."""
    src = str(Path(mlprobe.__file__).resolve().parents[1])
    script = textwrap.dedent("""
        import sys
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter
        import mlprobe
        from mlprobe.exporters import otel
        probe = mlprobe.Probe("exiting")
        otel.push(ConsoleMetricExporter(out=sys.stdout), interval=3600)
        probe.observe(outputs=[0.5, 0.25])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, env={"PATH": "", "PYTHONPATH": src,
                                          "MLPROBE_PROMETHEUS_AUTO": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.count('"mlprobe.prediction.score"') == 1
    assert '"count": 2' in out.stdout
