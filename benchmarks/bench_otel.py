"""OpenTelemetry export: what it costs the request path, and what one export cycle costs.

Part 1, side by side in one process, interleaved round by round: the same tracked predict
function (``@probe.track``: calls by outcome, latency, in-flight, rows, score)

- with no exporter,
- with mlprobe's OTLP push exporter running (OTLP/HTTP to a receiver in another process,
  every ``--interval`` seconds: 60x more often than the default minute, to make any effect
  visible),
- recording the same metrics through OpenTelemetry SDK instruments directly (an up-down
  counter, a counter and three histograms, with attributes), with the SDK's periodic OTLP
  reader exporting to the same receiver at the same interval.

Part 2: one export cycle of a model with 50 features (40 numeric, 10 categorical, prediction
drift) after a 10,000-row batch: registry collect, translation to OTel metrics, protobuf
encoding, a full push over HTTP to the receiver, and the bytes on the wire (raw and gzip),
beside the Prometheus text exposition of the same registry.

Run: ``python benchmarks/bench_otel.py [--rounds N] [--number N] [--interval S]``.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import textwrap
import time
import timeit
from functools import partial

import numpy as np
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from prometheus_client import CollectorRegistry, generate_latest

import mlprobe
from mlprobe._config import DEFAULT_LATENCY_BUCKETS, DEFAULT_ROWS_BUCKETS, DEFAULT_SCORE_BUCKETS
from mlprobe.exporters import otel
from mlprobe.exporters import prometheus as prom_export
from mlprobe.exporters._otel_data import Temporalities, Translator

RECEIVER = textwrap.dedent("""
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()
""")


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    """An OTLP/HTTP receiver that accepts and drops everything, in its own process."""
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1/metrics"


def bare(x):
    return 0.5


def sdk_instrumented(provider: MeterProvider):
    """The same recording through OTel SDK instruments: in-flight, outcome counter, latency,
    rows and score histograms, each with the model's attributes."""
    meter = provider.get_meter("direct")
    in_flight = meter.create_up_down_counter("direct.predictions.in_flight")
    calls = meter.create_counter("direct.predictions")
    duration = meter.create_histogram("direct.prediction.duration", unit="s")
    rows = meter.create_histogram("direct.batch.rows")
    score = meter.create_histogram("direct.prediction.score")
    model = {"model": "bench", "model_version": "1"}
    ok = {**model, "outcome": "ok"}
    scored = {**model, "output": "score"}
    perf_counter = time.perf_counter

    def predict(x):
        in_flight.add(1, model)
        start = perf_counter()
        try:
            result = bare(x)
        except Exception:
            in_flight.add(-1, model)
            raise
        duration.record(perf_counter() - start, model)
        in_flight.add(-1, model)
        calls.add(1, ok)
        rows.record(1, model)
        score.record(result, scored)
        return result

    return predict


def sdk_views() -> list[View]:
    """mlprobe's bucket boundaries for the direct instruments (the SDK's default buckets are
    millisecond-shaped and would make its histograms cheaper to record than ours)."""
    return [View(instrument_name=name, aggregation=ExplicitBucketHistogramAggregation(bounds))
            for name, bounds in (("direct.prediction.duration", DEFAULT_LATENCY_BUCKETS),
                                 ("direct.batch.rows", DEFAULT_ROWS_BUCKETS),
                                 ("direct.prediction.score", DEFAULT_SCORE_BUCKETS))]


def part1(args: argparse.Namespace, endpoint: str) -> None:
    quiet, pushed = mlprobe.Registry(), mlprobe.Registry()
    no_exporter = mlprobe.Probe("bench", version="1", registry=quiet).track(bare)
    with_exporter = mlprobe.Probe("bench", version="1", registry=pushed).track(bare)
    pusher = otel.push(registry=pushed, endpoint=endpoint, interval=args.interval, timeout=5)
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint),
                                           export_interval_millis=args.interval * 1000)
    provider = MeterProvider(metric_readers=[reader], views=sdk_views())
    direct = sdk_instrumented(provider)
    cases = {"bare function": bare,
             "mlprobe track, no exporter": no_exporter,
             "mlprobe track, OTLP push running": with_exporter,
             "OTel SDK instruments (same metrics), OTLP reader running": direct}
    samples: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for round_ in range(args.rounds):
            names = list(cases) if round_ % 2 == 0 else list(reversed(cases))
            for name in names:
                samples[name].append(timeit.timeit(partial(cases[name], 1.0),
                                                   number=args.number) / args.number)
        failed = pusher.failures.count
        push_ms = []
        for _ in range(20):  # what one push of this registry costs the process
            started = time.perf_counter()
            pusher.force_flush()
            push_ms.append((time.perf_counter() - started) * 1e3)
    finally:
        pusher.shutdown(timeout=5)
        provider.shutdown()
    medians = {k: statistics.median(v) * 1e9 for k, v in samples.items()}
    base = samples["mlprobe track, no exporter"]
    push = statistics.median(push_ms)
    print(f"Part 1: {args.rounds} interleaved rounds x {args.number:,} calls; pushes every "
          f"{args.interval:g} s ({failed} failed). One push of this registry takes "
          f"{push:.1f} ms on the push thread: at most {push / args.interval / 10:.2f}% of the "
          "process's time, which is the most the request path can lose to it (the GIL).\n")
    print("| variant | ns/call (median) | overhead over bare (ns) | per round: variant / "
          "mlprobe without exporter [IQR] |")
    print("| --- | ---: | ---: | ---: |")
    for name, median in medians.items():
        ratios = [a / b for a, b in zip(samples[name], base)]
        q = statistics.quantiles(ratios, n=4)
        overhead = median - medians["bare function"]
        print(f"| {name} | {median:.0f} | {overhead:.0f} | {statistics.median(ratios):.3f} "
              f"[{q[0]:.3f}, {q[2]:.3f}] |")


def fifty_feature_registry() -> mlprobe.Registry:
    rng = np.random.default_rng(0)
    n = 20_000
    data = {f"num_{i:02d}": rng.normal(i, 1 + i / 10, n) for i in range(40)}
    data.update({f"cat_{i}": rng.choice(["a", "b", "c", "d", "e"], n).astype(object)
                 for i in range(10)})
    profile = mlprobe.ReferenceProfile.from_data(data, predictions=rng.random(n),
                                                 categorical=[f"cat_{i}" for i in range(10)])
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("fifty", version="1", registry=registry, reference=profile)
    predict = probe.track(lambda rows: rng.random(len(rows["num_00"])))
    live = {k: (v[:10_000] + 0.3 if k.startswith("num") else v[:10_000])
            for k, v in data.items()}
    predict(live)
    for _ in range(100):
        predict({k: v[:1] for k, v in live.items()})
    return registry


def part2(args: argparse.Namespace, endpoint: str) -> None:
    registry = fifty_feature_registry()
    pusher = otel.push(registry=registry, endpoint=endpoint, interval=3600, timeout=10)
    pusher_gzip = otel.push(registry=registry, endpoint=endpoint, interval=3600, timeout=10,
                            compression="gzip", name="gzip")
    translator = Translator(Temporalities())
    prom = CollectorRegistry()
    prom_export.register(registry, prom)
    timings: dict[str, list[float]] = {k: [] for k in (
        "registry.collect()", "translate to OTel metrics", "encode to protobuf bytes",
        "one push over OTLP/HTTP (collect + translate + encode + send)",
        "one push over OTLP/HTTP, gzip", "Prometheus text exposition (for comparison)")}
    try:
        for _ in range(args.cycles):
            t0 = time.perf_counter()
            families = registry.collect()
            t1 = time.perf_counter()
            translation = translator.translate(families)
            t2 = time.perf_counter()
            body = encode_metrics(pusher.metrics_data(translation)).SerializeToString()
            t3 = time.perf_counter()
            assert pusher.force_flush()
            t4 = time.perf_counter()
            assert pusher_gzip.force_flush()
            t5 = time.perf_counter()
            exposition = generate_latest(prom)
            t6 = time.perf_counter()
            for name, seconds in zip(timings, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4,
                                               t6 - t5)):
                timings[name].append(seconds)
    finally:
        pusher.shutdown(timeout=5)
        pusher_gzip.shutdown(timeout=5)
    points = sum(len(m.data.data_points) for m in translation.metrics)
    print(f"\nPart 2: one export cycle, 50 features (40 numeric, 10 categorical) + prediction "
          f"drift; {len(translation.metrics)} OTel metrics, {points} data points; median of "
          f"{args.cycles}\n")
    print("| step | ms (median) |")
    print("| --- | ---: |")
    for name, values in timings.items():
        print(f"| {name} | {statistics.median(values) * 1e3:.2f} |")
    print("\n| bytes on the wire | bytes |")
    print("| --- | ---: |")
    print(f"| OTLP protobuf | {len(body):,} |")
    print(f"| OTLP protobuf, gzip | {len(gzip.compress(body, 6)):,} |")
    print(f"| Prometheus text exposition | {len(exposition):,} |")
    print(f"| Prometheus text exposition, gzip | {len(gzip.compress(exposition, 6)):,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--number", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--cycles", type=int, default=15)
    args = parser.parse_args()
    receiver, endpoint = start_receiver()
    try:
        part1(args, endpoint)
        part2(args, endpoint)
    finally:
        receiver.terminate()
        receiver.wait(timeout=10)


if __name__ == "__main__":
    main()
