"""Feature monitoring cost: single-row calls, batch ingest, collect time, memory.

Side by side in one process: the amortised per-row cost of the feature monitor alone and of
``probe.observe`` for single dict rows of 20 numeric + 5 categorical features (buffered,
flushed every 4,096 rows), against a
plain-Python per-row bisect counter (the cheapest hand-written alternative); a 10,000-row batch
against a 100,000-row reference; collect time for 100 features; resident memory over 1,000,000
single-row calls. Run: ``python benchmarks/bench_features.py [--quick] [--dataframe]``.
"""

from __future__ import annotations

import argparse
import bisect
import resource
import statistics
import time

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


def per_row_ns(fn, data: list[dict]) -> float:
    start = time.perf_counter()
    for row in data:
        fn(row)
    return (time.perf_counter() - start) / len(data) * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--dataframe", action="store_true",
                        help="send the batch as a pandas DataFrame (pandas is then loaded, "
                             "which also switches categorical tallies to pandas.factorize)")
    args = parser.parse_args()
    rounds = 3 if args.quick else 7
    profile = make_profile(20, 5, 100_000)
    data = rows(20_480)

    print("== single-row calls, 20 numeric + 5 categorical features (ns per row, amortised)")
    results: dict[str, list[float]] = {"plain-Python bisect counter": [],
                                       "mlprobe feature monitor alone": [],
                                       "mlprobe probe.observe (buffered)": [],
                                       "mlprobe @probe.track, all metrics": []}
    for _ in range(rounds):
        counter = BisectCounter(profile)
        results["plain-Python bisect counter"].append(per_row_ns(counter.observe, data))
        monitor = mlprobe.Probe("alone", registry=mlprobe.Registry(), reference=profile)
        # the per-row feature statistics only, without the rows-per-call histogram
        results["mlprobe feature monitor alone"].append(
            per_row_ns(monitor._state.features.observe, data))
        probe = mlprobe.Probe("single", registry=mlprobe.Registry(), reference=profile)
        results["mlprobe probe.observe (buffered)"].append(
            per_row_ns(lambda r, p=probe: p.observe(inputs=r), data))
        tracked = mlprobe.Probe("tracked", registry=mlprobe.Registry(), reference=profile)

        @tracked.track
        def predict(row):
            return 0.5

        results["mlprobe @probe.track, all metrics"].append(per_row_ns(predict, data))
    base = statistics.median(results["plain-Python bisect counter"])
    for name, values in results.items():
        med = statistics.median(values)
        print(f"  {name:40} median {med:8.0f}  min {min(values):8.0f}  ratio {med / base:5.2f}")

    print("== 10,000-row batch vs 100,000-row reference, 25 features (ms)")
    batch = {f"num_{i:02d}": RNG.normal(i + 0.3, 1 + i / 10, 10_000) for i in range(20)}
    for j in range(5):
        batch[f"cat_{j}"] = RNG.choice(CATS, 10_000).astype(object)
    if args.dataframe:
        import pandas as pd

        batch = pd.DataFrame(batch)
    print(f"  batch as {'a DataFrame' if args.dataframe else 'a dict of numpy columns'}")
    ingest, evaluate = [], []
    for _ in range(rounds):
        probe = mlprobe.Probe("batch", registry=mlprobe.Registry(), reference=profile)
        t0 = time.perf_counter()
        probe.observe(inputs=batch)
        t1 = time.perf_counter()
        probe.drift_status()
        t2 = time.perf_counter()
        ingest.append((t1 - t0) * 1e3)
        evaluate.append((t2 - t1) * 1e3)
    print(f"  ingest median {statistics.median(ingest):.2f} ms; every statistic (drift_status) "
          f"median {statistics.median(evaluate):.2f} ms; total "
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
