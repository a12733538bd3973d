"""Two source trees of mlprobe side by side in one process: is a structural change free?

Loads this checkout's ``src/mlprobe`` as ``mlprobe`` and a baseline (a git revision, exported
with ``git archive``, or a directory holding ``mlprobe/``) as ``mlprobe_baseline``, builds the
same workloads with each, and times them interleaved round by round (the order alternates), so
machine noise hits both alike. Prints per-workload medians and the per-round ratio
``now / baseline`` with its interquartile range. Workloads: a tracked call (count, errors,
latency, in-flight), ``probe.observe`` of one dict row (25 features, buffered), a 10,000-row
batch against a 100,000-row reference and ``drift_status()`` after it, ``evaluate_dataset`` of
25 features, ``registry.collect()`` of a 100-feature model, one request through the ASGI
middleware, and, when both trees have model quality, a tracked call storing its prediction
id, ``record_outcome`` per call, ``record_outcomes`` of 10,000 and the collect of a 10-class
quality probe with a full window.

Run: ``python benchmarks/bench_trees.py --baseline REV [--rounds N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def load(name: str, src: Path) -> ModuleType:
    """Import the package at ``src/mlprobe`` under the top-level name ``name``."""
    spec = importlib.util.spec_from_file_location(
        name, src / "mlprobe" / "__init__.py", submodule_search_locations=[str(src / "mlprobe")])
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def baseline_src(baseline: str, tmp: str) -> Path:
    """A directory holding the baseline's ``mlprobe/`` package."""
    if Path(baseline, "mlprobe").is_dir():
        return Path(baseline)
    archive = Path(tmp, "baseline.tar")
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), baseline, "src"],
                   check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    return Path(tmp, "src")


def first(name: str, *candidates: str) -> ModuleType:
    """The first of ``name.candidate`` modules that exists (a module may have been split)."""
    for candidate in candidates:
        try:
            return importlib.import_module(f"{name}.{candidate}")
        except ImportError:
            continue
    raise ImportError(f"none of {candidates} in {name}")


def workloads(name: str, m: ModuleType) -> dict[str, Callable[[], float]]:
    """Build every workload with package ``m`` (imported as ``name``); each returns a time."""
    rng = np.random.default_rng(0)
    cats = np.array(["a", "b", "c", "d", "e"], dtype=object)
    ref = {f"num_{i:02d}": rng.normal(i, 1 + i / 10, 100_000) for i in range(20)}
    ref.update({f"cat_{j}": rng.choice(cats, 100_000) for j in range(5)})
    cur = {f"num_{i:02d}": rng.normal(i + 0.1, 1 + i / 10, 10_000) for i in range(20)}
    cur.update({f"cat_{j}": rng.choice(cats, 10_000) for j in range(5)})
    row = {k: (float(v[0]) if k.startswith("num") else v[0]) for k, v in cur.items()}
    profile = m.ReferenceProfile.from_data(ref, categorical=[f"cat_{j}" for j in range(5)])
    evaluate = first(name, "_drift_eval", "_drift").evaluate_dataset
    window = importlib.import_module(f"{name}._window").DatasetWindow(profile)
    window.update(cur)

    tracked = m.Probe("call", registry=m.Registry()).track(lambda x: 0.5, inputs=False,
                                                             scores=False)
    rows_probe = m.Probe("rows", registry=m.Registry(), reference=profile)
    batch_probe = m.Probe("batch", registry=m.Registry(), reference=profile)
    wide = {f"f{i:03d}": rng.normal(0, 1, 20_000) for i in range(100)}
    wide_registry = m.Registry()
    m.Probe("wide", registry=wide_registry,
            reference=m.ReferenceProfile.from_data(wide)).observe(
        inputs={k: v[:5000] for k, v in wide.items()})

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = importlib.import_module(f"{name}.asgi").ProbeMiddleware(
        app, registry=m.Registry())
    loop = asyncio.new_event_loop()
    scope = {"type": "http", "method": "GET", "path": "/x", "headers": [], "root_path": ""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    def timed(fn: Callable[[], Any], n: int, scale: float) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            for _ in range(n):
                fn()
            return (time.perf_counter() - start) / n * scale
        return run

    def requests() -> float:
        async def go() -> None:
            for _ in range(2000):
                await middleware(dict(scope), receive, send)
        start = time.perf_counter()
        loop.run_until_complete(go())
        return (time.perf_counter() - start) / 2000 * 1e6

    out = {
        "tracked call, count only (ns)": timed(lambda: tracked(1), 20_000, 1e9),
        "probe.observe of a dict row (ns)": timed(lambda: rows_probe.observe(inputs=row),
                                                  8192, 1e9),
        "10k-row batch ingest, 25 features (ms)": timed(
            lambda: batch_probe.observe(inputs=cur), 5, 1e3),
        "drift_status() after it (ms)": timed(batch_probe.drift_status, 10, 1e3),
        "evaluate_dataset, 25 features (ms)": timed(lambda: evaluate(profile, window), 20, 1e3),
        "registry.collect(), 100 features (ms)": timed(wide_registry.collect, 5, 1e3),
        "one ASGI request (µs)": requests,
    }
    if hasattr(m, "QualitySpec"):
        out.update(quality_workloads(m, timed))
    return out


def quality_workloads(m: ModuleType, timed: Callable[..., Callable[[], float]]
                      ) -> dict[str, Callable[[], float]]:
    """Model quality: ids on the request path, the join, and the collect."""
    g = np.random.default_rng(1)
    spec = m.QualitySpec(task="binary", unknown_grace_seconds=0, max_entries=10_000_000,
                         max_bytes=1 << 40)
    ids = m.Probe("ids", registry=m.Registry(), quality=spec).track(lambda x: 0.5,
                                                                     inputs=False)

    def joins(batch: bool) -> Callable[[], float]:
        def run() -> float:
            probe = m.Probe("join", registry=m.Registry(), quality=spec)
            store, monitor = probe._state.store, probe._state.quality
            keys = [f"id{i}" for i in range(10_000)]
            for key in keys:
                store.put(key, monitor, 0.7)
            store.ingest()
            labels = [i % 2 for i in range(10_000)]
            start = time.perf_counter()
            if batch:
                probe.record_outcomes(keys, labels)
                return (time.perf_counter() - start) * 1e3
            for key, label in zip(keys, labels):
                probe.record_outcome(key, label)
            return (time.perf_counter() - start) / 10_000 * 1e9
        return run

    classes = [f"c{i}" for i in range(10)]
    registry = m.Registry()
    probe = m.Probe("ten", registry=registry, quality=m.QualitySpec(
        task="multiclass", classes=classes, labels=classes))
    for _ in range(12):
        proba = g.dirichlet(np.ones(10), 2000)
        probe.record_pairs(proba, np.array(classes)[g.integers(0, 10, 2000)])
    return {
        "tracked call, quality, id stored (ns)": timed(lambda: ids(1), 20_000, 1e9),
        "record_outcome, per call (ns)": joins(batch=False),
        "record_outcomes, 10k batch (ms)": joins(batch=True),
        "collect, 10-class quality probe (ms)": timed(registry.collect, 10, 1e3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True,
                        help="git revision, or a directory that holds mlprobe/")
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    os.environ["MLPROBE_PROMETHEUS_AUTO"] = "0"  # each tree would attach to the same REGISTRY
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"baseline": load("mlprobe_baseline", baseline_src(args.baseline, tmp)),
                 "now": load("mlprobe", ROOT / "src")}
        built = {key: workloads(module.__name__, module) for key, module in trees.items()}
    times: dict[tuple[str, str], list[float]] = {}
    for r in range(args.rounds):
        order = ("baseline", "now") if r % 2 == 0 else ("now", "baseline")
        for workload in built["now"]:
            for key in order:
                times.setdefault((workload, key), []).append(built[key][workload]())
    print(f"python {sys.version.split()[0]}; baseline {args.baseline}; {args.rounds} interleaved "
          "rounds\n")
    print("| workload | baseline (median) | now (median) | now / baseline, per round [IQR] |")
    print("| --- | ---: | ---: | ---: |")
    for workload in built["now"]:
        before, now = times[(workload, "baseline")], times[(workload, "now")]
        ratios = [b / a for a, b in zip(before, now)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"| {workload} | {statistics.median(before):.2f} | {statistics.median(now):.2f} | "
              f"{statistics.median(ratios):.3f} [{q1:.3f}, {q3:.3f}] |")


if __name__ == "__main__":
    main()
