"""HTTP metrics middleware cost: mlprobe against the middlewares users run today.

Two measurements, every variant in ONE process so that machine noise hits them alike:

(a) in-process: each variant's ASGI callable is driven directly with a minimal fake
    ``receive``/``send`` (no server, no sockets). Rounds interleave the variants in a shuffled
    order; a round times a batch of requests per variant. Reported: the median over rounds of
    the time per request, the overhead over the bare app, and the spread (IQR) of the rounds.
(b) uvicorn on 127.0.0.1: one server process per variant (free ports, started together), a
    bounded asyncio load generator in this process (keep-alive connections, fixed
    concurrency, raw HTTP/1.1), rounds interleaved. Reported: median requests per second and
    the ratio to bare.

The comparators (prometheus-fastapi-instrumentator, starlette-exporter,
opentelemetry-instrumentation-asgi) are benchmark-only: ``pip install
prometheus-fastapi-instrumentator starlette-exporter opentelemetry-instrumentation-asgi``. A
missing one is reported and skipped.

Run: ``python benchmarks/bench_asgi.py [--rounds N] [--batch N] [--http-seconds S]
[--no-http]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import mlprobe
from mlprobe.asgi import ProbeMiddleware


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


def build_variants() -> tuple[dict[str, Any], list[str]]:
    """Return {name: asgi app} and notes on comparators that could not be set up."""
    variants: dict[str, Any] = {"bare starlette": base_app()}
    notes: list[str] = []

    app = base_app()
    app.add_middleware(MinimalMiddleware)
    variants["minimal pure-ASGI middleware"] = app

    app = base_app()
    app.add_middleware(ProbeMiddleware, registry=mlprobe.Registry())
    variants["mlprobe"] = app

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


# -- (b) uvicorn on 127.0.0.1 --------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(name: str) -> tuple[subprocess.Popen[bytes], int]:
    """Serve variant ``name`` with uvicorn in its own process (its own GIL, as in production;
    the load generator runs in this process)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", name, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"uvicorn for {name} did not start") from None
            time.sleep(0.05)


def serve(name: str, port: int) -> None:
    import uvicorn

    variants, _ = build_variants()
    uvicorn.run(variants[name], host="127.0.0.1", port=port, log_level="error",
                access_log=False, lifespan="off")


async def load(port: int, seconds: float, concurrency: int, max_requests: int) -> float:
    """Requests per second of keep-alive GETs over raw sockets (bounded in time and count)."""
    request = (b"GET /items/42 HTTP/1.1\r\nhost: 127.0.0.1\r\nuser-agent: bench\r\n\r\n")
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop and done < max_requests:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                done += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - start)


def over_http(variants: dict[str, Any], rounds: int, seconds: float, concurrency: int
              ) -> dict[str, list[float]]:
    servers = {name: start_server(name) for name in variants}
    results: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _, port in servers.values():  # warm up
            asyncio.run(load(port, 0.5, concurrency, 20_000))
        names = list(variants)
        for _ in range(rounds):
            random.shuffle(names)
            for name in names:
                port = servers[name][1]
                results[name].append(asyncio.run(load(port, seconds, concurrency, 200_000)))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            proc.wait(10)
    return results


# -- report ------------------------------------------------------------------------------------

def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], statistics.median(values), q[2]


def report_in_process(results: dict[str, list[float]], out: Callable[[str], None]) -> None:
    """Medians per variant, and the added cost as the median of per-round differences to
    bare (rounds are adjacent in time, so the paired difference cancels slow machine drift)."""
    bare_rounds = results["bare starlette"]
    bare = statistics.median(bare_rounds)
    out("| variant | µs/request (median) | IQR of rounds (µs) | added over bare (µs, "
        "paired median [IQR]) | × bare |")
    out("| --- | ---: | ---: | ---: | ---: |")
    for name, values in results.items():
        q1, med, q3 = quartiles(values)
        d1, dm, d3 = quartiles([v - b for v, b in zip(values, bare_rounds)])
        out(f"| {name} | {med * 1e6:.2f} | {q1 * 1e6:.2f}–{q3 * 1e6:.2f} | "
            f"{dm * 1e6:+.2f} [{d1 * 1e6:+.2f}, {d3 * 1e6:+.2f}] | {med / bare:.2f} |")


def report_http(results: dict[str, list[float]], out: Callable[[str], None]) -> None:
    bare = statistics.median(results["bare starlette"])
    out("| variant | requests/s (median) | IQR of rounds | ratio to bare |")
    out("| --- | ---: | ---: | ---: |")
    for name, values in results.items():
        q1, med, q3 = quartiles(values)
        out(f"| {name} | {med:,.0f} | {q1:,.0f}–{q3:,.0f} | {med / bare:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="in-process rounds")
    parser.add_argument("--batch", type=int, default=2000, help="requests per variant per round")
    parser.add_argument("--http-rounds", type=int, default=5)
    parser.add_argument("--http-seconds", type=float, default=2.0,
                        help="seconds of load per variant per round")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-http", action="store_true", help="skip (b)")
    parser.add_argument("--only", nargs="*", help="variant names to run (bare always runs)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # internal: one server process
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0

    variants, notes = build_variants()
    if args.only:
        variants = {k: v for k, v in variants.items()
                    if k == "bare starlette" or any(o in k for o in args.only)}
    print(f"python {sys.version.split()[0]}; {len(variants)} variants")
    for note in notes:
        print("skipped:", note)
    print(f"\n(a) in-process, {args.rounds} rounds x {args.batch} requests per variant")
    report_in_process(in_process(variants, args.rounds, args.batch), print)
    if not args.no_http:
        print(f"\n(b) uvicorn on 127.0.0.1, {args.http_rounds} rounds x {args.http_seconds:g} s "
              f"per variant, {args.concurrency} keep-alive connections")
        report_http(over_http(variants, args.http_rounds, args.http_seconds, args.concurrency),
                    print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
