"""Tail latency of a tracked single-row call with a 25-feature profile, against the same call
without a profile: p50 / p99 / p99.9 / p99.99 / max.

(a) in-process: 100,000 calls of each variant in one process, interleaved call by call, each
    timed with ``perf_counter_ns``. The background flusher runs meanwhile; its steps land on
    whichever call is running, so the variant without a profile is also measured alone
    (``without profile, alone``: no buffered rows in the process). Every row must be counted:
    the run checks the monitor's totals against the number of calls and prints dropped rows.
(b) uvicorn on 127.0.0.1: one server process per variant (a Starlette app behind
    ``ProbeMiddleware``, one ``POST /predict`` taking a JSON dict row), a bounded load from
    this process (keep-alive connections over raw sockets, blocks of requests alternating
    between the servers, round after round). Each server times every request itself (the
    whole ASGI call, and the tracked call alone) and reports percentiles at the end; its CPU
    per request comes from ``/proc/<pid>/stat`` (user + system ticks over each block).

``--baseline DIR`` adds the same variant with a profile run by another copy of mlprobe: DIR
must hold a package ``mlprobe_base`` (in-process) and a package ``mlprobe`` under
``DIR/server`` (uvicorn). Build both from a commit with::

    git archive COMMIT src/mlprobe | tar -x -C DIR && mv DIR/src/mlprobe DIR/mlprobe_base
    mkdir DIR/server && cp -r DIR/mlprobe_base DIR/server/mlprobe

Run: ``python benchmarks/bench_tail_latency.py [--calls N] [--requests N] [--rounds N]
[--baseline DIR] [--no-http]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from servers import free_port, wait_listening

HERE = Path(__file__).resolve().parent
CATS = ["a", "b", "c", "d", "e"]
PERCENTILES = (50, 99, 99.9, 99.99, 100)


def make_profile(module: Any, n_numeric: int = 20, n_categorical: int = 5,
                 n_rows: int = 20_000) -> Any:
    """The bench_features profile (20 numeric + 5 categorical), built by ``module``."""
    rng = np.random.default_rng(0)
    data = {f"num_{i:02d}": rng.normal(i, 1 + i / 10, n_rows) for i in range(n_numeric)}
    for j in range(n_categorical):
        data[f"cat_{j}"] = rng.choice(CATS, n_rows).astype(object)
    return module.ReferenceProfile.from_data(
        data, categorical=[f"cat_{j}" for j in range(n_categorical)])


def make_rows(n: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    nums = rng.normal(0, 1, (n, 20)).tolist()
    cats = rng.choice(CATS, (n, 5)).tolist()
    return [{**{f"num_{i:02d}": r[i] for i in range(20)},
             **{f"cat_{j}": c[j] for j in range(5)}} for r, c in zip(nums, cats)]


def percentiles_us(samples_ns: Any) -> list[float]:
    return (np.percentile(np.asarray(samples_ns, dtype=np.float64), PERCENTILES) / 1e3).tolist()


def print_table(title: str, rows: dict[str, list[float]], reference: str) -> None:
    print(title)
    print(f"  {'variant':44} {'p50':>8} {'p99':>8} {'p99.9':>8} {'p99.99':>8} {'max':>9}"
          f"   p99.99 / {reference!r}")
    ref = rows[reference][3]
    for name, q in rows.items():
        print(f"  {name:44} {q[0]:8.1f} {q[1]:8.1f} {q[2]:8.1f} {q[3]:8.1f} {q[4]:9.1f}"
              f"   {q[3] / ref:5.2f}")
    print("  (microseconds)")


# -- (a) in-process ----------------------------------------------------------------------------

def tracked_pair(module: Any, profile: Any | None, name: str) -> tuple[Any, Any]:
    registry = module.Registry()
    probe = module.Probe(name, registry=registry, reference=profile)

    @probe.track
    def predict(row: dict[str, Any]) -> float:
        return 0.5

    return predict, probe


def in_process(calls: int, baseline: Any | None) -> None:
    import mlprobe

    rows = make_rows(4096)
    with_profile, probe = tracked_pair(mlprobe, make_profile(mlprobe), "with")
    without_profile, _ = tracked_pair(mlprobe, None, "without")
    variants = {"with profile": with_profile, "without profile": without_profile}
    if baseline is not None:
        base_fn, base_probe = tracked_pair(baseline, make_profile(baseline), "base")
        variants["baseline with profile (inline flush)"] = base_fn
    fns = list(variants.values())
    samples = {name: np.empty(calls, dtype=np.int64) for name in variants}
    arrays = list(samples.values())
    clock = time.perf_counter_ns
    for fn in fns:  # warm up: first calls build caches and start the flusher
        for row in rows[:200]:
            fn(row)
    probe._state.features.flush()
    start_rows = probe._state.features.totals().rows
    start = time.perf_counter()
    cpu = time.process_time()
    n_rows = len(rows)
    for i in range(calls):
        row = rows[i % n_rows]
        for fn, out in zip(fns, arrays):
            t0 = clock()
            fn(row)
            out[i] = clock() - t0
    wall = time.perf_counter() - start
    monitor = probe._state.features
    buffered = len(monitor._rows)
    t0 = time.perf_counter()
    totals = monitor.totals()
    final_flush = time.perf_counter() - t0
    cpu = time.process_time() - cpu
    results = {name: percentiles_us(s) for name, s in samples.items()}
    # the call without a profile, alone: nothing buffered, the flusher idle
    alone = np.empty(calls, dtype=np.int64)
    for i in range(calls):
        row = rows[i % n_rows]
        t0 = clock()
        without_profile(row)
        alone[i] = clock() - t0
    results["without profile, alone"] = percentiles_us(alone)
    print_table(f"== (a) in-process: {calls:,} calls per variant, interleaved call by call",
                results, "without profile, alone")
    counted = totals.rows - start_rows
    print(f"  rows counted by the monitor: {counted:,} of {calls:,}; dropped (buffer full): "
          f"{monitor.dropped_rows:,}; still buffered when the loop ended: {buffered:,} "
          f"(ingested by the final collect in {final_flush * 1e3:.1f} ms)")
    print(f"  loop wall time {wall:.2f} s, process CPU (all threads, incl. final collect) "
          f"{cpu:.2f} s")


# -- (b) uvicorn -------------------------------------------------------------------------------

def create_app() -> Any:
    """The server: a Starlette app behind ProbeMiddleware; the variant comes from the
    environment (MLPROBE_BENCH_PROFILE=1 for a profile; PYTHONPATH chooses the mlprobe)."""
    import mlprobe
    from mlprobe.asgi import ProbeMiddleware
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    with_profile = os.environ.get("MLPROBE_BENCH_PROFILE") == "1"
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("bench", registry=registry,
                          reference=make_profile(mlprobe) if with_profile else None)

    @probe.track
    def model(row: dict[str, Any]) -> float:
        return 0.5

    request_ns: list[int] = []
    call_ns: list[int] = []
    limit = 1_000_000  # bounds the sample lists whatever the load

    async def predict(request: Request) -> Response:
        row = json.loads(await request.body())
        t0 = time.perf_counter_ns()
        score = model(row)
        if len(call_ns) < limit:
            call_ns.append(time.perf_counter_ns() - t0)
        return Response(json.dumps({"score": score}), media_type="application/json")

    async def stats(request: Request) -> Response:
        monitor = probe._state.features
        body = {"request": percentiles_us(request_ns) if request_ns else None,
                "call": percentiles_us(call_ns) if call_ns else None,
                "requests": len(request_ns),
                "rows": monitor.totals().rows if monitor is not None else None,
                "dropped": getattr(monitor, "dropped_rows", 0) if monitor is not None else None}
        return Response(json.dumps(body), media_type="application/json")

    async def reset(request: Request) -> Response:
        request_ns.clear()
        call_ns.clear()
        return Response(b"ok")

    app = ProbeMiddleware(Starlette(routes=[Route("/predict", predict, methods=["POST"]),
                                            Route("/stats", stats), Route("/reset", reset)]),
                          registry=registry, probe=probe)

    async def timed(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/predict":
            await app(scope, receive, send)
            return
        t0 = time.perf_counter_ns()
        await app(scope, receive, send)
        if len(request_ns) < limit:
            request_ns.append(time.perf_counter_ns() - t0)

    return timed


def start_server(pythonpath: str, profile: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([pythonpath, str(HERE)]),
           "MLPROBE_BENCH_PROFILE": "1" if profile else "0"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory",
                             "bench_tail_latency:create_app", "--host", "127.0.0.1",
                             "--port", str(port), "--log-level", "error", "--no-access-log",
                             "--lifespan", "off"], env=env, stdout=subprocess.DEVNULL)
    wait_listening(proc, port, what="uvicorn", timeout=60)
    return proc, port


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime (fields 14 and 15 of stat)


async def send_requests(port: int, bodies: list[bytes], concurrency: int) -> None:
    """POST every body once over ``concurrency`` keep-alive connections (closed loop)."""
    queue = list(reversed(bodies))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                body = queue.pop()
                writer.write(b"POST /predict HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                             b"content-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def http_get(port: int, path: str) -> Any:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        data = conn.getresponse().read()
    finally:
        conn.close()
    return json.loads(data) if path == "/stats" else data


def over_http(requests: int, rounds: int, concurrency: int, baseline: Path | None) -> None:
    servers_spec = {"with profile": (str(HERE.parent / "src"), True),
                    "without profile": (str(HERE.parent / "src"), False)}
    if baseline is not None:
        servers_spec["baseline with profile (inline flush)"] = (str(baseline / "server"), True)
    bodies = [json.dumps(r).encode() for r in make_rows(4096, seed=2)]
    block = max(1, requests // rounds)
    servers = {name: start_server(path, profile) for name, (path, profile)
               in servers_spec.items()}
    ticks: dict[str, int] = dict.fromkeys(servers, 0)
    sent: dict[str, int] = dict.fromkeys(servers, 0)
    try:
        for _, port in servers.values():  # warm up, then forget the warm-up samples
            asyncio.run(send_requests(port, bodies[:500], concurrency))
            http_get(port, "/reset")
        for r in range(rounds):
            for name, (proc, port) in servers.items():
                payload = [bodies[(r * block + i) % len(bodies)] for i in range(block)]
                before = cpu_ticks(proc.pid)
                asyncio.run(send_requests(port, payload, concurrency))
                ticks[name] += cpu_ticks(proc.pid) - before
                sent[name] += block
        stats = {name: http_get(port, "/stats") for name, (_, port) in servers.items()}
    finally:
        for proc, _ in servers.values():
            proc.terminate()
        for proc, _ in servers.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    hz = os.sysconf("SC_CLK_TCK")
    title = (f"== (b) uvicorn on 127.0.0.1: {sent['with profile']:,} POSTs per server in "
             f"{rounds} alternating blocks, {concurrency} keep-alive connections")
    print_table(title + "\n  -- server-side, whole request (ASGI call)",
                {n: s["request"] for n, s in stats.items()}, "without profile")
    print_table("  -- server-side, the tracked call alone",
                {n: s["call"] for n, s in stats.items()}, "without profile")
    for name, s in stats.items():
        cpu_us = ticks[name] / hz / max(1, sent[name]) * 1e6
        extra = (f"; rows counted {s['rows']:,} (incl. warm-up), dropped {s['dropped']:,}"
                 if s["rows"] is not None else "")
        print(f"  {name:44} server CPU per request {cpu_us:6.0f} µs{extra}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20_000,
                        help="POSTs per server under uvicorn")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--baseline", type=Path)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-in-process", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, gc "
          f"{'on' if gc.isenabled() else 'off'}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.2f}")
    baseline = None
    if args.baseline is not None:
        sys.path.insert(0, str(args.baseline))
        baseline = importlib.import_module("mlprobe_base")
    if not args.no_in_process:
        in_process(args.calls, baseline)
    if not args.no_http:
        over_http(args.requests, args.rounds, args.concurrency, args.baseline)


if __name__ == "__main__":
    main()
