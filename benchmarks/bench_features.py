"""Feature monitoring cost: single-row calls, batch ingest, collect time, memory.

Side by side in one process: the amortised per-row cost of the feature monitor alone and of
``probe.observe`` for single dict rows of 20 numeric + 5 categorical features (buffered,
ingested off the request path), against a
plain-Python per-row bisect counter (the cheapest hand-written alternative); a 10,000-row batch
against a 100,000-row reference; collect time for 100 features; resident memory over 1,000,000
single-row calls. ``--baseline DIR`` runs another version's code side by side (a package
``mlprobe_base`` in DIR, built as bench_tail_latency.py describes). Run:
``python benchmarks/bench_features.py [--quick] [--dataframe] [--baseline DIR]``.
"""

from __future__ import annotations

import argparse
import bisect
import importlib
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

import mlprobe

RNG = np.random.default_rng(0)
CATS = ["a", "b", "c", "d", "e"]


def make_profile(n_numeric: int, n_categorical: int, n_rows: int) -> mlprobe.ReferenceProfile:
    data = {f"num_{i:02d}": RNG.normal(i, 1 + i / 10, n_rows) for i in range(n_numeric)}
    for j in range(n_categorical):
        data[f"cat_{j}"] = RNG.choice(CATS, n_rows).astype(object)
    return mlprobe.ReferenceProfile.from_data(data, categorical=[f"cat_{j}"
                                                                  for j in range(n_categorical)])


def rows(n: int, n_numeric: int = 20, n_categorical: int = 5) -> list[dict]:
    nums = RNG.normal(0, 1, (n, n_numeric)).tolist()
    cats = RNG.choice(CATS, (n, n_categorical)).tolist()
    return [{**{f"num_{i:02d}": r[i] for i in range(n_numeric)},
             **{f"cat_{j}": c[j] for j in range(n_categorical)}} for r, c in zip(nums, cats)]


class BisectCounter:
    """Hand-written baseline: per row, bisect every numeric value into 10 bins and count."""

    def __init__(self, profile: mlprobe.ReferenceProfile) -> None:
        self.edges = {n: list(f.edges[list(f.psi_edge_index)]) for n, f in
                      profile.features.items() if f.kind == "numeric"}
        self.counts = {n: [0] * 11 for n in self.edges}
        self.cats: dict[tuple[str, str], int] = {}

    def observe(self, row: dict) -> None:
        for name, edges in self.edges.items():
            self.counts[name][bisect.bisect_right(edges, row[name])] += 1
        for name in row.keys() - self.edges.keys():
            key = (name, row[name])
            self.cats[key] = self.cats.get(key, 0) + 1


def per_row_ns(fn, data: list[dict], finish=None) -> float:
    """Wall time per row of calling ``fn`` on every row, then ``finish()`` (the flush of what
    is still buffered, so every row's work is counted whichever thread does it)."""
    start = time.perf_counter()
    for row in data:
        fn(row)
    if finish is not None:
        finish()
    return (time.perf_counter() - start) / len(data) * 1e9


def single_row_variants(module, profile, label: str) -> dict:
    """``{name: (per-row function, finish)}`` for one mlprobe package (this one or a
    baseline copy), each on a fresh probe."""
    alone = module.Probe("alone", registry=module.Registry(), reference=profile)
    probe = module.Probe("single", registry=module.Registry(), reference=profile)
    tracked = module.Probe("tracked", registry=module.Registry(), reference=profile)

    @tracked.track
    def predict(row):
        return 0.5

    def flush(p):
        return p._state.features.window

    return {
        # the per-row feature statistics only, without the rows-per-call histogram
        f"{label} feature monitor alone": (alone._state.features.observe, flush(alone)),
        f"{label} probe.observe (buffered)": (lambda r, p=probe: p.observe(inputs=r),
                                              flush(probe)),
        f"{label} @probe.track, all metrics": (predict, flush(tracked)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataframe", action="store_true",
                        help="send the batch as a pandas DataFrame (pandas is then loaded, "
                             "which also switches categorical tallies to pandas.factorize)")
    parser.add_argument("--baseline", type=Path,
                        help="a directory holding a package mlprobe_base (another version's "
                             "src/mlprobe) to run side by side; see bench_tail_latency.py")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    profile = make_profile(20, 5, 100_000)
    data = rows(20_480)
    baseline = None
    if args.baseline is not None:
        sys.path.insert(0, str(args.baseline))
        baseline = importlib.import_module("mlprobe_base")
        base_profile = baseline.ReferenceProfile.from_dict(profile.to_dict())

    print("== single-row calls, 20 numeric + 5 categorical features (ns per row, amortised: "
          "the calls, then the flush of what is still buffered)")
    results: dict[str, list[float]] = {"plain-Python bisect counter": []}
    for _ in range(rounds):
        counter = BisectCounter(profile)
        results["plain-Python bisect counter"].append(per_row_ns(counter.observe, data))
        variants = single_row_variants(mlprobe, profile, "mlprobe")
        if baseline is not None:
            variants.update(single_row_variants(baseline, base_profile, "baseline"))
        for name, (fn, finish) in variants.items():
            results.setdefault(name, []).append(per_row_ns(fn, data, finish))
    base = statistics.median(results["plain-Python bisect counter"])
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:40} median {med:8.0f}  min {min(values):8.0f}  ratio {med / base:5.2f}")

    print("== the same tracked call: what the calling thread pays (ns per row); the flusher is "
          "held off during the calls and its work is timed apart")
    paid: dict[str, list[float]] = {}
    for _ in range(rounds):
        probe = mlprobe.Probe("paid", registry=mlprobe.Registry(), reference=profile)
        predict = probe.track(lambda row: 0.5)
        monitor = probe._state.features
        with monitor._flush_lock:  # the flusher skips a monitor whose lock is taken
            paid.setdefault("mlprobe: the calls", []).append(per_row_ns(predict, data))
        t0 = time.perf_counter()
        monitor.flush()
        paid.setdefault("mlprobe: the flush, off the request path", []).append(
            (time.perf_counter() - t0) / len(data) * 1e9)
        if baseline is not None:
            old = baseline.Probe("paid", registry=baseline.Registry(), reference=base_profile)
            paid.setdefault("baseline: the calls (inline flush every 4,096)", []).append(
                per_row_ns(old.track(lambda row: 0.5), data))
    for name, values in paid.items():
        print(f"  {name:48} median {statistics.median(values):8.0f}  min {min(values):8.0f}")

    print("== 10,000-row batch vs 100,000-row reference, 25 features (ms)")
    batch = {f"num_{i:02d}": RNG.normal(i + 0.3, 1 + i / 10, 10_000) for i in range(20)}
    for j in range(5):
        batch[f"cat_{j}"] = RNG.choice(CATS, 10_000).astype(object)
    if args.dataframe:
        import pandas as pd

        batch = pd.DataFrame(batch)
    print(f"  batch as {'a DataFrame' if args.dataframe else 'a dict of numpy columns'}")
    packages = [("mlprobe", mlprobe, profile)]
    if baseline is not None:
        packages.append(("baseline", baseline, base_profile))
    timings: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n, _, _ in packages}
    for _ in range(rounds):
        for name, module, prof in packages:
            probe = module.Probe("batch", registry=module.Registry(), reference=prof)
            t0 = time.perf_counter()
            probe.observe(inputs=batch)
            t1 = time.perf_counter()
            probe.drift_status()
            t2 = time.perf_counter()
            timings[name][0].append((t1 - t0) * 1e3)
            timings[name][1].append((t2 - t1) * 1e3)
    for name, (ingest, evaluate) in timings.items():
        print(f"  {name:8} ingest median {statistics.median(ingest):.2f} ms; every statistic "
              f"(drift_status) median {statistics.median(evaluate):.2f} ms; total "
              f"{statistics.median(ingest) + statistics.median(evaluate):.2f} ms")

    print("== collect time, 100 features (ms)")
    profile100 = make_profile(80, 20, 20_000)
    registry = mlprobe.Registry()
    probe = mlprobe.Probe("wide", registry=registry, reference=profile100)
    wide = {f"num_{i:02d}": RNG.normal(i, 1, 5000) for i in range(80)}
    wide.update({f"cat_{j}": RNG.choice(CATS, 5000).astype(object) for j in range(20)})
    probe.observe(inputs=wide)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        families = registry.collect()
        times.append((time.perf_counter() - t0) * 1e3)
    n_series = sum(len(f.samples) for f in families)
    print(f"  registry.collect() median {statistics.median(times):.1f} ms, {n_series} samples")

    calls = 200_000 if args.quick else 1_000_000
    print(f"== resident memory over {calls:,} single-row calls")
    probe = mlprobe.Probe("memory", registry=mlprobe.Registry(), reference=profile)

    @probe.track
    def predict_mem(row):
        return 0.5

    checkpoints = []
    for i in range(calls):
        predict_mem(data[i % len(data)])
        if (i + 1) % (calls // 5) == 0:
            probe._state.features.window()  # what a scrape does
            checkpoints.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("  max RSS (MiB) at each fifth: " + ", ".join(f"{m:.0f}" for m in checkpoints))


if __name__ == "__main__":
    main()
