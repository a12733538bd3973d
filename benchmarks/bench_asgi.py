"""HTTP metrics middleware cost: mlprobe against a minimal middleware and the ones users run.

Every variant runs in ONE benchmark run, interleaved, so that machine noise hits them alike:

(a) in-process: each variant's ASGI callable is driven directly with a minimal fake
    ``receive``/``send`` (no server, no sockets). Rounds interleave the variants in a shuffled
    order; a round times a batch of requests per variant. Reported: the median over rounds of
    the time per request, the overhead over the bare app, and the spread (IQR) of the rounds.
    ``--cold`` also runs what a server does between two requests (h11 parses one request and
    writes one response) before every request, untimed, and times each request alone in
    thread CPU time: the middleware then runs with cold caches, as it does under a server.
(b) uvicorn on 127.0.0.1: one server process per variant (free ports, started together) and
    ONE load-generator process (``http_load.py``): keep-alive HTTP/1.1 connections, rounds of
    short bursts, one burst per server per round in a shuffled order, bounded in requests and
    seconds. Reported per variant: the server's CPU time per request (utime + stime of
    ``/proc/PID/stat`` over the whole run; and per burst from ``/proc/PID/task/*/schedstat``,
    whose per-round differences to bare give the paired overhead and its spread), the ratio to
    bare, and the client-side latency percentiles. Servers are pinned to one CPU and the client
    to another when the machine has two (``--no-pin`` to let the scheduler place them).

The comparators (prometheus-fastapi-instrumentator, starlette-exporter,
opentelemetry-instrumentation-asgi) are benchmark-only: ``pip install
prometheus-fastapi-instrumentator starlette-exporter opentelemetry-instrumentation-asgi``. A
missing one is reported and skipped. ``--baseline REV`` adds mlprobe's middleware as of the git
revision REV (extracted with ``git archive`` into a temporary folder and imported under another
package name), so a change is measured against its baseline in the same run.

Run: ``python benchmarks/bench_asgi.py [--rounds N] [--batch N] [--cold] [--no-http]
[--http-rounds N] [--burst N] [--only NAME ...] [--baseline REV]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import mlprobe
from mlprobe.asgi import ProbeMiddleware

from servers import free_port, wait_listening

HERE = Path(__file__).resolve().parent
BASELINE_PACKAGE = "mlprobe_baseline"
BARE = "bare starlette"
MINIMAL = "minimal pure-ASGI middleware"


async def hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hello")


def base_app() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", hello)])


class MinimalMiddleware:
    """The least a pure-ASGI metrics middleware does: wrap ``send``, keep status and duration.

    Written for this benchmark as the floor of the pattern every metrics middleware uses
    (Starlette's "pure ASGI middleware" recipe): one closure per request wrapping ``send``,
    the status read from ``http.response.start``, a duration summed per status in a dict.
    No receive wrapper, no sizes, no routes, no histogram, no error handling.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.durations: dict[int, list[float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 0

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_wrapper)
        entry = self.durations.get(status)
        if entry is None:
            entry = self.durations[status] = [0, 0.0]
        entry[0] += 1
        entry[1] += time.perf_counter() - start


def extract_baseline(rev: str) -> Path:
    """Put mlprobe's package as of git revision ``rev`` in a temporary folder, renamed."""
    folder = Path(tempfile.mkdtemp(prefix="mlprobe-bench-"))
    archive = subprocess.run(["git", "-C", str(HERE.parent), "archive", rev, "src/mlprobe"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    (folder / "src" / "mlprobe").rename(folder / BASELINE_PACKAGE)
    return folder


def baseline_middleware(folder: str) -> Any:
    """The baseline's ProbeMiddleware and Registry (the folder comes from extract_baseline)."""
    if folder not in sys.path:
        sys.path.insert(0, folder)
    package = importlib.import_module(BASELINE_PACKAGE)
    return importlib.import_module(f"{BASELINE_PACKAGE}.asgi").ProbeMiddleware, package.Registry


def build_variants(baseline: str | None = None) -> tuple[dict[str, Any], list[str]]:
    """Return {name: asgi app} and notes on comparators that could not be set up.

    ``baseline``: "REV=FOLDER" from extract_baseline, to add mlprobe as of REV.
    """
    variants: dict[str, Any] = {BARE: base_app()}
    notes: list[str] = []

    app = base_app()
    app.add_middleware(MinimalMiddleware)
    variants[MINIMAL] = app

    app = base_app()
    app.add_middleware(ProbeMiddleware, registry=mlprobe.Registry())
    variants["mlprobe"] = app

    if baseline:
        rev, folder = baseline.split("=", 1)
        middleware, registry = baseline_middleware(folder)
        app = base_app()
        app.add_middleware(middleware, registry=registry())
        variants[f"mlprobe @ {rev}"] = app

    try:
        from prometheus_client import CollectorRegistry
        from prometheus_fastapi_instrumentator import Instrumentator

        app = base_app()
        Instrumentator(registry=CollectorRegistry()).instrument(app)
        variants["prometheus-fastapi-instrumentator"] = app
    except ImportError as exc:
        notes.append(f"prometheus-fastapi-instrumentator: not installed ({exc})")

    try:
        from starlette_exporter import PrometheusMiddleware

        app = base_app()
        app.add_middleware(PrometheusMiddleware, app_name="bench")
        variants["starlette-exporter"] = app
    except ImportError as exc:
        notes.append(f"starlette-exporter: not installed ({exc})")

    try:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.trace import NoOpTracerProvider

        app = base_app()
        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        # metrics only: a no-op tracer provider, so no spans are built or exported
        app.add_middleware(OpenTelemetryMiddleware, meter_provider=provider,
                           tracer_provider=NoOpTracerProvider())
        variants["opentelemetry-instrumentation-asgi"] = app
    except ImportError as exc:
        notes.append(f"opentelemetry-instrumentation-asgi: not installed ({exc})")
    return variants, notes


# -- (a) in-process ----------------------------------------------------------------------------

SCOPE: dict[str, Any] = {
    "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
    "method": "GET", "scheme": "http", "path": "/items/42", "raw_path": b"/items/42",
    "query_string": b"", "root_path": "", "server": ("127.0.0.1", 8000),
    "client": ("127.0.0.1", 50000),
    "headers": [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")],
}
REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> dict[str, Any]:
    return REQUEST


async def send(message: Any) -> None:
    return None


async def time_batch(app: Any, n: int) -> float:
    """Seconds per request over ``n`` requests, each with a fresh scope as a server makes."""
    scope = SCOPE
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - start) / n


def in_process(variants: dict[str, Any], rounds: int, batch: int) -> dict[str, list[float]]:
    async def run() -> dict[str, list[float]]:
        for app in variants.values():  # warm up: middleware stacks are built on first call
            await time_batch(app, 200)
        results: dict[str, list[float]] = {name: [] for name in variants}
        names = list(variants)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                gc.collect()
                results[name].append(await time_batch(variants[name], batch))
        return results

    return asyncio.run(run())


RAW_REQUEST = b"GET /items/42 HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nuser-agent: bench\r\n\r\n"


def server_work() -> None:
    """What a server does between two requests: h11 parses one request, writes one response."""
    import h11

    conn = h11.Connection(h11.SERVER)
    conn.receive_data(RAW_REQUEST)
    conn.next_event()
    conn.next_event()
    conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"5"),
                                                     (b"content-type", b"text/plain")]))
    conn.send(h11.Data(data=b"hello"))
    conn.send(h11.EndOfMessage())


def in_process_cold(variants: dict[str, Any], rounds: int, batch: int) -> dict[str, list[float]]:
    """Like in_process, but requests interleave variant by variant and each one is timed alone
    (thread CPU time, so preemption by other processes does not count), after server_work()."""
    async def run() -> dict[str, list[float]]:
        apps = list(variants.values())
        for app in apps:
            await time_batch(app, 200)
        totals: list[list[float]] = [[] for _ in apps]
        order = list(range(len(apps)))
        clock = time.thread_time_ns
        for _ in range(rounds):
            spent = [0] * len(apps)
            gc.collect()
            for _ in range(batch):
                random.shuffle(order)
                for i in order:
                    scope = dict(SCOPE)
                    server_work()
                    start = clock()
                    await apps[i](scope, receive, send)
                    spent[i] += clock() - start
            for i, total in enumerate(spent):
                totals[i].append(total / batch / 1e9)
        return dict(zip(variants, totals))

    return asyncio.run(run())


# -- (b) uvicorn on 127.0.0.1 --------------------------------------------------------------------

def start_server(name: str, baseline: str | None) -> tuple[subprocess.Popen[bytes], int]:
    """Serve variant ``name`` with uvicorn in its own process (its own GIL, as in production)."""
    port = free_port()
    command = [sys.executable, __file__, "--serve", name, "--port", str(port)]
    if baseline:
        command += ["--baseline-folder", baseline]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(proc, port, what=f"uvicorn for {name}", timeout=30, poll=0.05)
    return proc, port


def serve(name: str, port: int, baseline: str | None) -> None:
    import uvicorn

    variants, _ = build_variants(baseline)
    uvicorn.run(variants[name], host="127.0.0.1", port=port, log_level="error",
                access_log=False, lifespan="off")


def over_http(names: list[str], baseline: str | None, *, rounds: int, burst: int,
              concurrency: int, seconds: float, pin: bool) -> dict[str, Any]:
    """Start one server per variant, run the load generator once over all; its results."""
    servers = {name: start_server(name, baseline) for name in names}
    client_prefix: list[str] = []
    try:
        if pin:  # servers share one CPU, the client has the other
            cpus = sorted(os.sched_getaffinity(0))
            for proc, _ in servers.values():
                os.sched_setaffinity(proc.pid, {cpus[-1]})
            client_prefix = ["taskset", "-c", str(cpus[0])]
        spec = {"targets": [{"name": name, "port": port, "pid": proc.pid}
                            for name, (proc, port) in servers.items()],
                "rounds": rounds, "burst": burst, "concurrency": concurrency,
                "seconds": seconds, "warmup": 2}
        done = subprocess.run(client_prefix + [sys.executable, str(HERE / "http_load.py"),
                                               json.dumps(spec)],
                              capture_output=True, text=True, timeout=seconds + 120)
        if done.returncode != 0:
            raise RuntimeError(f"load generator failed: {done.stderr[-2000:]}")
        return dict(json.loads(done.stdout))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(10)


# -- report ------------------------------------------------------------------------------------

def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def report_in_process(results: dict[str, list[float]], out: Callable[[str], None]) -> None:
    """Medians per variant, and the added cost as the median of per-round differences to
    bare (rounds are adjacent in time, so the paired difference cancels slow machine drift)."""
    bare_rounds = results[BARE]
    bare = statistics.median(bare_rounds)
    out("| variant | µs/request (median) | IQR of rounds (µs) | added over bare (µs, "
        "paired median [IQR]) | × bare |")
    out("| --- | ---: | ---: | ---: | ---: |")
    for name, values in results.items():
        q1, med, q3 = quartiles(values)
        d1, dm, d3 = quartiles([v - b for v, b in zip(values, bare_rounds)])
        out(f"| {name} | {med * 1e6:.2f} | {q1 * 1e6:.2f}–{q3 * 1e6:.2f} | "
            f"{dm * 1e6:+.2f} [{d1 * 1e6:+.2f}, {d3 * 1e6:+.2f}] | {med / bare:.2f} |")


def report_http(results: dict[str, Any], out: Callable[[str], None]) -> None:
    """Server CPU per request (two readings), its paired overhead over bare, latency."""
    def per_burst(name: str) -> list[float]:
        r = results[name]
        return [ns / 1e3 / n for ns, n in zip(r["burst_cpu_ns"], r["burst_responses"]) if n]

    bare = per_burst(BARE)
    minimal_added = statistics.median(a - b for a, b in zip(per_burst(MINIMAL), bare)) \
        if MINIMAL in results else float("nan")
    out("| variant | server CPU µs/request (/proc/PID/stat) | per burst (median) | "
        "added over bare (µs, paired median [IQR]) | × bare | added / minimal's | "
        "latency p50 / p99 / p99.9 (µs) |")
    out("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        bursts = per_burst(name)
        d1, dm, d3 = quartiles([a - b for a, b in zip(bursts, bare)])
        stat = r["stat_cpu_seconds"] / r["stat_responses"] * 1e6
        lat = r["latency_us"]
        out(f"| {name} | {stat:.1f} | {statistics.median(bursts):.1f} | "
            f"{dm:+.1f} [{d1:+.1f}, {d3:+.1f}] | {statistics.median(bursts) / statistics.median(bare):.3f}"
            f" | {dm / minimal_added if name != BARE else 0.0:.2f} | "
            f"{lat['p50']:.0f} / {lat['p99']:.0f} / {lat['p99.9']:.0f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="in-process rounds")
    parser.add_argument("--batch", type=int, default=2000, help="requests per variant per round")
    parser.add_argument("--cold", action="store_true",
                        help="(a) with server work between requests (cold caches)")
    parser.add_argument("--no-http", action="store_true", help="skip (b)")
    parser.add_argument("--http-rounds", type=int, default=150, help="bursts per server")
    parser.add_argument("--burst", type=int, default=300, help="requests per burst")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="keep-alive connections per server")
    parser.add_argument("--http-seconds", type=float, default=600.0,
                        help="time limit of (b) in seconds")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and client")
    parser.add_argument("--only", nargs="*", help="variant names to run (bare always runs)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also run mlprobe's middleware as of this git revision")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: one server process
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-folder", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port, args.baseline_folder)
        return 0

    baseline = None
    if args.baseline:
        baseline = f"{args.baseline}={extract_baseline(args.baseline)}"
    variants, notes = build_variants(baseline)
    if args.only:
        variants = {k: v for k, v in variants.items()
                    if k == BARE or any(o in k for o in args.only)}
    print(f"python {sys.version.split()[0]}; {len(variants)} variants; "
          f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    for note in notes:
        print("skipped:", note)
    if args.cold:
        print(f"\n(a) in-process, cold (h11 work between requests), {args.rounds} rounds x "
              f"{args.batch} requests per variant, interleaved request by request")
        report_in_process(in_process_cold(variants, args.rounds, args.batch), print)
    else:
        print(f"\n(a) in-process, {args.rounds} rounds x {args.batch} requests per variant")
        report_in_process(in_process(variants, args.rounds, args.batch), print)
    if not args.no_http:
        pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
        print(f"\n(b) uvicorn on 127.0.0.1, {args.http_rounds} rounds x {args.burst} requests "
              f"per server, {args.concurrency} keep-alive connections each"
              f"{', servers and client pinned to separate CPUs' if pin else ''}")
        report_http(over_http(list(variants), baseline, rounds=args.http_rounds,
                              burst=args.burst, concurrency=args.concurrency,
                              seconds=args.http_seconds, pin=pin), print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
