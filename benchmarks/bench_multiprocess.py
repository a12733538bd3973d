"""Multi-process mode: what the request path pays, what a publish and a scrape cost, and
prometheus_client's multiprocess mode on the same counters.

Sections (each side by side in one process where it can be):

1. A tracked call (a 50-feature dict row and a score) in a registry in multi-process mode,
   with the publisher thread publishing every second, against the same call in a plain
   registry: throughput over interleaved 2-second windows (the publisher's share of the GIL
   is inside the window).
2. One publish of a 50-feature model whose 10 sub-buckets are full: the first (every frozen
   part pickled) and the steady state (only the open sub-bucket and the counters), and the
   file size.
3. Scrape time (``registry.collect()``) of one worker of 8 simulated workers x 50 features,
   each republishing between scrapes, then again after 100 worker restarts (each publishes,
   dies and is folded into the archive).
4. prometheus_client's multiprocess mode on the same counters (calls by outcome, a latency
   histogram of 18 buckets, an HTTP duration histogram): per-observation cost against its
   normal mode, and scrape time with 1 and with 100 dead processes' files.
5. Under a real gunicorn (one worker, so the worker's CPU is the server's): server CPU per
   request and client latency percentiles for a tracked 50-feature call, multi-process mode
   against a plain registry, load from ``http_load.py`` (bounded, 127.0.0.1).

Run: ``python benchmarks/bench_multiprocess.py [--quick] [--skip-server]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import mlprobe  # noqa: E402
from mlprobe import multiprocess  # noqa: E402
from mlprobe._drift_spec import DriftSpec  # noqa: E402
from mlprobe._mp_process import WorkerId  # noqa: E402
from mlprobe._probe_source import ProbeSource  # noqa: E402
from mlprobe._probe_state import ProbeConfig  # noqa: E402

N_FEATURES = 50
ROWS_PER_BUCKET = int(os.environ.get("BENCH_ROWS_PER_BUCKET", "2000"))
RNG = np.random.default_rng(0)


def make_profile() -> mlprobe.ReferenceProfile:
    data = {f"f{i:02d}": RNG.normal(i, 1.0, 5000) for i in range(N_FEATURES)}
    return mlprobe.ReferenceProfile.from_data(data, predictions=RNG.random(5000))


PROFILE = make_profile()
ROW = {f"f{i:02d}": float(i) + 0.3 for i in range(N_FEATURES)}


def row(g: np.random.Generator) -> dict[str, float]:
    return {f"f{i:02d}": float(v) for i, v in enumerate(g.normal(np.arange(N_FEATURES), 1.0))}


# -- 1. the tracked call -------------------------------------------------------------------

def tracked_call(quick: bool) -> None:
    tmp = tempfile.mkdtemp(prefix="mlprobe-bench-")
    try:
        plain, multi = mlprobe.Registry(), mlprobe.Registry()
        multiprocess.enable(tmp, registry=multi)
        calls = {}
        for name, registry in (("single process", plain), ("multi-process mode", multi)):
            probe = mlprobe.Probe("bench", registry=registry, reference=PROFILE)
            calls[name] = probe.track(lambda r: 0.5)
        per_call: dict[str, list[float]] = {name: [] for name in calls}
        windows = 3 if quick else 8
        for i in range(windows):
            for name in (list(calls) if i % 2 == 0 else list(calls)[::-1]):
                call = calls[name]
                n, start = 0, time.perf_counter()
                while time.perf_counter() - start < 2.0:
                    for _ in range(500):
                        call(ROW)
                    n += 500
                per_call[name].append((time.perf_counter() - start) / n * 1e9)
        print("== 1. tracked call, 50-feature dict row + score (ns/call, 2 s windows, "
              "publisher every 1 s)")
        base = statistics.median(per_call["single process"])
        for name, values in per_call.items():
            print(f"  {name:20s} median {statistics.median(values):8.0f}  "
                  f"ratio {statistics.median(values) / base:.3f}  "
                  f"(windows: {', '.join(f'{v:.0f}' for v in values)})")
        multiprocess.detach(multi)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- 2 and 3. publish and scrape -----------------------------------------------------------

class SimWorker:
    """A worker in this process: its registry attached under its own identity."""

    def __init__(self, path: str, ident: WorkerId, live: set[WorkerId], clock: list[float]
                 ) -> None:
        self.ident = ident
        live.add(ident)
        self.registry = mlprobe.Registry()
        self.merger = multiprocess.attach(self.registry, path, interval=1.0, background=False,
                                          worker=lambda: ident, alive=lambda w: w in live)
        config = ProbeConfig(latency_buckets=(0.001, 0.01, 0.1, 1.0), rows_buckets=(1, 10, 100),
                             bytes_buckets=(64.0, 4096.0), score_buckets=(0.5, 1.0),
                             max_classes=50, max_error_types=20, max_outputs=16)
        self.source = self.registry.get_or_create(
            ("probe", "bench", ""), lambda: ProbeSource("bench", "", config, PROFILE,
                                                        DriftSpec(), 600.0, 10,
                                                        clock=lambda: clock[0]))

    def traffic(self, g: np.random.Generator, rows: int) -> None:
        monitor = self.source.features
        batch = {f"f{i:02d}": g.normal(i, 1.0, rows) for i in range(N_FEATURES)}
        monitor.observe(batch)
        monitor.flush()


def fill(workers: list[SimWorker], clock: list[float], g: np.random.Generator) -> None:
    """Traffic in each of the 10 sub-buckets of every worker's window."""
    for _ in range(10):
        for w in workers:
            w.traffic(g, ROWS_PER_BUCKET)
        clock[0] += 60.0


def publish_and_scrape(quick: bool) -> None:
    tmp = tempfile.mkdtemp(prefix="mlprobe-bench-")
    try:
        g = np.random.default_rng(1)
        clock = [1_800_000_000.0]
        live: set[WorkerId] = set()
        workers = [SimWorker(tmp, WorkerId(100 + i, 1), live, clock) for i in range(8)]
        fill(workers, clock, g)
        w = workers[1]
        t = time.perf_counter()
        w.merger.publish()
        cold = time.perf_counter() - t
        steady = []
        for _ in range(5 if quick else 20):
            w.traffic(g, 50)
            t = time.perf_counter()
            w.merger.publish()
            steady.append(time.perf_counter() - t)
        size = os.path.getsize(os.path.join(tmp, f"mlprobe-worker-{w.ident.name}.state"))
        print("== 2. one publish, 50 features, 10 full sub-buckets")
        print(f"  first publish {cold * 1e3:.1f} ms; steady state median "
              f"{statistics.median(steady) * 1e3:.2f} ms per interval; file {size / 1e3:.0f} kB")

        def scrape_times() -> list[float]:
            times = []
            for _ in range(5 if quick else 15):
                for other in workers[1:]:  # each republishes between scrapes (1 s vs 15 s)
                    other.traffic(g, 20)
                    other.merger.publish()
                t = time.perf_counter()
                workers[0].registry.collect()
                times.append(time.perf_counter() - t)
            return times

        for other in workers:
            other.merger.publish()
        workers[0].registry.collect()  # first read: every frozen part rebuilt once
        before = scrape_times()
        next_pid = 1000
        for _ in range(100):  # restarts: a worker publishes, dies, is folded
            next_pid += 1
            gone = SimWorker(tmp, WorkerId(next_pid, 1), live, clock)
            gone.traffic(g, 20)
            gone.merger.publish()
            live.discard(gone.ident)
            workers[0].merger.fold_dead()
        files = len(os.listdir(tmp))
        after = scrape_times()
        print("== 3. scrape (registry.collect) of one of 8 workers x 50 features")
        print(f"  median {statistics.median(before) * 1e3:.1f} ms "
              f"[{min(before) * 1e3:.1f}-{max(before) * 1e3:.1f}]; after 100 restarts "
              f"{statistics.median(after) * 1e3:.1f} ms "
              f"[{min(after) * 1e3:.1f}-{max(after) * 1e3:.1f}], {files} files")
        single = mlprobe.Registry()
        clock2 = [clock[0]]
        alone = single.get_or_create(("probe", "bench", ""), lambda: ProbeSource(
            "bench", "", workers[0].source.config, PROFILE, DriftSpec(), 600.0, 10,
            clock=lambda: clock2[0]))
        for _ in range(10):
            alone.features.observe({f"f{i:02d}": g.normal(i, 1.0, 200)
                                    for i in range(N_FEATURES)})
            alone.features.flush()
            clock2[0] += 60.0
        times = []
        for _ in range(15):
            t = time.perf_counter()
            single.collect()
            times.append(time.perf_counter() - t)
        print(f"  (one process alone, same model: {statistics.median(times) * 1e3:.1f} ms)")
        for w in workers:
            multiprocess.detach(w.registry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- 4. prometheus_client's multiprocess mode ------------------------------------------------

PROMETHEUS_CHILD = r'''
import os, sys, time, statistics, json
tmp = sys.argv[1]
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tmp
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
LAT = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
       2.5, 5.0, 10.0, 30.0, 60.0)
HTTP = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
pid = [1]
def metrics(value_class, registry):
    values.ValueClass = value_class
    return (Counter("preds", "p", ["model", "outcome"], registry=registry),
            Histogram("lat", "l", ["model"], buckets=LAT, registry=registry),
            Histogram("http", "h", ["method", "route", "status"], buckets=HTTP,
                      registry=registry))
normal = metrics(values.MutexValue, CollectorRegistry())
multi = metrics(values.MultiProcessValue(process_identifier=lambda: pid[0]), None)
def observe(m):
    c, l, h = m
    c.labels("m", "ok").inc(); l.labels("m").observe(0.003)
    h.labels("GET", "/p", "200").observe(0.004)
per = {"normal": [], "multiprocess": []}
for r in range(10):
    for name, m in (("normal", normal), ("multiprocess", multi)):
        t = time.perf_counter()
        for _ in range(20000):
            observe(m)
        per[name].append((time.perf_counter() - t) / 20000 * 1e9)
registry = CollectorRegistry()
MultiProcessCollector(registry, path=tmp)
def scrape():
    ts = []
    for _ in range(10):
        t = time.perf_counter(); generate_latest(registry); ts.append(time.perf_counter() - t)
    return statistics.median(ts)
one = scrape()
for p in range(2, 102):  # 100 restarts: each new process writes its own files
    pid[0] = p
    observe(multi)
after = scrape()
files = len(os.listdir(tmp))
for p in range(1, 102):
    mark_process_dead(p, tmp)  # what a child_exit hook does (it removes only gauges' files)
after_dead = scrape()
print(json.dumps({"per": {k: statistics.median(v) for k, v in per.items()}, "one": one,
                  "after": after, "after_dead": after_dead, "files": files,
                  "files_after": len(os.listdir(tmp))}))
'''


def prometheus_multiprocess() -> None:
    tmp = tempfile.mkdtemp(prefix="prom-mp-bench-")
    try:
        out = subprocess.run([sys.executable, "-c", PROMETHEUS_CHILD, tmp], capture_output=True,
                             text=True, timeout=600, check=True).stdout
        r = json.loads(out)
        print("== 4. prometheus_client multiprocess mode, same counters (calls by outcome, "
              "latency histogram, HTTP histogram)")
        print(f"  per observation of the three: normal {r['per']['normal']:.0f} ns, "
              f"multiprocess {r['per']['multiprocess']:.0f} ns "
              f"({r['per']['multiprocess'] / r['per']['normal']:.2f}x)")
        print(f"  scrape: 1 process {r['one'] * 1e3:.1f} ms; after 100 restarts "
              f"{r['after'] * 1e3:.1f} ms ({r['files']} files), after mark_process_dead "
              f"{r['after_dead'] * 1e3:.1f} ms ({r['files_after']} files: counters and "
              f"histograms keep one file per dead process)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- 5. under a real gunicorn -------------------------------------------------------------------

def app() -> Any:
    """The benchmark's server app (gunicorn imports ``bench_multiprocess:app``)."""
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from mlprobe.asgi import ProbeMiddleware

    probe = mlprobe.Probe("bench", reference=PROFILE)
    predict = probe.track(lambda r: 0.5)

    async def endpoint(request: Any) -> PlainTextResponse:
        predict(ROW)
        return PlainTextResponse("ok")

    return ProbeMiddleware(Starlette(routes=[Route("/predict", endpoint)]), probe=probe)


if os.environ.get("BENCH_MP_SERVE"):
    app = app()  # type: ignore[assignment]  # noqa: F811


def under_gunicorn(quick: bool) -> None:
    import socket

    from servers import free_port

    servers = []
    tmp = tempfile.mkdtemp(prefix="mlprobe-bench-")
    try:
        for name in ("single process", "multi-process mode"):
            port = free_port()
            env = {**os.environ, "BENCH_MP_SERVE": "1",
                   "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "benchmarks")])}
            env.pop("MLPROBE_MULTIPROCESS_DIR", None)
            if name != "single process":
                env["MLPROBE_MULTIPROCESS_DIR"] = tmp
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-w", "1", "-k",
                 "uvicorn.workers.UvicornWorker", "--bind", f"127.0.0.1:{port}",
                 "--no-control-socket", "--log-level", "warning", "bench_multiprocess:app"],
                env=env, start_new_session=True, stdin=subprocess.DEVNULL)
            servers.append((name, port, proc))
        deadline = time.monotonic() + 60
        targets = []
        for name, port, proc in servers:
            while True:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=1):
                        pass
                    if children:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start")
                time.sleep(0.2)
            targets.append({"name": name, "port": port, "pid": int(children[0])})
        spec = {"targets": targets, "rounds": 20 if quick else 120, "burst": 300,
                "concurrency": 4, "seconds": 120 if quick else 400, "path": "/predict"}
        out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "http_load.py"),
                              json.dumps(spec)], capture_output=True, text=True, timeout=900,
                             check=True).stdout
        results = json.loads(out)
        print("== 5. under gunicorn (1 uvicorn worker), GET /predict: a tracked 50-feature call")
        print("| variant | server CPU µs/request | per burst (median) | p50 µs | p99 µs | "
              "p99.9 µs |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        base = None
        for name in ("single process", "multi-process mode"):
            r = results[name]
            bursts = [ns / 1e3 / n for ns, n in zip(r["burst_cpu_ns"], r["burst_responses"])
                      if n]
            cpu = r["stat_cpu_seconds"] / r["stat_responses"] * 1e6
            burst = statistics.median(bursts)
            base = burst if base is None else base
            lat = r["latency_us"]
            print(f"| {name} | {cpu:.1f} | {burst:.1f} ({burst / base:.3f}x) | "
                  f"{lat['p50']:.0f} | {lat['p99']:.0f} | {lat['p99.9']:.0f} |")
    finally:
        for _, _, proc in servers:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-server", action="store_true")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}")
    publish_and_scrape(args.quick)
    prometheus_multiprocess()
    tracked_call(args.quick)
    if not args.skip_server:
        under_gunicorn(args.quick)


if __name__ == "__main__":
    main()
