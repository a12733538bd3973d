"""What model-quality monitoring costs: ids on the request path, the join, memory, collect, shadow.

Every comparison runs its variants side by side in one process, interleaved round by round,
and prints medians (and ratios to the baseline of the section). Sections:

1. A tracked call (single float score, 4-value row input) on a probe without quality, with
   quality and prediction ids stored (the default), and with quality but ``prediction_id=False``.
2. ``record_outcome`` per call, and ``record_outcomes`` for a batch of 10,000 (the join; the
   vectorised fold of the pairs into the window is timed apart, as a collect does it).
3. Memory of the prediction store at its bound, measured with tracemalloc, against the store's
   own estimate (which bounds it: ``max_bytes``).
4. Collect time of a 10-class model with every quality metric (confusion, one-vs-rest AUC,
   calibration, log loss, estimate, label drift off, concept-drift history of 48 buckets).
5. The shadow helper's cost on the primary path: a tracked call alone, shadowed by a trivial
   candidate, and shadowed by a candidate doing real work in the background thread (the
   primary's latency distribution while the candidate competes for the GIL).
6. ``--http``: server CPU per request and client latency under a real uvicorn (load from
   ``http_load.py`` in its own process) for the same three request paths: no quality, quality
   with ids through the middleware header, and quality with ids and a shadow.
7. Multi-process mode: (a) the copy of a version's quality state that ``ProbeSource.state()``
   makes for every collect and publish, for a 10-class and a regression monitor over a full
   window: the monitor read directly (``snapshot()``, what a collect did before states were
   copied), the plain-data round trip (``from_dict(to_dict())``, as of aa8cd50) and
   ``copy()``, with the merge of a second monitor both ways; (b) the outcome exchange with
   1,000 and 10,000 outcomes waiting: a receiver's cycle when nothing changed and when it
   rewrites its file, a holder's cycle with nothing to claim and the one that claims and joins
   them all, beside one publish of the probe's state.

8. ``--http``: shadows under uvicorn (thread and process isolation, trivial and scikit-learn
   candidates), paced and saturated: server and candidate CPU, latency, drops.

Run: ``python benchmarks/bench_quality.py [--rounds N] [--http] [--only 7]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import timeit
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

import mlprobe  # noqa: E402
from mlprobe import QualitySpec, Shadow  # noqa: E402
from mlprobe import multiprocess  # noqa: E402
from mlprobe import _shadow as shadow_module  # noqa: E402
from mlprobe._mp_process import WorkerId  # noqa: E402
from mlprobe._outcomes import PredictionStore  # noqa: E402
from mlprobe._quality import QualityMonitor  # noqa: E402
from mlprobe.testing import sample_value  # noqa: E402
from servers import free_port, wait_listening  # noqa: E402

ROW = [0.3, 1.2, -0.4, 2.0]


def median_ns(fn: Callable[[], Any], number: int) -> float:
    return timeit.timeit(fn, number=number) / number * 1e9


def interleaved(variants: dict[str, Callable[[], Any]], rounds: int, number: int
                ) -> dict[str, float]:
    samples: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(median_ns(fn, number))
    return {k: statistics.median(v) for k, v in samples.items()}


def section_ids(rounds: int, out: Callable[[str], None]) -> None:
    out("\n1. tracked call, single row and score (ns per call, median of rounds)")
    variants = {}
    roomy = QualitySpec(task="binary", max_entries=10_000_000, max_bytes=1 << 40)
    full = QualitySpec(task="binary", max_entries=50_000)
    for name, quality, pid in (("no quality", None, None),
                               ("quality, ids stored", roomy, None),
                               ("quality, ids stored, store full", full, None),
                               ("quality, prediction_id=False", roomy, False)):
        registry = mlprobe.Registry()
        probe = mlprobe.Probe("bench", registry=registry, quality=quality)
        kwargs = {"prediction_id": pid} if pid is not None else {}
        tracked = probe.track(lambda row: 0.7, **kwargs)
        if quality is full:
            for _ in range(60_000):  # at its bound: every new prediction evicts the oldest
                tracked(ROW)
        variants[name] = (lambda t: lambda: t(ROW))(tracked)
    bare = lambda row: 0.7  # noqa: E731
    variants["bare function"] = lambda: bare(ROW)
    result = interleaved(variants, rounds, 20_000)
    base = result["no quality"]
    for name, ns in result.items():
        out(f"   {name:<34} {ns:8.0f} ns   {ns / base:5.2f}x of no quality"
            f"   (+{ns - base:5.0f} ns)")


def section_outcomes(rounds: int, out: Callable[[str], None]) -> None:
    out("\n2. recording outcomes (the join; the fold into the window timed apart)")
    per_call, batch_join, batch_fold = [], [], []
    for _ in range(rounds):
        registry = mlprobe.Registry()
        probe = mlprobe.Probe("bench", registry=registry, quality=QualitySpec(
            task="binary", unknown_grace_seconds=0))
        store = probe._state.store
        monitor = probe._state.quality
        n = 10_000
        keys = [f"id{i}" for i in range(2 * n)]
        for k in keys:
            store.put(k, monitor, 0.7)
        labels = np.random.default_rng(0).integers(0, 2, n).tolist()
        t0 = time.perf_counter()
        for k, label in zip(keys[:n], labels):
            probe.record_outcome(k, label)
        per_call.append((time.perf_counter() - t0) / n * 1e9)
        monitor.flush()
        t0 = time.perf_counter()
        probe.record_outcomes(keys[n:], labels)
        batch_join.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        monitor.flush()
        batch_fold.append((time.perf_counter() - t0) * 1e3)
    out(f"   record_outcome, per call            {statistics.median(per_call):8.0f} ns")
    out(f"   record_outcomes, 10k batch: join    {statistics.median(batch_join):8.2f} ms "
        f"({statistics.median(batch_join) * 100:.0f} ns per outcome)")
    out(f"   fold of those 10k pairs (collect)   {statistics.median(batch_fold):8.2f} ms")


def section_memory(out: Callable[[str], None]) -> None:
    out("\n3. prediction store at its bound (tracemalloc vs the store's estimate)")
    for label, payload, n in (("float score", lambda i: 0.5 + i * 1e-9, 100_000),
                              ("10-class probability row", lambda i: np.full((1, 10), 0.1),
                               50_000)):
        spec = QualitySpec(task="binary", max_entries=n, max_bytes=1 << 40)
        store = PredictionStore(spec)

        class Sink:
            def count(self, result: str, k: int = 1) -> None:
                pass

        sink = Sink()
        keys = [f"{os.urandom(5).hex()}-{i:x}" for i in range(n)]  # ids like new_id()'s
        payloads = [payload(i) for i in range(n)]
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for k, p in zip(keys, payloads):
            store.put(k, sink, p)
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        # the ids and payloads were made before: add what the store keeps of them
        kept = sum(sys.getsizeof(k) for k in keys) + sum(
            sys.getsizeof(p) if not isinstance(p, np.ndarray) else p.nbytes + 112
            for p in payloads)
        out(f"   {label:<26} {n:>7} entries: measured {(used + kept) / n:6.0f} B/entry, "
            f"estimated {store.bytes / n:6.0f} B/entry "
            f"({store.bytes / (used + kept):.2f}x), {(used + kept) / 2**20:6.1f} MiB in all")


def section_collect(rounds: int, out: Callable[[str], None]) -> None:
    out("\n4. collect of a 10-class model with every quality metric (ms)")
    g = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(10)]
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("bench", registry=registry, quality=QualitySpec(
        task="multiclass", classes=classes, labels=classes, reference={"accuracy": 0.8}))
    monitor = probe._state.quality
    clock = [time.time() - 48 * 300]
    monitor._clock = lambda: clock[0]
    for _ in range(48):  # the whole history: 48 buckets of 5 minutes, 2,000 pairs each
        proba = g.dirichlet(np.ones(10), 2000)
        probe.record_pairs(proba, np.array(classes)[g.integers(0, 10, 2000)])
        for row in proba[:200]:
            monitor.observe_prediction(row[None, :], clock[0])
        monitor.flush()
        clock[0] += 300
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        registry.collect()
        times.append((time.perf_counter() - t0) * 1e3)
    plain = mlprobe.Registry()
    mlprobe.Probe("bench", registry=plain)
    base = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        plain.collect()
        base.append((time.perf_counter() - t0) * 1e3)
    out(f"   with quality (12 window buckets, 48 history buckets, 96k pairs) "
        f"{statistics.median(times):6.2f} ms   (a probe without quality: "
        f"{statistics.median(base):.2f} ms)")


SHADOW_VARIANTS = ("tracked alone", "enqueue only", "thread, trivial", "process, trivial",
                   "thread, sklearn", "process, sklearn")


def shadow_candidates(features: int = 8) -> tuple[Any, Any]:
    """Data and a fitted sklearn model: the work a real candidate does per call."""
    from sklearn.linear_model import LogisticRegression

    g = np.random.default_rng(0)
    X = g.normal(size=(500, features))
    y = (X[:, 0] > 0).astype(int)
    return X, LogisticRegression(C=0.5).fit(X, y)


def paced(fn: Callable[[], Any], calls: int, gap: float) -> tuple[list[float], list[float]]:
    """Call ``fn`` every ``gap`` seconds, as requests arrive: each call's duration, and its
    end minus the time it was due (the wait for the GIL after waking up included) in µs."""
    durations, arrivals = [], []
    due = time.perf_counter()
    for _ in range(calls):
        due += gap
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.002:  # fell behind (a stall): start afresh, do not pile up
            due = time.perf_counter()
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        durations.append((t1 - t0) * 1e6)
        arrivals.append((t1 - due) * 1e6)
    return durations, arrivals


def section_shadow(rounds: int, out: Callable[[str], None]) -> None:
    out("\n5. shadow helper on the primary path: calls paced 0.7 ms apart (as requests arrive), "
        "the candidate\n   running meanwhile. 'call': the primary call's duration; 'arrival': "
        "its end minus the time it\n   was due (the wait for the GIL after waking up "
        "included). Medians over rounds of each round's\n   percentile (µs); in brackets the "
        "median and IQR of the round-by-round difference to tracked\n   alone. CPU: the "
        "serving process's (all threads, not the candidate's process) per call")
    X, model = shadow_candidates()
    batch = X[:8]
    variants: dict[str, tuple[Callable[[], Any], Shadow | None, mlprobe.Registry]] = {}
    for name in SHADOW_VARIANTS:
        registry = mlprobe.Registry()
        probe = mlprobe.Probe("bench", version="1", registry=registry,
                              quality=QualitySpec(task="binary", max_entries=20_000))

        def primary(rows: np.ndarray) -> np.ndarray:
            return rows[:, 0]

        shadow = None
        if name == "tracked alone":
            fn = probe.track(primary)
        else:
            candidate = ((lambda rows: model.predict_proba(rows)[:, 1]) if "sklearn" in name
                         else (lambda rows: rows[:, 1]))
            isolation = "process" if "process" in name else "thread"
            shadow = Shadow(probe, candidate, version="2", queue_size=1000, isolation=isolation)
            fn = shadow.track(primary)
            if name == "enqueue only":  # the request path's part alone: no runner ever starts
                # (as if started in this process generation: see Shadow._start)
                shadow._pid = os.getpid()
                shadow._generation = shadow_module._generation
                queue = shadow._queue
                fn = (lambda f, q: lambda rows: (f(rows), q.clear() if len(q) > 900 else None))(
                    fn, queue)
                shadow = None
        variants[name] = ((lambda f: lambda: f(batch))(fn), shadow, registry)
    gap, calls = 0.0007, 300
    for call, shadow, _ in variants.values():  # forks, first calls, copy-on-write faults
        paced(call, 1500, gap)
        if shadow is not None:
            shadow.join(30)
    keys = ("call p50", "arrival p50", "arrival p99", "cpu")
    stats: dict[str, dict[str, list[float]]] = {n: {k: [] for k in keys} for n in variants}
    order = list(variants)
    for r in range(rounds):
        for name in order[r % len(order):] + order[:r % len(order)]:
            call, shadow, _ = variants[name]
            cpu = time.process_time()
            durations, arrivals = paced(call, calls, gap)
            if shadow is not None:
                shadow.join(30)  # the candidate's backlog is this variant's CPU too
            stats[name]["cpu"].append((time.process_time() - cpu) / calls * 1e6)
            durations.sort()
            arrivals.sort()
            stats[name]["call p50"].append(durations[len(durations) // 2])
            stats[name]["arrival p50"].append(arrivals[len(arrivals) // 2])
            stats[name]["arrival p99"].append(arrivals[int(len(arrivals) * 0.99)])
    base = stats["tracked alone"]

    def cell(name: str, key: str) -> str:
        values = stats[name][key]
        if name == "tracked alone":
            return f"{statistics.median(values):7.1f}" + " " * 21
        paired = sorted(v - b for v, b in zip(values, base[key]))
        lo, hi = paired[len(paired) // 4], paired[(3 * len(paired)) // 4]
        return (f"{statistics.median(values):7.1f} ({statistics.median(paired):+6.1f}, "
                f"{lo:+5.0f}..{hi:+5.0f})")

    out(f"   {'':<18} {'call p50':<28} {'arrival p50':<28} {'arrival p99':<28} CPU/call")
    for name in variants:
        cpu = statistics.median(stats[name]["cpu"])
        ratio = statistics.median(a / b for a, b in zip(stats[name]["cpu"], base["cpu"]))
        out(f"   {name:<18} {cell(name, 'call p50')} {cell(name, 'arrival p50')} "
            f"{cell(name, 'arrival p99')} {cpu:6.1f} ({ratio:4.2f}x)")
    for name, (_, shadow, registry) in variants.items():
        if shadow is not None:
            shadow.close()
            dropped = sample_value(registry, "mlprobe_shadow_dropped")
            if dropped:
                out(f"   ({name}: {dropped:.0f} calls dropped by a full queue)")


def start_server(variant: str) -> tuple[subprocess.Popen[bytes], int]:
    import urllib.request

    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--serve", variant, str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(proc, port, what=f"server {variant}", timeout=30)
    # one request before any measurement (a shadow's candidate process starts on it)
    urllib.request.urlopen(f"http://127.0.0.1:{port}/predict", timeout=10).read()
    return proc, port


def serve(variant: str, port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    registry = mlprobe.Registry()
    # a bound the run never reaches (no outcomes come back here): the store never evicts
    quality = None if variant == "no quality" else QualitySpec(task="binary",
                                                               max_entries=10_000_000)
    probe = mlprobe.Probe("bench", version="1", registry=registry, quality=quality)

    def primary(row: list[float]) -> float:
        return 0.7

    shadow = None
    if variant.startswith("shadow"):  # "shadow <isolation>, <candidate>"
        candidate: Callable[[list[float]], float] = lambda row: 0.6  # noqa: E731
        if variant.endswith("sklearn"):
            model = shadow_candidates(features=len(ROW))[1]
            candidate = lambda row: float(model.predict_proba([row])[0, 1])  # noqa: E731
        shadow = Shadow(probe, candidate, version="2",
                        isolation=variant.split()[1].rstrip(","))
        predict = shadow.track(primary)
    elif variant == "quality, no ids":
        predict = probe.track(primary, prediction_id=False)
    else:
        predict = probe.track(primary)

    async def endpoint(request: Any) -> JSONResponse:
        return JSONResponse({"score": predict(ROW)})

    async def shadow_status(request: Any) -> JSONResponse:  # what the bench reads afterwards
        return JSONResponse({
            "pid": os.getpid(), "candidate_pid": shadow.candidate_pid if shadow else None,
            "dropped": sample_value(registry, "mlprobe_shadow_dropped") or 0,
            "ran": sample_value(registry, "mlprobe_predictions",
                                {"model_version": "2", "outcome": "ok"}) or 0})

    app = Starlette(routes=[Route("/predict", endpoint), Route("/shadow", shadow_status)])
    header = None if variant in ("no quality", "quality, no ids") else "x-prediction-id"
    app = mlprobe.ProbeMiddleware(app, probe=probe, prediction_id_header=header)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def section_http(rounds: int, out: Callable[[str], None]) -> None:
    out("\n6. under uvicorn: server CPU per request and client latency (http_load.py)")
    variants = ("no quality", "quality, no ids", "quality, ids via header",
                "shadow thread, trivial")
    servers = {}
    try:
        for name in variants:
            servers[name] = start_server(name)
        spec = {"targets": [{"name": n, "port": p, "pid": proc.pid}
                            for n, (proc, p) in servers.items()],
                "rounds": rounds, "burst": 400, "concurrency": 4, "seconds": 120,
                "path": "/predict"}
        raw = subprocess.run([sys.executable, str(HERE / "http_load.py"), json.dumps(spec)],
                             capture_output=True, text=True, timeout=300, check=True).stdout
        result = json.loads(raw)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)
    per_round = {name: [c / n / 1e3 for c, n in zip(result[name]["burst_cpu_ns"],
                                                   result[name]["burst_responses"])]
                 for name in variants}
    base = per_round[variants[0]]
    for name in variants:
        cpu = statistics.median(per_round[name])
        # bursts of one round ran back to back: paired ratios cancel the machine's drift
        ratios = sorted(a / b for a, b in zip(per_round[name], base))
        lo, hi = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
        lat = result[name]["latency_us"]
        out(f"   {name:<26} CPU {cpu:6.1f} µs/request, paired ratio "
            f"{statistics.median(ratios):4.2f} (IQR {lo:4.2f}-{hi:4.2f})   latency p50 "
            f"{lat['p50']:6.0f} µs  p99 {lat['p99']:6.0f} µs")


def full_monitor(task: str) -> tuple[mlprobe.Probe, QualityMonitor]:
    """A probe whose monitor's window and 48-bucket history are full (2,000 pairs a bucket)."""
    g = np.random.default_rng(0)
    classes = [f"c{i}" for i in range(10)]
    spec = QualitySpec(task="multiclass", classes=classes, labels=classes) \
        if task == "multiclass" else QualitySpec(task="regression")
    probe = mlprobe.Probe("bench", registry=mlprobe.Registry(), quality=spec)
    monitor = probe._state.quality
    clock = [time.time() - 48 * 300]
    monitor._clock = lambda: clock[0]
    for _ in range(48):
        if task == "multiclass":
            proba = g.dirichlet(np.ones(10), 2000)
            probe.record_pairs(proba, np.array(classes)[g.integers(0, 10, 2000)])
            for row in proba[:200]:
                monitor.observe_prediction(row[None, :], clock[0])
        else:
            predicted = g.normal(0, 1, 2000)
            probe.record_pairs(predicted, predicted + g.normal(0, 0.3, 2000))
        monitor.flush()
        clock[0] += 300
    monitor._clock = time.time
    return probe, monitor


def section_multiprocess(rounds: int, out: Callable[[str], None]) -> None:
    out("\n7a. the quality state's copy in ProbeSource.state() (ms, median of rounds)")
    for task in ("multiclass", "regression"):
        _, m = full_monitor(task)
        other = m.copy()
        variants = {
            "snapshot() (read directly)": m.snapshot,
            "from_dict(to_dict()) (aa8cd50)": lambda m=m: QualityMonitor.from_dict(
                m.to_dict(), m.task, m.target, clock=m.clock),
            "copy()": m.copy,
            "merge_dict(other.to_dict())": lambda m=m, o=other: m.copy().merge_dict(
                o.to_dict()),
            "merge(other)": lambda m=m, o=other: m.copy().merge(o),
        }
        result = interleaved(variants, rounds, 5)
        out(f"   {'10-class' if task == 'multiclass' else 'regression'} monitor, full window:")
        round_trip = result["from_dict(to_dict()) (aa8cd50)"]
        for name, ns in result.items():
            out(f"      {name:<32} {ns / 1e6:7.3f} ms   {ns / round_trip:5.2f}x of the round "
                "trip")
    for n in (1000, 10_000):
        exchange(n, rounds if n == 1000 else max(3, rounds // 3), out)


def exchange(n: int, rounds: int, out: Callable[[str], None]) -> None:
    """The outcome exchange between a holder of ``n`` predictions and the receiver of their
    ``n`` labels (simulated workers of one directory)."""
    import tempfile

    out(f"\n7b. the outcome exchange, {n:,} outcomes waiting (ms, median of rounds)")
    samples: dict[str, list[float]] = {k: [] for k in (
        "receiver cycle, nothing changed", "receiver cycle, file rewritten",
        "holder cycle, nothing to claim", f"holder cycle, claims and joins {n:,}",
        "publish of the probe state (reference)")}
    sizes = []
    for r in range(rounds):
        with tempfile.TemporaryDirectory() as path:
            live = {WorkerId(70_000 + r * 2, 1), WorkerId(70_001 + r * 2, 1)}
            workers = []
            for ident in sorted(live, key=lambda w: w.pid):
                registry = mlprobe.Registry()
                merger = multiprocess.attach(registry, path, interval=1.0, background=False,
                                             worker=lambda ident=ident: ident,
                                             alive=lambda w, live=live: w in live)
                probe = mlprobe.Probe("bench", registry=registry, quality=QualitySpec(
                    task="binary", max_unmatched=n + 10))  # (room for "one-more" below)
                workers.append((merger, probe))
            (holder_merger, holder), (receiver_merger, receiver) = workers
            for i in range(n):
                receiver.record_outcome(f"id{i}", i % 2)
            receiver_merger.exchange_outcomes()  # the file, first written
            sizes.append(os.path.getsize(os.path.join(
                path, f"mlprobe-outcomes-{receiver_merger.worker().name}.state")))
            holder_merger.exchange_outcomes()  # (reads the receiver's file once)
            for name, fn in (("receiver cycle, nothing changed",
                              receiver_merger.exchange_outcomes),
                             ("holder cycle, nothing to claim",
                              holder_merger.exchange_outcomes),
                             ("publish of the probe state (reference)",
                              receiver_merger.publish)):
                t0 = time.perf_counter()
                fn()
                samples[name].append((time.perf_counter() - t0) * 1e3)
            receiver.record_outcome("one-more", 1)
            t0 = time.perf_counter()
            receiver_merger.exchange_outcomes()
            samples["receiver cycle, file rewritten"].append((time.perf_counter() - t0) * 1e3)
            tracked = holder.track(lambda row, pid: 0.7, prediction_id="pid")
            for i in range(n):
                tracked(ROW, f"id{i}")
            t0 = time.perf_counter()
            holder_merger.exchange_outcomes()
            samples[f"holder cycle, claims and joins {n:,}"].append(
                (time.perf_counter() - t0) * 1e3)
            holder._state.quality.flush()
            assert holder._state.quality.counters["matched"] == n
            for merger in (holder_merger, receiver_merger):
                merger.closed = True
    for name, values in samples.items():
        out(f"   {name:<40} {statistics.median(values):7.2f} ms")
    out(f"   the receiver's file: {statistics.median(sizes) / 1024:.0f} KiB for {n:,} outcomes")


SHADOW_SERVERS = ("quality, ids via header", "shadow thread, trivial",
                  "shadow process, trivial", "shadow thread, sklearn", "shadow process, sklearn")


def _cpu_seconds(pid: int | None) -> float:
    if not pid:
        return 0.0
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def section_http_shadow(rounds: int, out: Callable[[str], None]) -> None:
    out("\n8. shadow under uvicorn (one worker; primary: a constant; ids via the header): "
        "paced at 2 ms\n   (one connection, a request every 2 ms) and saturated "
        "(4 connections, as fast as it\n   answers). Server CPU: the server "
        "process's (all threads) over the whole run;\n   candidate CPU: its process's (process "
        "isolation)")
    import urllib.request

    servers = {}
    try:
        for name in SHADOW_SERVERS:
            servers[name] = start_server(name)
        for load, extra in (("paced", {"gap_us": 2000, "concurrency": 1, "burst": 250}),
                            ("saturated", {"concurrency": 4, "burst": 400})):
            status = {name: json.load(urllib.request.urlopen(
                f"http://127.0.0.1:{port}/shadow", timeout=5)) for name, (_, port) in
                servers.items()}
            child_cpu = {n: _cpu_seconds(st["candidate_pid"]) for n, st in status.items()}
            spec = {"targets": [{"name": n, "port": p, "pid": proc.pid}
                                for n, (proc, p) in servers.items()],
                    "rounds": rounds, "seconds": 240, "path": "/predict", **extra}
            raw = subprocess.run([sys.executable, str(HERE / "http_load.py"), json.dumps(spec)],
                                 capture_output=True, text=True, timeout=400,
                                 check=True).stdout
            result = json.loads(raw)
            time.sleep(0.5)  # the candidates finish their backlog
            after = {name: json.load(urllib.request.urlopen(
                f"http://127.0.0.1:{port}/shadow", timeout=5)) for name, (_, port) in
                servers.items()}
            out(f"   {load}:")
            base = result[SHADOW_SERVERS[0]]
            base_cpu = base["stat_cpu_seconds"] / base["stat_responses"]
            for name in SHADOW_SERVERS:
                r = result[name]
                cpu = r["stat_cpu_seconds"] / r["stat_responses"]
                child = (_cpu_seconds(status[name]["candidate_pid"]) - child_cpu[name]) \
                    / r["stat_responses"]
                lat = r["latency_us"]
                dropped = after[name]["dropped"] - status[name]["dropped"]
                ran = after[name]["ran"] - status[name]["ran"]
                out(f"   {name:<26} server CPU {cpu * 1e6:6.1f} µs/request "
                    f"({cpu / base_cpu:4.2f}x)  latency p50 {lat['p50']:6.0f} p99 "
                    f"{lat['p99']:6.0f} p99.9 {lat['p99.9']:6.0f} µs"
                    + (f"  candidate CPU {child * 1e6:5.1f} µs/request" if child else "")
                    + (f"  ran {ran}, dropped {dropped}" if ran or dropped else ""))
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--http", action="store_true", help="also measure under uvicorn")
    parser.add_argument("--http-only", action="store_true", help="only measure under uvicorn")
    parser.add_argument("--only", type=int, choices=[7], help="only this section")
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return 0
    out = print
    out(f"mlprobe {mlprobe.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    if args.http_only:
        section_http(max(10, args.rounds), out)
        section_http_shadow(max(10, args.rounds), out)
        return 0
    if args.only == 7:
        section_multiprocess(args.rounds, out)
        return 0
    section_ids(args.rounds, out)
    section_outcomes(max(3, args.rounds // 3), out)
    section_memory(out)
    section_collect(args.rounds, out)
    section_shadow(args.rounds, out)
    section_multiprocess(args.rounds, out)
    if args.http:
        section_http(max(10, args.rounds), out)
        section_http_shadow(max(10, args.rounds), out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
